"""Writing the search index: what a ticket's subject and a recorded mail leave in
`search_entry`, in the caller's transaction (the one that writes the ticket and the mail).

What is indexed: every mail processing records on a ticket (clients' mail, agents' replies and
internal notes, flagged), with the subject of the ticket it opens; not the mail maildesk sends
(acknowledgements, notifications) nor bounce reports. A message row holds the stems of the
mail's subject and of its text, so a query whose words are spread over the two ("Принтер HP" /
"не печатает с утра") still finds the mail; only the first MAX_TEXT characters of a text are
analysed (a pasted log or a base64 blob says nothing more). On SQLite an insert also fills the
FTS5 table `search_fts` (a trigger, migration 0010); on PostgreSQL the row's generated tsvector
`tsv` (to_tsvector('simple', stems)) and its GIN index follow.
"""

from __future__ import annotations

from maildesk.analyzer import MAX_INDEXED as MAX_TEXT, Analysed, index_stems as stems
from maildesk.db.models import Message, Ticket

SUBJECT = "subject"
MESSAGE = "message"

__all__ = ["MAX_TEXT", "MESSAGE", "SUBJECT", "index_message", "message_entry", "stems",
           "subject_entry"]


def subject_entry(ticket: Ticket) -> dict:
    return {"kind": SUBJECT, "ticket_id": ticket.id, "message_id": None, "internal": False,
            "stems": stems(ticket.subject)}


def message_entry(message: Message, analysed: Analysed | None = None) -> dict:
    """`analysed`: what the parse child worked out beside parsing (pipeline/isolate.py); its
    stems are used when they are of the mail's own subject and text."""
    known = analysed.of(message.subject, message.body_text) if analysed is not None else None
    found = known.stems if known is not None else stems(message.subject, message.body_text)
    return {"kind": MESSAGE, "ticket_id": message.ticket_id, "message_id": message.id,
            "internal": bool(message.internal), "stems": found}


def index_message(rows: list[dict], message: Message, *, ticket: Ticket | None = None,
                  analysed: Analysed | None = None) -> None:
    """The entries of a mail just recorded (it has its id), and of the subject of `ticket`
    when the mail opened it, added to `rows`: the caller inserts them in one executemany
    with the cause's other rows (effects/events.py)."""
    if ticket is not None:
        rows.append(subject_entry(ticket))
    rows.append(message_entry(message, analysed))
