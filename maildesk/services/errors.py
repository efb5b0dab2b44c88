"""What a service raises when it turns a request down; str() is the message for the user."""

from __future__ import annotations


class Refused(Exception):
    """The request cannot be done as asked (the command exits 1)."""


class NotFound(Refused):
    """No such ticket, outbox entry or quarantined message."""


class BadRequest(Refused):
    """An argument that cannot be used, such as a malformed number or date (exit 2: usage)."""
