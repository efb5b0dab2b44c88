"""The knowledge-base loader: articles as files, every problem with file:line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from maildesk.kb.load import KbProblem, load_kb

ROOT = Path(__file__).resolve().parents[3]

GOOD = """---
title: Printer does not print
tags: [printer]
keywords: [printer, print queue]
related: [password-reset]
macro: |
  Hello {{ client_name }},

  please restart the printer ({{ tag }}, {{ ticket.priority }}).
commands: ["#pending", "#tag printer"]
---
Switch it **off** and on again.
"""

OTHER = """---
title: Password reset
---
Use "Forgot password?".
"""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


@pytest.fixture
def kbdir(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    write(root, "en/printer.md", GOOD)
    write(root, "en/password-reset.md", OTHER)
    return root


def only(problems: list[KbProblem]) -> KbProblem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_a_good_article_reads_with_its_lines(kbdir):
    kb, problems = load_kb(kbdir, "en")
    assert problems == []
    a = kb.get("printer", "en")
    assert a.title == "Printer does not print"
    assert a.tags == ("printer",) and a.keywords == ("printer", "print queue")
    assert a.related == ("password-reset",) and a.audience == "public" and a.public
    assert a.commands == ("#pending", "#tag printer")
    assert a.macro.startswith("Hello {{ client_name }},\n")
    assert a.macro_line == line_of(kbdir / "en/printer.md", "Hello {{")
    assert a.body == "Switch it **off** and on again.\n"
    assert a.body_line == line_of(kbdir / "en/printer.md", "Switch it")
    assert kb.get("password-reset").macro is None
    assert kb.macros() == ["printer"] and kb.languages() == ["en"] and len(kb) == 2


def test_the_example_set_loads_clean():
    kb, problems = load_kb(ROOT / "config" / "kb", "en")
    assert problems == []
    assert kb.languages() == ["en", "ru"]
    for slug in ("printer-not-printing", "password-reset", "cash-register-receipts"):
        for lang in ("en", "ru"):
            a = kb.articles[(slug, lang)]
            assert a.public and a.macro and a.keywords, (slug, lang)
    internal = [a for a in kb.articles.values() if not a.public]
    assert {a.slug for a in internal} == {"kkt-fiscal-drive"}
    assert kb.get("cash-register-receipts", "ru").title == "Касса не печатает чек"


def test_a_missing_directory_is_an_empty_kb(tmp_path):
    kb, problems = load_kb(tmp_path / "nowhere", "ru")
    assert (len(kb), problems, kb.default_language) == (0, [], "ru")


def test_unknown_key_wrong_type_and_bad_audience_name_their_lines(kbdir):
    path = write(kbdir, "en/bad.md", """---
title: Bad
audience: everyone
tags: printer
colour: red
---
Body.
""")
    _, problems = load_kb(kbdir, "en")
    got = {(p.key, p.line): p.message for p in problems}
    assert set(got) == {("audience", 3), ("tags", 4), ("colour", 5)}, got
    assert "expected one of 'public', 'internal', got 'everyone'" in got[("audience", 3)]
    assert "expected array" in got[("tags", 4)]
    assert got[("colour", 5)].startswith("unknown key; expected one of: title, tags")
    assert all(p.path == path for p in problems)
    assert str(problems[0]).startswith(f"{path}:")


def test_missing_title_and_empty_title(kbdir):
    path = write(kbdir, "en/untitled.md", "---\ntags: [x]\n---\nBody\n")
    p = only(load_kb(kbdir, "en")[1])
    assert (p.path, p.line, p.message) == (path, 2, "'title' is required")
    write(kbdir, "en/untitled.md", "---\ntitle: '  '\n---\nBody\n")
    p = only(load_kb(kbdir, "en")[1])
    assert (p.line, p.key, p.message) == (2, "title", "must not be empty")


def test_yaml_syntax_error_at_its_line_and_column(kbdir):
    path = write(kbdir, "en/broken.md", """---
