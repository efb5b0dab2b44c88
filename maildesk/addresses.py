"""The sub-address grammar: support `+detail`, reply tokens and bounce tags, made and parsed here.

Every address maildesk hands out or reads back is one of these, on one of the configured
support addresses (`support@example.com`):

    support+anything@example.com           a +detail form (accepted, routed like support@)
    support+1042-k7f3q...@example.com      a reply token: ticket number, token
    support+1042-k7f3q...-solved2@...      the same token, "suggested article 2 solved it"
    support+bounce-77-20791-ab<mac>@...    a signed return path: outbox id, issue day, key id, MAC
    support+bounce-0123456789abcdef@...    an unsigned return path from before migration 0008
    postmaster@<each support domain>       RFC 5321 §4.5.1

Nothing else in maildesk splits an address on `+`. Tokens come from `secrets` (128 bits);
bounce tags are HMAC-SHA256 over (outbox id, key id, issue day), truncated to 80 bits, keyed
by a secret that never leaves its file. Comparisons of secrets run in constant time. Pure:
no I/O, no clock (the day is passed in).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

# Local parts longer than 64 octets break mail clients and MTAs (RFC 5321 §4.5.3.1.1).
MAX_LOCAL_PART = 64

TOKEN_BYTES = 16                      # 128 bits
TOKEN_LENGTH = 26                     # base32 of 16 bytes, without padding
MAC_LENGTH = 16                       # 80 bits of HMAC-SHA256 in base32
_MAC_BYTES = 5 * -(-MAC_LENGTH // 8)   # the digest bytes those characters are written from
KEY_ID_LENGTH = 2
_EPOCH = date(1970, 1, 1)

# Reply tokens: new ones are 26 base32 characters; tickets made before kept 4 to 16
# characters of [a-z0-9] (6 for clients, 10 for agents) and keep working.
# A client's one-click "this solved it" is the client's token with `-solved<N>` (N: the
# acknowledgement's Nth suggested article): it proves no more than the token itself.
_TOKEN = re.compile(r"^(?P<number>[1-9]\d{0,17})-(?P<token>[a-z0-9]{4,16}|[a-z2-7]{26})"
                    r"(?:-solved(?P<solved>[1-9]))?$")
_BOUNCE_SIGNED = re.compile(
    r"^bounce-(?P<id>[1-9]\d{0,17})-(?P<day>[1-9]\d{0,5})-"
    r"(?P<kid>[a-z2-7]{2})(?P<mac>[a-z2-7]{16})$")
_BOUNCE_LEGACY = re.compile(r"^bounce-(?P<tag>[0-9a-f]{16})$")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


# -- plain addresses ------------------------------------------------------------------------
def split(address: str) -> tuple[str, str]:
    """(local part, domain), lower-cased; ('', '') when there is no `local@domain`."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at or not local or not domain:
        return "", ""
    return local, domain


def base_address(address: str) -> str:
    """`support+anything@example.com` -> `support@example.com` (lower-cased)."""
    local, domain = split(address)
    if not local:
        return address.strip().lower()
    return f"{local.partition('+')[0]}@{domain}"


def support_detail(address: str, support: frozenset[str]) -> str | None:
    """The `+detail` of one of our support addresses (`support+DETAIL@`), else None."""
    local, domain = split(address)
    base, plus, detail = local.partition("+")
    if not plus or not detail or f"{base}@{domain}" not in support:
        return None
    return detail


def postmaster_addresses(support: frozenset[str]) -> frozenset[str]:
    """`postmaster@` every domain we receive for (RFC 5321 §4.5.1 says it must be accepted)."""
    return frozenset(f"postmaster@{split(a)[1]}" for a in support if split(a)[1])


def is_postmaster(address: str, support: frozenset[str]) -> bool:
    """`postmaster@` a support domain, or the bare `postmaster` RFC 5321 §4.5.1 also allows."""
    if address.strip().lower() == "postmaster":
        return True
    local, domain = split(address)
    return bool(local) and f"{local}@{domain}" in postmaster_addresses(support)


def is_support_address(address: str, support: frozenset[str]) -> bool:
    """A support address, its +detail form (tokens, tags) or postmaster@ a support domain."""
    local, domain = split(address)
    if not local:
        return is_postmaster(address, support)
    return f"{local.partition('+')[0]}@{domain}" in support or is_postmaster(address, support)


def with_detail(mailbox: str, detail: str) -> str:
    """`support@example.com` + `DETAIL` -> `support+DETAIL@example.com`."""
    local, _, domain = mailbox.rpartition("@")
    address = f"{local}+{detail}@{domain}"
    if len(f"{local}+{detail}") > MAX_LOCAL_PART:
        raise ValueError(f"local part of {address!r} is over {MAX_LOCAL_PART} octets")
    return address


# -- reply tokens -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplyToken:
    number: int
    token: str
    solved: int | None = None     # `-solved<N>`: the client says suggested article N solved it


