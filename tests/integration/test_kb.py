"""The knowledge base as an admin and a client meet it: `maildesk init` writes the example set,
`maildesk check` reports a broken article at file:line, the kb commands, and the static site
`maildesk kb build` writes, opened page by page in headless Chromium: every page loads without
a request leaving file://, every link leads to a file of the site, the search box works."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from test_report_html import Watched, artefact_dirs, browser  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).parent / "maildesk")


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """The repository's example config set (no database needed by these commands)."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return tmp_path / "config" / "maildesk.yaml"


def run(conf: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "--config", str(conf), *args], capture_output=True, text=True,
                          timeout=120)


def test_init_writes_the_example_kb(tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([EXE, "init", str(target)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    kb = target / "config" / "kb"
    for slug in ("printer-not-printing", "password-reset", "cash-register-receipts",
                 "kkt-fiscal-drive"):
        for lang in ("en", "ru"):
            assert (kb / lang / f"{slug}.md").read_bytes() == \
                (ROOT / "config" / "kb" / lang / f"{slug}.md").read_bytes()
    assert (target / "config" / "schema" / "kb-article.schema.json").is_file()
    conf = target / "config" / "maildesk.yaml"
    assert run(conf, "check").returncode == 0
    assert "Касса не печатает чек" in run(conf, "kb", "list", "--lang", "ru").stdout


def test_check_passes_on_the_example_and_reports_a_broken_article(conf):
    proc = run(conf, "check")
    assert proc.returncode == 0, proc.stderr
    article = conf.parent / "kb" / "ru" / "password-reset.md"
    text = article.read_text(encoding="utf-8")
    text = text.replace("tags: [account]", "tags: [account]\naudience: clients")
    text = text.replace("{{ client_address }}", "{{ client.address }}")
    article.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    audience = lines.index("audience: clients") + 1
    macro = next(i for i, l in enumerate(lines, 1) if "client.address" in l)
    (conf.parent / "kb" / "ru" / "Printer.md").write_text("---\ntitle: x\n---\n")
    proc = run(conf, "check")
    assert proc.returncode == 1
    err = proc.stderr
    assert f"{article}:{audience}: audience: expected one of 'public', 'internal', " \
           f"got 'clients'" in err, err
    assert f"{article}:{macro}: macro: unknown variable 'client'" in err, err
    assert f"{conf.parent / 'kb' / 'ru' / 'Printer.md'}:1: file name 'Printer.md'" in err, err
    # the daemon's other commands refuse the broken set too (a reload would keep the old one)
    assert run(conf, "kb", "list").returncode == 1


def test_a_missing_kb_folder_is_an_empty_kb(conf):
    shutil.rmtree(conf.parent / "kb")
    assert run(conf, "check").returncode == 0
    proc = run(conf, "kb", "list")
    assert proc.returncode == 0 and "empty" in proc.stdout


def test_kb_list_show_search(conf):
    listed = json.loads(run(conf, "kb", "list", "--json").stdout)
    assert len(listed) == 8
    assert {r["audience"] for r in listed if r["slug"] == "kkt-fiscal-drive"} == {"internal"}
    out = run(conf, "kb", "list", "--lang", "ru").stdout
    assert out.count("\n") == 4 and "ru    password-reset" in out

    shown = run(conf, "kb", "show", "cash-register-receipts", "--lang", "ru").stdout
    assert shown.startswith("Касса не печатает чек\n") and "--- macro ---" in shown
    assert "commands: #pending, #tag kkt" in shown
    assert run(conf, "kb", "show", "cash-register-receipts").stdout.startswith(
        "The cash register does not print receipts")      # maildesk.yaml's language: en
    missing = run(conf, "kb", "show", "nope")
    assert missing.returncode == 1 and "no article 'nope'" in missing.stderr

    hits = json.loads(run(conf, "kb", "search", "принтеры", "не", "печатают", "--json").stdout)
    assert hits[0]["slug"] == "printer-not-printing" and hits[0]["language"] == "ru"
    assert set(hits[0]) == {"slug", "language", "title", "score", "snippet", "audience"}
    assert 0 < hits[0]["score"] < 1
    text = run(conf, "kb", "search", "password", "--lang", "en").stdout
    assert text.splitlines()[0].endswith("en/password-reset  Resetting your password")
    assert run(conf, "kb", "search", "x", "--lang", "zz").returncode == 2


def site_files(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*") if p.is_file()}


def test_built_site_in_browser(browser, conf, tmp_path):  # noqa: F811
    out = tmp_path / "faq"
    proc = run(conf, "kb", "build", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "for 6 public articles (en, ru)" in proc.stdout
    files = site_files(out)
    pages = sorted(p for p in files if p.suffix == ".html")
    assert len(pages) == len(files) == 17
    assert not any("kkt-fiscal-drive" in p.read_text(encoding="utf-8") for p in pages)

    linked: set[Path] = set()
    for page in pages:
        w = Watched(browser, page)
        try:
            assert w.requests == [], (page, w.requests)
            assert w.problems == [], (page, w.problems)
            assert w.page.locator("h1").count() == 1, page
            hrefs = w.page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
            raw = w.page.eval_on_selector_all("a[href]",
                                              "els => els.map(a => a.getAttribute('href'))")
            assert hrefs, page
            for href, written in zip(hrefs, raw):
                assert not urlsplit(written).scheme and not written.startswith("/"), \
                    (page, written)                          # relative links only
                url = urlsplit(href)
                assert url.scheme == "file", (page, href)
                target = Path(unquote(url.path)).resolve()
                assert target in files, (page, written, target)
                linked.add(target)
        finally:
            w.close()
    assert linked == set(pages)              # every page is reachable from another

    # The search box of the Russian index finds the printer article by another word form.
    w = Watched(browser, out / "ru" / "index.html")
    try:
        page = w.page
        assert page.locator("#kb-search").is_visible()
        page.fill("#kb-q", "принтеры")
        results = page.locator("#kb-results a")
        assert results.count() >= 1
        assert results.first.get_attribute("href") == "printer-not-printing.html"
        assert page.locator("#kb-all").is_hidden()
        page.fill("#kb-q", "чековая лента")
        assert page.locator("#kb-results a").first.inner_text() == "Касса не печатает чек"
        page.fill("#kb-q", "zzzz")
        assert page.locator("#kb-none").is_visible() and page.locator("#kb-results").is_hidden()
        page.fill("#kb-q", "")
        assert page.locator("#kb-all").is_visible()
        page.fill("#kb-q", "пароль")
        png = page.screenshot(full_page=True, type="png")
        for d in artefact_dirs(tmp_path):
            (d / "kb_site_search.png").write_bytes(png)
        assert w.requests == [] and w.problems == []
    finally:
        w.close()
