"""What parsing gives: a ParsedMessage, or an Unparseable with the reason. Pure data.

Import these from maildesk.pipeline.parse (which re-exports them); they live here so that the
parser's own modules (fields.py, walk.py) can build them without importing parse.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from maildesk.analyzer import Analysed


@dataclass(frozen=True)
class Address:
    """A mailbox: display name (decoded) and address (lower-cased entirely; '' if none)."""

    name: str
    address: str


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str
    content_type: str
    size: int
    sha256: str
    part: str  # MIME part path such as "1.2", to re-extract it from the raw message
    inline: bool = False  # Content-Disposition: inline (a signature logo, a pasted picture)


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None            # without angle brackets
    in_reply_to: tuple[str, ...]      # message ids, without angle brackets
    references: tuple[str, ...]       # in header order (oldest first)
    from_: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str                      # decoded, control characters removed, one line
    date: datetime | None             # aware, UTC
    text: str                         # the readable body (text/plain, or HTML converted)
    has_html: bool
    attachments: tuple[AttachmentInfo, ...]
    headers: tuple[tuple[str, str], ...]  # every header, decoded, in order (values one line)
    content_language: str | None
    content_hash: str                 # sha256 hex of the content that identifies a duplicate
    defects: tuple[str, ...]          # what was wrong but got repaired, for the audit trail
    # The attachments' bytes, in the order of `attachments`, for forwarding them to a line
    # mailbox or relaying an agent's files; empty when together above MAX_FORWARD_BYTES.
    attachment_data: tuple[bytes, ...] = ()
    # The search stems and the language of its subject and text, worked out by the parse child
    # beside parsing (on another core). None when the message was parsed in the daemon's own
    # process; used only while the subject and text are the ones it was worked out from.
    analysed: Analysed | None = field(default=None, compare=False, repr=False)

    def header(self, name: str) -> str | None:
        """The first header of that name (case-insensitive), decoded; None when absent."""
        return self._first_headers.get(name.lower())

    @cached_property
    def _first_headers(self) -> dict[str, str]:
        # Built once: deciding asks a dozen headers of each mail (loops.py alone eight).
        first: dict[str, str] = {}
        for k, v in self.headers:
            first.setdefault(k.lower(), v)
        return first


@dataclass(frozen=True)
class Unparseable:
    """Raw bytes that cannot be made into a ticket; the reason is shown in `quarantine list`."""

    reason: str
