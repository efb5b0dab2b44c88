"""Render templates in a Jinja2 sandbox and build outgoing MIME messages safely.

Every header value passes through `clean_header` (no CR, LF or other control character can
reach a header, so a client's name or subject can never add one), addresses are IDNA-encoded,
and non-ASCII text is RFC 2047-encoded (a subject here, names by the email package).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from email.header import Header
from email.policy import compat32
from email.utils import format_datetime, formataddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from collections.abc import Sequence
from urllib.parse import quote

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateError, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from maildesk.outbound.when import FILTERS as WHEN_FILTERS
from maildesk.outbound.when import phrase as when_phrase

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
# Runs of Cyrillic letters: counted by their lengths, not one match per letter.
_CYRILLIC = re.compile(r"[А-Яа-яЁё]+")


def clean_header(value: str, limit: int = 900) -> str:
    """One line, no control characters: what may go into a header value."""
    return _CONTROL.sub(" ", unicodedata.normalize("NFC", value)).strip()[:limit]


def format_when(value: datetime | None, lang: str, form: str = "plain", *,
                now: datetime | None = None) -> str:
    """A time as a person writes it in `lang`, in the zone the datetime carries: `form`
    "plain" (пятница, 5 декабря, 12:00), "by" (a deadline: до пятницы, 5 декабря, 12:00) or
    "on" (в понедельник, 8 декабря, в 9:00). See maildesk.outbound.when."""
    return when_phrase(value, lang, form, now=now)


def choose_language(*, rule_language: str | None, content_language: str | None, text: str,
                    default: str, available: frozenset[str]) -> str:
    """Rules first, then the mail's Content-Language, then its script, then the default."""
    for candidate in (rule_language, (content_language or "").split("-")[0] or None):
        if candidate and candidate.lower() in available:
            return candidate.lower()
    sample = text[:4000]
    if "ru" in available and not sample.isascii() \
            and sum(map(len, _CYRILLIC.findall(sample))) > max(10, len(sample) // 20):
        return "ru"
    return default if default in available else sorted(available)[0]


def _idna_domain(address: str) -> str:
    local, _, domain = address.rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return f"{local}@{domain}"


def ascii_address(address: str) -> bool:
    """Can this address go into an ASCII header (IDNA for the domain)?"""
    return _idna_domain(address).isascii()


@lru_cache(maxsize=4096)   # the same desk and line addresses on most mails
def format_address(address: str, name: str = "") -> str:
    """`Name <local@domain>` with the name RFC 2047-encoded when needed, the domain in IDNA."""
    return formataddr((clean_header(name, 200), clean_header(_idna_domain(address))),
                      charset="utf-8")


def encode_header(value: str, name: str) -> str | Header:
    """A cleaned header value; non-ASCII text as a Header, which the generator RFC 2047-encodes."""
    value = clean_header(value)
    return value if value.isascii() else Header(value, "utf-8", header_name=name)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


class TemplateProblem(Exception):
    """A template that does not render: file, line and what is wrong."""

    def __init__(self, file: str, line: int | None, message: str):
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line or '?'}: {message}")


# The templates maildesk ships (what `maildesk init` copies). A kind of mail added in a later
# version is rendered from them until the desk's own templates/ has it: an upgrade never leaves
# a mail unsendable for want of a file. Whole templates only: a desk that has `autoreply.txt`
# without `autoreply.html` sends text alone, as it chose.
BUILT_IN_TEMPLATES = Path(__file__).resolve().parent.parent / "skeleton" / "templates"