title: Printer
keywords: [printer, paper
tags: [x]
---
Body.
""")
    p = only(load_kb(kbdir, "en")[1])
    assert p.path == path and p.message.startswith("YAML syntax:")
    assert p.line == 4 and p.column is not None
    assert str(p).startswith(f"{path}:4:{p.column}: YAML syntax:")

    write(kbdir, "en/broken.md", "---\ntitle: Printer: not printing\n---\nBody.\n")
    p = only(load_kb(kbdir, "en")[1])
    assert (p.line, p.column) == (2, 15), str(p)


def test_duplicate_key_and_missing_fences(kbdir):
    write(kbdir, "en/dup.md", "---\ntitle: A\ntags: [a]\ntitle: B\n---\n")
    p = only(load_kb(kbdir, "en")[1])
    assert (p.line, p.key, p.message) == (4, "title", "duplicate key")
    write(kbdir, "en/dup.md", "title: A\n\nBody\n")
    p = only(load_kb(kbdir, "en")[1])
    assert p.line == 1 and "no front matter" in p.message
    write(kbdir, "en/dup.md", "---\ntitle: A\nBody\n")
    p = only(load_kb(kbdir, "en")[1])
    assert p.line == 1 and "no closing `---`" in p.message


def test_front_matter_that_is_not_a_mapping(kbdir):
    write(kbdir, "en/list.md", "---\n- title: A\n---\n")
    p = only(load_kb(kbdir, "en")[1])
    assert p.line == 2 and "expected a mapping" in p.message


def test_slug_and_language_folder_names(kbdir):
    bad_slug = write(kbdir, "en/Printer_Setup.md", OTHER)
    bad_lang = kbdir / "EN"
    write(kbdir, "EN/x.md", OTHER)
    unknown = kbdir / "xx"
    write(kbdir, "xx/y.md", OTHER)
    stray = write(kbdir, "notes.md", OTHER)
    write(kbdir, "en/.hidden.md", "not read")
    not_md = write(kbdir, "en/picture.png", "")
    _, problems = load_kb(kbdir, "en")
    by_path = {p.path: p for p in problems}
    assert set(by_path) == {bad_slug, bad_lang, unknown, stray, not_md}, [str(p) for p in problems]
    assert by_path[bad_slug].line == 1 and "lower-case letters, digits and '-'" in \
        by_path[bad_slug].message
    assert "not a language code" in by_path[bad_lang].message
    assert "unknown language 'xx'" in by_path[unknown].message
    assert "language folder" in by_path[stray].message
    assert "not an article" in by_path[not_md].message


def test_slugs_that_differ_only_by_case_are_duplicates(kbdir):
    upper = write(kbdir, "en/Password-Reset.md", OTHER)
    _, problems = load_kb(kbdir, "en")
    dup = [p for p in problems if "duplicate slug" in p.message]
    assert len(dup) == 1 and dup[0].line == 1, [str(p) for p in problems]
    assert {dup[0].path} <= {upper, kbdir / "en/password-reset.md"}
    assert "password-reset" in dup[0].message
    # the same slug in two languages is a translation, not a duplicate
    write(kbdir, "ru/password-reset.md", OTHER)
    upper.unlink()
    assert load_kb(kbdir, "en")[1] == []


def test_related_must_name_an_existing_slug(kbdir):
    path = kbdir / "en/printer.md"
    path.write_text(GOOD.replace("related: [password-reset]",
                                 "related:\n  - password-reset\n  - paper-jam\n  - printer"),
                    encoding="utf-8")
    _, problems = load_kb(kbdir, "en")
    got = sorted((p.line, p.key, p.message) for p in problems)
    assert got == [
        (line_of(path, "- paper-jam"), "related[1]",
         "no article 'paper-jam' (no <lang>/paper-jam.md in the KB)"),
        (line_of(path, "- printer"), "related[2]", "an article is not related to itself"),
    ]


def test_related_may_name_a_slug_of_another_language(kbdir):
    write(kbdir, "ru/paper-jam.md", "---\ntitle: Замятие\n---\n")
    path = kbdir / "en/printer.md"
    path.write_text(GOOD.replace("[password-reset]", "[paper-jam]"), encoding="utf-8")
    assert load_kb(kbdir, "en")[1] == []


def test_macro_syntax_error_names_the_files_line(kbdir):
    path = kbdir / "en/printer.md"
    path.write_text(GOOD.replace("please restart the printer",
                                 "please {% if tag %}restart the printer"), encoding="utf-8")
    p = only(load_kb(kbdir, "en")[1])
    # Jinja2 notices the unclosed block at the end of the macro: its last line
    assert p.path == path and p.key == "macro" and "template syntax" in p.message
    assert p.line == line_of(path, "please {% if")
    assert "endif" in p.message

    path.write_text(GOOD.replace("{{ tag }}", "{{ tag }"), encoding="utf-8")
    p = only(load_kb(kbdir, "en")[1])
    assert p.line == line_of(path, "{{ tag }") and "template syntax" in p.message


def test_macro_variable_outside_the_documented_context(kbdir):
    path = kbdir / "en/printer.md"
    path.write_text(GOOD.replace("({{ tag }}, {{ ticket.priority }})",
                                 "({{ ticket.assignee }})\n\n  {{ signature }}"),
                    encoding="utf-8")
    _, problems = load_kb(kbdir, "en")
    got = sorted((p.line, p.message.split(" (")[0]) for p in problems)
    assert got == [(line_of(path, "ticket.assignee"), "unknown variable ticket.assignee"),
                   (line_of(path, "{{ signature }}"), "unknown variable 'signature'")]
    assert "ticket.number" in problems[0].message and "deadlines.resolution" in problems[0].message


def test_macro_may_use_every_documented_name_and_its_own_variables(kbdir):
    path = kbdir / "en/printer.md"
    macro = ("{{ ticket.number }} {{ ticket.subject }} {{ ticket.priority }} {{ ticket.line }} "
             "{{ ticket.status }} {{ tag }} {{ client_name }} {{ client_address }} "
             "{{ agent_name }} {{ instance }} {{ deadlines.first_response | datetime }} "
             "{{ deadlines['resolution'] | datetime }} {% set n = 3 %}{{ n }}"
             "{% for i in range(2) %}{{ i }}{% endfor %}")
    path.write_text(f"---\ntitle: All\nmacro: \"{macro}\"\n---\n", encoding="utf-8")
    assert load_kb(kbdir, "en")[1] == []


def test_macro_that_fails_with_sample_data(kbdir):
    path = kbdir / "en/printer.md"
    path.write_text(GOOD.replace("please restart", "{{ ticket.number + 'x' }} restart"),
                    encoding="utf-8")
    p = only(load_kb(kbdir, "en")[1])
    assert p.line == line_of(path, "ticket.number + 'x'")
    assert "does not render with sample data" in p.message
    path.write_text(GOOD.replace("{{ tag }}", "{{ tag | nosuchfilter }}"), encoding="utf-8")
    p = only(load_kb(kbdir, "en")[1])
    assert p.line == line_of(path, "nosuchfilter") and "nosuchfilter" in p.message


def test_commands_must_be_hash_word_and_arguments(kbdir):
    path = kbdir / "en/printer.md"
    path.write_text(GOOD.replace('commands: ["#pending", "#tag printer"]',
                                 'commands:\n  - "#pending"\n  - pending\n  - "# tag"'),
                    encoding="utf-8")
    _, problems = load_kb(kbdir, "en")
    got = sorted((p.line, p.key) for p in problems)
    assert got == [(line_of(path, "- pending"), "commands[1]"),
                   (line_of(path, '- "# tag"'), "commands[2]")]
    assert all("is not a command: #word" in p.message for p in problems)


def test_every_problem_of_every_file_is_reported_together(kbdir):
    write(kbdir, "en/a.md", "---\ntitle: A\nfoo: 1\n---\n")
    write(kbdir, "en/b.md", "---\ntitle: [\n---\n")
    write(kbdir, "ru/c.md", "---\ntitle: C\nrelated: [nothing]\n---\n")
    _, problems = load_kb(kbdir, "en")
    assert sorted(p.path.name for p in problems) == ["a.md", "b.md", "c.md"]
    assert all(p.line for p in problems)


def test_not_utf8(kbdir):
    path = kbdir / "ru" / "cp1251.md"
    path.parent.mkdir()
    path.write_bytes("---\ntitle: Принтер\n---\n".encode("cp1251"))
    p = only(load_kb(kbdir, "en")[1])
    assert p.path == path and "not UTF-8" in p.message


def test_the_schema_file_is_shipped_and_matches_the_loader():
    """config/schema/kb-article.schema.json is the one the loader uses (skeleton = config)."""
    import json

    schema = json.loads((ROOT / "config/schema/kb-article.schema.json").read_text())
    assert set(schema["properties"]) == {"title", "tags", "audience", "keywords", "related",
                                         "macro", "commands"}
    assert schema["required"] == ["title"]


def test_a_copied_example_set_with_a_broken_article(tmp_path):
    """What `maildesk check` sees: the whole example kb plus one broken file."""
    root = tmp_path / "kb"
    shutil.copytree(ROOT / "config" / "kb", root)
    path = root / "ru" / "printer-not-printing.md"
    text = path.read_text(encoding="utf-8").replace("{{ agent_name }}", "{{ agent }}")
    path.write_text(text, encoding="utf-8")
    p = only(load_kb(root, "en")[1])
    assert (p.path, p.line) == (path, line_of(path, "{{ agent }}"))
