"""`tickets show` and `tickets list` as a person reads them at a terminal, printed from the JSON
shapes the ticket service returns (services/tickets.py, views.py): times to the minute in a
named zone, deadlines with how far off they are, messages trimmed to their new text, the
history in words. Pure functions of that data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from maildesk.pipeline.reply import new_text
from maildesk.services.text import truncate
from maildesk.services.timefmt import minute, plural, relative, size, span

# A message's text in `show` without --full: its new text (quote and signature cut), at most
# this many lines and characters.
TEXT_LINES = 15
TEXT_CHARS = 1500
# maildesk's own mails (acknowledgements, notices: role "system") are our templates: the start.
SYSTEM_TEXT_LINES = 4
# The history in `show` without --full: the latest this many events.
HISTORY_EVENTS = 30

LIST_HEADER = (f"{'TICKET':<12} {'STATUS':<9} {'LINE':<8} {'PRIO':<4} {'MSGS':>4}  "
               f"{'CREATED':<16}  {'ASSIGNEE':<24} {'REQUESTER':<28} SUBJECT")
DEADLINE_NAMES = {"first_response": "first response", "resolution": "resolution",
                  "next_response": "next response"}


# -- tickets list -------------------------------------------------------------------------------
def list_line(r: dict[str, Any], zone: tzinfo) -> str:
    """One row of `tickets list` under LIST_HEADER (r: views.ticket_summary)."""
    return (f"{r['tag']:<12} {r['status']:<9} {(r['line'] or '-'):<8} "
            f"{(r['priority'] or '-'):<4} {r['message_count']:>4}  "
            f"{minute(r['created_at'], zone):<16}  "
            f"{truncate(r['assignee'] or '-', 24):<24} "
            f"{truncate(r['requester']['address'], 28):<28} {truncate(r['subject'], 60)}")


def list_footer(count: int, limit: int, zone: ZoneInfo) -> str:
    """Under the rows: how many, whether the limit cut the list, the zone of the times."""
    cut = f", the newest {limit}: --limit 0 lists all" if limit and count >= limit else ""
    return f"{plural(count, 'ticket')}{cut} (times in {zone.key})"


# -- tickets show -------------------------------------------------------------------------------
def ticket_text(data: dict[str, Any], *, full: bool = False) -> str:
    """`tickets show` (data: services.tickets.show_ticket): the ticket at a glance, the
    client's other tickets, the messages, the history. `full`: whole texts, whole history."""
    zone = ZoneInfo(data["time_zone"])
    now = _time(data["as_of"])
    lines = [f"{data['tag']}  {data['subject']}", ""]
    lines += _facts(data, zone, now)
    lines += _others(data, zone)
    lines += _messages(data["messages"], zone, full)
    lines += _history(data["events"], zone, full)
    return "\n".join(lines).rstrip() + "\n"


def _row(label: str, value: str) -> str:
    return f"{label:<16}{value}"


def _person(name: str | None, address: str | None) -> str:
    if not address:
        return name or "-"
    return f"{name} <{address}>" if name else address


def _facts(data: dict[str, Any], zone: ZoneInfo, now: datetime) -> list[str]:
    status = data["status"]
    if data.get("clock_paused_since"):
        status += (f" (waiting for the client; SLA clock paused since "
                   f"{minute(data['clock_paused_since'], zone)})")
    line = data["line"] or "-"
    if data.get("line_name") and data["line_name"] != data["line"]:
        line += f" ({data['line_name']})"
    out = [_row("status", status), _row("line", line),
           _row("priority", data["priority"] or "-"),
           _row("category", data["category"] or "-"),
           _row("tags", ", ".join(data["tags"]) or "-"),
           _row("assignee", _person(data.get("assignee_name"), data["assignee"])
                if data["assignee"] else "- (unassigned)"),
           _row("requester", _person(data["requester"]["name"], data["requester"]["address"])),
           _row("created", minute(data["created_at"], zone)
                + f", last activity {minute(data['last_activity_at'], zone)}")]
    for key, name in DEADLINE_NAMES.items():
        d = data["deadlines"][key]
        if key == "next_response" and d["state"] == "none":
            continue
        out.append(_row(name, _deadline(key, d, zone, now, data.get("clock_paused_since"))))
    if data.get("breached_at"):
        out.append(_row("SLA breached", minute(data["breached_at"], zone)))
    policy = (f"SLA policy {data['sla_policy']}" if data["sla_policy"]
              else "the default SLA policy")
    out.append(_row("times in", f"{zone.key} ({policy})"))
    out.append(_row("reply address", data["reply_address"]))
    if data.get("linked"):
        t = data["linked"]
        out.append(_row("linked ticket", f"{t['tag']} ({t['status']}) {t['subject']}"))
    return out


