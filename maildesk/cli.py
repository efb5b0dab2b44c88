"""The `maildesk` command line: thin wrappers that parse options, call a service and print."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from maildesk import __version__
from maildesk.app import COMPONENTS, serve
from maildesk.config import ConfigError
from maildesk.db.models import OutboxStatus, TicketStatus
from maildesk.monitor.logs import FORMATS, configure_logging
from maildesk.services import database, dryrun, failures, intake, processing, reports, setup, text
from maildesk.services import kb as kb_service
from maildesk.services import outbox as outbox_service
from maildesk.services import quarantine as quarantine_service
from maildesk.services import search as search_service
from maildesk.services import ticket_text
from maildesk.services import tickets as ticket_service
from maildesk.services import timers as timer_service
from maildesk.services.context import Context
from maildesk.services.errors import BadRequest, Refused


def _fail(message: str, code: int = 1) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def _config_failed(exc: ConfigError, code: int = 1) -> None:
    """Every problem of the configuration, one line each (file:line:column: key: problem)."""
    _fail(str(exc), code)


@contextmanager
def _refusals(prefix: str = "") -> Iterator[None]:
    """A service's refusal as the command's error: a usage error exits 2, the others 1."""
    try:
        yield
    except BadRequest as exc:
        _fail(f"{prefix}{exc}", 2)
    except Refused as exc:
        _fail(f"{prefix}{exc}")


def _ctx(obj: dict[str, Any]) -> Context:
    if "context" not in obj:
        try:
            obj["context"] = Context.load(obj["config"])
        except ConfigError as exc:
            _config_failed(exc)
    return obj["context"]


def _dump(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _print_rows(rows: list[dict[str, Any]], as_json: bool, empty: str,
                line: Callable[[dict[str, Any]], str], header: str | None = None) -> None:
    """A listing: the JSON array, or `empty`, or a line per row (under `header`)."""
    if as_json:
        _dump(rows)
    elif not rows:
        click.echo(empty)
    else:
        if header:
            click.echo(header)
        for r in rows:
            click.echo(line(r))


def _progress_line(show: bool, message: str, nl: bool = False) -> None:
    """Progress for a person watching (stderr is a terminal), rewritten in place."""
    if show:
        click.echo(message, err=True, nl=nl)


DEBUG = "maildesk.debug"  # ctx.meta: --debug was given


def _debugging(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(DEBUG)) or os.environ.get("MAILDESK_DEBUG", "") not in ("", "0")


def _loaded_settings(obj: dict[str, Any] | None) -> Any:
    """The settings a command had loaded when it failed, if any."""
    obj = obj or {}
    if "context" in obj:
        return obj["context"].settings
    return obj.get("settings")


class _Main(click.Group):
    """The command group: a failure of any command is one line on stderr and an exit status
    (services/failures.py), unless --debug or MAILDESK_DEBUG=1 asks for the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if _debugging(ctx):
                raise
            failure = failures.describe(exc, _loaded_settings(ctx.obj))
            # `ingest` answers an MTA: anything but "stored" or "refused" is "try again later".
            code = failures.EX_TEMPFAIL if ctx.invoked_subcommand == "ingest" else failure.code
            click.echo(f"maildesk: {failure.message}", err=True)
            ctx.exit(code)


@click.group(cls=_Main)
@click.version_option(__version__, "-V", "--version", prog_name="maildesk",
                      message="%(prog)s %(version)s")
@click.option("--config", "config", envvar="MAILDESK_CONFIG", default="config/maildesk.yaml",
              show_default=True,
              # Not readable=True: an unreadable file is reported when it is loaded (exit 78, or
              # 75 for `ingest` so the MTA retries), not as a usage error (2, a bounce).
              type=click.Path(dir_okay=False, readable=False),
              help="maildesk.yaml to use (or $MAILDESK_CONFIG).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.option("--debug", is_flag=True, expose_value=False, callback=lambda ctx, _param, value:
              ctx.meta.__setitem__(DEBUG, value),
              help="On a failure, show the traceback instead of one line (or MAILDESK_DEBUG=1).")
