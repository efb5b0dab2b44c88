"""Claim stored messages, run the pure stages, apply each Plan; many messages per commit.

Each message is applied inside its own savepoint, so one that fails rolls back alone and is
retried later (quarantined with the traceback after `processing.max_attempts`), while the
others in the batch commit together. Replaying is safe: a message already done is not pending
any more, and a second copy stops at the dedupe key.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from maildesk import addresses
from maildesk.clock import Clock
from maildesk.config.model import Settings
from maildesk.db import queries
from maildesk.db.models import (Inbound, InboundStatus, Message, Outbox, RawMessage, Role,
                                Ticket, TicketEvent, TicketStatus)
from maildesk.effects.agent import apply_agent_plan
from maildesk.effects.apply import apply_bounce, apply_plan, mark_inbound
from maildesk.effects.notify import queue_line_notification
from maildesk.probes import TokenProbeGuard, source_ip
from maildesk.outbound.compose import Composer, ascii_address, choose_language
from maildesk.pipeline.isolate import ParseSandbox
from maildesk.pipeline.bounces import judge_report
from maildesk.pipeline.authenticity import autoreply_refusal, domain_of, judge_authenticity
from maildesk.pipeline.loops import LoopVerdict, classify_loop
from maildesk.pipeline.parse import ParsedMessage, Unparseable
from maildesk.pipeline.plan import dedupe_key, missing_sender, plan_message, sender_of
from maildesk.pipeline.rating import parse_rating
from maildesk.pipeline.subject import analyse_subject, format_tag
from maildesk.pipeline.agent import AgentPlan, TicketState, authenticated_sender, plan_agent_reply
from maildesk.pipeline.subject import SubjectInfo
from maildesk.pipeline.thread import ThreadDecision, ThreadFacts, decide_thread
from maildesk.rules.engine import Routing
from maildesk.rules.facts import NO_ROUTING, mail_facts, with_line_policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    inbound_id: int
    status: str
    ticket_number: int | None = None
    reason: str | None = None


# Built once (see db/queries.py): the same message seen before, by its dedupe key.
_EARLIER = select(Message.id, Ticket.number).join(Ticket).where(
    Message.dedupe_key == bindparam("key"))

# How long a batch, holding the database's write lock, waits for the next parse result.
PARSE_WAIT_IN_BATCH = 0.25


class Processor:
    """Turns pending inbound rows into ticket entries."""

    def __init__(self, settings: Settings, make_session: sessionmaker[Session], clock: Clock,
                 sandbox: ParseSandbox | None = None,
                 on_outbox: Callable[[], None] | None = None,
                 probes: TokenProbeGuard | None = None):
        self.settings = settings  # the property below derives what each message needs
        self.make_session = make_session
        self.on_outbox = on_outbox  # told after a commit that queued mail, to deliver it now
        self.probes = probes        # failed token lookups per client IP, for the listener
        self._queued_mail = False
        self.clock = clock
        self.sandbox = sandbox or ParseSandbox(timeout=settings.processing.parse_timeout_seconds,
                                               memory_mb=settings.processing.parse_memory_mb)

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """Swapped whole on reload; what is derived from it is computed once here."""
        self._settings = settings
        self._support = frozenset(settings.support_addresses)
        self._agents = settings.agent_addresses()
        self._window = timedelta(days=settings.reply_window_days)
        self._own = frozenset(settings.support_addresses) | settings.line_mailboxes()
        self.composer = Composer(settings.templates_dir)

    def close(self) -> None:
        self.sandbox.close()

    # -- claiming ---------------------------------------------------------------------------
    def _pending(self, limit: int, only: list[int] | None) -> list[tuple[int, bytes]]:
        with self.make_session() as session:
            q = (select(Inbound.id, RawMessage.data).join(RawMessage, RawMessage.id == Inbound.raw_id)
                 .where(Inbound.status == InboundStatus.PENDING).order_by(Inbound.id).limit(limit))
            if only is not None:
                q = q.where(Inbound.id.in_(only))
            return [(i, bytes(d)) for i, d in session.execute(q).all()]

    def run_batch(self, limit: int = 100, only: list[int] | None = None) -> list[Outcome]:
        """Process up to `limit` pending messages (oldest first); return what became of them.

        The child process parses message i+1 while this thread writes message i, so a batch
        costs about max(parse, write) rather than their sum."""
        pending = self._pending(limit, only)
        if not pending:
            return []
        parsed: queue.Queue[tuple[int, ParsedMessage | Unparseable | Exception]] = queue.Queue()
        stop = threading.Event()

        def parse_all() -> None:
            for inbound_id, data in pending:
                if stop.is_set():
                    return
                try:
                    parsed.put((inbound_id, self.sandbox.parse(data)))
                except Exception as exc:  # the sandbox itself failed: not this message's fault
                    parsed.put((inbound_id, exc))
                    return

        parser = threading.Thread(target=parse_all, name="parse-feed", daemon=True)
        parser.start()
        outcomes: list[Outcome] = []
        # The write lock is taken only once the first message is parsed, and a batch ends
        # early when the next parse keeps it waiting (a child starting, a message near the
        # parse time bound): the SMTP listener and the IMAP poller need that lock to store.
        try:
            ready = [parsed.get()]
            with self.make_session.begin() as session:
                ids = [i for i, _ in pending]
                claim = select(Inbound).where(Inbound.id.in_(ids),
                                              Inbound.status == InboundStatus.PENDING)
                if session.get_bind().dialect.name == "postgresql":
                    claim = claim.with_for_update(skip_locked=True)
                rows = {row.id: row for row in session.scalars(claim)}
                for _ in pending:
                    if ready:
                        inbound_id, result = ready.pop()
                    else:
                        try:
                            inbound_id, result = parsed.get(timeout=PARSE_WAIT_IN_BATCH)
                        except queue.Empty:
                            break  # commit what is done; the rest stays pending
                    if isinstance(result, Exception):
                        raise result  # roll the batch back; it stays pending for the next pass
                    inbound = rows.get(inbound_id)
                    if inbound is None:  # another processor took it
                        continue
                    savepoint = session.begin_nested()
                    try:
                        outcome = self._process(session, inbound, result)
                        savepoint.commit()
                    except Exception:
                        savepoint.rollback()
                        outcome = self._failed(inbound, traceback.format_exc())
                    outcomes.append(outcome)
        finally:
            stop.set()
            parser.join()
        if self._queued_mail and self.on_outbox is not None:
            self._queued_mail = False
            self.on_outbox()
        return outcomes

    def drain(self, batch: int = 100) -> list[Outcome]:
        """Process until nothing is pending (messages that keep failing stop counting)."""
        out: list[Outcome] = []
        while True:
            got = self.run_batch(batch)
            out.extend(got)
            if not got or all(o.status == "retry" for o in got):
                return out

    def _failed(self, inbound: Inbound, tb: str) -> Outcome:
        inbound.attempts += 1
        log.error("processing inbound %s failed (attempt %d):\n%s", inbound.id, inbound.attempts, tb)
        if inbound.attempts >= self.settings.processing.max_attempts:
            reason = f"processing failed {inbound.attempts} times; last error:\n{tb}"
            mark_inbound(inbound, InboundStatus.QUARANTINED, reason, now=self.clock.now())
            return Outcome(inbound.id, "quarantined", reason=reason)
        inbound.reason = tb
        return Outcome(inbound.id, "retry", reason=tb)

    # -- one message --------------------------------------------------------------------------
    def _process(self, session: Session, inbound: Inbound,
                 result: ParsedMessage | Unparseable) -> Outcome:
        now = self.clock.now()
        if isinstance(result, Unparseable):
            mark_inbound(inbound, InboundStatus.QUARANTINED, result.reason, now=now)
            return Outcome(inbound.id, "quarantined", reason=result.reason)
        message = result
        no_sender = missing_sender(message, inbound.mail_from)
        if no_sender is not None:  # neither a sender header nor an envelope sender
            mark_inbound(inbound, InboundStatus.QUARANTINED, no_sender, now=now)
            return Outcome(inbound.id, "quarantined", reason=no_sender)
        key = dedupe_key(message)
        earlier = session.execute(_EARLIER, {"key": key}).first()
        if earlier is not None:
            reason = (f"duplicate of message {earlier.id} on ticket "
                      f"{format_tag(self.settings.ticket_tag, earlier.number)}")
            mark_inbound(inbound, InboundStatus.DUPLICATE, reason, now=now)
            return Outcome(inbound.id, "duplicate", earlier.number, reason)

        sender, sender_name = sender_of(message, inbound.mail_from)
        s = self.settings
        support = self._support
        recipients = [*inbound.rcpt_to, *(a.address for a in message.to),
                      *(a.address for a in message.cc)]
        for rcpt in recipients:
            outbox = self._return_path(session, inbound, rcpt, now)
            if outbox is not None:
                report = judge_report(message, inbound.raw.data, inbound.mail_from,
                                      outbox.recipients[0] if outbox.recipients else "")
                number = apply_bounce(session, inbound, message, outbox, report, now=now)
                return Outcome(inbound.id, "done", number)
        # One message names one token: the envelope's first, else the headers' first. Many
        # distinct tokens in one mail is somebody guessing: nothing is looked up.
        tokens = list(dict.fromkeys(t for t in (addresses.parse_reply_token(r, support)
                                                for r in recipients) if t is not None))
        ip = source_ip(inbound.source)
        if len(tokens) > s.security.max_tokens_per_message:
            if self.probes is not None:
                self.probes.record_failure(ip, len(tokens))
            reason = (f"token probing: {len(tokens)} distinct reply-token addresses in one "
                      f"message (at most {s.security.max_tokens_per_message}); none was tried")
            log.warning("inbound %s from %s: %s", inbound.id, ip or inbound.source, reason)
            mark_inbound(inbound, InboundStatus.QUARANTINED, reason, now=now)
            return Outcome(inbound.id, "quarantined", reason=reason)
        token_facts = None
        agent_token = False
        if tokens:
            found = queries.ticket_by_token(session, tokens[0].number, tokens[0].token, sender)
            if found is not None:
                token_facts, agent_token = found
            else:
                if self.probes is not None:
                    self.probes.record_failure(ip)
                log.info("inbound %s from %s: reply token for ticket %s does not match",
                         inbound.id, ip or inbound.source, tokens[0].number)
        subject = analyse_subject(message.subject, s.ticket_tag)
        ref_ids = [*message.in_reply_to, *reversed(message.references)]
        facts = ThreadFacts(
            token_ticket=token_facts,
            referenced=tuple(queries.tickets_by_message_ids(session, ref_ids, sender)),
            tagged=tuple(queries.tickets_by_numbers(session, subject.tag_numbers, sender)),
            same_subject=tuple(queries.tickets_by_subject(session, subject.key, sender))
            if (subject.is_reply or subject.is_forward) else (),
        )
        decision = decide_thread(sender, subject, facts, now=inbound.received_at,
                                 reply_window=self._window)
        # An agent: a sender listed in lines.yaml who writes to the agents' reply address of
        # the ticket, or (where configured) whom our own MTA authenticated, on a known ticket.
        is_agent = sender in self._agents and (agent_token or (
            decision.ticket_id is not None and authenticated_sender(
                message.headers, s.agents_trust_authserv_id, sender)))
        if is_agent and agent_token and token_facts is not None:
            decision = ThreadDecision(token_facts.id, "token")  # agents may act on closed ones
        role = Role.AGENT if is_agent else Role.CLIENT
        mailbox = next((addresses.base_address(r) for r in recipients
                        if addresses.base_address(r) in support), s.support_addresses[0])
        if inbound.update_only and decision.ticket_id is None:
            reason = ("from an update-only folder and it belongs to no ticket "
                      f"({decision.reason}); not made into a new one")
            mark_inbound(inbound, InboundStatus.IGNORED, reason, now=now)
            return Outcome(inbound.id, "ignored", reason=reason)
        current = (session.get_one(Ticket, decision.ticket_id)
                   if decision.ticket_id is not None else None)
        loop = robot_check = classify_loop(message, inbound.mail_from, self._own)
        if role is Role.AGENT and current is not None:
            return self._agent_reply(session, inbound, message, sender, sender_name, subject,
                                     decision, current, loop, now)
        deadlines = language = None
        limited = False
        routing = NO_ROUTING
        if decision.ticket_id is None:
            routing = s.ruleset.evaluate(mail_facts(
                message, sender, sender_name, envelope_to=inbound.rcpt_to,
                at=inbound.received_at))
            if routing.action is not None:
                return self._held(inbound, routing, now)
            routing = with_line_policy(routing, s, inbound.rcpt_to)
            deadlines = s.sla_policies.deadlines(policy=routing.sla_policy,
                                                 priority=routing.priority,
                                                 start=inbound.received_at)
            if inbound.no_autoreply:
                loop = LoopVerdict(False, "imported from the mailbox's backlog at first contact")
            elif not routing.autoreply:
                loop = LoopVerdict(False, f"rule {routing.matched[-1]!r}: no_autoreply"
                                   if routing.matched else "no_autoreply")
            if s.autoreply.enabled and loop.autoreply_allowed and self.composer.languages:
                language = choose_language(
                    rule_language=routing.language,
                    content_language=message.content_language,
                    text=f"{message.subject}\n{message.text}", default=s.language,
                    available=self.composer.languages)
                sent, bounced = queries.autoreply_history(
                    session, sender, sent_since=now - timedelta(hours=1),
                    bounced_since=now - s.autoreply.mute_after_bounce)
                limited = sent >= s.autoreply.max_per_sender_per_hour
                if bounced:
                    loop = LoopVerdict(False, "an autoreply to this address bounced recently")
                if not ascii_address(sender):
                    # Needs SMTPUTF8 end to end (RFC 6531); outgoing mail is ASCII-headed today.
                    loop = LoopVerdict(False, "the address cannot be written in ASCII")
                if loop.autoreply_allowed:
                    refusal = self._backscatter(session, inbound, message, sender, now, limited)
                    if refusal is not None:
                        loop = LoopVerdict(False, refusal)
        rating = (parse_rating(message.text) if current is not None and role is Role.CLIENT
                  and current.status is TicketStatus.RESOLVED and robot_check.autoreply_allowed
                  else None)
        plan = plan_message(inbound_id=inbound.id, message=message, sender=sender,
                            sender_name=sender_name, role=role, subject=subject, decision=decision,
                            mailbox=mailbox, routing=routing, rating=rating,
                            current_status=current.status if current else None,
                            loop=loop, deadlines=deadlines, autoreply_language=language,
                            autoreply_limited=limited)
        ticket, row = apply_plan(session, plan, inbound, now=now,
                                 first_number=s.first_ticket_number, settings=s,
                                 composer=self.composer)
        if plan.autoreply is not None:
            self._queued_mail = True
        if not inbound.no_autoreply and (plan.new_ticket is not None
                                         or robot_check.autoreply_allowed):
            self._notify(session, ticket, inbound, now,
                         "new" if plan.new_ticket else "rated" if plan.rating else "update",
                         message=message, message_row=row)
        return Outcome(inbound.id, "done", ticket.number)

    def _return_path(self, session: Session, inbound: Inbound, rcpt: str,
                     now: datetime) -> Outbox | None:
        """The outgoing mail whose return path `rcpt` is, when its tag is ours and valid.
        A tag that does not verify makes the mail ordinary mail to support (logged)."""
        tag = addresses.parse_bounce(rcpt, self._support)
        if tag is None:
            return None
        validity = self.settings.security.bounce_tag_validity
        if tag.legacy is not None:  # queued before signing: honoured until it expires
            row = session.scalar(select(Outbox).where(Outbox.bounce_tag == tag.legacy,
                                                      Outbox.created_at >= now - validity))
            why = None if row is not None else "unknown or expired unsigned tag"
        else:
            why = addresses.verify_bounce(self.settings.signing_keys, tag,
                                          today=now.astimezone(timezone.utc).date(),
                                          valid_days=validity.days)
            row = session.get(Outbox, tag.outbox_id) if why is None else None
            if why is None and (row is None or row.bounce_tag != tag.text):
                row, why = None, "no such outgoing mail"
        if row is None:
            log.info("inbound %s to return path %s: %s; taken as ordinary mail", inbound.id,
                     rcpt, why)
        return row

    def _backscatter(self, session: Session, inbound: Inbound, message: ParsedMessage,
                     sender: str, now: datetime, limited: bool) -> str | None:
        """Why no automatic mail may go to `sender` (PRODUCT.md §8, no backscatter), or None:
        the authenticity policy, then the per-domain and total caps (the per-address cap is
        `limited`). The ticket is made all the same; the reason becomes its event."""
        s = self.settings
        policy = s.authenticity.policy
        if policy != "off":
            verdict = judge_authenticity(message.headers, sender=sender, source=inbound.source,
                                         own_results=inbound.auth_results,
                                         settings=s.authenticity)
            refusal = autoreply_refusal(verdict, policy)
            if refusal is not None:
                log.info("inbound %s: no autoreply to %s: %s", inbound.id, sender, refusal)
                return refusal
        if limited:
            return None  # the per-address cap says it (plan.py)
        domain = domain_of(sender)
        to_domain, total = queries.autoreply_volume(session, domain,
                                                    since=now - timedelta(hours=1))
        if total >= s.autoreply.max_per_hour:
            reason = (f"too many autoreplies in the last hour ({total}; "
                      f"autoreply.max_per_hour is {s.autoreply.max_per_hour})")
        elif to_domain >= s.autoreply.max_per_domain_per_hour:
            reason = (f"too many autoreplies to {domain} in the last hour ({to_domain}; "
                      f"autoreply.max_per_domain_per_hour is "
                      f"{s.autoreply.max_per_domain_per_hour})")
        else:
            return None
        log.info("inbound %s: no autoreply to %s: %s", inbound.id, sender, reason)
        return reason

    def _notify(self, session: Session, ticket: Ticket, inbound: Inbound, now: datetime,
                event: str, **kwargs: Any) -> None:
        """A line notification; one that cannot be composed costs the ticket nothing else."""
        try:
            with session.begin_nested():
                sent = queue_line_notification(session, ticket, self.settings, self.composer,
                                               now=now, event=event,
                                               key=f"{inbound.id}.{event}", **kwargs)
        except Exception as exc:
            log.exception("line notification for ticket %s failed", ticket.number)
            session.add(TicketEvent(ticket_id=ticket.id, at=now, kind="notification_failed",
                                    actor=None, data={"error": f"{type(exc).__name__}: {exc}"}))
            return
        if sent:
            self._queued_mail = True

    def _held(self, inbound: Inbound, routing: Routing, now: datetime) -> Outcome:
        """A rule said ignore or quarantine: the mail is kept, no ticket is opened."""
        if routing.action == "ignore":
            reason = f"rule {routing.action_rule!r}: ignore"
            mark_inbound(inbound, InboundStatus.IGNORED, reason, now=now)
            return Outcome(inbound.id, "ignored", reason=reason)
        reason = (f"held by rule {routing.action_rule!r} (action: quarantine); "
                  "`maildesk quarantine retry` runs it through the rules again")
        mark_inbound(inbound, InboundStatus.QUARANTINED, reason, now=now)
        return Outcome(inbound.id, "quarantined", reason=reason)

    def _agent_reply(self, session: Session, inbound: Inbound, message: ParsedMessage,
                     sender: str, sender_name: str, subject: SubjectInfo,
                     decision: ThreadDecision, ticket: Ticket, loop: LoopVerdict,
                     now: datetime) -> Outcome:
        """An agent answered: record the whole mail, obey its commands, relay its new text."""
        s = self.settings
        state = TicketState(number=ticket.number, status=ticket.status, line=ticket.line,
                            priority=ticket.priority, assignee=ticket.assignee,
                            category=ticket.category, tags=tuple(ticket.tags or ()))
        agent = plan_agent_reply(message.text, state, sender=sender, settings=s)
        if not loop.autoreply_allowed:
            # An agent's out-of-office or a bounce from their mailbox: kept, never obeyed.
            agent = AgentPlan(text=agent.text, internal=True)
        plan = plan_message(inbound_id=inbound.id, message=message, sender=sender,
                            sender_name=sender_name, role=Role.AGENT, subject=subject,
                            decision=decision, mailbox=ticket.mailbox, routing=NO_ROUTING,
                            current_status=ticket.status, loop=loop)
        plan = replace(plan, internal=agent.internal)
        ticket, row = apply_plan(session, plan, inbound, now=now,
                                 first_number=s.first_ticket_number)
        apply_agent_plan(session, ticket, agent, inbound=inbound, row=row, message=message,
                         sender=sender, sender_name=sender_name, settings=s,
                         composer=self.composer, now=now, notify=self._notify)
        if agent.errors or agent.relay or agent.status is not None or agent.escalate_to \
                or agent.internal:
            self._queued_mail = True
        return Outcome(inbound.id, "done", ticket.number)
