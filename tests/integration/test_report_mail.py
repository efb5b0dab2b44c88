"""The KPI report by mail (issue 20): a weekly `reports:` entry sends exactly one mail per week
(not twice on a second sweep, a restart, later in the week), whose HTML part is mail-safe (no
script, no remote resource, charts as `cid:` PNG parts) and renders with its charts in headless
Chromium, with the CSV attached and a text part of headline figures; `maildesk report --mail`
queues the same now.
"""

from __future__ import annotations

import base64
import csv
import email
import io
import re
from email import policy

import pytest
from sqlalchemy import select

from desk import Desk, body, edit_lines, msk
from maildesk.db.models import Outbox, ScheduledMail
from maildesk.report.mail import InlineImage, mail_safe_html
from maildesk.services.schedules import run_schedules
from test_report_html import (Watched, artefact_dirs, browser,  # noqa: F401 (a fixture)
                              decode_png, non_white_fraction)

BOSS = "boss@example.com"
REMOTE = re.compile(r"""(?:\b(?:src|srcset|href|background|poster|action)\s*=\s*["']?\s*"""
                    r"""(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import)""", re.I)


@pytest.fixture
def make_desk(config_set):
    edit_lines(config_set, line1={"ola": None})
    config_set.write(reports=[{"to": [BOSS], "every": "week", "on": "monday", "at": "08:00",
                               "by": "line", "calendar": "standard"}])
    desks: list[Desk] = []

    def make(start) -> Desk:
        desk = Desk(config_set.path, start)
        desks.append(desk)
        return desk
    yield make
    for d in desks:
        d.close()


def sweep(desk: Desk) -> int:
    return run_schedules(desk.ctx, desk.ctx.settings, desk.composer)


def a_week(desk: Desk) -> None:
    """Mon 23 - Fri 27 Nov 2026: three tickets on line 1 (two answered, one resolved), a cash
    register on line 2."""
    desk.client_writes("Printer does not print", "Nothing comes out.")
    desk.at(msk(2026, 11, 23, 11, 0))
    desk.agent_replies(1000, "Please restart it.")
    desk.at(msk(2026, 11, 24, 10, 0))
    desk.client_writes("Scanner broken", "No scans.", sender="b@shop.example.ru")
    desk.client_writes("Касса не работает", "Совсем.", sender="c@shop.example.ru")
    desk.at(msk(2026, 11, 25, 12, 0))
    desk.agent_replies(1001, "#resolve\nFixed the cable.")
    desk.at(msk(2026, 11, 26, 15, 0))
    desk.client_writes("Keyboard sticks", "Keys.", sender="d@shop.example.ru")
    desk.read_all_mailboxes()


def reports(desk: Desk) -> list:
    return desk.mailbox(BOSS)


def html_of(msg) -> str:
    return msg.get_body(("html",)).get_content()


def related_images(msg) -> dict[str, bytes]:
    """The mail's inline pictures by Content-ID."""
    return {part["Content-ID"].strip("<>"): part.get_payload(decode=True)
            for part in msg.walk() if part.get_content_maintype() == "image"}


def test_a_weekly_report_goes_out_once_per_week(make_desk):
    desk = make_desk(msk(2026, 11, 23, 10, 0))
    a_week(desk)
    desk.at(msk(2026, 11, 30, 7, 59))                      # Monday, before 08:00
    assert sweep(desk) == 0
    desk.at(msk(2026, 11, 30, 8, 0))
    assert sweep(desk) == 1
    (msg,) = reports(desk)
    assert sweep(desk) == 0                                # a second sweep
    desk.at(msk(2026, 12, 3, 15, 0))                       # later that week, after a restart
    assert sweep(make_desk(msk(2026, 12, 3, 15, 0))) == 0
    assert sweep(desk) == 0
    assert reports(desk) == []
    desk.at(msk(2026, 12, 7, 8, 0))                        # the next Monday: the next week
    assert sweep(desk) == 1
    (nxt,) = reports(desk)
    with desk.ctx.make_session() as s:
        assert {r.key: r.mails for r in s.scalars(select(ScheduledMail))} == \
            {"report:0:2026-W48": 1, "report:0:2026-W49": 1}
        rows = list(s.scalars(select(Outbox).where(Outbox.kind == "report_mail")))
    assert [(r.ticket_id, r.recipients) for r in rows] == [(None, [BOSS]), (None, [BOSS])]

    # The mail itself.
    assert msg["Subject"] == "Example Support: KPI report of week 2026-W48, 4 tickets"
    assert nxt["Subject"] == "Example Support: KPI report of week 2026-W49, 0 tickets"
    assert msg["From"].addresses[0].addr_spec == "support@example.com"
    assert msg["To"].addresses[0].addr_spec == BOSS
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"] != nxt["Message-ID"]
    text = body(msg)
    assert "Period: 2026-11-23 00:00 – 2026-11-30 00:00 (Europe/Moscow), by line" in text
    assert re.search(r"Tickets created: +4\n", text)
    assert re.search(r"Resolved: +1 \(25 %\)\n", text)
    assert "Line 1 / Первая линия: 3 tickets" in text and "Line 2 / Вторая линия: 1 ticket," \
        in text

    # HTML: no script, no remote resource, every chart a cid: picture of the mail.
    html = html_of(msg)
    assert "<script" not in html.lower() and "<svg" not in html.lower()
    assert REMOTE.findall(html) == []
    assert "not drawn in the mail" not in html
    images = related_images(msg)
    cids = re.findall(r'<img src="cid:([^"]+)"', html)
    assert len(cids) == 4 and set(cids) == set(images)
    for data in images.values():
        width, height, _, _ = decode_png(data)
        assert width > 500 and height > 150
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    assert related.get_param("type") == "multipart/alternative"

    # CSV: attached, parseable, the same figures.
    (attachment,) = [p for p in msg.iter_attachments() if p.get_content_type() == "text/csv"]
    assert attachment.get_filename() == "maildesk-report-2026-W48.csv"
    rows = list(csv.DictReader(io.StringIO(attachment.get_payload(decode=True)
                                           .decode("utf-8-sig"))))
    by_key = {r["key"] or r["group"]: r for r in rows}
    assert by_key["total"]["tickets"] == "4" and by_key["total"]["resolved"] == "1"
    assert by_key["line1"]["tickets"] == "3" and by_key["line2"]["tickets"] == "1"
    assert by_key["total"]["since"].startswith("2026-11-23T00:00:00+03:00")


