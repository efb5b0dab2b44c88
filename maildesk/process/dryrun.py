"""`maildesk rules test FILE.eml [--at TIME]`: what maildesk would do with a mail arriving at
TIME. The same decide() as the daemon's, on the same facts read from the database in a
read-only session, so the dry run cannot disagree with the daemon. Changes nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from maildesk.actions import NotifyLine
from maildesk.config.model import Settings
from maildesk.effects.autoreply import autoreply_context, suggested_articles
from maildesk.outbound.compose import Composer
from maildesk.pipeline.decide import Arrival, Decision, decide
from maildesk.pipeline.parse import ParsedMessage, Unparseable, parse_message
from maildesk.pipeline.plan import sender_of
from maildesk.pipeline.subject import analyse_subject, format_tag
from maildesk.process.lookups import DbLookups, EmptyLookups
from maildesk.pipeline.routing import mail_facts
from maildesk.sla.calendar import default_calendar_name
from maildesk.sla.policy import Deadlines


def parse_when(text: str | None, settings: Settings, now: datetime) -> datetime:
    """ISO 8601; without an offset, the time is read in the default calendar's zone."""
    if not text:
        return now
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        calendar = settings.calendars.get(default_calendar_name(settings.sla) or "")
        value = value.replace(tzinfo=calendar.zone if calendar else ZoneInfo("UTC"))
    return value


def dry_run(raw: bytes, settings: Settings, at: datetime, rcpt: tuple[str, ...] = (),
            session: Session | None = None, mail_from: str | None = None) -> dict[str, Any]:
    """What a mail arriving at `at` would do: the decision (new ticket, join, quarantine ...),
    the routing, deadlines and the autoreply (or why none). `session`: a read-only session
    on the database (None: decide as for an empty database)."""
    parsed = parse_message(raw)
    if isinstance(parsed, Unparseable):
        return {"unparseable": parsed.reason, "decision": {"outcome": "quarantine",
                                                           "reason": parsed.reason}}
    message: ParsedMessage = parsed
    composer = Composer(settings.templates_dir)
    envelope = rcpt or settings.support_addresses[:1]
    lookups = DbLookups(session, raw=raw) if session is not None else EmptyLookups(raw)
    d = decide(message, Arrival(inbound_id=0, mail_from=mail_from, rcpt_to=tuple(envelope),
                                received_at=at), lookups, settings, now=at,
               languages=composer.languages)
    sender, sender_name = sender_of(message, mail_from)
    facts = mail_facts(message, sender, sender_name, envelope_to=envelope, at=at)
    routing = d.routing
    joined = _joined(d)
    line = settings.line(joined["line"] if joined else routing.line)
    calendar = settings.calendars.get(default_calendar_name(settings.sla) or "")
    shown = at.astimezone(calendar.zone) if calendar else at
    out: dict[str, Any] = {
        "from": sender, "subject": message.subject, "at": shown.isoformat(timespec="seconds"),
        "language": facts.language, "matched": list(routing.matched),
        "action": routing.action, "action_rule": routing.action_rule,
        "decision": _decision(d, settings),
        "line": routing.line, "line_mailbox": line.mailbox if line else None,
        "priority": routing.priority, "category": routing.category, "tags": list(routing.tags),
        "assignee": routing.assignee, "sla_policy": routing.sla_policy,
    }
    if joined:
        out.update(joined)
    if calendar is not None:
        out["business_hours"] = calendar.is_working(at)
    if d.outcome != "ticket" or d.plan is None or d.plan.new_ticket is None:
        out["autoreply"] = None
        return out
    assert d.deadlines is not None
    out["sla_policy"] = d.deadlines.policy
    out["deadlines"] = _deadlines(d.deadlines)
    out["autoreply"] = _autoreply(d, message, lookups, settings, composer, sender, sender_name)
    # What the line's notification proposes to the agents.
    notify = next((e for e in d.plan.effects if isinstance(e, NotifyLine)), None)
    out["likely_answers"] = [dict(a) for a in notify.articles] if notify else []
    return out


