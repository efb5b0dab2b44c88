"""decide(): what one stored message does, from the facts about it. The pipeline's runner and
`maildesk rules test` both call it, so a dry run cannot disagree with the daemon.

decide() writes nothing. What it needs from the database it asks of a `Lookups` (read-only
queries: db/queries.py in the runner, a read-only session in the dry run), only when the
decision gets that far (the sender's autoreply history is read for new tickets only). The
result is a `Decision`: one outcome (quarantine, duplicate, ignore, bounce, ticket, agent),
the Plan to apply, and the reasons, like the rule hits Mailman's chains record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from maildesk import addresses
from maildesk.config.model import Settings
from maildesk.domain import EventKind, Role, TicketStatus
from maildesk.outbound.compose import ascii_address, choose_language
from maildesk.actions import (AnswerSearch, Effect, Event, MailClient, NotifyLine, Rate, Rearm,
                              SetStatus)
from maildesk.kb.rank import search_articles
from maildesk.pipeline.agent import (AgentPlan, TicketState, agent_effects, authenticated_sender,
                                     plan_agent_reply)
from maildesk.pipeline.authenticity import autoreply_refusal, domain_of, judge_authenticity
from maildesk.pipeline.bounces import DeliveryReport, judge_report
from maildesk.pipeline.loops import LoopVerdict, classify_loop
from maildesk.pipeline.parse import ParsedMessage, Unparseable
from maildesk.pipeline.plan import Plan, dedupe_key, missing_sender, plan_message, sender_of
from maildesk.pipeline.rating import parse_rating
from maildesk.pipeline.subject import SubjectInfo, analyse_subject, format_tag
from maildesk.pipeline.thread import ThreadDecision, ThreadFacts, TicketFacts, decide_thread
from maildesk.probes import source_ip
from maildesk.rules.engine import Routing
from maildesk.pipeline.routing import NO_ROUTING, detect_language, mail_facts, with_line_policy
from maildesk.sla.policy import Deadlines


@dataclass(frozen=True)
class Arrival:
    """How the message came: the inbound row's envelope and flags."""

    inbound_id: int
    mail_from: str | None
    rcpt_to: tuple[str, ...]
    received_at: datetime
    source: str | None = None
    no_autoreply: bool = False     # backlog imported from a mailbox
    update_only: bool = False      # may join a ticket, never open one
    auth_results: str | None = None


@dataclass(frozen=True)
class OutgoingFacts:
    """An outgoing mail a return path names."""

    id: int
    bounce_tag: str
    recipient: str
    created_at: datetime


@dataclass(frozen=True)
class SenderHistory:
    """Autoreplies in the last hour: to the sender, to its domain, in all; and a recent bounce."""

    to_sender: int = 0
    to_domain: int = 0
    total: int = 0
    bounced_recently: bool = False


class Lookups(Protocol):
    """The read-only queries decide() may ask (db/queries.py answers them)."""

    def raw(self) -> bytes: ...   # the stored bytes (a bounce's report parts)
    def duplicate_of(self, key: str) -> tuple[int, int] | None: ...
    def outgoing(self, outbox_id: int | None, legacy_tag: str | None) -> OutgoingFacts | None: ...
    def ticket_by_token(self, number: int, token: str,
                        sender: str) -> tuple[TicketFacts, bool] | None: ...
    def thread_facts(self, sender: str, subject: SubjectInfo, ref_ids: Sequence[str],
                     message_id: str | None) -> ThreadFacts: ...
    def ticket_state(self, ticket_id: int) -> TicketState: ...
    def search_tickets(self, query: str, limit: int) -> list[dict[str, Any]]: ...
    def suggested_articles(self, ticket_id: int) -> tuple[tuple[str, ...], str]: ...
    def sender_history(self, sender: str, *, since: datetime,
                       bounced_since: datetime) -> SenderHistory: ...


@dataclass(frozen=True)
class Decision:
    """What one message does. `outcome`: quarantine | duplicate | ignore | bounce | ticket |
    agent. `notes` say why along the way (for the log); `probe_failures` are failed token
    lookups to count against the client IP."""

    outcome: str
    reason: str | None = None
    ticket_number: int | None = None           # duplicate: the ticket of the earlier copy
    duplicate_of: int | None = None
    bounce: tuple[OutgoingFacts, DeliveryReport] | None = None
    plan: Plan | None = None
    agent: AgentPlan | None = None
    ticket: TicketState | None = None          # the ticket joined, as it was
    routing: Routing = NO_ROUTING
    deadlines: Deadlines | None = None
    autoreply: str | None = None               # "yes", or why not
    notify: str | None = None                  # line notification: new | rated | update
                                               # (a NotifyLine among the plan's effects)
    probe_failures: int = 0
    notes: tuple[str, ...] = field(default=())