def _deadline(key: str, d: dict[str, Any], zone: ZoneInfo, now: datetime,
              paused_since: str | None) -> str:
    """"2026-12-04 18:00, overdue by 2 h 10 min" and the like (d: services.tickets.deadlines)."""
    done_word = "answered" if key != "resolution" else "resolved"
    state = d["state"]
    if state == "none":
        return (f"no SLA target; {done_word} {minute(d['done_at'], zone)}" if d["done_at"]
                else "no SLA target")
    due = _time(d["due_at"])
    head = minute(due, zone)
    if state == "met":
        return f"{head}, met: {done_word} {minute(d['done_at'], zone)}"
    if state == "late":
        late = span((_time(d["done_at"]) - due).total_seconds())
        return f"{head}, missed: {done_word} {minute(d['done_at'], zone)}, {late} late"
    if state in ("running", "overdue"):
        return f"{head}, {relative(due, now)}"
    if state == "paused":
        since = f" since {minute(paused_since, zone)}" if paused_since else ""
        return f"{head}, clock paused{since} (pending): moves on when the client answers"
    return f"{head}, not {done_word}: the ticket was resolved or closed without it"


def _others(data: dict[str, Any], zone: ZoneInfo) -> list[str]:
    rows = data["requester_tickets"]
    if not rows:
        return ["", "Other tickets of this client: none"]
    total = data.get("requester_ticket_count", len(rows))
    shown = f", the newest {len(rows)}" if total > len(rows) else ""
    out = ["", f"Other tickets of this client ({plural(total, 'ticket')}{shown}):"]
    out += [f"  {t['tag']:<12} {t['status']:<9} {minute(t.get('created_at'), zone):<16}  "
            f"{t['subject']}" for t in rows]
    return out


def _messages(messages: list[dict[str, Any]], zone: ZoneInfo, full: bool) -> list[str]:
    out = ["", f"Messages ({plural(len(messages), 'message')}):"]
    for m in messages:
        who = _person(m["from"]["name"], m["from"]["address"])
        if m["direction"] == "out" and m["to"]:
            who += " to " + ", ".join(m["to"])
        notes = [m["thread_reason"]] if m["thread_reason"] not in ("new", None) else []
        if m["internal"]:
            notes.append("internal note")
        head = (f"#{m['id']}  {minute(m['received_at'], zone)}  {m['direction']:<3}  "
                f"{m['role']:<6}  {who}" + (f"  [{', '.join(notes)}]" if notes else ""))
        out += ["", head, f"    Subject: {m['subject']}"]
        lines = SYSTEM_TEXT_LINES if m["role"] == "system" else TEXT_LINES
        out += ["    " + line if line else "" for line in _body(m["text"], full, lines)]
        out += [f"    [attachment] {a['filename'] or '(no name)'} ({a['content_type']}, "
                f"{size(a['size'])})" for a in m["attachments"]]
    return out


def _body(text: str, full: bool, max_lines: int = TEXT_LINES) -> list[str]:
    """A message's text as `show` prints it: whole with `full`, else its new text (quote,
    signature and our notification's marker cut) within `max_lines` and TEXT_CHARS, with a
    line saying what was left out."""
    whole = (text or "").replace("\r\n", "\n").strip("\n").rstrip().splitlines()
    if full or not whole:
        return whole or ["(no text)"]
    short = (new_text("\n".join(whole)).text or "\n".join(whole)).splitlines()[:max_lines]
    while len(short) > 1 and len("\n".join(short)) > TEXT_CHARS:
        short.pop()
    if len(short[0]) > TEXT_CHARS:
        short[0] = short[0][:TEXT_CHARS] + "…"
    while len(short) > 1 and not short[-1].strip():
        short.pop()
    if short == whole:
        return short
    hidden = len(whole) - len(short)
    return [*short, f"[… {plural(hidden, 'more line')}; --full shows the whole text]"
            if hidden > 0 else "[… cut; --full shows the whole text]"]


