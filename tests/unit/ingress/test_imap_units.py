"""Pure parts of the IMAP poller: UID sets, sources, quarantine copies, XOAUTH2 tokens."""

from __future__ import annotations

import sys

import pytest

from maildesk.config.model import ImapAccount
from maildesk.ingress.imap import (ImapLoginError, oauth2_token, quarantine_copy, source_of,
                                   uid_set)


def test_uid_sets_collapse_runs():
    assert uid_set([7, 1, 2, 3, 5, 8]) == "1:3,5,7:8"
    assert uid_set([42]) == "42"
    assert uid_set([]) == ""


def test_source_is_an_imap_url_per_message():
    assert source_of("support", "INBOX", 1795479264, 17) == \
        "imap://support/INBOX;UIDVALIDITY=1795479264/;UID=17"


def test_quarantine_copy_puts_a_one_line_reason_in_front():
    raw = b"Subject: x\r\n\r\nbody\r\n"
    copy = quarantine_copy(raw, "not an Internet message\r\nInjected: header\nmore", 12)
    head, _, rest = copy.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"X-Maildesk-Quarantine: not an Internet message"
    assert lines[1] == b"X-Maildesk-Inbound: 12"
    assert not any(line.startswith(b"Injected") for line in lines)
    assert copy.endswith(raw)
    # Control characters and non-ASCII in a reason never break the header block.
    copy = quarantine_copy(raw, "bad\x00\x1bbytes: кириллица", 1)
    first = copy.split(b"\r\n")[0]
    assert first.isascii() and b"\x00" not in first and b"\x1b" not in first


def account(**kw) -> ImapAccount:
    return ImapAccount(name="gmail", host="imap.gmail.com", username="support@example.com", **kw)


def test_oauth2_token_is_read_from_a_file_at_every_login(tmp_path):
    token = tmp_path / "token"
    token.write_text("ya29.first\n")
    a = account(oauth2_token_file=token)
    assert oauth2_token(a) == "ya29.first"
    token.write_text("ya29.refreshed\n")
    assert oauth2_token(a) == "ya29.refreshed"


def test_oauth2_token_from_a_command(tmp_path):
    a = account(oauth2_token_command=f"{sys.executable} -c \"print('ya29.cmd')\"")
    assert oauth2_token(a) == "ya29.cmd"
    failing = account(oauth2_token_command=f"{sys.executable} -c \"import sys; "
                                           f"sys.exit('no refresh token')\"")
    with pytest.raises(ImapLoginError, match="token_command exited 1: no refresh token"):
        oauth2_token(failing)