def test_the_report_mail_renders_with_its_charts_in_chromium(make_desk, browser,  # noqa: F811
                                                           tmp_path):
    """As a mail client shows it: the related parts in place of their cid: references."""
    desk = make_desk(msk(2026, 11, 23, 10, 0))
    a_week(desk)
    desk.at(msk(2026, 11, 30, 9, 0))
    assert sweep(desk) == 1
    (msg,) = reports(desk)
    html = html_of(msg)
    for cid, data in related_images(msg).items():
        html = html.replace(f"cid:{cid}",
                            "data:image/png;base64," + base64.b64encode(data).decode())
    page_file = tmp_path / "report_mail.html"
    page_file.write_text(html, encoding="utf-8")
    w = Watched(browser, page_file)
    try:
        png = w.page.screenshot(full_page=True, type="png")
        for d in artefact_dirs(tmp_path):
            (d / "report_mail_full_page.png").write_bytes(png)
        image = decode_png(png)
        assert w.requests == [] and w.problems == []
        figures = w.page.locator("figure.chart")
        assert figures.count() == 4
        for i in range(4):
            img = figures.nth(i).locator("img")
            assert img.count() == 1
            assert img.evaluate("el => el.complete && el.naturalWidth > 0")
            box = img.evaluate("""el => { const r = el.getBoundingClientRect();
                return {x: r.left + window.scrollX, y: r.top + window.scrollY,
                        width: r.width, height: r.height}; }""")
            assert box["width"] > 200 and box["height"] > 100, box
            assert non_white_fraction(image, box) > 0.02
        assert "Line 2 / Вторая линия" in w.page.locator("body").inner_text()
    finally:
        w.close()


def test_mail_safe_html_takes_out_scripts_and_remote_resources():
    page = ('<html><head><meta http-equiv="Content-Security-Policy" content="x">'
            '<link rel="stylesheet" href="https://cdn.example/a.css">'
            '<style>@import url("https://cdn.example/b.css"); body{background:url(//x.example/'
            'p.png)}</style><script>alert(1)</script><script src="https://x.example/s.js">'
            '</script></head><body><img src="https://tracker.example/pixel.gif" alt="">'
            '<iframe src="https://x.example/"></iframe>'
            '<figure class="chart" id="chart-daily"><figcaption>Tickets per day</figcaption>'
            '<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0"/></svg></figure>'
            '<figure class="chart" id="chart-new"><figcaption>New</figcaption><svg></svg>'
            '</figure><a href="https://support.example.com/faq">FAQ</a></body></html>')
    out = mail_safe_html(page, {"daily": InlineImage("c1@example.com", "d.png", b"")},
                         {"daily": 1120})
    assert "<script" not in out and "<svg" not in out and "<iframe" not in out
    assert "cdn.example" not in out and "tracker.example" not in out and "x.example" not in out
    assert '<img src="cid:c1@example.com" alt="Tickets per day" width="1120"' in out
    assert "not drawn in the mail" in out                       # a chart the mail cannot draw
    assert '<a href="https://support.example.com/faq">FAQ</a>' in out   # a link, not a resource
    assert "img-src cid: data:" in out


def test_report_mail_from_the_command_line(make_desk, cli):
    desk = make_desk(msk(2026, 11, 23, 10, 0))
    a_week(desk)
    desk.ctx.engine.dispose()
    proc = cli("report", "--mail", BOSS, "--since", "2026-11-23", "--until", "2026-11-29",
               "--by", "line")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().startswith(f"report queued to {BOSS} (outbox ")
    with desk.ctx.make_session() as s:
        (row,) = s.scalars(select(Outbox).where(Outbox.kind == "report_mail"))
    assert row.recipients == [BOSS] and row.ticket_id is None
    msg = email.message_from_bytes(row.data, policy=policy.default)
    assert msg["Subject"] == ("Example Support: KPI report 2026-11-23 00:00 – 2026-11-30 00:00, "
                              "4 tickets")
    assert len(related_images(msg)) == 4
    with desk.ctx.make_session() as s:              # not a scheduled one: nothing recorded
        assert list(s.scalars(select(ScheduledMail))) == []
    bad = cli("report", "--mail", "not-an-address")
    assert bad.returncode == 2 and b"not a mail address" in bad.stderr
