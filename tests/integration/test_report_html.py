"""The HTML format of `maildesk report` in a real browser (headless Debian Chromium driven by
Playwright): the page is self-contained (no request leaves the file), its charts are drawn, and
Russian labels render."""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import zlib
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import need_server

CHROMIUM = os.environ.get("MAILDESK_CHROMIUM", "/usr/bin/chromium")

GROUPS = [
    ("line1", "Line 1 / Первая линия"),
    ("line2", "Вторая линия (сложные вопросы)"),
    ("billing", "Бухгалтерия и счета"),
    ("vip", "VIP-клиенты"),
]
CHARTS = ["chart-first-response", "chart-backlog-age", "chart-daily", "chart-groups"]


# -- a realistic report ---------------------------------------------------------------------------
def kpi(rng: random.Random, tickets: int) -> dict:
    resolved = round(tickets * rng.uniform(0.6, 0.95))
    fcr = round(resolved * rng.uniform(0.4, 0.8))
    breached = round(tickets * rng.uniform(0.02, 0.2))
    reopened = round(resolved * rng.uniform(0.0, 0.12))
    ratings = round(resolved * rng.uniform(0.3, 0.6))
    dist = {str(s): 0 for s in range(1, 6)}
    for _ in range(ratings):
        dist[str(rng.choices(range(1, 6), weights=[1, 1, 2, 5, 9])[0])] += 1
    mean = sum(int(k) * v for k, v in dist.items()) / ratings if ratings else None
    med_b = rng.uniform(900, 14400)
    return {
        "tickets": tickets, "resolved": resolved, "resolved_share": resolved / tickets,
        "first_contact_resolved": fcr, "first_contact_resolution_rate": fcr / resolved,
        "first_response": {"count": tickets - 1, "mean_business_s": med_b * 1.6,
                           "median_business_s": med_b, "mean_calendar_s": med_b * 3.1,
                           "median_calendar_s": med_b * 1.4},
        "response": {"count": tickets * 2, "mean_business_s": med_b * 1.2,
                     "mean_calendar_s": med_b * 2.5},
        "handling": {"count": resolved, "mean_business_s": rng.uniform(20000, 90000),
                     "mean_calendar_s": rng.uniform(90000, 400000)},
        "breached": breached, "breached_share": breached / tickets,
        "overdue_now": rng.randint(0, 4), "backlog_now": tickets - resolved,
        "reopened": reopened, "reopen_rate": reopened / resolved,
        "csat": {"resolved": resolved, "ratings": ratings, "response_rate": ratings / resolved,
                 "mean": mean, "satisfied_share": (dist["4"] + dist["5"]) / ratings,
                 "distribution": dist},
    }


