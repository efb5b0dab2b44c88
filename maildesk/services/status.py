"""`maildesk status`: the desk at a glance, read from the database (so it answers whether the
daemon runs or not): the version, the config file and database, the queues and their oldest
entry, the next SLA timer, the tickets still open, the IMAP folders' progress, and what a
daemon's `/healthz` says when `metrics.listen` is set. `desk_status` gives the JSON shape,
`status_text` the lines a person reads (postqueue -p style: compact and aligned)."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from maildesk import __version__
from maildesk.db.models import ImapFolder, Ticket, TicketStatus, TicketTimer, TimerState
from maildesk.monitor.queues import QueueFigures, read_queues
from maildesk.pipeline.subject import format_tag
from maildesk.services.context import Context
from maildesk.services.timefmt import minute, relative, span
from maildesk.views import iso

HEALTH_TIMEOUT = 3.0   # seconds to wait for the daemon's /healthz
OPEN = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.RESOLVED)


def public_url(url: str) -> str:
    """The database URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: say nothing of it that could be secret
        return url.split("://", 1)[0] + "://…"


def schema_state(ctx: Context) -> dict[str, Any]:
    """The database's Alembic revision and the newest this maildesk knows."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from maildesk.services.database import alembic_config

    head = ScriptDirectory.from_config(alembic_config(ctx.settings.database.url)).get_current_head()
    with ctx.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return {"revision": current, "head": head, "up_to_date": current == head}


def probe_daemon(ctx: Context) -> dict[str, Any] | None:
    """What the daemon's `/healthz` answers, when `metrics.listen` is set (None otherwise)."""
    listen = ctx.settings.metrics.listen
    if listen is None:
        return None
    host, port = listen
    base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    out: dict[str, Any] = {"url": base, "answering": False, "healthy": None, "health": None}
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=HEALTH_TIMEOUT) as reply:
            out.update(answering=True, healthy=True, health=reply.read().decode().strip())
    except urllib.error.HTTPError as exc:
        out.update(answering=True, healthy=False, health=exc.read().decode().strip())
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        out["error"] = str(getattr(reason, "strerror", None) or reason)
    return out


def _age(moment: datetime | None, now: datetime) -> int | None:
    return None if moment is None else max(round((now - moment).total_seconds()), 0)


def _queues(f: QueueFigures) -> dict[str, Any]:
    now = f.now
    return {
        "inbound": {"pending": f.inbound_pending,
                    "oldest_pending_at": iso(f.inbound_oldest_pending),
                    "oldest_pending_age_s": _age(f.inbound_oldest_pending, now),
                    "quarantined": f.inbound_quarantined},
        "outbox": {"queued": f.outbox_queued, "due": f.outbox_due,
                   "oldest_queued_at": iso(f.outbox_oldest_queued),
                   "oldest_queued_age_s": _age(f.outbox_oldest_queued, now),
                   "failed": f.outbox_failed},
    }


def _timers(ctx: Context, session: Any, f: QueueFigures) -> dict[str, Any]:
    row = session.execute(
        select(TicketTimer.kind, TicketTimer.stage, TicketTimer.due_at, Ticket.number)
        .join(Ticket, Ticket.id == TicketTimer.ticket_id)
        .where(TicketTimer.state == TimerState.PENDING)
        .order_by(TicketTimer.due_at).limit(1)).first()
    nxt = None
    if row is not None:
        kind, stage, due_at, number = row
        nxt = {"due_at": iso(due_at), "kind": kind, "stage": stage, "ticket": number,
               "tag": format_tag(ctx.settings.ticket_tag, number).strip("[]")}
    return {"overdue": f.timers_due, "oldest_overdue_at": iso(f.timers_oldest_due), "next": nxt}


def _tickets(session: Any) -> dict[str, int]:
    counts = dict(session.execute(select(Ticket.status, func.count())
                                  .where(Ticket.status.in_(OPEN)).group_by(Ticket.status)).all())
    return {s.value: counts.get(s, 0) for s in OPEN}