def new_token() -> str:
    """A fresh reply token: 128 bits from the system's CSPRNG, 26 base32 characters."""
    return _b32(secrets.token_bytes(TOKEN_BYTES))


def reply_address(mailbox: str, number: int, token: str) -> str:
    """`support+1042-<token>@example.com`: replies to it join ticket 1042."""
    return with_detail(mailbox, f"{number}-{token}")


def solved_address(mailbox: str, number: int, token: str, article: int) -> str:
    """`support+1042-<token>-solved2@example.com`: mail to it says suggested article 2 (of
    the acknowledgement's list, from 1) solved the client's problem."""
    if not 1 <= article <= 9:
        raise ValueError(f"article index {article} is not 1..9")
    return with_detail(mailbox, f"{number}-{token}-solved{article}")


def parse_reply_token(address: str, support: frozenset[str]) -> ReplyToken | None:
    """`support+1042-<token>[-solvedN]@example.com` -> ReplyToken(1042, token, N) if the base
    is ours."""
    m = _TOKEN.match(support_detail(address, support) or "")
    if not m:
        return None
    solved = m.group("solved")
    return ReplyToken(int(m.group("number")), m.group("token"), int(solved) if solved else None)


def token_matches(given: str, stored: str | None) -> bool:
    """Constant-time comparison of a token read from mail with the one stored."""
    if not stored:
        return False
    return hmac.compare_digest(given.encode("ascii", "replace"), stored.encode("ascii", "replace"))


# -- bounce tags ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SigningKeys:
    """The bounce-signing secrets: the first signs, every one verifies (rotation)."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one signing key is needed")

    def __repr__(self) -> str:  # never print a secret
        return f"SigningKeys({len(self.keys)} key(s))"

    @property
    def current(self) -> bytes:
        return self.keys[0]


@lru_cache(maxsize=16)
def key_id(key: bytes) -> str:
    """A short name of a key (not secret: derived one way), so a tag says which key signed it."""
    return _b32(hashlib.sha256(b"maildesk key id\0" + key).digest())[:KEY_ID_LENGTH]


def day_number(day: date) -> int:
    return (day - _EPOCH).days


@dataclass(frozen=True)
class BounceTag:
    """What a return path carries: a signed tag (outbox id, day, key id, MAC) or a legacy one."""

    outbox_id: int | None = None
    day: int | None = None
    key_id: str | None = None
    mac: str | None = None
    legacy: str | None = None   # the 16-hex tag of mail queued before signing

    @property
    def text(self) -> str:
        if self.legacy is not None:
            return self.legacy
        return f"{self.outbox_id}-{self.day}-{self.key_id}{self.mac}"


def _mac(key: bytes, outbox_id: int, kid: str, day: int) -> str:
    msg = f"maildesk bounce\0{outbox_id}\0{kid}\0{day}".encode("ascii")
    # base32 writes 5 bytes as 8 characters: the MAC's characters come from its first bytes.
    return _b32(hmac.new(key, msg, hashlib.sha256).digest()[:_MAC_BYTES])[:MAC_LENGTH]


def sign_bounce(keys: SigningKeys, outbox_id: int, day: date) -> BounceTag:
    """The tag for outbox row `outbox_id`, issued on `day`, signed with the current key."""
    kid = key_id(keys.current)
    n = day_number(day)
    return BounceTag(outbox_id=outbox_id, day=n, key_id=kid, mac=_mac(keys.current, outbox_id, kid, n))


def bounce_address(mailbox: str, tag: BounceTag) -> str:
    """The return path (envelope sender) that carries `tag`."""
    return with_detail(mailbox, f"bounce-{tag.text}")


def parse_bounce(address: str, support: frozenset[str]) -> BounceTag | None:
    """The tag of `support+bounce-...@`, signed or legacy, unverified; None for anything else."""
    detail = support_detail(address, support) or ""
    m = _BOUNCE_SIGNED.match(detail)
    if m:
        return BounceTag(outbox_id=int(m.group("id")), day=int(m.group("day")),
                         key_id=m.group("kid"), mac=m.group("mac"))
    m = _BOUNCE_LEGACY.match(detail)
    return BounceTag(legacy=m.group("tag")) if m else None


def verify_bounce(keys: SigningKeys, tag: BounceTag, *, today: date,
                  valid_days: int) -> str | None:
    """None when `tag` is a signed tag we made, within its validity; else why not.

    Legacy tags are not verified here (they carry no MAC): the caller honours them only for
    rows queued before signing began, within the same validity."""
    if tag.legacy is not None or tag.outbox_id is None or tag.day is None:
        return "not a signed tag"
    now = day_number(today)
    if tag.day > now + 1:
        return "issued in the future"
    if now - tag.day > valid_days:
        return f"expired ({now - tag.day} days old, valid for {valid_days})"
    for key in keys.keys:
        kid = key_id(key)
        if not hmac.compare_digest(kid, tag.key_id or ""):
            continue
        if hmac.compare_digest(_mac(key, tag.outbox_id, kid, tag.day), tag.mac or ""):
            return None
    return "signature does not verify"