def recipients_of(message: ParsedMessage, arrival: Arrival) -> list[str]:
    """Envelope first, then To and Cc: the order in which tokens and tags are looked for."""
    return [*arrival.rcpt_to, *(a.address for a in message.to), *(a.address for a in message.cc)]


def _return_path(recipients: Sequence[str], lookups: Lookups, settings: Settings,
                 now: datetime, notes: list[str]) -> OutgoingFacts | None:
    """The outgoing mail a verified (or still valid legacy) return path names."""
    support = frozenset(settings.support_addresses)
    validity = settings.security.bounce_tag_validity
    for rcpt in recipients:
        tag = addresses.parse_bounce(rcpt, support)
        if tag is None:
            continue
        if tag.legacy is not None:  # queued before signing: honoured until it expires
            row = lookups.outgoing(None, tag.legacy)
            why = (None if row is not None and row.created_at >= now - validity
                   else "unknown or expired unsigned tag")
        else:
            why = addresses.verify_bounce(settings.signing_keys, tag,
                                          today=now.astimezone(timezone.utc).date(),
                                          valid_days=validity.days)
            row = lookups.outgoing(tag.outbox_id, None) if why is None else None
            if why is None and (row is None or row.bounce_tag != tag.text):
                why = "no such outgoing mail"
        if why is None and row is not None:
            return row
        notes.append(f"return path {rcpt}: {why}; taken as ordinary mail")
    return None


def _autoreply_refusal(message: ParsedMessage, arrival: Arrival, sender: str,
                       history: SenderHistory, settings: Settings) -> str | None:
    """Why no acknowledgement may go to `sender`, or None (PRODUCT.md §5 and §8)."""
    if not ascii_address(sender):
        # Needs SMTPUTF8 end to end (RFC 6531); outgoing mail is ASCII-headed today.
        return "the address cannot be written in ASCII"
    if history.bounced_recently:
        return "an autoreply to this address bounced recently"
    policy = settings.authenticity.policy
    if policy != "off":
        verdict = judge_authenticity(message.headers, sender=sender, source=arrival.source,
                                     own_results=arrival.auth_results,
                                     settings=settings.authenticity)
        refusal = autoreply_refusal(verdict, policy)
        if refusal is not None:
            return refusal
    if history.to_sender >= settings.autoreply.max_per_sender_per_hour:
        return None  # plan.py says it: too many autoreplies to this sender
    cap = settings.autoreply
    if history.total >= cap.max_per_hour:
        return (f"too many autoreplies in the last hour ({history.total}; "
                f"autoreply.max_per_hour is {cap.max_per_hour})")
    if history.to_domain >= cap.max_per_domain_per_hour:
        return (f"too many autoreplies to {domain_of(sender)} in the last hour "
                f"({history.to_domain}; autoreply.max_per_domain_per_hour is "
                f"{cap.max_per_domain_per_hour})")
    return None


@dataclass(frozen=True)
class _Sender:
    """Who wrote, and to which of our addresses."""

    address: str
    name: str
    recipients: tuple[str, ...]
    mailbox: str                   # the support address it came to


@dataclass(frozen=True)
class _Token:
    ticket: TicketFacts | None = None
    agents: bool = False           # the agents' token, never shown to the client
    failures: int = 0
    solved: int | None = None      # `-solvedN`: suggested article N solved it (client token)


@dataclass(frozen=True)
class _Opening:
    """What a new ticket gets: routing, deadlines, the autoreply's language or why none."""

    routing: Routing = NO_ROUTING
    deadlines: Deadlines | None = None
    language: str | None = None
    limited: bool = False          # the per-sender hourly cap is reached
    loop: LoopVerdict = LoopVerdict(True)
    suggestions: tuple[dict[str, Any], ...] = ()   # public articles for the acknowledgement


