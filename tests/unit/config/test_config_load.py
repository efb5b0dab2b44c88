"""Config files: validated on load, errors name file, line and key."""

from pathlib import Path

import pytest

from config_helpers import cfg, replace  # noqa: F401  (cfg: a fixture)
from maildesk.config import ConfigError, load_settings
from maildesk.config.model import parse_duration, resolve_database_url

ROOT = Path(__file__).resolve().parents[3]


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_example_config_loads(cfg):
    s = load_settings(cfg / "maildesk.yaml")
    assert s.support_addresses == ("support@example.com",)
    assert s.database.url == f"sqlite:///{(cfg.parent / 'var' / 'maildesk.db').resolve()}"
    assert [line.id for line in s.lines] == ["line1", "line2", "line3", "vendor"]
    assert "alice@example.com" in s.agent_addresses()


def test_wrong_type_names_file_line_and_key(cfg):
    path = cfg / "maildesk.yaml"
    replace(path, "port: 2525", "port: twenty")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    (problem,) = err.value.problems
    assert problem.file == str(path.resolve())
    assert problem.line == line_of(path, "port: twenty")
    assert problem.key == "smtp.port"
    assert "expected integer" in problem.message
    assert problem.column == len("  port: ") + 1      # the value's column
    assert str(problem).startswith(f"{path.resolve()}:{problem.line}:{problem.column}: smtp.port:")


def test_unknown_key_is_reported_at_its_line(cfg):
    path = cfg / "maildesk.yaml"
    replace(path, "  port: 2525", "  port: 2525\n  prot: 25")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    (problem,) = err.value.problems
    assert (problem.key, problem.line) == ("smtp.prot", line_of(path, "prot: 25"))
    assert problem.message.startswith("unknown key; expected one of: enabled, host, port")


def test_errors_in_other_files_are_reported_together(cfg):
    replace(cfg / "lines.yaml", "next: line2", "next: line9")
    replace(cfg / "rules.yaml", "priority: P1", "priority: urgent")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg / "maildesk.yaml")
    found = {(Path(p.file).name, p.key) for p in err.value.problems}
    assert ("lines.yaml", "lines[0].next") in found
    assert ("rules.yaml", "rules[0].set.priority") in found


def test_a_lines_sla_policy_must_exist_and_routes_its_tickets(cfg):
    replace(cfg / "lines.yaml", "    agents: [engineer@vendor.example]",
            "    agents: [engineer@vendor.example]\n    sla_policy: vendor-contract")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg / "maildesk.yaml")
    (problem,) = err.value.problems
    assert (Path(problem.file).name, problem.key) == ("lines.yaml", "lines[3].sla_policy")
    assert "unknown SLA policy 'vendor-contract'" in problem.message
    replace(cfg / "lines.yaml", "sla_policy: vendor-contract", "sla_policy: incidents")
    settings = load_settings(cfg / "maildesk.yaml")
    from maildesk.rules.engine import Routing
    from maildesk.pipeline.routing import with_line_policy
    assert with_line_policy(Routing(line="vendor"), settings).sla_policy == "incidents"
    assert with_line_policy(Routing(line="vendor", sla_policy="standard"),
                            settings).sla_policy == "standard"          # a rule's choice wins


def test_yaml_syntax_error_has_a_line(cfg):
    path = cfg / "sla.yaml"
    replace(path, "calendars:", "calendars: [")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg / "maildesk.yaml")
    assert err.value.problems[0].line is not None
    assert "YAML syntax" in err.value.problems[0].message


def test_duplicate_key_is_an_error(cfg):
    path = cfg / "maildesk.yaml"
    replace(path, "language: en", "language: en\nlanguage: ru")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.problems[0].message == "duplicate key"
    assert err.value.problems[0].line == line_of(path, "language: ru")


def test_secrets_come_from_env_or_file_never_inline(cfg, monkeypatch, tmp_path):
    path = cfg / "maildesk.yaml"
    replace(path, "  transport: maildir",
            "  transport: smtp\n  smtp:\n    host: 127.0.0.1\n    username: md\n"
            "    password: {env: MD_TEST_SMTP_PASSWORD}")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "MD_TEST_SMTP_PASSWORD is not set" in str(err.value)
    monkeypatch.setenv("MD_TEST_SMTP_PASSWORD", "s3cret")
    assert load_settings(path).outbound.smtp.password == "s3cret"
    (tmp_path / "pw").write_text("from-file\n")
    replace(path, "{env: MD_TEST_SMTP_PASSWORD}", f"{{file: {tmp_path / 'pw'}}}")
    assert load_settings(path).outbound.smtp.password == "from-file"
    replace(path, f"{{file: {tmp_path / 'pw'}}}", "plaintext")
    with pytest.raises(ConfigError):
        load_settings(path)


