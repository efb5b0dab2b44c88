"""Shared by the benchmarks: a seeded corpus of support mail, a temporary config set, percentiles,
the printed verdict and the JSON report.

The corpus imitates what a Russian/English support desk receives: new requests and follow-ups
(In-Reply-To/References and `Re:`/`RE:`/`Ответ:` subjects, a few Outlook replies that lost
their headers, forwards, resends), text in cp1251, koi8-r and utf-8 (8bit, quoted-printable,
base64), HTML alternatives, attachments from a few KB to ~200 KB, and the header block that real
mail carries (Received chain, DKIM, Authentication-Results...). Most messages are 2-20 KB.
Everything comes from random.Random(seed): the same seed gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import platform
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from pathlib import Path
from random import Random
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUPPORT = "support@example.com"
# The corpus' messages arrive after this moment (seeded tickets are older).
CORPUS_START = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


# -- corpus ---------------------------------------------------------------------------------------
RU_SENTENCES = [
    "Добрый день!",
    "У нас в магазине перестала печатать чеки касса номер два.",
    "После обновления программы не печатаются чеки, на экране ошибка связи с фискальным "
    "накопителем.",
    "Принтер этикеток печатает пустые листы, хотя лента заправлена правильно.",
    "Просим срочно помочь, очередь покупателей растёт, а терминал оплаты не отвечает.",
    "Со вчерашнего вечера не приходят отчёты о продажах на почту директора.",
    "Пробовали перезагрузить кассу и роутер, не помогло.",
    "Прикладываю фотографию экрана с ошибкой и файл журнала.",
    "Номер договора 77-1452/2024, адрес точки: г. Казань, ул. Баумана, д. 12.",
    "Сканер штрихкодов читает код через раз, особенно на мягкой упаковке.",
    "Не можем войти в личный кабинет, пишет «неверный пароль», хотя пароль не меняли.",
    "Когда ждать выезда инженера? Нам обещали ответ в течение дня.",
    "Спасибо, после вашей подсказки всё заработало, заявку можно закрывать.",
    "К сожалению, проблема повторилась сегодня утром в 9:40.",
    "Уточните, пожалуйста, нужно ли обновлять прошивку на всех кассах или только на одной.",
    "Оплата картой проходит, но чек покупателю не печатается, а в ОФД данные уходят.",
    "В отчёте за смену расхождение на 1 250 рублей, просим проверить.",
    "Весы не передают вес в кассовую программу после замены кабеля.",
    "Заранее благодарим за оперативный ответ.",
    "С уважением, администратор магазина.",
]
EN_SENTENCES = [
    "Hello,",
    "Our receipt printer at till 3 stopped printing after last night's update.",
    "The card terminal shows 'connection lost' every few minutes and payments time out.",
    "We restarted the register and the router twice, but nothing changed.",
    "Please find attached a screenshot of the error and the application log.",
    "Sales reports have not arrived in the manager's mailbox since Monday.",
    "The barcode scanner reads only every second code, mostly on soft packaging.",
    "We cannot log in to the customer portal; it says the password is wrong.",
    "When can we expect the engineer? We were promised an answer within a day.",
    "Thanks, your hint solved it, you can close the ticket.",
    "Unfortunately the problem came back this morning at 9:40.",
    "Do we need to update the firmware on every register or only on the affected one?",
    "Our contract number is 77-1452/2024, store address 12 Baker Street.",
    "The end-of-day report is off by 1,250.00 and we need it fixed before the audit.",
    "The scale no longer sends the weight to the POS after we replaced the cable.",
    "This is quite urgent for us, the queue is growing.",
    "Thanks in advance for a quick answer.",
    "Best regards, store manager.",
]
RU_TOPICS = ["Не печатает чеки касса", "Ошибка фискального накопителя",
             "Не работает терминал оплаты", "Сканер не читает штрихкоды",
             "Не приходят отчёты о продажах", "Весы не передают вес",
             "Не могу войти в личный кабинет", "Расхождение в отчёте за смену",
             "Принтер этикеток печатает пустые листы", "Просьба о выезде инженера",
             "Вопрос по обновлению прошивки", "Касса зависает при закрытии смены"]
EN_TOPICS = ["Receipt printer not printing", "Card terminal connection lost",
             "Barcode scanner problem", "Sales reports missing", "Scale not sending weight",
             "Cannot log in to the portal", "End-of-day report mismatch",
             "Label printer prints blank", "Engineer visit request", "Firmware update question",
             "Register freezes on shift close"]
RU_FIRST = ["Анна", "Ольга", "Сергей", "Дмитрий", "Елена", "Игорь", "Мария", "Алексей", "Наталья",
            "Павел", "Татьяна", "Виктор"]
RU_LAST = ["Иванова", "Петров", "Смирнова", "Кузнецов", "Соколова", "Попов", "Лебедева", "Козлов",
           "Новикова", "Морозов", "Волкова", "Зайцев"]
EN_FIRST = ["John", "Mary", "Peter", "Linda", "James", "Susan", "Robert", "Karen", "Tom", "Emma"]
EN_LAST = ["Smith", "Brown", "Taylor", "Wilson", "Clark", "Walker", "Hall", "Young", "King",
           "Wright"]
_CYR = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
_LAT = ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r",
        "s", "t", "u", "f", "h", "ts", "ch", "sh", "sch", "", "y", "", "e", "yu", "ya"]
TRANSLIT = str.maketrans(dict(zip(_CYR, _LAT)))
DOMAINS = ["mail.ru", "yandex.ru", "gmail.com", "magnit-retail.ru", "shop-kazan.ru", "outlook.com",
           "tander.ru", "retail-group.com", "bk.ru", "inbox.ru", "corp.example.org"]
REPLY_PREFIXES = ["Re: ", "Re: ", "RE: ", "Ответ: ", "Re[2]: ", "AW: ", "Отв: "]
MAILERS = ["Microsoft Outlook 16.0", "Mozilla Thunderbird", "Yandex.Mail", "Mail.Ru Mailer 1.0",
           "Apple Mail (2.3774)", None, None]
ATTACHMENTS = [("image/png", "screenshot.png"), ("image/jpeg", "IMG_2024.jpg"),
               ("application/pdf", "act.pdf"), ("text/plain", "pos.log"),
               ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "отчёт.xlsx"),
               ("image/jpeg", "фото_ошибки.jpg"), ("application/pdf", "Счёт №1452.pdf")]


@dataclass(frozen=True)
class Mail:
    """One generated message and its envelope."""

    raw: bytes
    mail_from: str
    rcpt_to: tuple[str, ...]
    received_at: datetime
    kind: str             # new | reply | subject-reply | forward | resend
    message_id: str


@dataclass
class _Person:
    address: str
    name: str
    lang: str
    charset: str


@dataclass
class _Thread:
    subject: str
    person: _Person
    message_ids: list[str] = field(default_factory=list)
    last_text: str = ""


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _fits(text: str, charset: str) -> str:
    """`charset` if it can encode `text`, else utf-8."""
    try:
        text.encode(charset)
        return charset
    except UnicodeEncodeError:
        return "utf-8"


def _header(name: str, value: str, charset: str) -> str:
    """`Name: value` folded, with RFC 2047 words in the sender's charset when not ASCII."""
    try:
        value.encode("ascii")
        return f"{name}: {value}"
    except UnicodeEncodeError:
        enc = Header(value, _fits(value, charset), header_name=name).encode(linesep="\r\n")
        return f"{name}: {enc}"


