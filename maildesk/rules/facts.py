"""What rules may look at in one message (MailFacts), and the field names conditions use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

ADDRESS_FIELDS = ("from", "to", "cc", "recipient")
TEXT_FIELDS = ("subject", "body", "language")
LIST_FIELDS = ("attachment", "attachment_type")
FIELDS = (*ADDRESS_FIELDS, *TEXT_FIELDS, *LIST_FIELDS, "header", "business_hours")


@dataclass
class MailFacts:
    """What rules may look at, for one message. Derived views are computed on first use."""

    sender: str
    sender_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    envelope_to: tuple[str, ...] = ()
    subject: str = ""
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[tuple[str, str], ...] = ()   # (filename, content type)
    language: str | None = None
    at: datetime | None = None

    @cached_property
    def subject_lower(self) -> str:
        return self.subject.lower()

    @cached_property
    def body_lower(self) -> str:
        return self.body.lower()

    @cached_property
    def header_map(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, value in self.headers:
            out.setdefault(name.lower(), []).append(value)
        return out

    def addresses(self, name: str) -> tuple[str, ...]:
        if name == "from":
            return (self.sender,) if self.sender else ()
        if name == "to":
            return self.to
        if name == "cc":
            return self.cc
        return tuple(dict.fromkeys((*self.envelope_to, *self.to, *self.cc)))

    def texts(self, name: str) -> tuple[str, ...]:
        """Values of a field for contains/equals/regex, in their original case."""
        if name == "from":
            # The address alone (for `regex: "^noreply@"`), and with the display name
            # (`contains: "Иван"`).
            if not self.sender:
                return ()
            return (self.sender, f"{self.sender_name} <{self.sender}>") if self.sender_name \
                else (self.sender,)
        if name in ("to", "cc", "recipient"):
            return self.addresses(name)
        if name == "subject":
            return (self.subject,)
        if name == "body":
            return (self.body,)
        if name == "language":
            return (self.language,) if self.language else ()
        if name == "attachment":
            return tuple(f for f, _ in self.attachments if f)
        if name == "attachment_type":
            return tuple(t for _, t in self.attachments)
        raise KeyError(name)

    def lowered(self, name: str) -> tuple[str, ...]:
        if name == "subject":
            return (self.subject_lower,)
        if name == "body":
            return (self.body_lower,)
        return tuple(v.lower() for v in self.texts(name))


def domains_of(address: str) -> list[str]:
    """`a@x.y.example.com` -> ['x.y.example.com', 'y.example.com', 'example.com', 'com']."""
    domain = address.rpartition("@")[2].lower()
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))] if domain else []
