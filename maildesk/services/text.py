"""The plain-text shapes of what the services return, as a person reads them at a terminal
(views.py holds the JSON shapes they are made from)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maildesk.ingress.imap_service import AccountPass
    from maildesk.process.run import Outcome

TICKETS_HEADER = (f"{'TICKET':<12} {'STATUS':<9} {'LINE':<8} {'PRIO':<4} {'MSGS':>4}  "
                  f"{'CREATED (UTC)':<16}  {'REQUESTER':<28} SUBJECT")


def tally(statuses: Iterable[str]) -> str:
    """'3 done, 1 quarantined' from a list of outcome statuses."""
    counts = Counter(statuses)
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def first_line(reason: str | None) -> str:
    return reason.strip().splitlines()[0] if reason else ""


def ticket_line(r: dict[str, Any]) -> str:
    """One row of `tickets list` under TICKETS_HEADER (r: views.ticket_summary)."""
    return (f"{r['tag']:<12} {r['status']:<9} {(r['line'] or '-'):<8} "
            f"{(r['priority'] or '-'):<4} {r['message_count']:>4}  "
            f"{r['created_at'][:16].replace('T', ' '):<16}  "
            f"{truncate(r['requester']['address'], 28):<28} {truncate(r['subject'], 60)}")


def ticket_text(data: dict[str, Any], tag: str) -> str:
    """`tickets show` (data: services.tickets.show_ticket); `tag` names related tickets."""
    lines = [f"{data['tag']}  {data['subject']}",
             f"status {data['status']}, line {data['line'] or '-'}, priority "
             f"{data['priority'] or '-'}, created {data['created_at']}",
             f"requester {data['requester']['name']} <{data['requester']['address']}>",
             f"reply address {data['reply_address']}"]
    if data["linked_ticket"]:
        lines.append(f"linked to {tag}-{data['linked_ticket']}")
    if data["requester_tickets"]:
        lines.append("earlier tickets of this client: " + ", ".join(
            f"{tag}-{t['number']} ({t['status']})" for t in data["requester_tickets"]))
    for m in data["messages"]:
        lines += ["", f"--- #{m['id']} {m['direction']} {m['role']} {m['received_at']} "
                      f"from {m['from']['name']} <{m['from']['address']}> ({m['thread_reason']})",
                  f"Subject: {m['subject']}", "", m["text"].rstrip()]
        lines += [f"[attachment] {a['filename']} ({a['content_type']}, {a['size']} bytes)"
                  for a in m["attachments"]]
    return "\n".join(lines)


def outbox_line(r: dict[str, Any], tag: str) -> str:
    """One row of `outbox list` (r: views.outbox_view)."""
    return (f"{r['id']:>6}  {r['status']:<7} {r['kind']:<10} "
            f"{(r['ticket'] and tag + '-' + str(r['ticket'])) or '-':<10} "
            f"to {', '.join(r['recipients'])}  attempts {r['attempts']}"
            + (f"  next {r['next_attempt_at']}" if r['status'] == 'queued' else "")
            + (f"  ({r['last_error']})" if r['last_error'] else ""))


def quarantine_line(r: dict[str, Any]) -> str:
    """One row of `quarantine list` (r: views.quarantine_view)."""
    return (f"{r['id']:>6}  {r['received_at']}  {r['channel']:<4}  {r['size']:>8} B  "
            f"from {r['mail_from'] or '-'}: {first_line(r['reason'])}")


def pass_line(p: AccountPass) -> str:
    """What one `poll` pass did in one folder."""
    r = p.result
    if r is None:
        return f"{p.account}/{p.folder}: failed: {p.error}"
    extra = "".join(f", {n} {what}" for n, what in (
        (r.skipped, "already stored"), (r.oversize, "over the size limit"),
        (r.quarantine_copies, "copied to quarantine")) if n)
    return (f"{p.account}/{p.folder}: {r.stored} stored{extra}"
            + (" (UIDVALIDITY changed: rescanned)" if r.rescanned else ""))


def copies_line(p: AccountPass) -> str:
    """A folder's quarantine copies, from the pass after processing."""
    return f"{p.account}/{p.folder}: {p.result.quarantine_copies if p.result else 0} " \
           "copied to quarantine"


def ingested_line(o: Outcome) -> str:
    return (f"inbound {o.inbound_id}: {o.status}"
            + (f" ticket {o.ticket_number}" if o.ticket_number else ""))


def retried_line(o: Outcome) -> str:
    """A quarantined mail run again: its ticket, or the first line of why not."""
    tail = f" ticket {o.ticket_number}" if o.ticket_number else (
        f": {o.reason.strip().splitlines()[0]}" if o.reason else "")
    return f"{o.inbound_id}: {o.status}{tail}"