def _address(name: str, addr: str, charset: str) -> str:
    try:
        name.encode("ascii")
        return f'"{name}" <{addr}>'
    except UnicodeEncodeError:
        return f"{Header(name, _fits(name, charset)).encode()} <{addr}>"


def _body_part(text: str, subtype: str, charset: str, rng: Random) -> bytes:
    data = text.encode(charset, errors="replace")
    if charset in ("us-ascii",):
        cte = "7bit"
    else:
        cte = rng.choice(["8bit", "quoted-printable", "base64"])
    if cte == "base64":
        payload = base64.encodebytes(data)
    elif cte == "quoted-printable":
        payload = binascii.b2a_qp(data, istext=True)
    else:
        payload = data
    head = (f"Content-Type: text/{subtype}; charset=\"{charset}\"\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n")
    return head.encode("ascii") + _crlf(payload)


def _html(text: str) -> str:
    paras = "".join(
        f'<p class="MsoNormal" style="margin:0cm;font-size:11pt;font-family:Calibri,sans-serif">'
        f'<span style="color:#1F497D">{p.replace("&", "&amp;").replace("<", "&lt;")}</span></p>\n'
        for p in text.split("\n") if p.strip())
    return ("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html\">\n"
            "<style><!-- p.MsoNormal {margin:0cm; font-size:11.0pt;"
            " font-family:\"Calibri\",sans-serif;}"
            " a:link {color:#0563C1; text-decoration:underline;} --></style></head>\n"
            f"<body lang=\"RU\" link=\"#0563C1\" vlink=\"#954F72\"><div class=\"WordSection1\">\n"
            f"{paras}</div></body></html>\n")