@click.option("--log-format", type=click.Choice(FORMATS), default=None,
              help="Log as text or one JSON object per line [default: maildesk.yaml's "
                   "logging.format for serve, else text].")
@click.pass_context
def main(click_ctx: click.Context, config: str, verbose: bool, log_format: str | None) -> None:
    """maildesk: an email-driven helpdesk."""
    configure_logging(log_format or "text", "debug" if verbose else "info")
    if not verbose:  # aiosmtpd logs every SMTP command at INFO: noise, and a cost per message
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    click_ctx.obj = {"config": config, "verbose": verbose, "log_format": log_format}
    click_ctx.call_on_close(lambda: click_ctx.obj.get("context") and click_ctx.obj["context"].close())


# -- setting up -------------------------------------------------------------------------------
@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init(directory: str, force: bool) -> None:
    """Write a working example config set and templates into DIRECTORY."""
    with _refusals():
        done = setup.init_desk(Path(directory), force=force)
    if done.key_error is None:
        click.echo(f"signing key in {done.key_file} (keep it secret; `maildesk keys rotate`)")
    else:
        click.echo(f"no signing key made yet: {done.key_error}", err=True)
    click.echo(f"wrote {done.written} files under {done.target}; start with: "
               f"maildesk --config {done.config_path} db upgrade")


@main.group()
def keys() -> None:
    """The secret that signs return paths (security.secret_file)."""


@keys.command("rotate")
@click.pass_obj
def keys_rotate(obj: dict[str, Any]) -> None:
    """Sign with a new key from now on; older keys keep verifying the tags they signed.
    A running daemon takes the new key on SIGHUP."""
    try:
        rotation = setup.rotate_signing_key(obj["config"])
    except ConfigError as exc:
        _fail(str(exc))
    click.echo(f"new signing key first in {rotation.path}; {rotation.keys} keys in all (delete "
               "a line once the tags it signed have expired)")


@main.command()
@click.pass_obj
def check(obj: dict[str, Any]) -> None:
    """Validate every config file; exit 1 listing each error as file:line: key: problem."""
    result = setup.check_config(obj["config"])
    if result.errors:
        for error in result.errors:
            click.echo(error, err=True)
        sys.exit(1)
    for checked in result.checked:
        click.echo(f"ok  {checked}")
    if result.warning:
        click.echo(f"WARNING: {result.warning}", err=True)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: dict[str, Any]) -> None:
    """Apply the Alembic migrations (idempotent); say from which revision to which."""
    click.echo(database.upgrade_database(_ctx(obj).settings).describe())


# -- running ----------------------------------------------------------------------------------
def _check_schema_to_serve(ctx: Context) -> None:
    """Refuse to serve a database without the schema this maildesk needs (SchemaError, one
    line), or an SQLite file that cannot be opened. A database server that cannot be reached
    now is waited for: from here on its outage is logged once per attempt (whichever thread
    meets it), and the daemon carries on once it is back."""
    down = None
    try:
        database.require_current_schema(ctx)
    except database.SchemaError:
        raise
    except Exception as exc:
        if ctx.settings.database.url.startswith("sqlite") or not failures.is_unreachable(exc):
            raise
        down = exc
    watch = database.watch_outages(ctx, logging.getLogger("maildesk"))
    if down is not None:
        watch.failed(down)


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
    if "process" in parts:
        from maildesk.pipeline.isolate import start_parse_server
        start_parse_server()   # its imports run beside the daemon's start
    ctx = _ctx(obj)
    logs = ctx.settings.logging  # maildesk.yaml's `logging:`, unless the options say otherwise
    configure_logging(obj["log_format"] or logs.format, "debug" if obj["verbose"] else logs.level)
    _check_schema_to_serve(ctx)
    sys.exit(serve(ctx, parts, obj["config"]))


