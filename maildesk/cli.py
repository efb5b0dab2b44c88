"""The `maildesk` command line: thin wrappers that parse options, call a service and print."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from maildesk.app import COMPONENTS, Context, serve, upgrade_database
from maildesk.config import ConfigError, Settings, load_settings
from maildesk.db.models import (Inbound, InboundStatus, Message, Outbox, OutboxStatus, Ticket,
                                TicketStatus)


def _fail(message: str, code: int = 1) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def _ctx(obj: dict[str, Any]) -> Context:
    if "context" not in obj:
        try:
            obj["context"] = Context.load(obj["config"])
        except ConfigError as exc:
            _fail(f"configuration errors:\n{exc}")
    return obj["context"]


def _tally(statuses: Iterable[str]) -> str:
    """'3 done, 1 quarantined' from a list of outcome statuses."""
    counts = Counter(statuses)
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _dump(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@click.group()
@click.option("--config", "config", envvar="MAILDESK_CONFIG", default="config/maildesk.yaml",
              show_default=True, type=click.Path(dir_okay=False),
              help="maildesk.yaml to use (or $MAILDESK_CONFIG).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.pass_context
def main(click_ctx: click.Context, config: str, verbose: bool) -> None:
    """maildesk: an email-driven helpdesk."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not verbose:  # aiosmtpd logs every SMTP command at INFO: noise, and a cost per message
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    click_ctx.obj = {"config": config}
    click_ctx.call_on_close(lambda: click_ctx.obj.get("context") and click_ctx.obj["context"].close())


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init(directory: str, force: bool) -> None:
    """Write a working example config set and templates into DIRECTORY."""
    target = Path(directory)
    skeleton = Path(str(resources.files("maildesk") / "skeleton"))
    written = 0
    for part in ("config", "templates"):
        src_root = skeleton / part
        for src in sorted(src_root.rglob("*")):
            if src.is_dir() or "__pycache__" in src.parts:
                continue
            dest = target / part / src.relative_to(src_root)
            if dest.exists() and not force:
                _fail(f"{dest} exists; use --force to overwrite")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            written += 1
    # The return-path signing key, made now (mode 0600) rather than by the first command.
    try:
        key_file = load_settings(target / "config" / "maildesk.yaml").security.secret_file
        click.echo(f"signing key in {key_file} (keep it secret; `maildesk keys rotate`)")
    except ConfigError as exc:
        click.echo(f"no signing key made yet: {exc}", err=True)
    click.echo(f"wrote {written} files under {target}; start with: "
               f"maildesk --config {target / 'config' / 'maildesk.yaml'} db upgrade")


@main.group()
def keys() -> None:
    """The secret that signs return paths (security.secret_file)."""


@keys.command("rotate")
@click.pass_obj
def keys_rotate(obj: dict[str, Any]) -> None:
    """Sign with a new key from now on; older keys keep verifying the tags they signed.
    A running daemon takes the new key on SIGHUP."""
    from maildesk.config.secrets import rotate_secret_file

    try:
        path = load_settings(obj["config"]).security.secret_file
        count = rotate_secret_file(path)
    except ConfigError as exc:
        _fail(str(exc))
    click.echo(f"new signing key first in {path}; {count} keys in all (delete a line once "
               "the tags it signed have expired)")


@main.command()
@click.pass_obj
def check(obj: dict[str, Any]) -> None:
    """Validate every config file; exit 1 listing each error as file:line: key: problem."""
    try:
        settings = load_settings(obj["config"])
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    from maildesk.outbound.compose import Composer, sample_context

    composer = Composer(settings.templates_dir)
    from maildesk.rules.engine import iter_templates

    problems = composer.check(sample_context(settings),
                              tuple(name for _, name in iter_templates(settings.ruleset)))
    if not composer.languages:
        click.echo(f"{settings.templates_dir}: no templates (expected <lang>/autoreply.txt)", err=True)
        sys.exit(1)
    if problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    for path in (settings.config_path, settings.lines_path, settings.rules_path, settings.sla_path):
        click.echo(f"ok  {path}")
    click.echo(f"ok  {settings.templates_dir} ({', '.join(sorted(composer.languages))})")
    warning = backscatter_warning(settings)
    if warning:
        click.echo(f"WARNING: {warning}", err=True)