def _attachment(rng: Random, charset: str) -> bytes:
    ctype, name = rng.choice(ATTACHMENTS)
    # log-uniform between ~3 KB and ~200 KB (before base64)
    size = int(math.exp(rng.uniform(math.log(3_000), math.log(150_000))))
    if ctype == "text/plain":
        line = b"2026-11-23 09:40:12 ERROR fiscal: timeout waiting for FN response (code 0x2A)\n"
        data = (line * (size // len(line) + 1))[:size]
    else:
        data = rng.randbytes(size)
    try:
        name.encode("ascii")
        disp = f'attachment; filename="{name}"'
        ct_name = f'; name="{name}"'
    except UnicodeEncodeError:
        if rng.random() < 0.5:  # Outlook style: RFC 2047 in a quoted string
            enc = Header(name, _fits(name, charset)).encode()
            disp = f'attachment; filename="{enc}"'
            ct_name = f'; name="{enc}"'
        else:  # RFC 2231
            from urllib.parse import quote
            disp = f"attachment; filename*=utf-8''{quote(name)}"
            ct_name = ""
    head = (f"Content-Type: {ctype}{ct_name}\r\nContent-Disposition: {disp}\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n")
    return head.encode("ascii") + _crlf(base64.encodebytes(data))


def _multipart(subtype: str, parts: list[bytes], rng: Random) -> bytes:
    boundary = f"----=_NextPart_{rng.getrandbits(64):016X}.{rng.getrandbits(32):08X}"
    out = [f"Content-Type: multipart/{subtype};\r\n\tboundary=\"{boundary}\"\r\n\r\n"
           "This is a multi-part message in MIME format.\r\n".encode("ascii")]
    for part in parts:
        out.append(f"\r\n--{boundary}\r\n".encode("ascii") + part)
    out.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def message_id_for(rng: Random, domain: str) -> str:
    """A Message-ID (without brackets) in the style of Gmail, Outlook, Yandex or a plain MTA."""
    style = rng.randrange(4)
    if style == 0:
        token = base64.b64encode(rng.randbytes(30)).decode().rstrip("=")
        return f"CAF{token}@mail.gmail.com"
    if style == 1:
        return (f"AM0PR{rng.randrange(10, 99)}MB{rng.randrange(1000, 9999)}"
                f"{rng.getrandbits(64):016X}@AM0PR{rng.randrange(10, 99)}"
                f"MB{rng.randrange(1000, 9999)}.eurprd01.prod.outlook.com")
    if style == 2:
        return f"{rng.randrange(10**14, 10**15)}@mail.yandex.ru"
    return f"{rng.getrandbits(128):032x}@{domain}"


def _trace_headers(rng: Random, person: _Person, when: datetime) -> list[str]:
    domain = person.address.rpartition("@")[2]
    hops = []
    t = when
    for i in range(rng.randint(2, 4)):
        t = t - timedelta(seconds=rng.randint(0, 3))
        host = f"mx{rng.randrange(1, 9)}.{domain}" if i else "mx.example.com"
        hops.append(f"Received: from {host} ({host} [10.{rng.randrange(256)}.{rng.randrange(256)}."
                    f"{rng.randrange(256)}])\r\n\tby relay{i}.example.com (Postfix) with ESMTPS id "
                    f"{rng.getrandbits(40):010X}\r\n\tfor <{SUPPORT}>; {format_datetime(t)}")
    sig = base64.b64encode(rng.randbytes(180)).decode()
    dkim = ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + domain +
            "; s=mail; t=" + str(int(when.timestamp())) +
            ";\r\n\th=from:to:subject:date:message-id:in-reply-to:references;\r\n\tbh=" +
            base64.b64encode(rng.randbytes(32)).decode() + ";\r\n\tb=" +
            "\r\n\t ".join(textwrap.wrap(sig, 70)))
    auth = (f"Authentication-Results: mx.example.com; dkim=pass header.d={domain};\r\n"
            f"\tspf=pass smtp.mailfrom={person.address}; dmarc=pass header.from={domain}")
    return [*hops, dkim, auth, f"Return-Path: <{person.address}>"]


def _text(rng: Random, lang: str, sentences: int) -> str:
    pool = RU_SENTENCES if lang == "ru" else EN_SENTENCES
    lines = [pool[0]]
    for _ in range(sentences):
        lines.append(rng.choice(pool[1:]))
    para = []
    for s in lines:  # a few paragraphs, wrapped like a mail client does
        para.append(s)
        if rng.random() < 0.3:
            para.append("")
    return "\n".join(textwrap.fill(p, 76) if p else "" for p in para) + "\n"


def _quote(text: str, person: _Person, when: datetime, lang: str) -> str:
    quoted = "\n".join(f"> {line}" if line else ">" for line in text.splitlines()[:80])
    if lang == "ru":
        intro = f"{when:%d.%m.%Y %H:%M}, {person.name} <{person.address}> пишет:"
    else:
        intro = f"On {when:%a, %d %b %Y at %H:%M}, {person.name} <{person.address}> wrote:"
    return f"\n{intro}\n{quoted}\n"


def _person(rng: Random, serial: int) -> _Person:
    lang = "ru" if rng.random() < 0.6 else "en"
    if lang == "ru":
        first, last = rng.choice(RU_FIRST), rng.choice(RU_LAST)
        charset = rng.choices(["windows-1251", "koi8-r", "utf-8"], [4, 2, 4])[0]
        local = f"{first.lower().translate(TRANSLIT)}.{last.lower().translate(TRANSLIT)}{serial}"
    else:
        first, last = rng.choice(EN_FIRST), rng.choice(EN_LAST)
        charset = rng.choice(["us-ascii", "utf-8", "iso-8859-1"])
        local = f"{first}.{last}{serial}".lower()
    return _Person(f"{local}@{rng.choice(DOMAINS)}", f"{first} {last}", lang, charset)


def _render(rng: Random, *, person: _Person, subject: str, when: datetime, message_id: str,
            text: str, in_reply_to: str | None, references: list[str]) -> bytes:
    charset = person.charset
    if person.lang == "ru" and charset == "us-ascii":
        charset = "utf-8"
    headers = _trace_headers(rng, person, when)
    headers += [
        _header("From", _address(person.name, person.address, charset), charset),
        f"To: {SUPPORT}",
        _header("Subject", subject, charset),
        f"Date: {format_datetime(when.astimezone(timezone(timedelta(hours=3))))}",
        f"Message-ID: <{message_id}>",
    ]
    if in_reply_to:
        headers.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        headers.append("References: " + "\r\n\t".join(f"<{r}>" for r in references[-8:]))
    mailer = rng.choice(MAILERS)
    if mailer:
        headers.append(f"X-Mailer: {mailer}")
    if mailer and "Outlook" in mailer:
        headers.append("Thread-Index: " + base64.b64encode(rng.randbytes(22)).decode())
        headers.append("Content-Language: " + ("ru-RU" if person.lang == "ru" else "en-US"))
    headers.append("MIME-Version: 1.0")

    body = _body_part(text, "plain", charset, rng)
    if rng.random() < 0.4:
        body = _multipart("alternative", [body, _body_part(_html(text), "html", charset, rng)], rng)
    if rng.random() < 0.15:
        parts = [body] + [_attachment(rng, charset) for _ in range(rng.choice([1, 1, 1, 2]))]
        body = _multipart("mixed", parts, rng)
    return "\r\n".join(headers).encode("ascii") + b"\r\n" + body


def generate_corpus(n: int, seed: int = 1, start: datetime = CORPUS_START) -> list[Mail]:
    """`n` messages, one every ~20 s from `start`: about 55% new requests, 30% replies with
    In-Reply-To/References, 7% replies that lost their headers (subject only), 5% forwards,
    3% resends of an earlier message (same bytes)."""
    rng = Random(seed)
    people = [_person(rng, i) for i in range(max(20, n // 6))]
    threads: list[_Thread] = []
    mails: list[Mail] = []
    when = start
    for i in range(n):
        when = when + timedelta(seconds=rng.randint(1, 40))
        roll = rng.random()
        kind = ("new" if roll < 0.55 or not threads else "reply" if roll < 0.85
                else "subject-reply" if roll < 0.92 else "forward" if roll < 0.97 else "resend")
        if kind == "resend" and mails:
            old = rng.choice(mails[-200:])
            mails.append(Mail(old.raw, old.mail_from, old.rcpt_to, when, "resend", old.message_id))
            continue
        if kind == "new":
            person = rng.choice(people)
            topics = RU_TOPICS if person.lang == "ru" else EN_TOPICS
            suffix = (f", магазин {rng.randrange(1, 5000)}" if person.lang == "ru"
                      else f" (store {rng.randrange(1, 5000)})")
            thread = _Thread(rng.choice(topics) + suffix, person)
            threads.append(thread)
            subject, irt, refs = thread.subject, None, []
            text = _text(rng, person.lang, rng.randint(3, 40))
        else:
            thread = rng.choice(threads[-150:])
            person = thread.person
            if kind == "reply" and rng.random() < 0.1:  # a colleague joins the thread
                person = rng.choice(people)
            prefix = "Fwd: " if kind == "forward" else rng.choice(REPLY_PREFIXES)
            subject = prefix + thread.subject
            if kind == "reply":
                irt, refs = thread.message_ids[-1], list(thread.message_ids)
            else:
                irt, refs = None, []
            if kind == "forward":
                person = rng.choice(people)
            quoted = _quote(thread.last_text, thread.person, when - timedelta(hours=1), person.lang)
            text = _text(rng, person.lang, rng.randint(1, 8)) + quoted
        mid = message_id_for(rng, person.address.rpartition("@")[2])
        raw = _render(rng, person=person, subject=subject, when=when, message_id=mid, text=text,
                      in_reply_to=irt, references=refs)
        if kind in ("new", "reply", "subject-reply"):
            thread.message_ids.append(mid)
            thread.last_text = text
        mails.append(Mail(raw, person.address, (SUPPORT,), when, kind, mid))
    return mails


def describe_corpus(mails: list[Mail]) -> str:
    sizes = sorted(len(m.raw) for m in mails)
    kinds: dict[str, int] = {}
    for m in mails:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    total = sum(sizes)
    p10, p50, p90 = (percentile(sizes, p) / 1e3 for p in (10, 50, 90))
    return (f"{len(mails)} messages, {total / 1e6:.1f} MB; size p10 {p10:.1f} KB, median {p50:.1f}"
            f" KB, p90 {p90:.1f} KB, max {sizes[-1] / 1e3:.0f} KB; "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])))


# -- statistics, printing, JSON -------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); `values` need not be sorted."""
    if not values:
        return float("nan")
    data = sorted(values)
    k = (len(data) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio >= target else "MISS"


def environment() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count(), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_json(path: str | Path, report: dict[str, Any]) -> None:
    """Write the report (figures, baseline, ratio, target, parameters) as indented JSON."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({**report, "environment": environment()}, ensure_ascii=False,
                            indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {p}")


# -- processes and configuration ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def maildesk_command() -> list[str]:
    """The `maildesk` console script of the interpreter running the benchmark."""
    script = Path(sys.executable).parent / "maildesk"
    if script.exists():
        return [str(script)]
    found = shutil.which("maildesk")
    if not found:
        raise SystemExit("the maildesk command is not installed (make setup)")
    return [found]


def write_config_set(directory: Path, db_url: str, *, smtp_port: int | None = None) -> Path:
    """Copy the repository's example config into `directory`, point it at `db_url`, a var dir
    and outbox inside `directory`, the repository's templates and `smtp_port`; return the path
    of its maildesk.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    for src in (ROOT / "config").iterdir():   # the YAML files and the list files they name
        if src.is_file():
            shutil.copyfile(src, directory / src.name)
    path = directory / "maildesk.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    var = directory / "var"
    var.mkdir(exist_ok=True)
    data.setdefault("database", {})["url"] = db_url
    data.setdefault("smtp", {})["port"] = smtp_port or free_port()
    data.setdefault("paths", {}).update(var=str(var), templates=str(ROOT / "templates"))
    data.setdefault("outbound", {})["maildir"] = str(var / "outbox-maildir")
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def statements_sent(engine: Any) -> Iterator[list[tuple[str, Any]]]:
    """`with statements_sent(engine) as seen: ...`: the SQL statements (with their parameters)
    sent through `engine` inside the block, as the driver sees them."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        seen.append((statement, parameters))
    event.listen(engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", grab)


def smtp_client(port: int, timeout: float = 120) -> smtplib.SMTP:
    """A client connection to 127.0.0.1:`port`, greeted (EHLO)."""
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=timeout)
    smtp.ehlo("bench.example.net")
    return smtp


def run_clients(count: int, connect: Callable[[int], smtplib.SMTP],
                body: Callable[[int, smtplib.SMTP], smtplib.SMTP], name: str, *,
                on_start: Callable[[], None] | None = None) -> None:
    """`count` client threads: each opens its connection (`connect(i)`); once every one is
    connected `on_start()` runs (the clock starts there) and then each runs `body(i, smtp)`,
    which returns the connection it ends with (it may have reconnected), and quits it. A
    client that cannot connect ends the benchmark (after the others gave up waiting)."""
    barrier = threading.Barrier(count, action=on_start)
    failures: list[BaseException] = []

    def client(i: int) -> None:
        try:
            smtp = connect(i)
        except BaseException as exc:  # reported after the join
            failures.append(exc)
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            smtp.close()
            return
        smtp = body(i, smtp)
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    threads = [threading.Thread(target=client, args=(i,), name=f"{name}-client-{i}")
               for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"{name}: a client could not connect: {failures[0]!r}")


class Timer:
    """`with Timer() as t: ...` then t.seconds."""

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


# -- server processes ---------------------------------------------------------------------------
class ServerProcess:
    """A listener subprocess: started, awaited until it prints its ready line, SIGTERM-stopped."""

    def __init__(self, name: str, cmd: list[str], ready: str, workdir: Path):
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        self.out = workdir / f"{name}.stdout"
        self.err = workdir / f"{name}.stderr"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while ready not in self.out.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"{name} did not start ({' '.join(cmd)}):\n" + self.tail())
            time.sleep(0.02)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.err.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode not in (0, -signal.SIGTERM):
            print(f"  warning: {self.name} exited with {self.proc.returncode}:\n{self.tail(10)}")


async def serve_sink(handler: Any, port: int) -> None:
    """Run an aiosmtpd sink on 127.0.0.1:`port` with maildesk's SMTP options until SIGTERM;
    prints "sink serving" when ready."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=25 * 1024 * 1024, enable_SMTPUTF8=True,
                     decode_data=False, hostname="sink.example.com", ident="sink ESMTP"),
        "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("sink serving", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def store_pending(ctx: Any, mails: list[Any], chunk: int = 500) -> None:
    """Store generated mails as pending arrivals, as the SMTP listener would."""
    from maildesk.db.models import Channel
    from maildesk.store.raw import Arrival, store_arrivals

    arrivals = [Arrival(data=m.raw, channel=Channel.SMTP, received_at=m.received_at,
                        mail_from=m.mail_from, rcpt_to=m.rcpt_to, source="smtp:127.0.0.1")
                for m in mails]
    for i in range(0, len(arrivals), chunk):
        with ctx.make_session.begin() as session:
            store_arrivals(session, arrivals[i:i + chunk])


# -- bulk loading of seed data (sla.py, seed.py, report.py) ----------------------------------------
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Stamps:
    """Timestamps as the database takes them: SQLAlchemy's SQLite text form (naive UTC, always
    with microseconds, `YYYY-MM-DD HH:MM:SS.ffffff`) or a PostgreSQL timestamptz literal; and
    the ISO form that JSON data holds (`datetime.isoformat()` of a UTC datetime)."""

    def __init__(self, sqlite: bool):
        self.sqlite = sqlite
        self._days: dict[int, str] = {}
        self._clock = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60)
                       for s in range(60)]
        self._db_suffix = ".000000" if sqlite else ".000000+00"

    def _day(self, d: int) -> str:
        day = self._days.get(d)
        if day is None:
            day = self._days[d] = (EPOCH + timedelta(days=d)).date().isoformat()
        return day

    def sec(self, seconds: int) -> str:
        """Whole seconds since the epoch, as the column stores them."""
        d, rest = divmod(seconds, 86400)
        return f"{self._day(d)} {self._clock[rest]}{self._db_suffix}"

    def iso(self, seconds: int) -> str:
        d, rest = divmod(seconds, 86400)
        return f"{self._day(d)}T{self._clock[rest]}+00:00"

    def dt(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        value = value.astimezone(timezone.utc)
        return f"{value:%Y-%m-%d %H:%M:%S.%f}" + ("" if self.sqlite else "+00")


def insert_sql(table: str, cols: Sequence[str], placeholder: str = "?") -> str:
    columns = ", ".join(f'"{c}"' for c in cols)  # "to", "first" are SQL keywords
    return f'INSERT INTO {table} ({columns}) VALUES ({", ".join([placeholder] * len(cols))})'


@dataclass
class LoadStats:
    """What a bulk load did: rows per table and the seconds of each phase."""

    rows: dict[str, int]
    insert_seconds: float = 0.0
    index_seconds: float = 0.0
    finish_seconds: float = 0.0      # sequences, counters, commit, VACUUM ANALYZE / WAL switch

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())



