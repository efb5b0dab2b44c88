"""Taking mail in outside the daemon: one piped message (`ingest`), one pass over the IMAP
accounts (`poll --once`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from maildesk.config import Settings
from maildesk.services.context import Context
from maildesk.services.errors import BadRequest

if TYPE_CHECKING:
    from maildesk.ingress.imap_service import AccountPass
    from maildesk.ingress.pipe import IngestResult


def ingest(ctx: Context, data: bytes, *, sender: str | None,
           recipients: tuple[str, ...]) -> IngestResult:
    """Store one raw message; the result's code is the exit code an MTA expects."""
    from maildesk.ingress.pipe import ingest_bytes

    return ingest_bytes(data, ctx.make_session, ctx.clock,
                        max_size=ctx.settings.smtp.max_message_size, mail_from=sender,
                        rcpt_to=recipients)


def has_imap_accounts(settings: Settings, account: str | None = None) -> bool:
    """Whether any IMAP account is enabled; BadRequest when `account` names none of them."""
    accounts = settings.imap_accounts
    if account and account not in {a.name for a in accounts}:
        raise BadRequest(f"no IMAP account {account!r} (known: "
                         f"{', '.join(a.name for a in accounts) or 'none'})")
    return any(a.enabled for a in accounts)


def poll(ctx: Context, account: str | None = None,
         progress: Callable[[str], None] | None = None) -> list[AccountPass]:
    """One pass over every folder of every enabled account (or only `account`)."""
    from maildesk.ingress.imap_service import poll_once

    return poll_once(ctx.settings.imap_accounts, ctx.make_session, ctx.clock,
                     max_size=ctx.settings.smtp.max_message_size, only=account,
                     progress=progress)


def copy_to_quarantine(ctx: Context, account: str | None = None) -> list[AccountPass]:
    """After processing quarantined some of the polled mail: one more pass puts the copies,
    with their reasons, into the quarantine folders. Only the passes that copied any."""
    return [p for p in poll(ctx, account) if p.result and p.result.quarantine_copies]


def stored_any(passes: Sequence[AccountPass]) -> bool:
    return any(p.result and p.result.stored for p in passes)


def failed_any(passes: Sequence[AccountPass]) -> bool:
    return any(p.result is None for p in passes)