def backscatter_warning(settings: Settings) -> str | None:
    """A listener reachable from other hosts with a policy weaker than require-pass lets
    anyone make maildesk mail a forged From address (PRODUCT.md §8)."""
    import ipaddress

    smtp = settings.smtp
    policy = settings.authenticity.policy
    if not smtp.enabled or policy == "require-pass":
        return None
    try:
        loopback = ipaddress.ip_address(smtp.host).is_loopback
    except ValueError:
        loopback = smtp.host.lower() == "localhost"
    if loopback:
        return None
    return (f"{settings.config_path}: the SMTP listener binds {smtp.host}:{smtp.port}, not a "
            f"loopback address, and authenticity.policy is {policy}: forged senders get "
            "automatic mail (backscatter). Use policy: require-pass with trusted_relays and "
            "trusted_authserv_ids of the MTA in front, or own_check.")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: dict[str, Any]) -> None:
    """Apply the Alembic migrations (idempotent)."""
    ctx = _ctx(obj)
    upgrade_database(ctx.settings)
    click.echo("database is up to date")


@main.command("serve")
@click.option("--only", default=",".join(COMPONENTS), show_default=True,
              help=f"Comma-separated subset of: {', '.join(COMPONENTS)}.")
@click.pass_obj
def serve_cmd(obj: dict[str, Any], only: str) -> None:
    """Run the daemon. SIGTERM: stop accepting, finish in-flight work, exit 0. SIGHUP: reload."""
    parts = tuple(p.strip() for p in only.split(",") if p.strip())
    unknown = [p for p in parts if p not in COMPONENTS]
    if unknown:
        _fail(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}", 2)
    sys.exit(serve(_ctx(obj), parts, obj["config"]))


@main.command()
@click.argument("source", type=click.File("rb"))
@click.option("--sender", help="Envelope sender (MAIL FROM) given by the MTA.")
@click.option("--recipient", "recipients", multiple=True, help="Envelope recipient(s).")
@click.option("--no-process", is_flag=True, help="Only store; leave processing to the daemon.")
@click.pass_obj
def ingest(obj: dict[str, Any], source: Any, sender: str | None, recipients: tuple[str, ...],
           no_process: bool) -> None:
    """Take one raw message from FILE or - (stdin). Exit 0 stored, 75 retry later, 65 refused."""
    from maildesk.ingress.pipe import EX_TEMPFAIL, ingest_bytes

    try:
        ctx = Context.load(obj["config"])
    except ConfigError as exc:
        click.echo(f"configuration errors:\n{exc}", err=True)
        sys.exit(EX_TEMPFAIL)
    obj["context"] = ctx
    data = source.read()
    result = ingest_bytes(data, ctx.make_session, ctx.clock,
                          max_size=ctx.settings.smtp.max_message_size, mail_from=sender,
                          rcpt_to=tuple(recipients))
    click.echo(result.message, err=True)
    if result.code == 0 and not no_process and result.inbound_id is not None:
        from maildesk.process.run import Processor

        processor = Processor(ctx.settings, ctx.make_session, ctx.clock)
        try:
            for outcome in processor.run_batch(only=[result.inbound_id]):
                click.echo(f"inbound {outcome.inbound_id}: {outcome.status}"
                           + (f" ticket {outcome.ticket_number}" if outcome.ticket_number else ""),
                           err=True)
        except Exception as exc:  # stored is what counts for the MTA; the daemon retries
            click.echo(f"stored; processing deferred: {exc}", err=True)
        finally:
            processor.close()
    sys.exit(result.code)


@main.command("poll")
@click.option("--once", is_flag=True, required=True,
              help="One pass over every folder of every account, then exit (for cron).")
