"""The sub-address grammar (maildesk/addresses.py): every kind round-trips, and no single-character
change of a valid address is taken for the same thing."""

from __future__ import annotations

import string
from datetime import date, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from maildesk import addresses as a

SUPPORT = frozenset({"support@example.com", "help.desk@example.org"})
KEYS = a.SigningKeys((b"k" * 32,))
TODAY = date(2026, 12, 4)
# What a mutation may put in: the characters addresses are made of, and a few others.
ALPHABET = string.ascii_lowercase + string.digits + "+-.@_=!"

mailboxes = st.sampled_from(sorted(SUPPORT))
numbers = st.integers(min_value=1, max_value=10**12)
tokens = st.builds(lambda _: a.new_token(), st.integers())
legacy_tokens = st.text("abcdefghijkmnpqrstuvwxyz23456789", min_size=6, max_size=10)


@st.composite
def mutations(draw, address: str) -> str:
    """`address` with one character replaced, deleted or inserted (never a case change only)."""
    i = draw(st.integers(min_value=0, max_value=len(address) - 1))
    kind = draw(st.sampled_from(["replace", "delete", "insert"]))
    c = draw(st.sampled_from(ALPHABET))
    if kind == "replace":
        out = address[:i] + c + address[i + 1:]
    elif kind == "delete":
        out = address[:i] + address[i + 1:]
    else:
        out = address[:i] + c + address[i:]
    return out


@given(mailboxes, numbers, st.one_of(tokens, legacy_tokens))
def test_reply_tokens_round_trip(mailbox, number, token):
    address = a.reply_address(mailbox, number, token)
    assert a.parse_reply_token(address, SUPPORT) == a.ReplyToken(number, token)
    assert a.parse_reply_token(address.upper(), SUPPORT) == a.ReplyToken(number, token.lower())
    assert a.is_support_address(address, SUPPORT)
    assert a.base_address(address) == mailbox
    assert len(address.partition("@")[0]) <= a.MAX_LOCAL_PART


@given(mailboxes, numbers, tokens, st.data())
def test_every_single_character_change_of_a_reply_address_is_rejected(mailbox, number, token,
                                                                      data):
    address = a.reply_address(mailbox, number, token)
    mutated = data.draw(mutations(address))
    if mutated.lower() == address.lower():
        return  # replacing a character by itself
    parsed = a.parse_reply_token(mutated, SUPPORT)
    # Either no token address of ours at all, or one that names another ticket or token.
    assert parsed is None or parsed.number != number or not a.token_matches(parsed.token, token)


@given(mailboxes, numbers, tokens, st.integers(min_value=1, max_value=9), st.data())
def test_solved_addresses_carry_the_token_and_the_article(mailbox, number, token, n, data):
    address = a.solved_address(mailbox, number, token, n)
    assert a.parse_reply_token(address, SUPPORT) == a.ReplyToken(number, token, n)
    assert a.base_address(address) == mailbox
    # A changed character is another token, another ticket, or no token address at all; the
    # article's digit is no secret (the client picks among their own suggestions).
    mutated = data.draw(mutations(address))
    parsed = a.parse_reply_token(mutated, SUPPORT)
    if mutated.lower() != address.lower() and parsed is not None and parsed.solved == n:
        assert parsed.number != number or not a.token_matches(parsed.token, token)


def test_solved_addresses_refuse_what_they_cannot_say():
    token = a.new_token()
    assert a.parse_reply_token(f"support+12-{token}-solved0@example.com", SUPPORT) is None
    assert a.parse_reply_token(f"support+12-{token}-solved12@example.com", SUPPORT) is None
    with pytest.raises(ValueError):
        a.solved_address("support@example.com", 12, token, 10)
    with pytest.raises(ValueError):   # a local part over 64 octets (RFC 5321)
        a.solved_address("technical-support-helpdesk@example.com", 10**6, token, 1)


@given(mailboxes, st.integers(min_value=1, max_value=10**15),
       st.integers(min_value=0, max_value=20))
def test_signed_bounce_tags_round_trip_and_verify(mailbox, outbox_id, age):
    tag = a.sign_bounce(KEYS, outbox_id, TODAY - timedelta(days=age))
    address = a.bounce_address(mailbox, tag)
    parsed = a.parse_bounce(address, SUPPORT)
    assert parsed == tag
    assert a.verify_bounce(KEYS, parsed, today=TODAY, valid_days=21) is None
    assert a.parse_reply_token(address, SUPPORT) is None
    assert len(address.partition("@")[0]) <= a.MAX_LOCAL_PART


@given(mailboxes, st.integers(min_value=1, max_value=10**15), st.data())
def test_every_single_character_change_of_a_return_path_is_rejected(mailbox, outbox_id, data):
    address = a.bounce_address(mailbox, a.sign_bounce(KEYS, outbox_id, TODAY))
    mutated = data.draw(mutations(address))
    if mutated.lower() == address.lower():
        return
    parsed = a.parse_bounce(mutated, SUPPORT)
    assert parsed is None or parsed.legacy is not None or \
        a.verify_bounce(KEYS, parsed, today=TODAY, valid_days=21) is not None


@settings(max_examples=50)
@given(mailboxes, st.text("0123456789abcdef", min_size=16, max_size=16))
def test_legacy_bounce_tags_parse_but_are_not_signed(mailbox, hexdigits):
    address = f"{mailbox.partition('@')[0]}+bounce-{hexdigits}@{mailbox.partition('@')[2]}"
    tag = a.parse_bounce(address, SUPPORT)
    assert tag == a.BounceTag(legacy=hexdigits)
    assert a.verify_bounce(KEYS, tag, today=TODAY, valid_days=21) == "not a signed tag"


def test_tags_expire_and_must_come_from_a_known_key():
    tag = a.sign_bounce(KEYS, 77, TODAY - timedelta(days=22))
    assert "expired" in a.verify_bounce(KEYS, tag, today=TODAY, valid_days=21)
    assert a.verify_bounce(KEYS, a.sign_bounce(KEYS, 77, TODAY + timedelta(days=5)),
                           today=TODAY, valid_days=21) == "issued in the future"
    other = a.SigningKeys((b"o" * 32,))
    assert a.verify_bounce(other, a.sign_bounce(KEYS, 77, TODAY), today=TODAY,
                           valid_days=21) == "signature does not verify"
    # Rotation: a new key signs, the old one still verifies what it signed.
    rotated = a.SigningKeys((b"n" * 32, *KEYS.keys))
    assert a.verify_bounce(rotated, a.sign_bounce(KEYS, 77, TODAY), today=TODAY,
                           valid_days=21) is None
    assert a.sign_bounce(rotated, 77, TODAY).key_id != a.sign_bounce(KEYS, 77, TODAY).key_id


def test_tokens_are_128_bits_and_differ():
    made = {a.new_token() for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(t) == a.TOKEN_LENGTH and set(t) <= set(string.ascii_lowercase + "234567")
               for t in made)


@pytest.mark.parametrize("address,expected", [
    ("support@example.com", True), ("Support+billing@Example.com", True),
    ("postmaster@example.com", True), ("POSTMASTER@example.org", True),
    ("postmaster@other.example", False), ("postmaster+x@example.com", False),
    ("Postmaster", True), ("postmaster@", False),
    ("supportx@example.com", False), ("support@example.com.evil", False), ("support", False),
    ("@example.com", False),
])
def test_what_the_listener_accepts(address, expected):
    assert a.is_support_address(address, SUPPORT) is expected


def test_keys_never_show_in_a_repr():
    assert "kkkk" not in repr(KEYS) and "kkkk" not in str(KEYS)