@main.command()
@click.argument("source", type=click.File("rb"))
@click.option("--sender", help="Envelope sender (MAIL FROM) given by the MTA.")
@click.option("--recipient", "recipients", multiple=True, help="Envelope recipient(s).")
@click.option("--no-process", is_flag=True, help="Only store; leave processing to the daemon.")
@click.pass_obj
def ingest(obj: dict[str, Any], source: Any, sender: str | None, recipients: tuple[str, ...],
           no_process: bool) -> None:
    """Take one raw message from FILE or - (stdin). Exit 0 stored, 75 retry later, 65 refused."""
    from maildesk.ingress.pipe import EX_TEMPFAIL

    try:  # the MTA keeps the mail queued while the config is broken, hence 75 rather than 1
        ctx = Context.load(obj["config"])
    except ConfigError as exc:
        _config_failed(exc, EX_TEMPFAIL)
    obj["context"] = ctx
    result = intake.ingest(ctx, source.read(), sender=sender, recipients=tuple(recipients))
    click.echo(_first_line(result.message), err=True)
    if result.code == 0 and not no_process and result.inbound_id is not None:
        processed = processing.process_stored(ctx, result.inbound_id)
        for outcome in processed.outcomes:
            click.echo(text.ingested_line(outcome), err=True)
        if processed.deferred is not None:
            click.echo(f"stored; processing deferred: {_first_line(processed.deferred)}", err=True)
    sys.exit(result.code)


def _first_line(message: str) -> str:
    """A message made of an exception's text, cut to its first line (no SQL, no links)."""
    return message.strip().splitlines()[0] if message.strip() else message


@main.command("poll")
@click.option("--once", is_flag=True, required=True,
              help="One pass over every folder of every account, then exit (for cron).")
@click.option("--account", help="Only this account (its name in maildesk.yaml).")
@click.option("--no-process", is_flag=True, help="Only store; leave processing to the daemon.")
@click.pass_obj
def poll_cmd(obj: dict[str, Any], once: bool, account: str | None, no_process: bool) -> None:
    """Take new mail from the IMAP accounts. Exit 0, or 75 when an account failed."""
    ctx = _ctx(obj)
    with _refusals():
        enabled = intake.has_imap_accounts(ctx.settings, account)
    if not enabled:
        click.echo("no IMAP accounts configured (imap.accounts in maildesk.yaml)")
        return
    tty = sys.stderr.isatty()
    passes = intake.poll(ctx, account, progress=lambda step: _progress_line(tty, f"\r{step}   "))
    _progress_line(tty, "", nl=True)
    for p in passes:
        click.echo(text.pass_line(p))
    if not no_process and intake.stored_any(passes):
        outcomes = processing.process_pending(ctx)
        click.echo(text.tally(o.status for o in outcomes))
        if any(o.status == "quarantined" for o in outcomes):
            for p in intake.copy_to_quarantine(ctx, account):
                click.echo(text.copies_line(p))
    sys.exit(75 if intake.failed_any(passes) else 0)


@main.command("process")
@click.pass_obj
def process_cmd(obj: dict[str, Any]) -> None:
    """Process every pending stored message now, then exit."""
    outcomes = processing.process_pending(_ctx(obj))
    click.echo(text.tally(o.status for o in outcomes) or "nothing pending")


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
    try:
        with _refusals():
            result = dryrun.dry_run(obj["config"], file, at)
    except ConfigError as exc:
        _config_failed(exc)
    if as_json:
        _dump(result)
    else:
        click.echo(dryrun.describe(result))
    if "unparseable" in result:
        sys.exit(65)


@main.group()
def timers() -> None:
    """SLA timers: warnings, breaches, OLA moves, auto-close."""


@timers.command("run")
@click.pass_obj
def timers_run(obj: dict[str, Any]) -> None:
    """Fire every timer that is due now, then exit (cron, without `serve`)."""
    click.echo(f"{timer_service.fire_all_due(_ctx(obj))} timers fired")


# -- tickets ----------------------------------------------------------------------------------
@main.group()
def tickets() -> None:
    """Read tickets."""


