"""RFC 3834: what maildesk never answers automatically."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mails import mail  # noqa: E402
from maildesk.pipeline.loops import classify_loop  # noqa: E402
from maildesk.pipeline.parse import ParsedMessage, parse_message  # noqa: E402

OWN = frozenset({"support@example.com", "line1@example.com"})
CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus"


def verdict(raw: bytes, mail_from: str | None = "client@customer.example"):
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    return classify_loop(parsed, mail_from, OWN)


def test_an_ordinary_client_mail_is_answered():
    assert verdict(mail()).autoreply_allowed


@pytest.mark.parametrize("headers, reason", [
    ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted"),
    ({"Auto-Submitted": "auto-generated"}, "Auto-Submitted"),
    ({"Precedence": "bulk"}, "Precedence"),
    ({"Precedence": "junk"}, "Precedence"),
    ({"Precedence": "list"}, "Precedence"),
    ({"List-Id": "<users.lists.example>"}, "mailing list"),
    ({"X-Auto-Response-Suppress": "All"}, "X-Auto-Response-Suppress"),
    ({"X-Autoreply": "yes"}, "X-Autoreply"),
    ({"X-Autorespond": "yes"}, "X-Autorespond"),
    ({"Return-Path": "<>"}, "empty return path"),
])
def test_robot_headers_get_no_autoreply(headers, reason):
    v = verdict(mail(extra=headers))
    assert not v.autoreply_allowed and reason in v.reason


def test_auto_submitted_no_is_a_person():
    assert verdict(mail(extra={"Auto-Submitted": "no"})).autoreply_allowed


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.org", "postmaster@x.example",
                                    "noreply@shop.example", "no-reply@shop.example",
                                    "do-not-reply@bank.example", "list-bounces@lists.example",
                                    "Mail Delivery Subsystem <daemon@x.example>"])
def test_robot_senders_get_no_autoreply(sender):
    assert not verdict(mail(sender=sender)).autoreply_allowed


def test_empty_envelope_sender_gets_no_autoreply():
    assert not verdict(mail(), mail_from="").autoreply_allowed


@pytest.mark.parametrize("sender", ["support@example.com", "Support+1000-abcdef@example.com",
                                    "line1@example.com"])
def test_our_own_addresses_get_no_autoreply(sender):
    assert "maildesk itself" in verdict(mail(sender=sender)).reason


@pytest.mark.parametrize("subject", ["Automatic reply: Printer", "Out of Office: Printer",
                                     "Автоответ: Принтер", "Undeliverable: Printer",
                                     "Fwd: Returned mail: see transcript"])
def test_auto_reply_subjects_get_no_autoreply(subject):
    assert not verdict(mail(subject=subject)).autoreply_allowed


def test_corpus_bounces_autoreplies_and_lists_get_no_autoreply():
    index = CORPUS / "index.tsv"
    if not index.exists():
        pytest.skip("../shared/corpus is absent")
    answered = []
    checked = 0
    for row in index.read_text(encoding="utf-8").splitlines()[1:]:
        path, category, _ = row.split("\t", 2)
        parsed = parse_message((CORPUS / path).read_bytes())
        if not isinstance(parsed, ParsedMessage):
            continue
        if category in ("bounce-dsn", "autoreply") or parsed.header("List-Id") is not None:
            checked += 1
            if classify_loop(parsed, None, OWN).autoreply_allowed:
                answered.append(path)
    print(f"\n{checked} bounces, auto-replies and list mails checked")
    assert checked > 900
    assert answered == []


# A noreply word anywhere in the local part, as its own word (between -, _, ., + or the ends):
# bulk senders number, prefix and suffix their robots' addresses.
@pytest.mark.parametrize("sender", [
    "no-reply-4711@shop.example", "noreply+x@shop.example", "alerts-noreply@monitoring.example",
    "do_not_reply.billing@bank.example", "noreply.notifications@github.example",
    "NoReply_Service@corp.example", "info.no.reply@shop.example", "mail+noreply@shop.example",
    "noreply4711@shop.example", "no_reply@shop.example", "donotreply@bank.example",
    "do.not.reply-1@bank.example", "dontreply@shop.example", "bounces+1234-abcd@sendgrid.example",
    "Alerts <billing-noreply@bank.example>",
])
def test_local_parts_with_a_noreply_word_get_no_autoreply(sender):
    v = verdict(mail(sender=sender))
    assert not v.autoreply_allowed and "robot sender" in v.reason


@pytest.mark.parametrize("sender", [
    "noreen@customer.example", "replyall@customer.example", "ronoreply@customer.example",
    "noreplying@customer.example", "reno.reply@customer.example", "nora.eply@customer.example",
    "noah-replyer@customer.example", "ivan+reply@customer.example", "no@customer.example",
    "reply@customer.example", "donot@customer.example", "juno_reply@customer.example",
])
def test_ordinary_names_near_noreply_are_answered(sender):
    assert verdict(mail(sender=sender)).autoreply_allowed


def test_a_noreply_envelope_sender_gets_no_autoreply():
    v = verdict(mail(), mail_from="alerts-noreply@monitoring.example")
    assert not v.autoreply_allowed and "alerts-noreply@monitoring.example" in v.reason