@click.option("--account", help="Only this account (its name in maildesk.yaml).")
@click.option("--no-process", is_flag=True, help="Only store; leave processing to the daemon.")
@click.pass_obj
def poll_cmd(obj: dict[str, Any], once: bool, account: str | None, no_process: bool) -> None:
    """Take new mail from the IMAP accounts. Exit 0, or 75 when an account failed."""
    from maildesk.ingress.imap_service import poll_once
    from maildesk.process.run import Processor

    ctx = _ctx(obj)
    accounts = ctx.settings.imap_accounts
    if account and account not in {a.name for a in accounts}:
        _fail(f"no IMAP account {account!r} (known: "
              f"{', '.join(a.name for a in accounts) or 'none'})", 2)
    if not any(a.enabled for a in accounts):
        click.echo("no IMAP accounts configured (imap.accounts in maildesk.yaml)")
        return
    tty = sys.stderr.isatty()

    def progress(text: str) -> None:
        if tty:
            click.echo(f"\r{text}   ", nl=False, err=True)

    passes = poll_once(accounts, ctx.make_session, ctx.clock,
                       max_size=ctx.settings.smtp.max_message_size, only=account,
                       progress=progress)
    if tty:
        click.echo("", err=True)
    failed = False
    for p in passes:
        if p.result is None:
            failed = True
            click.echo(f"{p.account}/{p.folder}: failed: {p.error}")
        else:
            r = p.result
            extra = "".join(f", {n} {what}" for n, what in (
                (r.skipped, "already stored"), (r.oversize, "over the size limit"),
                (r.quarantine_copies, "copied to quarantine")) if n)
            click.echo(f"{p.account}/{p.folder}: {r.stored} stored{extra}"
                       + (" (UIDVALIDITY changed: rescanned)" if r.rescanned else ""))
    if not no_process and any(p.result and p.result.stored for p in passes):
        processor = Processor(ctx.settings, ctx.make_session, ctx.clock)
        try:
            outcomes = processor.drain()
        finally:
            processor.close()
        click.echo(_tally(o.status for o in outcomes))
        if any(o.status == "quarantined" for o in outcomes):
            # One more pass puts the copies with their reasons into the quarantine folders.
            for p in poll_once(accounts, ctx.make_session, ctx.clock,
                               max_size=ctx.settings.smtp.max_message_size, only=account):
                if p.result and p.result.quarantine_copies:
                    click.echo(f"{p.account}/{p.folder}: {p.result.quarantine_copies} "
                               "copied to quarantine")
    sys.exit(75 if failed else 0)


@main.command("process")
@click.pass_obj
def process_cmd(obj: dict[str, Any]) -> None:
    """Process every pending stored message now, then exit."""
    from maildesk.process.run import Processor

    ctx = _ctx(obj)
    processor = Processor(ctx.settings, ctx.make_session, ctx.clock)
    try:
        outcomes = processor.drain()
    finally:
        processor.close()
    click.echo(_tally(o.status for o in outcomes) or "nothing pending")


# -- tickets ----------------------------------------------------------------------------------
@main.group()
def rules() -> None:
    """Routing rules (rules.yaml)."""


@rules.command("test")
@click.argument("file", type=click.File("rb"))
@click.option("--at", "at", default=None,
              help="Arrival time, ISO 8601 (2026-12-31T17:55+03:00); without an offset, in the "
                   "default calendar's zone. Default: now.")
@click.option("--json", "as_json", is_flag=True, help="Stable JSON output.")
@click.pass_obj
def rules_test(obj: dict[str, Any], file: Any, at: str | None, as_json: bool) -> None:
    """Dry run: which rules match FILE (a raw .eml), the line, priority, SLA deadlines and the
    autoreply it would get if it arrived at --at. Changes nothing."""
    from datetime import datetime, timezone

    from maildesk.process.dryrun import describe, dry_run_with_database, parse_when

    try:
        settings = load_settings(obj["config"])
    except ConfigError as exc:
        _fail(f"configuration errors:\n{exc}")
    try:
        when = parse_when(at, settings, datetime.now(timezone.utc))
    except ValueError:
        _fail(f"--at: not an ISO 8601 time: {at!r} (e.g. 2026-12-31T17:55+03:00)", 2)
    result = dry_run_with_database(file.read(), settings, when)
    if as_json:
        _dump(result)
    else:
        click.echo(describe(result))
    if "unparseable" in result:
        sys.exit(65)


@main.group()
def timers() -> None:
    """SLA timers: warnings, breaches, OLA moves, auto-close."""


@timers.command("run")
@click.pass_obj
def timers_run(obj: dict[str, Any]) -> None:
    """Fire every timer that is due now, then exit (cron, without `serve`)."""
    from maildesk.app import TIMER_BATCH, run_timers
    from maildesk.outbound.compose import Composer

    ctx = _ctx(obj)
    composer = Composer(ctx.settings.templates_dir)
    total, arm = 0, True
    while True:
        fired = run_timers(ctx, ctx.settings, composer, arm=arm)
        total, arm = total + fired, False
        if fired < TIMER_BATCH:
            break
    click.echo(f"{total} timers fired")