class Composer:
    """Renders `templates/<lang>/<name>.*` in a sandbox."""

    def __init__(self, templates_dir: Path):
        self.templates_dir = templates_dir
        # Built once: Jinja caches compiled templates per environment (text and HTML differ
        # only in autoescaping). The language reaches the `datetime` filter through the context.
        self.envs = {html: self._environment(templates_dir, html) for html in (False, True)}
        built_in = BUILT_IN_TEMPLATES
        self.built_in = {html: self._environment(built_in, html) for html in (False, True)} \
            if built_in.is_dir() and built_in.resolve() != templates_dir.resolve() else None
        self._own: dict[tuple[str, str], bool] = {}
        self._no_html: set[tuple[int, str, str]] = set()
        self._templates: dict[tuple[int, bool, str, str], Template] = {}
        self.languages = frozenset(p.name for p in templates_dir.iterdir()
                                   if p.is_dir() and (p / "autoreply.txt").exists()) \
            if templates_dir.is_dir() else frozenset()

    @staticmethod
    def _environment(templates_dir: Path, html: bool) -> SandboxedEnvironment:
        # auto_reload off: a template is read once per Composer (a reload makes a new one),
        # not checked on disk at every mail.
        env = SandboxedEnvironment(loader=FileSystemLoader(str(templates_dir)),
                                   undefined=StrictUndefined, autoescape=html,
                                   keep_trailing_newline=True, auto_reload=False)
        # datetime, by_time, on_time, zone (maildesk.outbound.when), in the context's `lang`.
        env.filters.update(WHEN_FILTERS)
        return env

    def _render(self, envs: dict[bool, SandboxedEnvironment], name: str, lang: str,
                context: dict[str, Any], *, html: bool) -> str:
        key = (id(envs), html, lang, name)
        try:
            template = self._templates.get(key)
            if template is None:   # Jinja's own cache costs a lookup and a lock per render
                template = self._templates[key] = envs[html].get_template(f"{lang}/{name}")
            return template.render({**context, "lang": lang})
        except TemplateNotFound:
            raise
        except TemplateError as exc:
            root = self.templates_dir if envs is self.envs else BUILT_IN_TEMPLATES
            raise TemplateProblem(str(root / lang / name),
                                  getattr(exc, "lineno", None), str(exc)) from None

    def own(self, name: str, lang: str) -> bool:
        """Whether the desk's templates/ has this template (else the built-in one is used)."""
        found = self._own.get((name, lang))
        if found is None:
            found = self._own[name, lang] = (self.templates_dir / lang / f"{name}.txt").is_file()
        return found

    def _envs_for(self, name: str, lang: str) -> dict[bool, SandboxedEnvironment]:
        """The desk's environments when it has the template, else the built-in ones."""
        return self.envs if self.own(name, lang) or self.built_in is None else self.built_in

    def render(self, name: str, lang: str, context: dict[str, Any]) -> Rendered:
        envs = self._envs_for(name, lang)
        subject = self._render(envs, f"{name}.subject.txt", lang, context, html=False)
        text = self._render(envs, f"{name}.txt", lang, context, html=False)
        html = None
        key = (id(envs), name, lang)
        if key not in self._no_html:   # looked for once: a missing one is not looked for again
            try:
                html = self._render(envs, f"{name}.html", lang, context, html=True)
            except TemplateNotFound:
                self._no_html.add(key)
        return Rendered(clean_header(subject), text, html)

    def warm(self, names: tuple[str, ...] = ("autoreply", "line_notification")) -> None:
        """Compile `names` (the mails of nearly every new ticket) in every language, and load
        the calendar names their dates use, now rather than under the first mail: about 0.1 s
        of a daemon's first batch. A template that fails to compile is left for that mail to
        report, as it would have been."""
        for lang in sorted(self.languages):
            when_phrase(datetime(2000, 1, 3, tzinfo=timezone.utc), lang)
            for name in names:
                envs = self._envs_for(name, lang)
                for suffix, html in ((".subject.txt", False), (".txt", False), (".html", True)):
                    try:
                        envs[html].get_template(f"{lang}/{name}{suffix}")
                    except TemplateError:   # missing, or broken: the mail says so
                        continue

    def check(self, sample: dict[str, Any],
              names: tuple[str, ...] = ()) -> list[TemplateProblem]:
        """Render every template of every language against sample data (`maildesk check`):
        the built-in ones and `names` (autoreply templates the rules choose)."""
        problems = []
        for lang in sorted(self.languages):
            for name in dict.fromkeys((*TEMPLATES, *names)):
                try:
                    self.render(name, lang, sample)
                except TemplateProblem as exc:
                    problems.append(exc)
                except TemplateNotFound as exc:
                    problems.append(TemplateProblem(str(self.templates_dir / lang), None,
                                                    f"missing template {exc.name}"))
        return problems