def bulk_load_sqlite(path: str | Path, tables: Sequence[tuple[str, Sequence[str]]],
                     chunks: Iterable[Sequence[list]], *, counters: Mapping[str, int] = {},
                     progress: Callable[[dict[str, int], float], None] | None = None
                     ) -> LoadStats:
    """Load `chunks` (one list of row tuples per table of `tables`, in that order) into the
    SQLite file at `path`: one transaction, executemany per list, journal in memory and
    synchronous=OFF, the secondary indexes of those tables dropped during the load and rebuilt
    after (same names and definitions; the UNIQUE and primary-key ones stay); the named
    `counter` rows set; left in WAL mode as maildesk uses it. No ANALYZE: maildesk runs none.
    `progress(rows_so_far, seconds)` is called after each chunk."""
    names = [t for t, _ in tables]
    rows = dict.fromkeys(names, 0)
    stats = LoadStats(rows)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=MEMORY")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-1000000")
        indexes = con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({', '.join('?' * len(names))})", names).fetchall()
        con.execute("BEGIN")
        for name, _ in indexes:
            con.execute(f'DROP INDEX "{name}"')
        statements = [insert_sql(t, c) for t, c in tables]
        t0 = time.perf_counter()
        for chunk in chunks:
            for name, statement, part in zip(names, statements, chunk):
                if part:
                    con.executemany(statement, part)
                    rows[name] += len(part)
            if progress is not None:
                progress(rows, time.perf_counter() - t0)
        stats.insert_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _, ddl in indexes:
            con.execute(ddl)
        stats.index_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        for name, value in counters.items():
            con.execute("INSERT INTO counter (name, value) VALUES (?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))
        con.execute("COMMIT")
        con.execute("PRAGMA journal_mode=WAL")
        stats.finish_seconds = time.perf_counter() - t0
    finally:
        con.close()
    return stats


def bulk_load_postgres(conninfo: str, tables: Sequence[tuple[str, Sequence[str]]],
                       chunks: Iterable[Sequence[list]], *, counters: Mapping[str, int] = {},
                       progress: Callable[[dict[str, int], float], None] | None = None,
                       vacuum: bool = True) -> LoadStats:
    """COPY `chunks` (as for bulk_load_sqlite) into the PostgreSQL database at `conninfo` (a
    libpq URL) in one transaction, with the secondary indexes and foreign keys of the loaded
    tables dropped and rebuilt (same names and definitions), the id sequences moved past the
    loaded ids, the named `counter` rows set; then VACUUM ANALYZE, as autovacuum would."""
    import psycopg

    names = [t for t, _ in tables]
    rows = dict.fromkeys(names, 0)
    stats = LoadStats(rows)
    with psycopg.connect(conninfo) as con:
        con.execute("SET synchronous_commit = off")
        con.execute("SET maintenance_work_mem = '512MB'")
        indexes = con.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            (names,)).fetchall()
        fks = con.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            (names,)).fetchall()
        for table, name, _ in fks:
            con.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            con.execute(f'DROP INDEX "{name}"')
        copies = [f"COPY {t} ({', '.join(chr(34) + c + chr(34) for c in cols)}) FROM STDIN"
                  for t, cols in tables]
        t0 = time.perf_counter()
        with con.cursor() as cur:
            for chunk in chunks:
                for name, statement, part in zip(names, copies, chunk):
                    if not part:
                        continue
                    with cur.copy(statement) as copy:
                        write = copy.write_row
                        for row in part:
                            write(row)
                    rows[name] += len(part)
                if progress is not None:
                    progress(rows, time.perf_counter() - t0)
        stats.insert_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _, ddl in indexes:
            con.execute(ddl)
        for table, name, definition in fks:
            con.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        stats.index_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        for table in names:
            if con.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]:
                con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT coalesce(max(id), 1) FROM {table}))")
        for name, value in counters.items():
            con.execute("INSERT INTO counter (name, value) VALUES (%s, %s) "
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))
        con.commit()
    if vacuum:
        with psycopg.connect(conninfo, autocommit=True) as con:
            con.execute("VACUUM (ANALYZE)")
    stats.finish_seconds = time.perf_counter() - t0
    return stats


