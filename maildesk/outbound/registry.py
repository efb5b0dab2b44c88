"""The transport the settings ask for. The registry imports the transports; they import only
the interface (transport.py), never the registry, so there is no import circle."""

from __future__ import annotations

import ssl

from maildesk.config.model import Outbound
from maildesk.outbound.maildir import MaildirTransport
from maildesk.outbound.smtp import SmtpTransport
from maildesk.outbound.transport import Transport


def make_transport(outbound: Outbound, local_hostname: str | None = None) -> Transport:
    """The local Maildir or the SMTP smarthost."""
    if outbound.transport == "maildir":
        return MaildirTransport(outbound.maildir)
    if outbound.transport == "smtp":
        if outbound.smtp is None:
            raise ValueError("outbound transport smtp needs an outbound.smtp section")
        context = None
        if outbound.smtp.ca_file is not None:
            context = ssl.create_default_context(cafile=str(outbound.smtp.ca_file))
        return SmtpTransport(outbound.smtp, ssl_context=context, local_hostname=local_hostname)
    raise ValueError(f"unknown outbound transport {outbound.transport!r} (known: maildir, smtp)")


def describe(outbound: Outbound) -> str:
    """Where outgoing mail goes, for log lines and systemd's status."""
    if outbound.transport == "smtp" and outbound.smtp is not None:
        return f"smarthost {outbound.smtp.host}:{outbound.smtp.port}"
    if outbound.transport == "maildir":
        return f"Maildir {outbound.maildir}"
    return outbound.transport