def _iso(value: datetime | None, due: Deadlines) -> str | None:
    return value.astimezone(due.timezone).isoformat("T", "seconds") if value else None


def _deadlines(due: Deadlines) -> dict[str, Any]:
    return {"timezone": due.timezone.key, "resumes_at": _iso(due.resumes_at, due),
            "first_response": _iso(due.first_response, due),
            "resolution": _iso(due.resolution, due)}


def _autoreply(d: Decision, message: ParsedMessage, lookups: DbLookups | EmptyLookups, settings: Settings,
               composer: Composer, sender: str, sender_name: str) -> dict[str, Any] | None:
    """The acknowledgement the new ticket would get, rendered (None: no autoreply)."""
    reply = d.plan.autoreply if d.plan is not None else None
    if reply is None:
        return None
    routing = d.routing
    number = lookups.next_ticket_number(settings.first_ticket_number)
    tag = format_tag(settings.ticket_tag, number)
    subject = analyse_subject(message.subject, settings.ticket_tag).clean or "(no subject)"
    rendered = composer.render(reply.template, reply.language, autoreply_context(
        ticket={"number": number, "subject": subject, "priority": routing.priority,
                "line": routing.line},
        tag=tag, client_name=sender_name, client_address=sender,
        instance=settings.instance_name, reply_address=settings.support_addresses[0],
        deadlines=d.deadlines, client=message,
        suggestions=suggested_articles(
            reply.suggestions, settings.kb, settings.autoreply.faq_url, tag=tag,
            solved=lambda n: _solved_placeholder(settings.support_addresses[0], number, n))))
    return {"template": reply.template, "language": reply.language,
            "subject": rendered.subject if tag in rendered.subject
            else f"{tag} {rendered.subject}", "text": rendered.text,
            "suggestions": [dict(s) for s in reply.suggestions]}


def _solved_placeholder(mailbox: str, number: int, n: int) -> str:
    """No ticket yet, so no token: the address the mail would name, with TOKEN in its place."""
    local, _, domain = mailbox.rpartition("@")
    return f"{local}+{number}-TOKEN-solved{n}@{domain}"


def _joined(d: Decision) -> dict[str, Any] | None:
    """The ticket a reply joins, as it is: rules apply to new tickets only."""
    if d.outcome not in ("ticket", "agent") or d.ticket is None:
        return None
    return {"line": d.ticket.line, "priority": d.ticket.priority,
            "category": d.ticket.category, "tags": list(d.ticket.tags),
            "assignee": d.ticket.assignee}


def dry_run_with_database(raw: bytes, settings: Settings, at: datetime) -> dict[str, Any]:
    """`dry_run` on the configured database, read-only; on an empty one when it cannot be
    read (not created or not migrated yet), which the result then says."""
    from maildesk.db.session import make_engine, make_read_sessionmaker

    if _sqlite_file_missing(settings.database.url):   # connecting would create it, empty
        result = dry_run(raw, settings, at)
        result["database"] = "not created yet (maildesk db upgrade); decided as for an empty one"
        return result
    engine = make_engine(settings.database)
    try:
        with make_read_sessionmaker(engine)() as session:
            try:
                return dry_run(raw, settings, at, session=session)
            except SQLAlchemyError as exc:
                session.rollback()
                result = dry_run(raw, settings, at)
                result["database"] = f"not read ({type(exc).__name__}); decided as for an empty one"
                return result
    finally:
        engine.dispose()


def _sqlite_file_missing(url: str) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return False
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return False
    return not Path(parsed.database).exists()