def decide(parsed: ParsedMessage | Unparseable, arrival: Arrival, lookups: Lookups,
           settings: Settings, *, now: datetime, languages: frozenset[str]) -> Decision:
    """Everything one message does (module docstring). `languages`: the autoreply templates.
    Each step below either settles the message or hands on what it found."""
    if isinstance(parsed, Unparseable):
        return Decision("quarantine", parsed.reason)
    message = parsed
    notes: list[str] = []
    who = _sender(message, arrival, lookups, settings, now, notes)
    if isinstance(who, Decision):
        return who
    token = _token(who, lookups, settings, notes)
    if isinstance(token, Decision):
        return token
    subject = analyse_subject(message.subject, settings.ticket_tag)
    thread, role = _thread(message, arrival, who, token, subject, lookups, settings)
    common: dict[str, Any] = {"probe_failures": token.failures, "notes": tuple(notes)}
    if arrival.update_only and thread.ticket_id is None:
        return Decision("ignore", "from an update-only folder and it belongs to no ticket "
                        f"({thread.reason}); not made into a new one", **common)
    current = lookups.ticket_state(thread.ticket_id) if thread.ticket_id is not None else None
    own = frozenset(settings.support_addresses) | settings.line_mailboxes()
    robot_check = classify_loop(message, arrival.mail_from, own)
    if role is Role.AGENT and current is not None:
        return _agent_reply(message, arrival, who, subject, thread, current, robot_check,
                            settings, lookups, common)
    if token.solved is not None and current is not None:
        return _solved(message, arrival, who, subject, thread, current, robot_check,
                       token.solved, lookups, common)
    opening = _Opening(loop=robot_check)
    if thread.ticket_id is None:
        found = _opening(message, arrival, who, lookups, settings, now, languages, robot_check)
        if isinstance(found, Decision):
            return replace(found, **common)
        opening = found
    return _ticket_decision(message, arrival, who, subject, thread, role, current, robot_check,
                            opening, settings, common)


def _ticket_decision(message: ParsedMessage, arrival: Arrival, who: _Sender,
                     subject: SubjectInfo, thread: ThreadDecision, role: Role,
                     current: TicketState | None, robot_check: LoopVerdict, opening: _Opening,
                     settings: Settings, common: dict[str, Any]) -> Decision:
    """A client's (or an agent's first) mail: the plan for its ticket, and the line's news."""
    rating = None
    if (current is not None and role is Role.CLIENT and current.status is TicketStatus.RESOLVED
            and robot_check.autoreply_allowed):
        rating = parse_rating(message.text)
    plan = plan_message(inbound_id=arrival.inbound_id, message=message, sender=who.address,
                        sender_name=who.name, role=role, subject=subject, decision=thread,
                        mailbox=who.mailbox, routing=opening.routing, rating=rating,
                        current_status=current.status if current else None,
                        loop=opening.loop, deadlines=opening.deadlines,
                        autoreply_language=opening.language, autoreply_limited=opening.limited,
                        suggestions=opening.suggestions)
    notify = None
    if not arrival.no_autoreply and (plan.new_ticket is not None
                                     or robot_check.autoreply_allowed):
        rated = any(isinstance(e, Rate) for e in plan.effects)
        notify = "new" if plan.new_ticket else "rated" if rated else "update"
        answers = line_articles(message, opening.language, settings) \
            if plan.new_ticket is not None else ()
        plan = replace(plan, effects=(*plan.effects,
                                      NotifyLine(notify, with_message=True, articles=answers)))
    return Decision("ticket", thread.reason, plan=plan, ticket=current,
                    routing=opening.routing, deadlines=opening.deadlines,
                    autoreply=_autoreply_said(plan), notify=notify, **common)


def _sender(message: ParsedMessage, arrival: Arrival, lookups: Lookups, settings: Settings,
            now: datetime, notes: list[str]) -> _Sender | Decision:
    """Mail that names nobody, a copy of mail seen before, or a bounce is settled here."""
    no_sender = missing_sender(message, arrival.mail_from)
    if no_sender is not None:  # neither a sender header nor an envelope sender
        return Decision("quarantine", no_sender)
    earlier = lookups.duplicate_of(dedupe_key(message))
    if earlier is not None:
        return Decision("duplicate", f"duplicate of message {earlier[0]} on ticket "
                        f"{format_tag(settings.ticket_tag, earlier[1])}",
                        ticket_number=earlier[1], duplicate_of=earlier[0])
    recipients = tuple(recipients_of(message, arrival))
    outgoing = _return_path(recipients, lookups, settings, now, notes)
    if outgoing is not None:
        report = judge_report(message, lookups.raw(), arrival.mail_from, outgoing.recipient)
        return Decision("bounce", report.why, bounce=(outgoing, report), notes=tuple(notes))
    address, name = sender_of(message, arrival.mail_from)
    support = frozenset(settings.support_addresses)
    mailbox = next((addresses.base_address(r) for r in recipients
                    if addresses.base_address(r) in support), settings.support_addresses[0])
    return _Sender(address, name, recipients, mailbox)


