"""How configuration mistakes are reported: every one of a run together, each at its
file:line:column, YAML syntax errors where the mistake is (not where PyYAML noticed it), and
what was expected in words ("a duration such as 30m, 4h, 2d"), never as a regular expression."""

from pathlib import Path

import pytest

from config_helpers import cfg, replace  # noqa: F401  (cfg: a fixture)
from maildesk.config import ConfigError, load_settings
from maildesk.durations import split_duration


def place_of(path: Path, needle: str, at: str | None = None) -> tuple[int, int]:
    """(line, column) of `at` (default: `needle`) on the first line holding `needle`."""
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return i, line.index(at or needle) + 1
    raise AssertionError(needle)


def problems_of(cfg: Path) -> list:
    with pytest.raises(ConfigError) as err:
        load_settings(cfg / "maildesk.yaml")
    return err.value.problems


# -- YAML syntax ------------------------------------------------------------------------------
def test_a_quote_left_open_is_reported_where_it_opens_not_where_the_next_quote_is(cfg):
    """PyYAML notices it 12 lines down in the example, at the next `"`: the value seems to run
    on to there. The report points at the opening quote, and says where it ran to."""
    main = cfg / "maildesk.yaml"
    replace(main, "  name: Example Support ", '  name: "Example Support ')
    (problem,) = problems_of(cfg)
    assert (problem.line, problem.column) == place_of(main, '"Example Support')
    ran_to, _ = place_of(main, 'header-less "Re:"')
    assert ran_to - problem.line == 12
    assert "a quoted value starts here" in problem.message
    assert f"runs on to line {ran_to}" in problem.message
    assert str(problem).startswith(
        f"{main.resolve()}:{problem.line}:{problem.column}: YAML syntax:")


def test_a_quote_never_closed_points_at_its_opening(cfg):
    sla = cfg / "sla.yaml"
    sla.write_text(sla.read_text(encoding="utf-8") + 'default_policy2: "standard\n',
                   encoding="utf-8")
    (problem,) = problems_of(cfg)
    assert (problem.line, problem.column) == place_of(sla, '"standard')
    assert "never closed" in problem.message


def test_a_bracket_left_open_is_reported_at_the_bracket(cfg):
    main = cfg / "maildesk.yaml"
    replace(main, "  tag: MD ", "  tag: [MD ")
    (problem,) = problems_of(cfg)
    assert (problem.line, problem.column) == place_of(main, "tag: [MD", "[")
    assert "YAML syntax" in problem.message


def test_a_key_without_its_colon_is_reported_at_the_key(cfg):
    main = cfg / "maildesk.yaml"
    replace(main, "  port: 2525", "  port 2525")
    (problem,) = problems_of(cfg)
    assert (problem.line, problem.column) == place_of(main, "  port 2525", "port")
    assert "could not find expected ':'" in problem.message


def test_a_tab_is_reported_at_the_tab_with_the_reason(cfg):
    main = cfg / "maildesk.yaml"
    replace(main, "  port: 2525", "  port: 2525\n\tmax_errors: 3")
    (problem,) = problems_of(cfg)
    assert (problem.line, problem.column) == place_of(main, "\tmax_errors", "\t")
    assert "spaces, not tabs" in problem.message


# -- what was expected, in words ---------------------------------------------------------------
def test_a_bad_duration_says_the_form_expected_not_the_regular_expression(cfg):
    main = cfg / "maildesk.yaml"
    replace(main, "interval: 30s", "interval: 30x")
    (problem,) = problems_of(cfg)
    assert problem.key == "timers.interval"
    assert problem.message == "expected a duration such as 30m, 4h, 2d, got '30x'"
    assert (problem.line, problem.column) == place_of(main, "interval: 30x", "30x")


def test_a_bad_duration_reads_the_same_in_every_file(cfg):
    replace(cfg / "lines.yaml", "ola: 4h", "ola: 4 hours")
    replace(cfg / "sla.yaml", "P1: {first_response: 1h,", "P1: {first_response: 1hour,")
    found = {p.key: p.message for p in problems_of(cfg)}
    assert found["lines[0].ola"] == "expected a duration such as 30m, 4h, 2d, got '4 hours'"
    assert found["policies.standard.targets.P1.first_response"] == (
        "expected a duration such as 30m, 4h, 2d, got '1hour'")
    assert not any("^" in message or "\\" in message for message in found.values())


def test_other_forms_are_said_in_words_too(cfg):
    main = cfg / "maildesk.yaml"
    replace(main, "  - support@example.com", "  - support")
    replace(main, 'at: "09:00"', 'at: "9 am"')
    found = {p.key: p.message for p in problems_of(cfg)}
    assert found["support_addresses[0]"] == (
        "expected an email address such as support@example.com, got 'support'")
    assert found["digests.at"].startswith('expected a time of day such as "09:00"')


def test_durations_parsed_in_code_say_the_form_too():
    with pytest.raises(ValueError, match="expected a duration such as 30m, 4h, 2d"):
        split_duration("soon")


# -- every problem of a run, each at its place ------------------------------------------------
def test_every_problem_of_every_file_comes_in_one_run_with_line_and_column(cfg):
    """A mistake in maildesk.yaml's schema no longer hides those of the files it names."""
    main, lines, sla = cfg / "maildesk.yaml", cfg / "lines.yaml", cfg / "sla.yaml"
    replace(main, "  port: 2525", "  port: twenty\n  prot: 25")
    replace(main, "interval: 30s", "interval: 30x")
    replace(lines, "next: line2", "next: line9")
    replace(sla, "default_policy: standard", "default_policy: gold")
    problems = problems_of(cfg)
    where = {(Path(p.file).name, p.key): (p.line, p.column) for p in problems}
    assert where == {
        ("maildesk.yaml", "smtp.port"): place_of(main, "port: twenty", "twenty"),
        ("maildesk.yaml", "smtp.prot"): place_of(main, "prot: 25", "prot"),    # the key
        ("maildesk.yaml", "timers.interval"): place_of(main, "interval: 30x", "30x"),
        ("lines.yaml", "lines[0].next"): place_of(lines, "next: line9", "line9"),
        ("sla.yaml", "default_policy"): place_of(sla, "default_policy: gold", "gold"),
    }
    for p in problems:
        assert str(p).startswith(f"{p.file}:{p.line}:{p.column}: {p.key}: ")
        assert "\n" not in str(p)


def test_a_duplicate_key_is_reported_at_the_second_one(cfg):
    main = cfg / "maildesk.yaml"
    replace(main, "language: en", "language: en\nlanguage: ru")
    (problem,) = problems_of(cfg)
    assert (problem.line, problem.column, problem.message) == (
        *place_of(main, "language: ru"), "duplicate key")


def test_a_missing_key_is_reported_at_its_section(cfg):
    main = cfg / "maildesk.yaml"
    replace(main, "  domain: example.com ", "  # no domain ")
    (problem,) = problems_of(cfg)
    assert problem.key == "instance"
    assert (problem.line, problem.column) == place_of(main, "instance:")
    assert problem.message == "'domain' is required"