def _imap(ctx: Context, session: Any) -> list[dict[str, Any]]:
    """Each folder the config watches, and any the database still has progress for."""
    rows = {(r.account, r.folder): r for r in session.scalars(select(ImapFolder))}
    keys = [(a.name, f.name) for a in ctx.settings.imap_accounts for f in a.folders]
    keys += sorted(k for k in rows if k not in keys)
    configured = {(a.name, f.name): a.enabled for a in ctx.settings.imap_accounts
                  for f in a.folders}
    out = []
    for account, folder in keys:
        r = rows.get((account, folder))
        out.append({"account": account, "folder": folder,
                    "watched": configured.get((account, folder), False),
                    "last_uid": r.last_uid if r else None,
                    "uidvalidity": r.uidvalidity if r else None,
                    "first_contact_at": iso(r.started_at) if r else None,
                    "last_change_at": iso(r.updated_at) if r else None})
    return out


def desk_status(ctx: Context, *, probe: bool = True) -> dict[str, Any]:
    """The JSON shape of `maildesk status --json` (fields are only ever added)."""
    now = ctx.clock.now()
    with ctx.read_session() as session:
        figures = read_queues(session, now)
        data: dict[str, Any] = {
            "version": __version__,
            "config": str(ctx.settings.config_path),
            "database": public_url(ctx.settings.database.url),
            "schema": schema_state(ctx),
            "as_of": iso(now),
            **_queues(figures),
            "timers": _timers(ctx, session, figures),
            "tickets": _tickets(session),
            "imap": _imap(ctx, session),
        }
    listen = ctx.settings.metrics.listen
    data["metrics_listen"] = f"{listen[0]}:{listen[1]}" if listen else None
    data["daemon"] = probe_daemon(ctx) if probe else None
    return data


# -- text -------------------------------------------------------------------------------------
def _oldest(age: int | None) -> str:
    return f", oldest {span(age)}" if age is not None else ""


def _ago(value: str | None, now: datetime, zone: tzinfo) -> str:
    if value is None:
        return "never"
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return f"{minute(at, zone)} ({span((now - at).total_seconds())} ago)"


def status_text(data: dict[str, Any], zone: tzinfo) -> str:
    """The lines of `maildesk status`."""
    now = datetime.fromisoformat(data["as_of"].replace("Z", "+00:00"))
    schema = data["schema"]
    revision = (f"schema {schema['revision'] or 'none'}, up to date" if schema["up_to_date"]
                else f"schema {schema['revision'] or 'none'}; `db upgrade` to {schema['head']}")
    lines = [f"maildesk {data['version']}  (as of {minute(now, zone)} {zone})",
             f"{'config':<10} {data['config']}",
             f"{'database':<10} {data['database']}  ({revision})"]
    daemon = data["daemon"]
    if daemon is None:
        lines.append(f"{'daemon':<10} " + ("not asked" if data["metrics_listen"] else
                                           "not asked (no metrics.listen to ask it on)"))
    elif daemon["answering"]:
        lines.append(f"{'daemon':<10} {daemon['url']}/healthz: {daemon['health']}")
    else:
        lines.append(f"{'daemon':<10} {daemon['url']}: not answering ({daemon.get('error')})")
    i, o, t = data["inbound"], data["outbox"], data["timers"]
    lines.append(f"{'inbound':<10} {i['pending']} pending{_oldest(i['oldest_pending_age_s'])}; "
                 f"{i['quarantined']} quarantined")
    lines.append(f"{'outbox':<10} {o['queued']} queued ({o['due']} due)"
                 f"{_oldest(o['oldest_queued_age_s'])}; {o['failed']} failed")
    nxt = t["next"]
    when = "none pending" if nxt is None else (
        f"next {nxt['tag']} {nxt['kind']} {nxt['stage']} "
        f"{relative(datetime.fromisoformat(nxt['due_at'].replace('Z', '+00:00')), now)}")
    lines.append(f"{'timers':<10} {t['overdue']} overdue; {when}")
    lines.append(f"{'tickets':<10} " + ", ".join(f"{n} {s}" for s, n in data["tickets"].items()))
    if not data["imap"]:
        lines.append(f"{'imap':<10} no accounts")
    width = max((len(f"{r['account']}/{r['folder']}") for r in data["imap"]), default=0)
    for k, r in enumerate(data["imap"]):
        label = f"{r['account']}/{r['folder']}".ljust(width)
        state = (f"last change {_ago(r['last_change_at'], now, zone)}, UID {r['last_uid']}"
                 if r["last_uid"] is not None else "not contacted yet")
        lines.append(f"{'imap' if k == 0 else '':<10} {label}  {state}"
                     f"{'' if r['watched'] else '  (no longer configured)'}")
    return "\n".join(lines) + "\n"


__all__ = ["desk_status", "probe_daemon", "public_url", "schema_state", "status_text"]