@tickets.command("list")
@click.option("--status", type=click.Choice([s.value for s in TicketStatus]))
@click.option("--line")
@click.option("--requester", metavar="ADDRESS", help="Only tickets this client opened.")
@click.option("--assignee", metavar="ADDRESS", help="Only tickets assigned to this agent.")
@click.option("--unassigned", is_flag=True, help="Only tickets assigned to nobody.")
@click.option("--overdue", is_flag=True,
              help="Only running tickets (new, open; not pending) past a deadline not met.")
@click.option("--since", metavar="DATE", help="Only tickets created at or after: a date "
              "(midnight in the report's time zone) or an ISO time.")
@click.option("--limit", default=100, show_default=True, help="Newest N tickets (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Stable JSON output (see README).")
@click.pass_obj
def tickets_list(obj: dict[str, Any], status: str | None, line: str | None,
                 requester: str | None, assignee: str | None, unassigned: bool, overdue: bool,
                 since: str | None, limit: int, as_json: bool) -> None:
    """List tickets, newest first; the filters combine."""
    ctx = _ctx(obj)
    with _refusals():
        rows = ticket_service.list_tickets(
            ctx, status=TicketStatus(status) if status else None, line=line, limit=limit,
            requester=requester, assignee=assignee, unassigned=unassigned, overdue_only=overdue,
            since=since)
    zone = ticket_service.list_zone(ctx)
    _print_rows(rows, as_json, "no tickets", lambda r: ticket_text.list_line(r, zone),
                header=ticket_text.LIST_HEADER)
    if rows and not as_json:
        click.echo(ticket_text.list_footer(len(rows), limit, zone))


@tickets.command("show")
@click.argument("number")
@click.option("--full", is_flag=True, help="Whole mail texts and the whole history.")
@click.option("--json", "as_json", is_flag=True, help="Stable JSON output (see README).")
@click.pass_obj
def tickets_show(obj: dict[str, Any], number: str, full: bool, as_json: bool) -> None:
    """Show one ticket: status, line, assignee, deadlines, the client's other tickets, the
    messages and the history. NUMBER may be 1042 or MD-1042."""
    with _refusals():
        data = ticket_service.show_ticket(_ctx(obj), number)
    if as_json:
        _dump(data)
        return
    click.echo(ticket_text.ticket_text(data, full=full), nl=False)


@tickets.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--status", type=click.Choice([s.value for s in TicketStatus]))
@click.option("--requester", metavar="ADDR", help="Only tickets of this requester.")
@click.option("--limit", default=20, show_default=True, help="At most N tickets.")
@click.option("--json", "as_json", is_flag=True, help="Stable JSON output (see README).")
@click.pass_obj
def tickets_search(obj: dict[str, Any], query: tuple[str, ...], status: str | None,
                   requester: str | None, limit: int, as_json: bool) -> None:
    """Full-text search: tickets whose subject or a mail holds every word of QUERY (in any
    form: printers finds printer, принтер finds принтера), best first, with a snippet."""
    with _refusals():
        rows = search_service.search_tickets(_ctx(obj), " ".join(query), status=status,
                                             requester=requester, limit=limit)
    if as_json or not rows:
        _print_rows(rows, as_json, "no match", str)
        return
    marks = search_service.BOLD if sys.stdout.isatty() else search_service.MARKS
    for line in search_service.hit_lines(rows, marks):
        click.echo(line)


# -- report -----------------------------------------------------------------------------------
@main.command("report")
@click.option("--since", help="Start of the period: a date (midnight in the report's time "
              "zone) or an ISO time; default 30 days before --until.")
@click.option("--until", help="End of the period, exclusive; a date counts as the whole day; "
              "default now.")
@click.option("--by", type=click.Choice(["line", "agent", "category", "priority"]),
              help="Also show the KPIs per group.")