def realistic_report() -> dict:
    """60 days, four lines with Russian names, grouped by line."""
    rng = random.Random(20261201)
    start = date(2026, 10, 2)
    daily = []
    for i in range(60):
        day = start + timedelta(days=i)
        weekend = day.weekday() >= 5
        created = rng.randint(1, 5) if weekend else rng.randint(8, 24)
        daily.append({"date": day.isoformat(), "created": created,
                      "resolved": max(0, created + rng.randint(-5, 4)),
                      "breached": rng.randint(0, max(1, created // 5))})
    groups = [{"key": key, "label": label, "kpi": kpi(rng, rng.randint(40, 400))}
              for key, label in GROUPS]
    return {
        "format": "maildesk-report", "version": 1,
        "generated_at": "2026-12-01T07:00:00+00:00",
        "period": {"since": "2026-10-01T21:00:00+00:00", "until": "2026-12-01T00:00:00+03:00"},
        "timezone": "Europe/Moscow",
        "by": "line",
        "totals": kpi(rng, sum(g["kpi"]["tickets"] for g in groups)),
        "groups": groups,
        "daily": daily,
        "first_response_distribution": [
            {"label": label, "upper_s": upper, "business": rng.randint(5, 120),
             "calendar": rng.randint(5, 120)}
            for label, upper in [("< 15 min", 900), ("< 1 h", 3600), ("< 4 h", 14400),
                                 ("< 1 d", 86400), ("< 3 d", 259200), ("> 3 d", None)]],
        "backlog_by_age": [
            {"label": label, "upper_s": upper, "count": rng.randint(0, 40)}
            for label, upper in [("< 1 d", 86400), ("< 3 d", 259200), ("< 7 d", 604800),
                                 ("< 30 d", 2592000), ("> 30 d", None)]],
    }


# -- the browser ---------------------------------------------------------------------------------
def artefact_dirs(tmp_path: Path) -> list[Path]:
    """Where the screenshot goes: always tmp_path, and MAILDESK_TEST_ARTIFACTS when set."""
    dirs = [tmp_path]
    extra = os.environ.get("MAILDESK_TEST_ARTIFACTS")
    if extra:
        dirs.append(Path(extra))
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium under Playwright (browsers come from Debian, not `playwright
    install`); it resolves no host name, so even a request that slipped past the route below
    could not leave the machine."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        need_server("chromium (Python package playwright missing)")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        need_server(f"chromium ({CHROMIUM} missing)")
    with sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--host-resolver-rules=MAP * ~NOTFOUND", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-domain-reliability"])
        except PlaywrightError as exc:  # a broken or incompatible install
            need_server(f"chromium ({exc})")
        yield b
        b.close()


def decode_png(png: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, raw pixel rows) of an 8-bit RGB/RGBA PNG; Pillow when it is
    installed, else zlib and the PNG filters by hand."""
    try:
        from PIL import Image
    except ImportError:
        pass
    else:
        img = Image.open(io.BytesIO(png)).convert("RGB")
        return img.width, img.height, 3, img.tobytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunk = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and not interlace, header
    ch = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * ch
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], prev[i - ch] if i >= ch else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return width, height, ch, bytes(out)


def non_white_fraction(image: tuple[int, int, int, bytes], box: dict) -> float:
    """Share of pixels inside `box` (CSS px == image px at scale 1) that are not white."""
    width, height, ch, data = image
    left, top = max(0, int(box["x"])), max(0, int(box["y"]))
    right = min(width, int(box["x"] + box["width"]))
    bottom = min(height, int(box["y"] + box["height"]))
    pixels = white = 0
    for y in range(top, bottom):
        row = data[(y * width + left) * ch:(y * width + right) * ch]
        for i in range(0, len(row), ch):
            pixels += 1
            white += row[i] > 245 and row[i + 1] > 245 and row[i + 2] > 245
    return (pixels - white) / pixels if pixels else 0.0


class Watched:
    """A page opened from a file with every request but the page's own file recorded and
    aborted (a route on the whole context for `**/*`, and the `request` event as a second net),
    and console errors (a Content-Security-Policy violation is one) and page errors recorded."""

    def __init__(self, browser, path: Path):
        self.own_url = path.as_uri()
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.context = browser.new_context(viewport={"width": 1366, "height": 768},
                                           device_scale_factor=1, service_workers="block")
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", self._request)
        self.page.on("console", lambda m: m.type == "error"
                     and self.problems.append(f"console {m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.goto(self.own_url, wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def _route(self, route) -> None:
        if route.request.url == self.own_url:
            route.continue_()
        else:
            self.requests.append(f"routed {route.request.resource_type} {route.request.url}")
            route.abort("blockedbyclient")

    def _request(self, request) -> None:
        if request.url != self.own_url:
            entry = f"seen {request.resource_type} {request.url}"
            if entry.replace("seen", "routed", 1) not in self.requests:
                self.requests.append(entry)

    def close(self) -> None:
        self.context.close()


def test_leak_watch_catches_requests(browser, tmp_path: Path) -> None:
    """The watch itself works: an external stylesheet and image are recorded (and blocked: the
    route aborts them, and they point at a loopback port anyway), and with the report's CSP in
    place the attempt is still recorded and also shows up as a console error."""
    from maildesk.report.html import CSP

    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><html><head><meta charset="utf-8">'
                     '<link rel="stylesheet" href="http://127.0.0.1:9/a.css"></head>'
                     '<body><img src="http://127.0.0.1:9/pixel.png" alt=""></body></html>')
    w = Watched(browser, leaky)
    try:
        assert any("127.0.0.1:9/a.css" in r for r in w.requests), w.requests
        assert any("127.0.0.1:9/pixel.png" in r for r in w.requests), w.requests
    finally:
        w.close()

    fenced = tmp_path / "fenced.html"
    fenced.write_text('<!DOCTYPE html><html><head><meta charset="utf-8">'
                      f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
                      '</head><body><img src="http://127.0.0.1:9/x.png" alt=""></body></html>')
    w = Watched(browser, fenced)
    try:
        # Chromium still announces the attempt; the CSP stops it before the network (no route).
        assert w.requests == ["seen image http://127.0.0.1:9/x.png"], w.requests
        assert any("Content Security Policy" in p for p in w.problems), w.problems
    finally:
        w.close()


def test_html_report_in_browser(browser, tmp_path: Path) -> None:
    """A manager opens the HTML report from a mail attachment: nothing is fetched from anywhere,
    the four charts are drawn, and the Russian line names are legible."""
    from maildesk.report.html import to_html

    page_file = tmp_path / "report.html"
    page_file.write_text(to_html(realistic_report()), encoding="utf-8")
    w = Watched(browser, page_file)
    page = w.page
    try:
        png = page.screenshot(full_page=True, type="png")
        image = decode_png(png)
        shots = []
        for d in artefact_dirs(tmp_path):
            shot = d / "report_html_full_page.png"
            shot.write_bytes(png)
            shots.append(str(shot))
        print("\nscreenshot:", *shots)

        # (a) self-contained: no request but the page's own file, no console error
        assert w.requests == []
        assert w.problems == []

        # (b) charts drawn: on screen, many paths, ink inside their boxes in the screenshot
        for chart_id in CHARTS:
            svg = page.locator(f"figure.chart#{chart_id} svg")
            assert svg.count() == 1, chart_id
            box = svg.evaluate("""el => { const r = el.getBoundingClientRect();
                return {x: r.left + window.scrollX, y: r.top + window.scrollY,
                        width: r.width, height: r.height}; }""")
            assert box["width"] > 200 and box["height"] > 100, (chart_id, box)
            paths = svg.locator("path").count()
            assert paths > 30, (chart_id, paths)
            ink = non_white_fraction(image, box)
            assert ink > 0.02, (chart_id, ink)
            assert page.locator(f"figure.chart#{chart_id} figcaption").inner_text().strip()

        # Nothing wider than the laptop screen: no horizontal scrolling.
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        assert page.locator(".table-wrap").evaluate("el => el.scrollWidth <= el.clientWidth")

        # (c) Russian labels are in the page's text
        text = page.locator("body").inner_text()
        for _, label in GROUPS:
            assert label in text
        assert "maildesk — KPI report" in text
        assert "Comparison by line" in text
        assert "2026-10-02 00:00 – 2026-12-01 00:00 (Europe/Moscow)" in text
    finally:
        w.close()


def test_empty_html_report_in_browser(browser, tmp_path: Path) -> None:
    """A report for a month without tickets opens cleanly too: 'no data' charts, no requests,
    no errors, no comparison section."""
    from maildesk.report.html import to_html

    empty_kpi = {"tickets": 0, "resolved": 0, "resolved_share": None, "breached": 0,
                 "first_response": {"count": 0, "median_business_s": None}, "csat": None}
    page_file = tmp_path / "empty.html"
    page_file.write_text(to_html({
        "format": "maildesk-report", "version": 1, "generated_at": "2026-12-01T10:00:00+03:00",
        "period": {"since": "2026-11-01T00:00:00+03:00", "until": "2026-12-01T00:00:00+03:00"},
        "timezone": "Europe/Moscow", "by": None, "totals": empty_kpi, "groups": [],
        "daily": [], "first_response_distribution": [], "backlog_by_age": []}), encoding="utf-8")
    w = Watched(browser, page_file)
    try:
        png = w.page.screenshot(full_page=True, type="png")
        for d in artefact_dirs(tmp_path):
            (d / "report_html_empty.png").write_bytes(png)
        assert w.requests == [] and w.problems == []
        assert w.page.locator("figure.chart svg").count() == 3
        assert w.page.locator("#comparison").count() == 0
        for chart_id in CHARTS[:3]:
            box = w.page.locator(f"#{chart_id} svg").bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100
    finally:
        w.close()


def compared_report() -> dict:
    """realistic_report() with SLA-met shares and the previous period's figures (issue 20)."""
    from maildesk.report.display import kpi_change

    r = realistic_report()
    rng = random.Random(48)

    def with_sla(k: dict) -> dict:
        for kind in ("first_response", "resolution"):
            count = k["tickets"] - 2
            met = round(count * rng.uniform(0.7, 0.99))
            k.setdefault("sla_met", {})[kind] = {"count": count, "met": met, "late": count - met,
                                                 "overdue": 0, "share": round(met / count, 4)}
        return k

    for g in r["groups"]:
        with_sla(g["kpi"])
    with_sla(r["totals"])
    previous = [{"key": g["key"], "label": g["label"],
                 "kpi": with_sla(kpi(rng, max(2, g["kpi"]["tickets"] + rng.randint(-30, 30))))}
                for g in r["groups"]]
    totals = with_sla(kpi(rng, sum(g["kpi"]["tickets"] for g in previous)))
    r["previous"] = {"period": {"since": "2026-08-02T21:00:00+00:00",
                                "until": "2026-10-01T21:00:00+00:00"},
                     "totals": totals, "groups": previous}
    r["changes"] = {"totals": kpi_change(r["totals"], totals),
                    "groups": [{"key": g["key"], "label": g["label"],
                                "change": kpi_change(g["kpi"], p["kpi"])}
                               for g, p in zip(r["groups"], previous)]}
    return r


def test_html_report_with_the_comparison_in_browser(browser, tmp_path: Path) -> None:
    """With the previous period's changes under every figure the page still fits a laptop
    screen, and each change says by its colour whether it is better or worse."""
    from maildesk.report.html import to_html

    page_file = tmp_path / "compared.html"
    page_file.write_text(to_html(compared_report()), encoding="utf-8")
    w = Watched(browser, page_file)
    page = w.page
    try:
        png = page.screenshot(full_page=True, type="png")
        for d in artefact_dirs(tmp_path):
            (d / "report_html_compared.png").write_bytes(png)
        assert w.requests == [] and w.problems == []
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        assert page.locator(".table-wrap").first.evaluate(
            "el => el.scrollWidth <= el.clientWidth")
        text = page.locator("body").inner_text()
        assert "Compared with" in text and "2026-08-03 00:00 – 2026-10-02 00:00" in text
        colours = {tone: page.locator(f".card .chg.{tone}").first.evaluate(
            "el => getComputedStyle(el).color") for tone in ("better", "worse")}
        assert colours["better"] != colours["worse"]
        assert page.locator("#comparison td .chg").count() >= 5 * 10
    finally:
        w.close()