@main.group()
def tickets() -> None:
    """Read tickets."""


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@tickets.command("list")
@click.option("--status", type=click.Choice([s.value for s in TicketStatus]))
@click.option("--line")
@click.option("--limit", default=100, show_default=True, help="Newest N tickets (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Stable JSON output (see README).")
@click.pass_obj
def tickets_list(obj: dict[str, Any], status: str | None, line: str | None, limit: int,
                 as_json: bool) -> None:
    """List tickets, newest first."""
    from maildesk.views import ticket_summary

    ctx = _ctx(obj)
    counts = (select(Message.ticket_id, func.count().label("n")).group_by(Message.ticket_id)
              .subquery())
    q = (select(Ticket, func.coalesce(counts.c.n, 0))
         .outerjoin(counts, counts.c.ticket_id == Ticket.id).order_by(Ticket.number.desc()))
    if status:
        q = q.where(Ticket.status == TicketStatus(status))
    if line:
        q = q.where(Ticket.line == line)
    if limit:
        q = q.limit(limit)
    tag = ctx.settings.ticket_tag
    with ctx.read_session() as session:
        rows = [ticket_summary(t, tag, n) for t, n in session.execute(q).all()]
    if as_json:
        _dump(rows)
        return
    if not rows:
        click.echo("no tickets")
        return
    click.echo(f"{'TICKET':<12} {'STATUS':<9} {'LINE':<8} {'PRIO':<4} {'MSGS':>4}  "
               f"{'CREATED (UTC)':<16}  {'REQUESTER':<28} SUBJECT")
    for r in rows:
        click.echo(f"{r['tag']:<12} {r['status']:<9} {(r['line'] or '-'):<8} "
                   f"{(r['priority'] or '-'):<4} {r['message_count']:>4}  "
                   f"{r['created_at'][:16].replace('T', ' '):<16}  "
                   f"{_truncate(r['requester']['address'], 28):<28} {_truncate(r['subject'], 60)}")


@tickets.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Stable JSON output (see README).")
@click.pass_obj
def tickets_show(obj: dict[str, Any], number: str, as_json: bool) -> None:
    """Show one ticket with its messages. NUMBER may be 1042 or MD-1042."""
    from maildesk.views import ticket_detail

    ctx = _ctx(obj)
    digits = number.rsplit("-", 1)[-1].strip("[]# ")
    if not digits.isdigit():
        _fail(f"not a ticket number: {number}", 2)
    with ctx.read_session() as session:
        ticket = session.scalar(
            select(Ticket).where(Ticket.number == int(digits))
            .options(selectinload(Ticket.participants),
                     selectinload(Ticket.messages).selectinload(Message.attachments)))
        if ticket is None:
            _fail(f"no ticket {number}")
        linked = (session.scalar(select(Ticket.number).where(Ticket.id == ticket.linked_ticket_id))
                  if ticket.linked_ticket_id else None)
        earlier = session.execute(
            select(Ticket.number, Ticket.subject, Ticket.status)
            .where(Ticket.requester == ticket.requester, Ticket.id != ticket.id)
            .order_by(Ticket.number.desc()).limit(10)).all()
        data = ticket_detail(ticket, ctx.settings.ticket_tag, linked)
    data["requester_tickets"] = [{"number": n, "subject": s, "status": st.value}
                                 for n, s, st in earlier]
    if as_json:
        _dump(data)
        return
    click.echo(f"{data['tag']}  {data['subject']}")
    click.echo(f"status {data['status']}, line {data['line'] or '-'}, priority "
               f"{data['priority'] or '-'}, created {data['created_at']}")
    click.echo(f"requester {data['requester']['name']} <{data['requester']['address']}>")
    click.echo(f"reply address {data['reply_address']}")
    if linked:
        click.echo(f"linked to {ctx.settings.ticket_tag}-{linked}")
    if data["requester_tickets"]:
        click.echo("earlier tickets of this client: " + ", ".join(
            f"{ctx.settings.ticket_tag}-{t['number']} ({t['status']})"
            for t in data["requester_tickets"]))
    for m in data["messages"]:
        click.echo("")
        click.echo(f"--- #{m['id']} {m['direction']} {m['role']} {m['received_at']} "
                   f"from {m['from']['name']} <{m['from']['address']}> ({m['thread_reason']})")
        click.echo(f"Subject: {m['subject']}")
        click.echo("")
        click.echo(m["text"].rstrip())
        for a in m["attachments"]:
            click.echo(f"[attachment] {a['filename']} ({a['content_type']}, {a['size']} bytes)")


