"""The top-level header fields of a message, decoded on demand. Pure.

Raw header values are kept as bytes and decoded only when asked for (headers.py does the
decoding): most mail needs only a few of them, and a hostile one costs only when read.
"""

from __future__ import annotations

from email.message import Message

from maildesk.pipeline import charsets, headers
from maildesk.pipeline.parsed import Address

MAX_HEADERS = 500              # headers kept in ParsedMessage.headers


def charset_hint(msg: Message) -> str | None:
    """The first charset a text part declares: clients write raw headers in the same one."""
    stack = [msg]
    seen = 0
    while stack and seen < 50:
        part = stack.pop(0)
        seen += 1
        try:
            if part.is_multipart():
                if part.get_content_maintype() == "multipart":
                    stack.extend(p for p in part.get_payload() if isinstance(p, Message))
                continue
            charset = part.get_content_charset()
        except Exception:
            continue
        if charset and charsets.codec_for(charset) not in (None, "ascii"):
            return charset
    return None


class HeaderFields:
    """The top-level header fields, decoded on demand."""

    def __init__(self, raw_headers: list[tuple[str, bytes]], fallback: str | None,
                 defects: list[str]) -> None:
        self.raw = raw_headers
        self.fallback = fallback
        self.defects = defects
        self._addresses: dict[str, list[Address]] = {}
        self._decoded: dict[int, tuple[str, bool]] = {}  # id(raw value) -> (text, was cut)
        self._by_name: dict[str, list[bytes]] = {}
        for key, value in raw_headers:
            self._by_name.setdefault(key.lower(), []).append(value)

    def first(self, name: str) -> bytes | None:
        values = self._by_name.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[bytes]:
        return self._by_name.get(name, [])

    def text(self, name: str) -> str:
        """The value with 8-bit bytes decoded, encoded words left alone, one line."""
        value = self.first(name)
        if value is None:
            return ""
        return headers.one_line(headers.to_text(value[:headers.MAX_RAW_VALUE_BYTES],
                                                self.fallback))

    def decoded(self, value: bytes) -> tuple[str, bool]:
        """A value fully decoded and capped (cached: Subject is also in the header list)."""
        key = id(value)
        if key not in self._decoded:
            self._decoded[key] = headers.cap(headers.decode_value(value, self.fallback,
                                                                  self.defects))
        return self._decoded[key]

    def subject(self) -> str:
        value = self.first("subject")
        return "" if value is None else self.decoded(value)[0]

    def message_id(self) -> str | None:
        return headers.extract_message_id(self.text("message-id"))

    def ids(self, name: str) -> list[str]:
        ids, cut = headers.cap_ids(headers.extract_ids(self.text(name)))
        if cut:
            self.defects.append(f"header {name}: more than {headers.MAX_IDS} ids, "
                                "the middle ones dropped")
        return ids

    def addresses(self, name: str) -> list[Address]:
        if name in self._addresses:
            return self._addresses[name]
        found: list[Address] = []
        for value in self.all(name):
            text = headers.to_text(value[:headers.MAX_RAW_VALUE_BYTES], self.fallback)
            for display, address in headers.parse_addresses(text, self.fallback,
                                                            self.defects):
                found.append(Address(display, address))
        self._addresses[name] = found[:1000]
        return self._addresses[name]

    def sender(self) -> Address | None:
        """From; when it holds no address, Sender, Reply-To or Return-Path (noted).

        A bounce's `From: MAILER-DAEMON <>` or `From: <>` (the null sender) is a sender too:
        the mail is readable and the loop and bounce checks need it. None only when no such
        header says anything.
        """
        from_named = next(iter(self.addresses("from")), None)
        for name in ("from", "sender", "reply-to", "return-path"):
            candidates = [a for a in self.addresses(name) if a.address]
            if candidates:
                found = next((a for a in candidates if "@" in a.address), candidates[0])
                if name != "from":
                    self.defects.append(f"header from: no address, the sender is "
                                        f"taken from {name.title()}")
                    if from_named is not None:
                        found = Address(from_named.name, found.address)
                return found
        if from_named is not None:
            return from_named
        if any(b"<>" in b"".join(value.split()) for name in ("from", "sender", "return-path")
               for value in self.all(name)):
            self.defects.append("header from: the null sender <>")
            return Address("", "")
        return None

    def decoded_headers(self) -> tuple[tuple[str, str], ...]:
        result: list[tuple[str, str]] = []
        for key, value in self.raw[:MAX_HEADERS]:
            decoded, cut = self.decoded(value)
            name = headers.one_line(key)[:200]
            if cut:
                self.defects.append(f"header {name}: value cut to {headers.MAX_VALUE_CHARS} "
                                    "characters")
            result.append((name, decoded))
        if len(self.raw) > MAX_HEADERS:
            self.defects.append(f"headers: {len(self.raw)} headers, only the first "
                                f"{MAX_HEADERS} kept")
        return tuple(result)
