"""Mail that must not be answered automatically (RFC 3834) — bounces, auto-replies, lists.

Pure: decides from the parsed message and its envelope whether maildesk may send an
automatic reply, and says why not. A message can still make a ticket; it just gets no
autoreply, so two robots can never talk to each other for ever.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.subject import strip_prefixes

_ROBOT_LOCAL = re.compile(
    r"^(mailer[-_.]?daemon|post[-_.]?master|no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?|"
    r"auto[-_.]?reply|autoresponder|listserv|majordomo|mailman|owner-.+|"
    r".+-(owner|request|bounces|admin))$", re.I)
# A noreply word anywhere in the local part, as a word of its own (`no-reply-4711`,
# `alerts-noreply`, `do_not_reply.billing`, `noreply+x`, `noreply2`), not inside a name
# (`noreen`, `replyall`, `ronoreply`, `noreplying`).
_NOREPLY_WORD = re.compile(
    r"(?:^|[-_.+\d])(?:no|do[-_.]?not|dont)[-_.]?reply(?:$|[-_.+\d])", re.I)
_ROBOT_NAME = re.compile(r"mail delivery (subsystem|system|service)|mailer[- ]daemon", re.I)
_REPORT = re.compile(r"multipart/report|message/delivery-status|message/disposition-notification",
                     re.I)
# Matched after reply/forward prefixes are stripped ("Fwd: Returned mail: ...").
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheitsnotiz|"
    r"автоответ|автоматический ответ|undeliver|delivery (status |failure )?notification|"
    r"returned mail|mail delivery (failed|failure|warning)|mail could not be delivered|"
    r"failure notice|delivery failure|недоставлен|не доставлено|"
    r"your message to .* awaits moderator approval)", re.I)


@dataclass(frozen=True)
class LoopVerdict:
    """May we answer this automatically? If not, `reason` says why (kept on the ticket)."""

    autoreply_allowed: bool
    reason: str = ""
    is_bounce: bool = False


def _local(address: str) -> str:
    return address.rpartition("@")[0] if "@" in address else address


def _robot_local(local: str) -> bool:
    """A robot's mailbox: by its whole local part, or that before a +detail
    (`bounces+1234-abcd`), or a noreply word anywhere in it."""
    base = local.partition("+")[0]
    return bool(_ROBOT_LOCAL.match(local) or (base != local and _ROBOT_LOCAL.match(base))
                or _NOREPLY_WORD.search(local))


@dataclass(frozen=True)
class _Mail:
    """What the rules look at: the message and its envelope."""

    message: ParsedMessage
    mail_from: str | None
    own_addresses: frozenset[str]

    @property
    def sender(self) -> str:
        return self.message.from_.address if self.message.from_ else ""


# Each rule returns a verdict when it fires (autoreply refused, with the reason) and None
# otherwise; classify_loop asks them in order and the first that fires decides.
_Rule = Callable[[_Mail], LoopVerdict | None]

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post")
_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder",
                      "X-Auto-Response-Suppress")


def _delivery_report(mail: _Mail) -> LoopVerdict | None:
    message = mail.message
    if _REPORT.search(message.header("Content-Type") or "") or any(
            a.content_type.lower() in _STATUS_TYPES for a in message.attachments):
        return LoopVerdict(False, "delivery status report", is_bounce=True)
    return None


def _auto_submitted(mail: _Mail) -> LoopVerdict | None:
    auto = (mail.message.header("Auto-Submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return LoopVerdict(False, f"Auto-Submitted: {auto}")
    return None


def _precedence(mail: _Mail) -> LoopVerdict | None:
    precedence = (mail.message.header("Precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "list"):
        return LoopVerdict(False, f"Precedence: {precedence}")
    return None


def _mailing_list(mail: _Mail) -> LoopVerdict | None:
    for name in _LIST_HEADERS:
        if mail.message.header(name) is not None:
            return LoopVerdict(False, f"mailing list ({name})")
    return None


def _autoreply_header(mail: _Mail) -> LoopVerdict | None:
    for name in _AUTOREPLY_HEADERS:
        value = mail.message.header(name)
        # X-Auto-Response-Suppress is a sign of a robot only when it says something.
        if value is not None and not (name == "X-Auto-Response-Suppress" and value.strip() == ""):
            return LoopVerdict(False, f"automatic mail ({name})")
    return None


def _empty_return_path(mail: _Mail) -> LoopVerdict | None:
    if mail.mail_from == "" or (mail.message.header("Return-Path") or "x").strip() in ("<>", ""):
        return LoopVerdict(False, "empty return path")
    return None


def _robot_name(mail: _Mail) -> LoopVerdict | None:
    from_ = mail.message.from_
    if from_ and _ROBOT_NAME.search(from_.name):
        return LoopVerdict(False, f"robot sender {from_.name}", is_bounce=True)
    return None


def _robot_address(mail: _Mail) -> LoopVerdict | None:
    """Our own mailboxes, and robots' ones, in From, the envelope sender or Return-Path."""
    return_path = (mail.message.header("Return-Path") or "").strip("<> ").lower()
    for address in filter(None, (mail.sender, (mail.mail_from or "").lower(), return_path)):
        local, _, domain = address.rpartition("@")
        if f"{local.partition('+')[0]}@{domain}" in mail.own_addresses:
            return LoopVerdict(False, "sent by maildesk itself or a line mailbox")
        if _robot_local(_local(address)):
            bounce = _local(address).lower().startswith(("mailer", "postmaster"))
            return LoopVerdict(False, f"robot sender {address}", is_bounce=bounce)
    return None


def _no_sender(mail: _Mail) -> LoopVerdict | None:
    return None if mail.sender else LoopVerdict(False, "no sender address to answer")


def _auto_subject(mail: _Mail) -> LoopVerdict | None:
    if _AUTO_SUBJECT.match(strip_prefixes(mail.message.subject)[0]):
        return LoopVerdict(False, "automatic reply (subject)")
    return None


# The order matters: the first rule that fires gives the reason kept on the ticket.
_RULES: tuple[_Rule, ...] = (
    _delivery_report, _auto_submitted, _precedence, _mailing_list, _autoreply_header,
    _empty_return_path, _robot_name, _robot_address, _no_sender, _auto_subject)


def classify_loop(message: ParsedMessage, mail_from: str | None,
                  own_addresses: frozenset[str]) -> LoopVerdict:
    """RFC 3834 §2 plus the de-facto signs of robots (Outlook, Exchange, list servers)."""
    mail = _Mail(message, mail_from, own_addresses)
    for rule in _RULES:
        verdict = rule(mail)
        if verdict is not None:
            return verdict
    return LoopVerdict(True)