# Every mail maildesk writes; each is `<name>.subject.txt` + `<name>.txt` (+ optional .html).
TEMPLATES = ("autoreply", "line_notification", "agent_reply", "resolved", "command_error",
             "search_results", "solved", "digest", "report_mail")


def new_message_id(domain: str) -> str:
    """A fresh Message-ID: 128 random bits and the instance's domain (RFC 5322 §3.6.4).

    Never derived from a counter or a ticket number: a rebuilt database (a new instance, a
    restore) counts from the start again, and mail clients (Gmail) drop mail whose Message-ID
    they have seen. The id is kept on the outbox row with the bytes, so a retry sends the same.
    """
    return f"{base64.b32encode(secrets.token_bytes(16)).decode('ascii').rstrip('=').lower()}" \
        f"@{domain}"


_CRLF = compat32.clone(linesep="\r\n")
_HeaderList = list[tuple[str, str]]


def build_message(*, from_name: str, from_address: str, to_name: str, to_address: str,
                  subject: str, rendered: Rendered, message_id: str, in_reply_to: str | None,
                  references: tuple[str, ...], reply_to: str | None, date: datetime,
                  auto: bool | str, attachments: Sequence[OutgoingAttachment] = (),
                  cc: Sequence[str] = ()) -> bytes:
    """The MIME bytes (CRLF) of an outgoing mail. Every header value is cleaned and encoded
    here and folded by compat32's own folding; the fixed structure (text/plain, or
    multipart/alternative of text and HTML, UTF-8 in base64, inside a multipart/mixed with
    the attachments when there are any) is written directly: the email package's generator
    cost about 2 ms a mail, more than the rest of composing.

    `auto`: False for mail a person wrote (an agent's relayed answer), True or "auto-replied"
    for an autoreply, "auto-generated" for notifications (RFC 3834)."""
    headers: _HeaderList = [
        *_address_headers(from_name, from_address, to_name, to_address, cc),
        ("Subject", _Encoded(subject)),
        ("Date", format_datetime(date)),
        ("Message-ID", f"<{clean_header(message_id)}>"),
        *_reply_headers(in_reply_to, references, reply_to, from_name),
        *_auto_headers(auto),
    ]
    out = [_encoded_line(name, value) if isinstance(value, _Encoded) else _fold(name, value)
           for name, value in headers]
    out.append("MIME-Version: 1.0\r\n")
    return ("".join(out) + _mime_body(rendered, attachments)).encode("ascii")


class _Encoded(str):
    """A header value to clean and RFC 2047-encode (when not ASCII) before folding."""


# Every header is written here rather than by the email package's Header machinery (which
# tried every split of a value and cost more than the rest of a mail's headers together):
# a line of at most 78 characters where the words allow (RFC 5322 §2.1.1), folded at spaces,
# non-ASCII text as UTF-8 base64 encoded words (RFC 2047) split between characters.
_LINE = 78


def _encoded_line(name: str, value: str) -> str:
    """`Name: value` with the value cleaned and, when it is not ASCII, RFC 2047-encoded."""
    value = clean_header(value)
    if value.isascii():
        return _fold(name, value)
    return _encoded_words(name, value)