def _token(who: _Sender, lookups: Lookups, settings: Settings,
           notes: list[str]) -> _Token | Decision:
    """One message names one token: the envelope's first, else the headers' first. Many
    distinct tokens in one mail is somebody guessing: nothing is looked up. A client's
    "this solved it" address (`-solvedN`) is its token, not another one."""
    support = frozenset(settings.support_addresses)
    named = [t for t in (addresses.parse_reply_token(r, support) for r in who.recipients)
             if t is not None]
    tokens = list(dict.fromkeys((t.number, t.token) for t in named))
    limit = settings.security.max_tokens_per_message
    if len(tokens) > limit:
        return Decision("quarantine", f"token probing: {len(tokens)} distinct reply-token "
                        f"addresses in one message (at most {limit}); none was tried",
                        probe_failures=len(tokens), notes=tuple(notes))
    if not tokens:
        return _Token()
    number, token = tokens[0]
    found = lookups.ticket_by_token(number, token, who.address)
    if found is None:
        notes.append(f"reply token for ticket {number} does not match")
        return _Token(failures=1)
    solved = next((t.solved for t in named if (t.number, t.token) == tokens[0] and t.solved),
                  None)
    # Only the client's token says "solved": the agents' one never reaches a client.
    return _Token(found[0], found[1], solved=None if found[1] else solved)


def _thread(message: ParsedMessage, arrival: Arrival, who: _Sender, token: _Token,
            subject: SubjectInfo, lookups: Lookups,
            settings: Settings) -> tuple[ThreadDecision, Role]:
    """The ticket the message belongs to (pipeline/thread.py) and whether an agent wrote it:
    a sender listed in lines.yaml who writes to the agents' reply address of the ticket, or
    (where configured) whom our own MTA authenticated, on a known ticket."""
    # A token decides first (pipeline/thread.py): then nothing else is looked up.
    facts = ThreadFacts(token_ticket=token.ticket, referenced=(), tagged=(), same_subject=()) \
        if token.ticket is not None else lookups.thread_facts(
            who.address, subject, [*message.in_reply_to, *reversed(message.references)],
            message.message_id)
    thread = decide_thread(who.address, subject, facts, now=arrival.received_at,
                           reply_window=timedelta(days=settings.reply_window_days))
    is_agent = who.address in settings.agent_addresses() and (token.agents or (
        thread.ticket_id is not None and authenticated_sender(
            message.headers, settings.agents_trust_authserv_id, who.address)))
    if token.ticket is not None and ((is_agent and token.agents) or
                                     (not is_agent and token.solved is not None)):
        # Agents may act on closed tickets; a client's "solved" never reopens or opens one.
        thread = ThreadDecision(token.ticket.id, "token")
    return thread, Role.AGENT if is_agent else Role.CLIENT


def history_window(now: datetime, settings: Settings) -> tuple[datetime, datetime]:
    """Since when `sender_history` counts autoreplies (the hourly caps), and since when a
    bounce mutes them."""
    return now - timedelta(hours=1), now - settings.autoreply.mute_after_bounce