def test_durations_and_database_urls():
    assert parse_duration("4h").total_seconds() == 4 * 3600
    assert parse_duration("1.5d").total_seconds() == 36 * 3600
    assert resolve_database_url("postgresql://u@127.0.0.1/db", Path("/x")) == \
        "postgresql+psycopg://u@127.0.0.1/db"
    assert resolve_database_url("sqlite:///rel/md.db", Path("/etc/md")) == "sqlite:////etc/md/rel/md.db"
    assert resolve_database_url("sqlite:////abs/md.db", Path("/etc/md")) == "sqlite:////abs/md.db"


def test_shipped_schemas_are_the_ones_in_config_schema():
    from maildesk.config.load import schema_dir
    assert schema_dir().resolve() == (ROOT / "config" / "schema").resolve()
    assert {p.name for p in (ROOT / "config" / "schema").glob("*.json")} == {
        "maildesk.schema.json", "lines.schema.json", "rules.schema.json", "sla.schema.json",
        "kb-article.schema.json"}


IMAP_ACCOUNT = """imap:
  accounts:
    - name: support
      host: imap.example.com
      username: support@example.com
      password: {env: MD_TEST_IMAP_PASSWORD}
      folders: [INBOX, {name: Updates, update_only: true}]
      after_store: move
      move_to: Processed
      quarantine_folder: Quarantine
      import_existing: since 2026-01-15
"""


def test_imap_account_is_read_with_its_defaults(cfg, monkeypatch):
    from datetime import date, timedelta
    path = cfg / "maildesk.yaml"
    replace(path, "imap:\n  accounts: []", IMAP_ACCOUNT.rstrip("\n"))
    monkeypatch.setenv("MD_TEST_IMAP_PASSWORD", "pw")
    (a,) = load_settings(path).imap_accounts
    assert (a.host, a.port, a.security, a.password) == ("imap.example.com", 993, "tls", "pw")
    assert [(f.name, f.update_only) for f in a.folders] == [("INBOX", False), ("Updates", True)]
    assert (a.after_store, a.move_to, a.quarantine_folder) == ("move", "Processed", "Quarantine")
    assert (a.import_existing, a.import_since) == ("since", date(2026, 1, 15))
    assert a.idle and a.poll_interval == timedelta(seconds=60)


@pytest.mark.parametrize("change, message", [
    ("      after_store: move\n      move_to: Processed\n", "after_store: move needs move_to"),
    ("      host: imap.example.com\n", "security none would send the password in clear"),
    ("      quarantine_folder: Quarantine\n", "also a watched folder"),
    ("      import_existing: since 2026-01-15\n", "import_existing"),
])
def test_imap_account_mistakes_are_named(cfg, monkeypatch, change, message):
    path = cfg / "maildesk.yaml"
    broken = {
        "      after_store: move\n      move_to: Processed\n": "      after_store: move\n",
        "      host: imap.example.com\n": "      host: imap.example.com\n      security: none\n",
        "      quarantine_folder: Quarantine\n": "      quarantine_folder: Updates\n",
        "      import_existing: since 2026-01-15\n": "      import_existing: since Monday\n",
    }[change]
    replace(path, "imap:\n  accounts: []", IMAP_ACCOUNT.replace(change, broken).rstrip("\n"))
    monkeypatch.setenv("MD_TEST_IMAP_PASSWORD", "pw")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert message in str(err.value)
    assert "maildesk.yaml:" in str(err.value)


def test_outbox_lease_is_read_and_too_short_a_lease_is_refused(cfg):
    path = cfg / "maildesk.yaml"
    assert load_settings(path).outbound.lease.total_seconds() == 90
    replace(path, "lease: 90s", "lease: 2m")
    assert load_settings(path).outbound.lease.total_seconds() == 120
    replace(path, "lease: 2m", "lease: 1s")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    (problem,) = err.value.problems
    assert problem.key == "outbound.lease" and "at least 5s" in problem.message
    assert problem.line == line_of(path, "lease: 1s")