def _encoded_words(name: str, value: str) -> str:
    """Encoded words (`=?utf-8?b?...?=`), each filling the room left on its line: the first
    after `Name: `, the others after the folding space. A character's bytes stay in one word
    (RFC 2047 §5: each word decodes on its own)."""
    words: list[str] = []
    room = _LINE - len(name) - 2
    chars: list[str] = []
    size = 0
    limit = max((room - 12) // 4 * 3, 4)   # the bytes whose base64 fits the room
    for ch in value:
        n = len(ch.encode("utf-8"))
        if size + n > limit and chars:
            words.append("".join(chars))
            chars, size, limit = [], 0, (_LINE - 1 - 12) // 4 * 3
        chars.append(ch)
        size += n
    words.append("".join(chars))
    return f"{name}: " + "\r\n ".join(
        "=?utf-8?b?" + binascii.b2a_base64(w.encode("utf-8"), newline=False).decode("ascii")
        + "?=" for w in words) + "\r\n"


def _fold(name: str, value: str) -> str:
    """`Name: value` folded at spaces into lines of at most 78 characters where the words
    allow (a longer word keeps a line of its own); a value with CR or LF goes through the
    email package, which knows what to make of it."""
    if len(name) + 2 + len(value) <= _LINE and value.isascii() \
            and "\r" not in value and "\n" not in value:
        return f"{name}: {value}\r\n"
    if "\r" in value or "\n" in value or not value.isascii():
        return _CRLF.fold(name, value)
    lines: list[str] = []
    line, placed = f"{name}:", False   # placed: a word is on the line (never break before it)
    for word in value.split(" "):
        # Runs of spaces come back as empty words: each stays a space, where it was.
        if placed and word and len(line) + 1 + len(word) > _LINE:
            lines.append(line)
            line = ""
        line += " " + word
        placed = placed or bool(word)
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _address_headers(from_name: str, from_address: str, to_name: str, to_address: str,
                     cc: Sequence[str]) -> _HeaderList:
    headers: _HeaderList = [("From", format_address(from_address, from_name)),
                            ("To", format_address(to_address, to_name))]
    if cc:
        headers.append(("Cc", ", ".join(format_address(a) for a in cc)))
    return headers


def _reply_headers(in_reply_to: str | None, references: tuple[str, ...], reply_to: str | None,
                   from_name: str) -> _HeaderList:
    """Threading (the last 20 references) and where answers should go."""
    headers: _HeaderList = []
    if in_reply_to:
        headers.append(("In-Reply-To", f"<{clean_header(in_reply_to)}>"))
    refs = [clean_header(r) for r in references if r][-20:]
    if refs:
        headers.append(("References", " ".join(f"<{r}>" for r in refs)))
    if reply_to:
        headers.append(("Reply-To", format_address(reply_to, from_name)))
    return headers


def _auto_headers(auto: bool | str) -> _HeaderList:
    if not auto:
        return []
    kind = auto if isinstance(auto, str) else "auto-replied"
    return [("Auto-Submitted", kind),                    # RFC 3834
            ("X-Auto-Response-Suppress", "All")]         # keeps Exchange OOF quiet


def _mime_body(rendered: Rendered, attachments: Sequence[OutgoingAttachment]) -> str:
    """Content headers and body: the text (or text and HTML as multipart/alternative), inside
    a multipart/mixed with the attachments when there are any."""
    if rendered.html is None:
        body = _text_part(rendered.text, "plain")
    else:
        boundary = f"=_md_{secrets.token_hex(12)}"
        body = (f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
                + "".join(f"--{boundary}\r\n{part}" for part in (
                    _text_part(rendered.text, "plain"), _text_part(rendered.html, "html")))
                + f"--{boundary}--\r\n")
    if attachments:
        mixed = f"=_md_{secrets.token_hex(12)}"
        body = (f'Content-Type: multipart/mixed; boundary="{mixed}"\r\n\r\n--{mixed}\r\n{body}'
                + "".join(f"--{mixed}\r\n{_attachment_part(a)}" for a in attachments)
                + f"--{mixed}--\r\n")
    return body


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    data: bytes


_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")


def _attachment_part(att: OutgoingAttachment) -> str:
    """One attachment: type, RFC 2231 file name (plus an RFC 2047 `name` for old Outlook),
    base64 body."""
    ctype = att.content_type if _TOKEN_CHARS.match(att.content_type) else "application/octet-stream"
    name = clean_header(att.filename, 100).replace("\\", "_").replace('"', "_") or "attachment"
    if name.isascii():
        params = f'; name="{name}"', f'; filename="{name}"'
    else:
        encoded = quote(name.encode("utf-8"), safe="")
        legacy = Header(name, "utf-8").encode()
        params = f'; name="{legacy}"', f"; filename*=utf-8''{encoded}"
    body = _base64_lines(att.data)
    return (f"Content-Type: {ctype}{params[0]}\r\nContent-Disposition: attachment{params[1]}\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{body}")


def _text_part(text: str, subtype: str) -> str:
    """Content headers, blank line and body of one UTF-8 text part, base64 in 76-char lines."""
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{_base64_lines(text.encode('utf-8'))}")


def _base64_lines(data: bytes) -> str:
    """What base64.encodebytes writes (76-character lines: 57 bytes each), with CRLF, in one C
    call and slices rather than one call per line (an attachment of 1 MB: 18,000 calls)."""
    encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
    return "".join([encoded[i:i + 76] + "\r\n" for i in range(0, len(encoded), 76)])


def sample_context(settings: Any) -> dict[str, Any]:
    """Sample data that every template must render with (`maildesk check`)."""
    from datetime import timedelta, timezone
    from zoneinfo import ZoneInfo

    from maildesk.outbound.plural import plural

    moscow, utc7 = ZoneInfo("Europe/Moscow"), timezone(timedelta(hours=7))
    when = datetime(2026, 12, 1, 12, 0, tzinfo=moscow)
    resumes = datetime(2026, 12, 2, 9, 0, tzinfo=moscow)
    first, solve = datetime(2026, 12, 2, 17, 0, tzinfo=moscow), \
        datetime(2026, 12, 7, 18, 0, tzinfo=moscow)
    return {
        # The date filters write the year only when it is not the year of `now`.
        "now": when,
        "ticket": {"number": 1042, "subject": "Касса не печатает чеки", "priority": "P1",
                   "line": "line2", "line_name": "Line 2", "status": "new", "category": "pos",
                   "tags": ["kkt"], "assignee": "carol@example.com",
                   "requester": "ivan@customer.example", "requester_name": "Иван Петров",
                   "created_at": when, "rating": 5},
        "event": "new", "actor": "carol@example.com", "from_line": "line1",
        "reason": "the first response deadline passed",
        "deadline": {"deadline": "first_response", "due": when, "share": 0.8},
        "message": {"from": "Иван Петров <ivan@customer.example>", "date": when,
                    "text": "Касса №3 не печатает чеки.",
                    "attachments": [{"filename": "photo.jpg", "size": 1024, "forwarded": True}]},
        "history": [{"at": when, "who": "carol@example.com (agent)", "internal": True,
                     "text": "Проверить драйвер."}],
        "earlier_tickets": [{"tag": f"[{settings.ticket_tag}-1001]", "subject": "Принтер",
                             "status": "closed",
                             "created_at": datetime(2025, 3, 14, 9, 5, tzinfo=moscow)}],
        "marker": "##- reply above this line -##",
        "commands_help": "#resolve #close ...",
        "lines": ["line1", "line2"],
        "text": "Перезагрузите кассу, пожалуйста.",
        "agent_name": "Carol",
        "errors": ["unknown command #resolv"],
        "searches": [{"query": "касса чек",
                      "tickets": [{"tag": f"[{settings.ticket_tag}-1001]", "status": "closed",
                                   "subject": "Касса не печатает чеки",
                                   "snippet": "...не печатает [чеки] после обновления..."}],
                      "articles": [{"slug": "cash-register", "language": "ru",
                                    "title": "Касса не печатает чек",
                                    "snippet": "Проверьте бумагу..."}]}],
        "tag": f"[{settings.ticket_tag}-1042]",
        "client_name": "Иван Петров",
        "client_address": "ivan@customer.example",
        "instance": settings.instance_name,
        "reply_address": f"support+1042-abc234@{settings.domain}",
        "deadlines": {"first_response": first, "resolution": solve},
        "resumes_at": resumes,
        "client_deadlines": {"first_response": first.astimezone(utc7),
                             "resolution": solve.astimezone(utc7), "zone": "UTC+07:00"},
        "suggestions": [{"title": "Касса не печатает чек", "slug": "cash-register",
                         "url": "https://support.example.com/faq/ru/cash-register.html",
                         "text": None,
                         "solved_address": f"support+1042-abc234-solved1@{settings.domain}",
                         "solved_mailto": f"mailto:support+1042-abc234-solved1@{settings.domain}"
                                          "?subject=%5BMD-1042%5D%20Solved&body=Solved"},
                        {"title": "Сброс пароля", "slug": "password-reset", "url": None,
                         "text": "Откройте страницу входа.", "solved_address": None,
                         "solved_mailto": None}],
        "articles": [{"slug": "password-reset", "title": "Сброс пароля", "score": 0.6,
                      "macro": True, "internal": False},
                     {"slug": "cash-register", "title": "Касса не печатает чек", "score": 0.4,
                      "macro": False, "internal": True}],
        **_digest_samples(settings, when, first, plural),
    }


def _digest_samples(settings: Any, when: datetime, due: datetime, plural: Any) -> dict[str, Any]:
    """The `digest` and `report_mail` templates' own sample data (and `plural`)."""
    from datetime import timedelta

    reply = f"support+1042-abc234@{settings.domain}"
    ticket = {"number": 1042, "tag": f"[{settings.ticket_tag}-1042]",
              "subject": "Касса не печатает чеки", "priority": "P1", "status": "new",
              "assignee": None, "requester": "ivan@customer.example", "created_at": when,
              "deadline": due, "deadline_kind": "first_response", "late": False,
              "pending_since": None,
              "pending_days": None, "reply_address": reply,
              "mailto": f"mailto:{reply}?subject=Re%3A%20%5BMD-1042%5D"}
    late = {**ticket, "late": True}
    waiting = {**ticket, "status": "pending", "deadline": None, "deadline_kind": None,
               "pending_since": when - timedelta(days=5), "pending_days": 5}
    figures = {"tickets": "120", "resolved": "98", "resolved_share": "81.7 %",
               "first_contact_resolution": "64 %", "first_response_median": "1 h 05 min",
               "first_response_median_calendar": "2 h 40 min", "handling_mean": "1 d 2 h",
               "breached": "7", "breached_share": "5.8 %", "overdue_now": "2",
               "backlog_now": "22", "csat_mean": "4.52", "ratings": "41"}
    return {
        "plural": plural,
        "digest": {"line": {"id": "line1", "name": "Line 1", "mailbox": "line1@example.com"},
                   "date": when, "day": "Tuesday 1 December", "zone": "Europe/Moscow",
                   "waiting_days": 3, "total": 2,
                   "sections": [{"key": "overdue", "count": 1, "more": 0, "tickets": [late]},
                                {"key": "due_today", "count": 0, "more": 0, "tickets": []},
                                {"key": "unassigned", "count": 51, "more": 50,
                                 "tickets": [ticket]},
                                {"key": "waiting", "count": 1, "more": 0,
                                 "tickets": [waiting]}]},
        "report": {"since": "2026-11-23 00:00", "until": "2026-11-30 00:00",
                   "timezone": "Europe/Moscow", "by": "line", "every": "week",
                   "label": "2026-W48", "tickets": 120, "figures": figures,
                   "groups": [{"key": "line1", "label": "Line 1", "count": 120, **figures}]},
    }