def _opening(message: ParsedMessage, arrival: Arrival, who: _Sender, lookups: Lookups,
             settings: Settings, now: datetime, languages: frozenset[str],
             loop: LoopVerdict) -> _Opening | Decision:
    """A new ticket: the rules (which may ignore or hold it), its SLA deadlines, and whether
    it is acknowledged (loops, rules, history, authenticity, caps)."""
    routing = settings.ruleset.evaluate(mail_facts(
        message, who.address, who.name, envelope_to=arrival.rcpt_to, at=arrival.received_at))
    if routing.action == "ignore":
        return Decision("ignore", f"rule {routing.action_rule!r}: ignore", routing=routing)
    if routing.action is not None:
        return Decision("quarantine", f"held by rule {routing.action_rule!r} (action: "
                        "quarantine); `maildesk quarantine retry` runs it through the rules "
                        "again", routing=routing)
    routing = with_line_policy(routing, settings, arrival.rcpt_to)
    deadlines = settings.sla_policies.deadlines(policy=routing.sla_policy,
                                                priority=routing.priority,
                                                start=arrival.received_at)
    if arrival.no_autoreply:
        loop = LoopVerdict(False, "imported from the mailbox's backlog at first contact")
    elif not routing.autoreply:
        loop = LoopVerdict(False, f"rule {routing.matched[-1]!r}: no_autoreply"
                           if routing.matched else "no_autoreply")
    if not (settings.autoreply.enabled and loop.autoreply_allowed and languages):
        return _Opening(routing, deadlines, loop=loop)
    language = choose_language(
        rule_language=routing.language, content_language=message.content_language,
        text=f"{message.subject}\n{message.text}", default=settings.language,
        available=languages)
    since, bounced_since = history_window(now, settings)
    history = lookups.sender_history(who.address, since=since, bounced_since=bounced_since)
    refusal = _autoreply_refusal(message, arrival, who.address, history, settings)
    return _Opening(routing, deadlines, language,
                    limited=history.to_sender >= settings.autoreply.max_per_sender_per_hour,
                    loop=LoopVerdict(False, refusal) if refusal is not None else loop,
                    suggestions=suggest_articles(message, language, settings))


# What of a mail the suggestions read: the question is at the top; long quotes only dilute it.
SUGGEST_TEXT = 4000
SUGGEST_RELATIVE = 0.8


def suggest_articles(message: ParsedMessage, language: str,
                     settings: Settings) -> tuple[dict[str, Any], ...]:
    """Public articles in the client's language that match the mail at least
    `autoreply.suggest_threshold` (0..1), best first: self-service in the acknowledgement."""
    cap = settings.autoreply
    if cap.suggest_articles <= 0 or not len(settings.kb):
        return ()
    hits = search_articles(settings.kb, f"{message.subject}\n{message.text[:SUGGEST_TEXT]}",
                           language=language, limit=cap.suggest_articles, public_only=True)
    shown = [h for h in hits if h.score >= cap.suggest_threshold]
    # A second or third article only when it is nearly as good as the first: a weak runner-up
    # is more often wrong than right (benchmarks/suggest.py).
    shown = [h for h in shown if h.score >= SUGGEST_RELATIVE * shown[0].score]
    return tuple({"slug": h.slug, "language": h.language, "title": h.title,
                  "score": round(h.score, 3)} for h in shown)


def _solved(message: ParsedMessage, arrival: Arrival, who: _Sender, subject: SubjectInfo,
            thread: ThreadDecision, ticket: TicketState, loop: LoopVerdict, article: int,
            lookups: Lookups, common: dict[str, Any]) -> Decision:
    """The client's one-click "this solved it" (README, Knowledge base): a ticket still being
    worked on is resolved and the article counted; the client is told, and so is the line.
    A ticket already resolved or closed stays as it is: the mail is only recorded."""
    plan = plan_message(inbound_id=arrival.inbound_id, message=message, sender=who.address,
                        sender_name=who.name, role=Role.CLIENT, subject=subject,
                        decision=thread, mailbox=who.mailbox, routing=NO_ROUTING,
                        current_status=ticket.status, loop=LoopVerdict(False, "solved link"))
    recorded = (Event(EventKind.MESSAGE, {"role": Role.CLIENT.value, "reason": "solved-link"},
                      at_arrival=True),)
    if not loop.autoreply_allowed or ticket.status not in OPEN_STATUSES:
        why = loop.reason if not loop.autoreply_allowed else f"the ticket is {ticket.status.value}"
        return Decision("ticket", f"solved link, not acted on: {why}",
                        plan=replace(plan, effects=recorded), ticket=ticket, **common)
    slugs, language = lookups.suggested_articles(thread.ticket_id or 0)
    slug = slugs[article - 1] if article <= len(slugs) else None
    effects: list[Effect] = [*recorded]
    if slug is not None:
        effects.append(Event(EventKind.KB_SOLVED, {"slug": slug, "language": language,
                                                   "article": article}, at_arrival=True))
    said = f"solved by the client with article {slug}" if slug else "solved by the client"
    effects += [SetStatus(TicketStatus.RESOLVED, reason=said, at_arrival=True),
                MailClient("solved", "solved.client", "", attachments=False, as_agent=False,
                           language=language or None),
                NotifyLine("solved", with_message=True, reason=said), Rearm()]
    return Decision("ticket", "solved link", plan=replace(plan, effects=tuple(effects)),
                    ticket=ticket, notify="solved", **common)


