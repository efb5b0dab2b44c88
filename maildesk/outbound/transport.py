"""The delivery interface of the outbox: what a transport promises and how it says no.

Pure types. A transport hands one composed message to the next hop and answers with a
DeliveryResult (who took it, who refused it for good, who should be tried again later) or raises
TemporaryDeliveryError (retry the whole message later) / PermanentDeliveryError (give up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class DeliveryError(Exception):
    """Delivery of a whole message failed; `reason` says why in words an operator can act on.

    `code` is the SMTP reply code when there was one; `refused` holds per-recipient replies
    when the failure was that every recipient was refused.
    """

    def __init__(self, reason: str, *, code: int | None = None,
                 refused: dict[str, str] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.refused: dict[str, str] = dict(refused or {})

    def __str__(self) -> str:
        return self.reason


class TemporaryDeliveryError(DeliveryError):
    """Try again later: 4xx replies, connection refused or timed out, a TLS handshake hiccup."""


class PermanentDeliveryError(DeliveryError):
    """Give up: 5xx for the message or for every recipient, AUTH rejected (535), 552/554."""


@dataclass(frozen=True)
class DeliveryResult:
    """The message went out to `accepted`.

    `refused` maps recipients refused for good (5xx) to the reply text; `deferred` maps
    recipients refused for now (4xx): the message should be retried for those only.
    """

    accepted: tuple[str, ...]
    refused: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)


class Transport(Protocol):
    def deliver(self, envelope_from: str, recipients: Sequence[str],
                message: bytes) -> DeliveryResult:
        """Hand `message` to the next hop for `recipients`; raise a DeliveryError if it failed."""
        ...

    def close(self) -> None:
        """Release connections and files; the transport may be used again afterwards."""
        ...