class ScratchDatabase:
    """Where seeded data goes: a SQLite file, or a PostgreSQL database (optionally created
    through an admin URL and dropped by `cleanup`). `url` is what maildesk's config takes."""

    def __init__(self, url: str, *, create: bool = False):
        self.url = url
        self.sqlite = url.startswith("sqlite")
        self.name = "SQLite" if self.sqlite else "PostgreSQL"
        self.created = False
        if self.sqlite:
            self.path = Path(url.split(":///", 1)[1])
        else:
            from urllib.parse import urlsplit, urlunsplit

            parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://")
                             .replace("postgres://", "postgresql://"))
            self.conninfo = urlunsplit(parts)
            self.dbname = parts.path.lstrip("/")
            self.admin = urlunsplit(parts._replace(path="/postgres"))
            if create:
                self._admin(f'CREATE DATABASE "{self.dbname}"')
                self.created = True

    @classmethod
    def scratch_postgres(cls, admin_url: str, name: str) -> ScratchDatabase:
        """A new database `name` created through `admin_url` (dropped by cleanup)."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(admin_url.replace("postgresql+psycopg://", "postgresql://")
                         .replace("postgres://", "postgresql://"))
        db = cls(urlunsplit(parts._replace(path="/" + name)), create=False)
        db.admin = urlunsplit(parts)
        db._admin(f'CREATE DATABASE "{name}"')
        db.created = True
        return db

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as con:
            con.execute(sql)

    def load(self, tables: Sequence[tuple[str, Sequence[str]]], chunks: Iterable[Sequence[list]],
             **kw: Any) -> LoadStats:
        if self.sqlite:
            return bulk_load_sqlite(self.path, tables, chunks, **kw)
        return bulk_load_postgres(self.conninfo, tables, chunks, **kw)

    def size(self) -> int:
        """Bytes on disk: the SQLite file with its -wal/-shm, or pg_database_size."""
        if self.sqlite:
            return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))
        import psycopg

        with psycopg.connect(self.conninfo) as con:
            return con.execute("SELECT pg_database_size(current_database())").fetchone()[0]

    def cleanup(self) -> None:
        if self.created:
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
                self.created = False
            except Exception as exc:  # report it; the run's figures stand
                print(f"warning: could not drop {self.dbname}: {exc}", file=sys.stderr)