def _decision(d: Decision, settings: Settings) -> dict[str, Any]:
    """The decision as `rules test --json` states it (stable; README, JSON output)."""
    out: dict[str, Any] = {"outcome": d.outcome, "reason": d.reason,
                           "ticket": d.ticket.number if d.ticket else d.ticket_number,
                           "autoreply": d.autoreply}
    if d.plan is not None and d.plan.new_ticket is not None:
        out["outcome"] = "new ticket"
        out["linked_ticket"] = d.plan.thread.linked_ticket_id
    elif d.outcome in ("ticket", "agent"):
        out["outcome"] = "joins ticket" if d.outcome == "ticket" else "agent reply"
        out["status"] = d.plan.set_status.value if d.plan and d.plan.set_status else None
    return out


def describe(result: dict[str, Any]) -> str:
    """The dry run as a person reads it."""
    if "unparseable" in result:
        return f"unparseable: {result['unparseable']}"
    hours = "" if "business_hours" not in result else \
        " (within business hours)" if result["business_hours"] else " (outside business hours)"
    lines = [f"mail:       {result['from']}: {result['subject']}",
             f"arrives:    {result['at']}{hours}",
             f"language:   {result['language']}"]
    decision = result.get("decision") or {}
    said = _decision_line(decision, result)
    if said:
        lines.append(said)
    if result["matched"]:
        lines.append("matched:    " + "\n            ".join(
            f"{i}. {name}" for i, name in enumerate(result["matched"], 1)))
    else:
        lines.append("matched:    no rule (the default applies)")
    if result["action"]:
        verb = "ignored: kept, no ticket" if result["action"] == "ignore" \
            else "quarantined: held for an admin, no ticket"
        lines.append(f"result:     {verb} (rule {result['action_rule']!r})")
        return "\n".join(lines)
    return "\n".join([*lines, *_routing_lines(result), *_autoreply_lines(result, decision)])


def _decision_line(decision: dict[str, Any], result: dict[str, Any]) -> str | None:
    outcome = decision.get("outcome")
    if outcome in ("joins ticket", "agent reply"):
        return (f"decision:   {outcome} {decision.get('ticket')} ({decision.get('reason')})"
                + (f", status -> {decision['status']}" if decision.get("status") else "")
                + "; rules apply to new tickets only")
    if outcome in ("quarantine", "duplicate", "bounce") or (
            outcome == "ignore" and not result.get("action")):
        return f"decision:   {outcome}: {decision.get('reason')}"
    if outcome == "new ticket":
        return (f"decision:   new ticket ({decision.get('reason')})"
                + (f", linked to {decision['linked_ticket']}"
                   if decision.get("linked_ticket") else ""))
    return None


def _routing_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"line:       {result['line'] or '-'}"
             + (f" -> notification to {result['line_mailbox']}" if result["line_mailbox"] else ""),
             f"priority:   {result['priority'] or '-'}",
             f"category:   {result['category'] or '-'}",
             f"tags:       {', '.join(result['tags']) or '-'}",
             f"assignee:   {result['assignee'] or '-'}",
             f"SLA policy: {result['sla_policy'] or '-'}"]
    d = result.get("deadlines") or {}
    if d.get("resumes_at"):
        lines.append(f"outside working hours; work resumes {d['resumes_at']}")
    lines.append(f"first response by: {d.get('first_response') or '-'}")
    lines.append(f"resolution by:     {d.get('resolution') or '-'}")
    for a in result.get("likely_answers") or ():
        lines.append(f"answer:     #{'macro' if a['macro'] else 'kb'} {a['slug']} "
                     f"({a['score']:.2f}) {a['title']}")
    return lines


def _autoreply_lines(result: dict[str, Any], decision: dict[str, Any]) -> list[str]:
    reply = result.get("autoreply")
    if reply is None:
        why = decision.get("autoreply")
        return [f"autoreply:  none ({why})" if why else "autoreply:  none"]
    return [f"autoreply:  template {reply['template']} ({reply['language']}); "
            "the ticket number is given on arrival",
            f"Subject: {reply['subject']}", "", reply["text"].rstrip("\n")]
