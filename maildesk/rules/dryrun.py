"""`maildesk rules test FILE.eml [--at TIME]`: what the rules would do with a mail. Changes
nothing: no database, no outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from maildesk.config.model import Settings
from maildesk.effects.apply import autoreply_context
from maildesk.outbound.compose import Composer, choose_language
from maildesk.pipeline.parse import ParsedMessage, Unparseable, parse_message
from maildesk.pipeline.plan import sender_of
from maildesk.pipeline.subject import analyse_subject, format_tag
from maildesk.rules.facts import mail_facts, with_line_policy
from maildesk.sla.calendar import default_calendar_name


def parse_when(text: str | None, settings: Settings, now: datetime) -> datetime:
    """ISO 8601; without an offset, the time is read in the default calendar's zone."""
    if not text:
        return now
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        calendar = settings.calendars.get(default_calendar_name(settings.sla) or "")
        value = value.replace(tzinfo=calendar.zone if calendar else ZoneInfo("UTC"))
    return value


def dry_run(raw: bytes, settings: Settings, at: datetime,
            rcpt: tuple[str, ...] = ()) -> dict[str, Any]:
    """The routing of a mail that would open a ticket at `at`, and the reply it would get."""
    parsed = parse_message(raw)
    if isinstance(parsed, Unparseable):
        return {"unparseable": parsed.reason}
    message: ParsedMessage = parsed
    sender, sender_name = sender_of(message, None)
    facts = mail_facts(message, sender, sender_name,
                       envelope_to=rcpt or settings.support_addresses[:1], at=at)
    language = facts.language
    routing = with_line_policy(settings.ruleset.evaluate(facts), settings, facts.envelope_to)
    line = settings.line(routing.line)
    calendar = settings.calendars.get(default_calendar_name(settings.sla) or "")
    shown = at.astimezone(calendar.zone) if calendar else at
    out: dict[str, Any] = {
        "from": sender, "subject": message.subject, "at": shown.isoformat(timespec="seconds"),
        "language": language, "matched": list(routing.matched),
        "action": routing.action, "action_rule": routing.action_rule,
        "line": routing.line, "line_mailbox": line.mailbox if line else None,
        "priority": routing.priority, "category": routing.category, "tags": list(routing.tags),
        "assignee": routing.assignee, "sla_policy": routing.sla_policy,
    }
    if calendar is not None:
        out["business_hours"] = calendar.is_working(at)
    if routing.action is not None:
        return out
    due = settings.sla_policies.deadlines(policy=routing.sla_policy, priority=routing.priority,
                                          start=at)
    out["sla_policy"] = due.policy
    out["deadlines"] = {
        "timezone": due.timezone.key,
        "resumes_at": due.resumes_at.astimezone(due.timezone).isoformat("T", "seconds")
        if due.resumes_at else None,
        "first_response": due.first_response.astimezone(due.timezone).isoformat("T", "seconds")
        if due.first_response else None,
        "resolution": due.resolution.astimezone(due.timezone).isoformat("T", "seconds")
        if due.resolution else None}
    composer = Composer(settings.templates_dir)
    if not routing.autoreply or not composer.languages or not settings.autoreply.enabled:
        out["autoreply"] = None
        return out
    lang = choose_language(rule_language=routing.language,
                           content_language=message.content_language,
                           text=f"{message.subject}\n{message.text}", default=settings.language,
                           available=composer.languages)
    number = settings.first_ticket_number
    tag = format_tag(settings.ticket_tag, number)
    subject = analyse_subject(message.subject, settings.ticket_tag).clean or "(no subject)"
    rendered = composer.render(routing.template or "autoreply", lang, autoreply_context(
        ticket={"number": number, "subject": subject, "priority": routing.priority,
                "line": routing.line},
        tag=tag, client_name=sender_name, client_address=sender,
        instance=settings.instance_name, reply_address=settings.support_addresses[0],
        deadlines=due, client=message))
    out["autoreply"] = {"template": routing.template or "autoreply", "language": lang,
                        "subject": rendered.subject if tag in rendered.subject
                        else f"{tag} {rendered.subject}", "text": rendered.text}
    return out


def describe(result: dict[str, Any]) -> str:
    """The dry run as a person reads it."""
    if "unparseable" in result:
        return f"unparseable: {result['unparseable']}"
    lines = [f"mail:       {result['from']}: {result['subject']}",
             f"arrives:    {result['at']}"
             + ("" if "business_hours" not in result else
                " (within business hours)" if result["business_hours"]
                else " (outside business hours)"),
             f"language:   {result['language']}"]
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
    lines += [f"line:       {result['line'] or '-'}"
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
    reply = result.get("autoreply")
    if reply is None:
        lines.append("autoreply:  none")
    else:
        lines.append(f"autoreply:  template {reply['template']} ({reply['language']}); "
                     "the ticket number is given on arrival")
        lines.append(f"Subject: {reply['subject']}")
        lines.append("")
        lines.append(reply["text"].rstrip("\n"))
    return "\n".join(lines)