def _history(events: list[dict[str, Any]], zone: ZoneInfo, full: bool) -> list[str]:
    shown = events if full or len(events) <= HISTORY_EVENTS else events[-HISTORY_EVENTS:]
    cut = (f", the latest {len(shown)}: --full shows all" if len(shown) < len(events) else "")
    out = ["", f"History ({plural(len(events), 'event')}{cut}):"]
    for e in shown:
        out.append(f"  {minute(e['at'], zone)}  {e['kind']:<20} {(e['actor'] or 'maildesk'):<28} "
                   f"{e['summary']}".rstrip())
    return out


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- the history in words ---------------------------------------------------------------------
_NOISE = ("message_id", "cause")


def _change(data: Mapping[str, Any]) -> str:
    return f"{data.get('from') or '-'} → {data.get('to') or '-'}"


def describe_event(kind: str, data: Mapping[str, Any], zone: tzinfo, tag: str,
                   numbers: Mapping[int, int]) -> str:
    """A ticket_event's data in a few words, e.g. "open → pending", "line1 → line2: OLA
    exceeded", "assigned to alice@example.com". `numbers`: ticket id -> number, for the
    tickets a `linked` event names."""
    kind = str(kind)
    d = dict(data or {})
    reason = f": {d['reason']}" if d.get("reason") else ""
    if kind == "created":
        how = {"new": "a new mail", "forward": "a forward", "after-closed":
               "a reply to a closed ticket"}.get(str(d.get("reason")), d.get("reason") or "a mail")
        return f"opened by {how}"
    if kind == "routed":
        rules = ", ".join(f"'{r}'" for r in d.get("rules", []))
        return f"rules {rules} → line {d.get('line') or '-'}, {d.get('priority') or '-'}"
    if kind == "linked":
        number = numbers.get(d.get("ticket_id"))  # type: ignore[arg-type]
        return f"linked to {tag}-{number}" if number else "linked to another ticket"
    if kind == "message":
        return f"{d.get('role', 'a')} mail ({d.get('reason', '-')})"
    if kind in ("status", "assigned", "priority", "category"):
        return _change(d) + reason
    if kind == "escalated":
        return f"line {_change(d)}{reason}"
    if kind == "tagged":
        return "+ " + ", ".join(d.get("tags", []))
    if kind in ("commands",):
        return " ".join(d.get("commands", []))
    if kind == "command_rejected":
        return "; ".join(d.get("errors", []))
    if kind == "reopened":
        return "reopened by the client's mail"
    if kind == "rated":
        return f"rated {d.get('rating')}/5" + (f": {d['comment']}" if d.get("comment") else "")
    if kind == "first_response":
        return "first response given"
    if kind == "autoreply":
        return f"acknowledgement sent ({d.get('language', '-')})"
    if kind in ("autoreply_suppressed", "robot_mail"):
        return (d.get("reason") or "").strip()
    if kind in ("autoreply_failed", "notification_failed", "timer_failed"):
        return f"failed: {d.get('error', '-')}"
    if kind == "notification":
        return f"line {d.get('line') or '-'} told ({d.get('event', '-')}) at {d.get('to', '-')}"
    if kind in ("agent_reply", "resolved", "solved", "command_error", "search_results"):
        return f"mail to {d.get('to', '-')}"
    if kind in ("bounce", "delivery_notice"):
        return str(d.get("summary") or d.get("why") or "")
    if kind in ("sla_warning", "sla_breach"):
        name = DEADLINE_NAMES.get(str(d.get("deadline")), str(d.get("deadline") or "-"))
        due = d.get("due")
        try:
            when = f" (due {minute(due, zone)})" if due else ""
        except ValueError:
            when = f" (due {due})"
        return f"{name}{when}" + (f", line {d['line']}" if d.get("line") else "")
    if kind in ("kb_inserted", "kb_solved"):
        return f"{d.get('kind', 'article')} {d.get('slug', '-')}"
    if kind == "kb_suggested":
        return "articles " + ", ".join(str(a) for a in d.get("articles", []))
    # Any other kind (older or newer ones): its data, briefly.
    return ", ".join(f"{k}={v}" for k, v in d.items() if k not in _NOISE)
