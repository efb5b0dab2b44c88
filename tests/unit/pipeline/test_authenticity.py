"""Authentication-Results, which of them to believe, and the backscatter policy (PRODUCT.md §8)."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from maildesk.config.model import Authenticity, SpamHeader
from maildesk.pipeline.authenticity import (MethodResult, aligned, authenticated_by,
                                            autoreply_refusal, evaluate_results,
                                            format_authentication_results, judge_authenticity,
                                            organizational_domain,
                                            parse_authentication_results)

RELAY = "192.0.2.10"
TRUST = Authenticity(policy="block-fail", trusted_authserv_ids=("mx.example.com",),
                     trusted_relays=(ipaddress.ip_network("192.0.2.0/28"),),
                     spam_header=SpamHeader("X-Spam-Flag", re.compile("(?i)^yes")))
CLIENT = "ivan@shop.example"


# -- parsing ------------------------------------------------------------------------------------

def test_a_gmail_header_is_read_with_comments_and_properties():
    ar = parse_authentication_results(
        "mx.google.com;\r\n       dkim=pass header.i=@shop.example header.b=AbCd+/== "
        "header.s=20230601;\r\n       spf=pass (google.com: domain of ivan@shop.example designates "
        "192.0.2.1 as permitted sender) smtp.mailfrom=ivan@shop.example;\r\n"
        "       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=shop.example")
    assert ar is not None and ar.authserv_id == "mx.google.com"
    assert [(r.method, r.result) for r in ar.results] == [("dkim", "pass"), ("spf", "pass"),
                                                          ("dmarc", "pass")]
    assert ar.results[0].prop("header.i") == "@shop.example"
    assert ar.results[0].prop("header.s") == "20230601"
    assert ar.results[1].prop("smtp.mailfrom") == "ivan@shop.example"
    assert ar.results[2].prop("header.from") == "shop.example"


def test_version_reason_policy_props_quoted_values_and_odd_spacing():
    ar = parse_authentication_results(
        'MX.Example.COM 1 ; spf = fail reason="not permitted; see (x)" smtp.mailfrom = '
        '"a b"@x.example ; dkim/1=pass header . d=x.example policy.dkim-rules=strict;'
        " dmarc=fail action=none header.from=x.example; compauth=fail reason=000")
    assert ar.authserv_id == "mx.example.com"
    spf, dkim, dmarc, comp = ar.results
    assert (spf.result, spf.reason, spf.prop("smtp.mailfrom")) == (
        "fail", "not permitted; see (x)", "a b@x.example")
    assert dkim.prop("header.d") == "x.example" and dkim.prop("policy.dkim-rules") == "strict"
    assert dmarc.prop("header.from") == "x.example" and comp.method == "compauth"


def test_no_result_and_nonsense():
    assert parse_authentication_results("mx.example.com; none").results == ()
    assert parse_authentication_results("") is None
    assert parse_authentication_results("   ;spf=pass") is None
    assert parse_authentication_results("mx; =pass; spf=; dkim=pass").results == (
        MethodResult("dkim", "pass"),)


def test_a_comment_cannot_smuggle_a_result():
    ar = parse_authentication_results("mx.example.com; spf=fail (dmarc=pass; dkim=pass) "
                                      "smtp.mailfrom=x.example")
    assert [(r.method, r.result) for r in ar.results] == [("spf", "fail")]


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parsing_never_raises(text):
    parse_authentication_results(text)


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_what_we_write_reads_back_whatever_the_envelope_held(mail_from, helo):
    value = format_authentication_results("mail.example.com", (
        MethodResult("spf", "pass", (("smtp.mailfrom", mail_from), ("smtp.helo", helo))),
        MethodResult("dmarc", "none")))
    assert "\n" not in value and "\r" not in value
    ar = parse_authentication_results(value)
    assert ar.authserv_id == "mail.example.com"
    assert [(r.method, r.result) for r in ar.results] == [("spf", "pass"), ("dmarc", "none")]


# -- alignment and evaluation -------------------------------------------------------------------

def test_relaxed_alignment_is_by_organisational_domain():
    assert organizational_domain("mail.shop.co.uk") == "shop.co.uk"
    assert aligned("bounces.shop.example", "shop.example")
    assert aligned("@news.shop.example", "shop.example")
    assert not aligned("shop.example.evil", "shop.example")
    assert not aligned("other.co.uk", "shop.co.uk")       # co.uk is a public suffix
    assert not aligned(None, "shop.example")


@pytest.mark.parametrize("value, result", [
    ("mx; dmarc=pass header.from=shop.example", "pass"),
    ("mx; spf=pass smtp.mailfrom=bounce@mail.shop.example", "pass"),
    ("mx; dkim=pass header.d=shop.example", "pass"),
    ("mx; dkim=pass header.i=@eu.shop.example", "pass"),
    ("mx; spf=pass smtp.mailfrom=esp.example; dkim=pass header.d=esp.example", "none"),
    ("mx; spf=fail smtp.mailfrom=shop.example", "fail"),
    ("mx; dmarc=fail header.from=shop.example", "fail"),
    ("mx; dkim=fail header.d=shop.example", "fail"),
    # Forwarded mail: SPF fails at the forwarder, the author's DKIM still passes.
    ("mx; spf=fail smtp.mailfrom=shop.example; dkim=pass header.d=shop.example", "pass"),
    ("mx; spf=pass smtp.mailfrom=shop.example; dmarc=fail header.from=shop.example", "fail"),
    # A DMARC result about another From than the one we would answer counts for nothing.
    ("mx; dmarc=pass header.from=evil.example", "none"),
    ("mx; dmarc=fail header.from=evil.example", "none"),
    ("mx; spf=softfail smtp.mailfrom=shop.example; dkim=temperror", "none"),
    ("mx; spf=none", "none"),
])
def test_evaluation(value, result):
    assert evaluate_results(parse_authentication_results(value), "shop.example")[0] == result


# -- whom to believe ----------------------------------------------------------------------------

def judge(headers, *, source=f"smtp:{RELAY}", own=None, trust=TRUST, sender=CLIENT):
    return judge_authenticity(tuple(headers), sender=sender, source=source, own_results=own,
                              settings=trust)


def ar(value):
    return ("Authentication-Results", value)


FAIL = ar("mx.example.com; spf=fail smtp.mailfrom=shop.example; dmarc=fail header.from=shop.example")
PASS = ar("mx.example.com; dmarc=pass header.from=shop.example")


def test_the_trusted_relays_header_is_read():
    v = judge([FAIL, ("Received", "from x")])
    assert v.result == "fail" and "mx.example.com" in v.reason
    assert judge([PASS]).result == "pass"


def test_a_header_from_another_authserv_id_is_ignored():
    assert judge([ar("mx.evil.example; dmarc=fail header.from=shop.example")]).result == "none"


def test_a_header_handed_over_by_an_untrusted_client_ip_is_ignored():
    assert judge([FAIL], source="smtp:198.51.100.7").result == "none"
    assert judge([PASS], source="smtp:198.51.100.7").result == "none"
    assert judge([PASS], source="smtp:?").result == "none"


def test_only_the_topmost_header_counts():
    # The attacker's own "pass" below the relay's header: the relay's fail decides.
    assert judge([FAIL, PASS]).result == "fail"
    # The relay wrote no header (or another id did, topmost): the forged copy below is not read.
    assert judge([("Received", "by relay"), PASS]).result == "pass"   # topmost A-R is PASS
    assert judge([ar("spamfilter.example; spf=none"), PASS]).result == "none"


def test_imap_and_pipe_mail_trust_the_authserv_id_alone():
    assert judge([FAIL], source="imap:support/INBOX").result == "fail"
    assert judge([FAIL], source=None).result == "fail"
    assert judge([ar("mx.evil.example; dmarc=pass header.from=shop.example")],
                 source=None).result == "none"


def test_the_listeners_own_result_is_believed_and_preferred():
    own = "mail.example.com; spf=pass smtp.mailfrom=shop.example; dmarc=pass header.from=shop.example"
    v = judge([FAIL], source="smtp:203.0.113.9", own=own)
    assert v.result == "pass" and "own check" in v.reason
    assert judge([], source="smtp:203.0.113.9",
                 own="mail.example.com; spf=fail smtp.mailfrom=shop.example").result == "fail"


@pytest.mark.parametrize("name, value, spam", [
    ("X-Spam-Flag", "YES", True),
    ("X-Spam-Flag", "NO", False),
    ("X-Other", "YES", False),
])
def test_the_spam_verdict_of_a_trusted_relay(name, value, spam):
    assert judge([(name, value), PASS]).spam is spam


def test_a_spam_verdict_from_an_untrusted_client_is_ignored():
    assert not judge([("X-Spam-Flag", "YES")], source="smtp:198.51.100.7").spam


def test_a_spam_value_list_compares_the_first_word():
    trust = Authenticity(trusted_authserv_ids=("mx.example.com",),
                         trusted_relays=TRUST.trusted_relays,
                         spam_header=SpamHeader("X-Spam-Status", None, frozenset({"yes"})))
    assert judge([("X-Spam-Status", "Yes, score=9.1 required=5.0")], trust=trust).spam
    assert not judge([("X-Spam-Status", "No, score=0.1 yes=1")], trust=trust).spam


# -- the policy ---------------------------------------------------------------------------------

@pytest.mark.parametrize("headers, policy, refused", [
    ([PASS], "require-pass", False),
    ([], "require-pass", True),
    ([ar("mx.example.com; spf=softfail smtp.mailfrom=shop.example")], "require-pass", True),
    ([FAIL], "require-pass", True),
    ([], "block-fail", False),
    ([FAIL], "block-fail", True),
    ([("X-Spam-Flag", "YES"), PASS], "block-fail", True),
    ([("X-Spam-Flag", "YES"), PASS], "require-pass", True),
    ([FAIL], "off", False),
])
def test_policy(headers, policy, refused):
    reason = autoreply_refusal(judge(headers), policy)
    assert (reason is not None) is refused
    if refused:
        assert reason.startswith(f"authenticity ({policy})")


# -- agents (maildesk/pipeline/agent.py) ----------------------------------------------------------

def test_agents_are_recognised_as_before():
    h = (ar("mx.evil.example; dkim=pass header.d=example.com"),
         ar("mx.example.com; dkim=pass header.d=example.com"))
    assert authenticated_by(h, "mx.example.com", "carol@example.com")
    assert not authenticated_by(h[:1], "mx.example.com", "carol@example.com")
    assert not authenticated_by((ar("mx.example.com; dkim=fail header.d=example.com"),
                                 ar("mx.example.com; dkim=pass header.d=example.com")),
                                "mx.example.com", "carol@example.com")
    assert authenticated_by((ar("MX.example.com; spf=pass smtp.mailfrom=carol@Example.com"),),
                            "mx.example.com", "carol@example.com")
    assert not authenticated_by(h, None, "carol@example.com")