# -- report -----------------------------------------------------------------------------------
@main.command("report")
@click.option("--since", help="Start of the period: a date (midnight in the report's time "
              "zone) or an ISO time; default 30 days before --until.")
@click.option("--until", help="End of the period, exclusive; a date counts as the whole day; "
              "default now.")
@click.option("--by", type=click.Choice(["line", "agent", "category", "priority"]),
              help="Also show the KPIs per group.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "html"]),
              default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of standard output.")
@click.pass_obj
def report(obj: dict[str, Any], since: str | None, until: str | None, by: str | None, fmt: str,
           output: str | None) -> None:
    """KPIs of the tickets created in a period (README: "KPI report")."""
    from maildesk.report.formats import to_csv, to_json, to_table
    from maildesk.report.kpi import build_report, report_zone

    ctx = _ctx(obj)
    zone = report_zone(ctx.settings)
    now = ctx.clock.now()
    try:
        end = _report_time(until, zone, end=True) if until else now
        start = _report_time(since, zone, end=False) if since else end - timedelta(days=30)
    except ValueError as exc:
        _fail(f"report: {exc}", 2)
    if start >= end:
        _fail(f"report: --since ({start.isoformat()}) is not before --until ({end.isoformat()})",
              2)
    steps = ["tickets", "medians", "answers", "backlog"]
    show = sys.stderr.isatty()

    def progress(step: str) -> None:
        if show:
            n = steps.index(step) + 1 if step in steps else 0
            click.echo(f"\rreport: {step} ({n}/{len(steps)})…".ljust(40), err=True, nl=False)

    with ctx.read_session() as session:
        data = build_report(session, ctx.settings, since=start, until=end, by=by, now=now,
                            progress=progress)
    if show:
        click.echo("\r" + " " * 40 + "\r", err=True, nl=False)
    if fmt == "html":
        from maildesk.report.html import to_html
        body: bytes = to_html(data).encode("utf-8")
    elif fmt == "csv":
        body = to_csv(data)
    elif fmt == "json":
        body = to_json(data).encode("utf-8")
    else:
        width = shutil.get_terminal_size((100, 24)).columns if not output else 100
        body = to_table(data, width).encode("utf-8")
    if output:
        Path(output).write_bytes(body)
        click.echo(f"report written to {output}", err=True)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()


def _report_time(text: str, zone: Any, *, end: bool) -> datetime:
    """A date (local midnight; as an end, the midnight after it) or an ISO time (local time
    when it has no offset)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(0), zone)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date or ISO time: {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=zone)


# -- outbox -----------------------------------------------------------------------------------
@main.group()
def outbox() -> None:
    """The outgoing queue: what waits, what was sent, what failed and why."""


@outbox.command("list")
@click.option("--status", type=click.Choice([s.value for s in OutboxStatus]))
@click.option("--limit", default=100, show_default=True, help="Newest N entries (0: all).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def outbox_list(obj: dict[str, Any], status: str | None, limit: int, as_json: bool) -> None:
    from maildesk.views import outbox_view

    ctx = _ctx(obj)
    q = (select(Outbox, Ticket.number).outerjoin(Ticket, Ticket.id == Outbox.ticket_id)
         .order_by(Outbox.id.desc()))
    if limit:
        q = q.limit(limit)
    if status:
        q = q.where(Outbox.status == OutboxStatus(status))
    with ctx.read_session() as session:
        rows = [outbox_view(o, number) for o, number in session.execute(q).all()]
    if as_json:
        _dump(rows)
        return
    if not rows:
        click.echo("outbox is empty")
        return
    for r in rows:
        click.echo(f"{r['id']:>6}  {r['status']:<7} {r['kind']:<10} "
                   f"{(r['ticket'] and ctx.settings.ticket_tag + '-' + str(r['ticket'])) or '-':<10} "
                   f"to {', '.join(r['recipients'])}  attempts {r['attempts']}"
                   + (f"  next {r['next_attempt_at']}" if r['status'] == 'queued' else "")
                   + (f"  ({r['last_error']})" if r['last_error'] else ""))


@outbox.command("retry")
@click.argument("outbox_id", type=int)
@click.pass_obj
def outbox_retry(obj: dict[str, Any], outbox_id: int) -> None:
    """Queue a failed or waiting mail for delivery right away."""
    from maildesk.outbound.outbox import retry_now

    ctx = _ctx(obj)
    with ctx.make_session.begin() as session:
        row = retry_now(session, outbox_id, ctx.clock.now())
        if row is None:
            _fail(f"no outbox entry {outbox_id}")
        if row.status is OutboxStatus.SENT:
            _fail(f"outbox entry {outbox_id} was sent already")
    click.echo(f"outbox {outbox_id} queued; the daemon delivers it (or run `maildesk outbox deliver`)")


@outbox.command("deliver")
@click.pass_obj
def outbox_deliver(obj: dict[str, Any]) -> None:
    """Deliver everything that is due now, then exit (for cron, without the daemon)."""
    from maildesk.outbound.outbox import OutboxDeliverer
    from maildesk.outbound.registry import make_transport

    ctx = _ctx(obj)
    transport = make_transport(ctx.settings.outbound, ctx.settings.domain)
    deliverer = OutboxDeliverer(ctx.make_session, transport, ctx.clock,
                                lease=ctx.settings.outbound.lease)
    try:
        outcomes = deliverer.drain()
    finally:
        deliverer.transport.close()
        deliverer.close()
    click.echo(_tally(o.status for o in outcomes) or "nothing due")


# -- quarantine -------------------------------------------------------------------------------
@main.group()
def quarantine() -> None:
    """Mail that could not be made into a ticket, with the reason."""


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def quarantine_list(obj: dict[str, Any], as_json: bool) -> None:
    from maildesk.views import quarantine_view

    ctx = _ctx(obj)
    with ctx.read_session() as session:
        rows = [quarantine_view(i) for i in session.scalars(
            select(Inbound).where(Inbound.status == InboundStatus.QUARANTINED)
            .options(selectinload(Inbound.raw)).order_by(Inbound.id))]
    if as_json:
        _dump(rows)
        return
    if not rows:
        click.echo("quarantine is empty")
        return
    for r in rows:
        first = (r["reason"] or "").strip().splitlines()[0] if r["reason"] else ""
        click.echo(f"{r['id']:>6}  {r['received_at']}  {r['channel']:<4}  {r['size']:>8} B  "
                   f"from {r['mail_from'] or '-'}: {first}")


@quarantine.command("retry")
@click.argument("inbound_id", required=False, type=int)
@click.option("--all", "retry_all", is_flag=True, help="Retry every quarantined message.")
@click.pass_obj
def quarantine_retry(obj: dict[str, Any], inbound_id: int | None, retry_all: bool) -> None:
    """Run quarantined mail through the pipeline again (after a fix or a config change)."""
    from maildesk.process.run import Processor

    if (inbound_id is None) == (not retry_all):
        _fail("give one ID or --all", 2)
    ctx = _ctx(obj)
    with ctx.make_session.begin() as session:
        q = select(Inbound).where(Inbound.status == InboundStatus.QUARANTINED)
        if inbound_id is not None:
            q = q.where(Inbound.id == inbound_id)
        rows = session.scalars(q).all()
        if not rows:
            _fail(f"no quarantined message {inbound_id}" if inbound_id else "quarantine is empty")
        ids = [r.id for r in rows]
        for r in rows:
            r.status, r.attempts = InboundStatus.PENDING, 0
    processor = Processor(ctx.settings, ctx.make_session, ctx.clock)
    try:
        for start in range(0, len(ids), 100):
            for o in processor.run_batch(limit=100, only=ids[start:start + 100]):
                tail = f" ticket {o.ticket_number}" if o.ticket_number else (
                    f": {o.reason.strip().splitlines()[0]}" if o.reason else "")
                click.echo(f"{o.inbound_id}: {o.status}{tail}")
    finally:
        processor.close()


if __name__ == "__main__":
    main()