# Statuses a client's "solved" acts on: the ticket is still being worked on.
OPEN_STATUSES = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING)


# What a new ticket's line notification proposes: the best few articles and macros, in any
# audience; looser than what a client is shown (an agent judges), never the noise below it.
LINE_ARTICLES = 3
LINE_THRESHOLD = 0.25


def line_articles(message: ParsedMessage, language: str | None,
                  settings: Settings) -> tuple[dict[str, Any], ...]:
    """The articles and macros that best match a new ticket, one per slug, titled in the
    client's language where the article has it: the agent sees the likely answer at once."""
    if not len(settings.kb):
        return ()
    language = language or detect_language(message)
    hits = search_articles(settings.kb, f"{message.subject}\n{message.text[:SUGGEST_TEXT]}",
                           limit=3 * LINE_ARTICLES)
    best: dict[str, float] = {}
    for h in hits:
        if h.score >= LINE_THRESHOLD:
            best.setdefault(h.slug, h.score)
    shown = []
    for slug, score in list(best.items())[:LINE_ARTICLES]:
        article = settings.kb.get(slug, language)
        if article is not None:
            shown.append({"slug": slug, "title": article.title, "score": round(score, 3),
                          "macro": article.macro is not None, "internal": not article.public})
    return tuple(shown)


def _autoreply_said(plan: Plan) -> str | None:
    """"yes" when the plan acknowledges, else the reason it gives; None when not a question
    (a message joining a ticket is never acknowledged)."""
    if plan.autoreply is not None:
        return "yes"
    if plan.new_ticket is None:
        return None
    reasons = [str(e.data.get("reason")) for e in plan.events
               if e.kind is EventKind.AUTOREPLY_SUPPRESSED]
    return reasons[0] if reasons else ("not for agents" if plan.role is not Role.CLIENT
                                       else "autoreplies are off")


def _agent_reply(message: ParsedMessage, arrival: Arrival, who: _Sender, subject: SubjectInfo,
                 thread: ThreadDecision, ticket: TicketState, loop: LoopVerdict,
                 settings: Settings, lookups: Lookups, common: dict[str, Any]) -> Decision:
    """An agent answered: record the whole mail, obey its commands, relay its new text."""
    agent = plan_agent_reply(message.text, ticket, sender=who.address, settings=settings,
                             sender_name=who.name)
    if not loop.autoreply_allowed:
        # An agent's out-of-office or a bounce from their mailbox: kept, never obeyed.
        agent = AgentPlan(text=agent.text, internal=True)
    plan = plan_message(inbound_id=arrival.inbound_id, message=message, sender=who.address,
                        sender_name=who.name, role=Role.AGENT, subject=subject,
                        decision=thread, mailbox=who.mailbox, routing=NO_ROUTING,
                        current_status=ticket.status, loop=loop)
    answers: tuple[Effect, ...] = ()
    if agent.searches and not agent.errors:
        answers = (AnswerSearch(tuple(_search(q, ticket, lookups, settings)
                                      for q in agent.searches)),)
    plan = replace(plan, internal=agent.internal,
                   effects=(*plan.effects, *agent_effects(agent, ticket), *answers))
    return Decision("agent", thread.reason, plan=plan, agent=agent, ticket=ticket, **common)


# Results per #search: enough to choose from in a mail, few enough to read.
SEARCH_RESULTS = 5


def _search(query: str, ticket: TicketState, lookups: Lookups,
            settings: Settings) -> dict[str, Any]:
    """One #search: the best tickets (all of them, agents see every ticket) and articles."""
    # Every language: an agent may answer a Russian client from an English article.
    articles = search_articles(settings.kb, query, limit=SEARCH_RESULTS)
    tickets = [{**t, "tag": format_tag(settings.ticket_tag, t["number"])}
               for t in lookups.search_tickets(query, SEARCH_RESULTS)]
    return {"query": query, "tickets": tickets,
            "articles": [{"slug": a.slug, "language": a.language, "title": a.title,
                          "snippet": a.snippet} for a in articles]}


__all__ = ["Arrival", "Decision", "Lookups", "OutgoingFacts", "SenderHistory", "decide",
           "recipients_of", "source_ip"]