@click.option("--format", "fmt", type=click.Choice(reports.FORMATS),
              default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of standard output.")
@click.option("--no-compare", is_flag=True,
              help="Leave out the comparison with the period just before.")
@click.option("--mail", "mail_to", multiple=True, metavar="ADDRESS",
              help="Mail the report (HTML inline, CSV attached) to ADDRESS through the outbox "
              "instead of printing it; may be given more than once.")
@click.pass_obj
def report(obj: dict[str, Any], since: str | None, until: str | None, by: str | None, fmt: str,
           output: str | None, no_compare: bool, mail_to: tuple[str, ...]) -> None:
    """KPIs of the tickets created in a period (README: "KPI report")."""
    ctx = _ctx(obj)
    with _refusals("report: "):
        period = reports.report_period(ctx, since, until)
    if mail_to:
        with _refusals("report: "):
            ids = reports.mail_report(ctx, period, mail_to, by=by, compare=not no_compare)
        click.echo(f"report queued to {', '.join(mail_to)} (outbox {', '.join(map(str, ids))});"
                   " `serve` or `maildesk outbox deliver` sends it")
        return
    show = sys.stderr.isatty()

    def progress(step: str) -> None:
        n = reports.STEPS.index(step) + 1 if step in reports.STEPS else 0
        _progress_line(show, f"\rreport: {step} ({n}/{len(reports.STEPS)})…".ljust(40))

    data = reports.build(ctx, period, by=by, progress=progress, compare=not no_compare)
    _progress_line(show, "\r" + " " * 40 + "\r")
    width = shutil.get_terminal_size((100, 24)).columns if not output else 100
    body = reports.render(data, fmt, width=width)
    if output:
        Path(output).write_bytes(body)
        click.echo(f"report written to {output}", err=True)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()


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
    ctx = _ctx(obj)
    rows = outbox_service.list_outbox(ctx, status=OutboxStatus(status) if status else None,
                                      limit=limit)
    _print_rows(rows, as_json, "outbox is empty",
                lambda r: text.outbox_line(r, ctx.settings.ticket_tag))


@outbox.command("retry")
@click.argument("outbox_id", type=int)
@click.pass_obj
def outbox_retry(obj: dict[str, Any], outbox_id: int) -> None:
    """Queue a failed or waiting mail for delivery right away."""
    ctx = _ctx(obj)
    with _refusals():
        outbox_service.retry(ctx, outbox_id)
    click.echo(f"outbox {outbox_id} queued; the daemon delivers it (or run `maildesk outbox deliver`)")


@outbox.command("deliver")
@click.pass_obj
def outbox_deliver(obj: dict[str, Any]) -> None:
    """Deliver everything that is due now, then exit (for cron, without the daemon)."""
    outcomes = outbox_service.deliver_due(_ctx(obj))
    click.echo(text.tally(o.status for o in outcomes) or "nothing due")


# -- knowledge base ---------------------------------------------------------------------------
def _settings(obj: dict[str, Any]) -> Any:
    """The settings alone (the kb commands need no database)."""
    if "context" in obj:
        return obj["context"].settings
    if "settings" not in obj:
        from maildesk.config import load_settings
        try:
            obj["settings"] = load_settings(obj["config"])
        except ConfigError as exc:
            _config_failed(exc)
    return obj["settings"]


@main.group()
def kb() -> None:
    """The knowledge base: articles and canned answers (paths.kb, kb/<lang>/<slug>.md)."""


@kb.command("list")
@click.option("--lang", "language", help="Only this language's articles (en, ru ...).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def kb_list(obj: dict[str, Any], language: str | None, as_json: bool) -> None:
    """Every article: language, slug, audience, macro, title."""
    with _refusals():
        rows = kb_service.list_articles(_settings(obj), language)
    _print_rows(rows, as_json, "the knowledge base is empty", lambda r: (
        f"{r['language']:<5} {r['slug']:<32} {r['audience']:<8} "
        f"{'macro' if r['macro'] else '':<5}  {r['title']}"))


@kb.command("show")
@click.argument("slug")
@click.option("--lang", "language", help="This language's version (default: maildesk.yaml's "
                                         "language, else any).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def kb_show(obj: dict[str, Any], slug: str, language: str | None, as_json: bool) -> None:
    """One article with its front matter, text and macro."""
    with _refusals():
        row = kb_service.show_article(_settings(obj), slug, language)
    if as_json:
        _dump(row)
        return
    click.echo(f"{row['title']}\n{row['language']}/{row['slug']}  ({row['audience']}; "
               f"languages: {', '.join(row['languages'])})  {row['path']}")
    for label in ("tags", "keywords", "related", "commands"):
        if row[label]:
            click.echo(f"{label}: {', '.join(row[label])}")
    click.echo("\n" + row["body"].strip())
    if row["macro_text"] is not None:
        click.echo("\n--- macro ---\n" + row["macro_text"].rstrip())


@kb.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--lang", "language", help="Only this language's articles.")
@click.option("--limit", default=10, show_default=True)
@click.option("--public", "public_only", is_flag=True, help="Only public articles.")
@click.option("--json", "as_json", is_flag=True, help="Stable JSON output (see README).")
@click.pass_obj
def kb_search(obj: dict[str, Any], query: tuple[str, ...], language: str | None, limit: int,
              public_only: bool, as_json: bool) -> None:
    """The articles that best match QUERY (Russian and English word forms), best first."""
    with _refusals():
        rows = kb_service.search(_settings(obj), " ".join(query), language, limit, public_only)
    _print_rows(rows, as_json, "no article matches", lambda r: (
        f"{r['score']:.2f}  {r['language']}/{r['slug']}  {r['title']}"
        + (" (internal)" if r["audience"] != "public" else "")
        + (f"\n      {r['snippet']}" if r["snippet"] else "")))


@kb.command("build")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False),
              help="Directory to write the site into (made if missing).")
@click.pass_obj
def kb_build(obj: dict[str, Any], output: str) -> None:
    """Write a static HTML site of the public articles (no external resources)."""
    with _refusals():
        site = kb_service.build(_settings(obj), Path(output))
    click.echo(f"wrote {site.pages} pages for {site.articles} public articles "
               f"({', '.join(site.languages) or 'none'}); open {site.index}")


# -- quarantine -------------------------------------------------------------------------------
@main.group()
def quarantine() -> None:
    """Mail that could not be made into a ticket, with the reason."""


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def quarantine_list(obj: dict[str, Any], as_json: bool) -> None:
    _print_rows(quarantine_service.list_quarantined(_ctx(obj)), as_json, "quarantine is empty",
                text.quarantine_line)


@quarantine.command("retry")
@click.argument("inbound_id", required=False, type=int)
@click.option("--all", "retry_all", is_flag=True, help="Retry every quarantined message.")
@click.pass_obj
def quarantine_retry(obj: dict[str, Any], inbound_id: int | None, retry_all: bool) -> None:
    """Run quarantined mail through the pipeline again (after a fix or a config change)."""
    if (inbound_id is None) == (not retry_all):
        _fail("give one ID or --all", 2)
    ctx = _ctx(obj)
    with _refusals():
        ids = quarantine_service.requeue(ctx, inbound_id)
    for outcome in quarantine_service.reprocess(ctx, ids):
        click.echo(text.retried_line(outcome))


# -- status -----------------------------------------------------------------------------------
@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="Stable JSON output (see README).")
@click.option("--no-daemon", is_flag=True, help="Do not ask the daemon's /healthz.")
@click.pass_obj
def status_cmd(obj: dict[str, Any], as_json: bool, no_daemon: bool) -> None:
    """The desk at a glance: version, config, database, queues and their oldest entry, the next
    SLA timer, open tickets, IMAP folders; and the daemon's /healthz when metrics.listen is
    set. Reads the database: works whether the daemon runs or not."""
    from maildesk.services import status as status_service

    ctx = _ctx(obj)
    data = status_service.desk_status(ctx, probe=not no_daemon)
    if as_json:
        _dump(data)
    else:
        click.echo(status_service.status_text(data, ticket_service.list_zone(ctx)), nl=False)


if __name__ == "__main__":
    main()
