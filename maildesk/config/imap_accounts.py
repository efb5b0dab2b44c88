"""The `imap.accounts` section of maildesk.yaml: the mailboxes the poller takes mail from."""

from __future__ import annotations

from datetime import date
from typing import Any

from maildesk.config.errors import ConfigProblem, gather_problems
from maildesk.config.load import KeyPath, LoadedYaml
from maildesk.config.settings import ImapAccount, ImapFolderSettings
from maildesk.config.values import read_secret, resolve_path
from maildesk.durations import parse_duration

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def imap_accounts(loaded: LoadedYaml, problems: list[ConfigProblem]) -> tuple[ImapAccount, ...]:
    """Every account; each mistake in each of them is added to `problems`."""
    out: list[ImapAccount] = []
    for i, raw in enumerate(loaded.data.get("imap", {}).get("accounts", [])):
        at = ("imap", "accounts", i)
        if any(x.name == raw["name"] for x in out):
            problems.append(loaded.problem((*at, "name"),
                                           f"duplicate account name {raw['name']!r}"))
        out.append(_account(loaded, at, raw, problems))
    return tuple(out)


def _account(loaded: LoadedYaml, at: KeyPath, a: dict[str, Any],
             problems: list[ConfigProblem]) -> ImapAccount:
    base = loaded.path.parent
    security = a.get("security", "tls")
    folders = _folders(a)
    problems.extend(_mistakes(loaded, at, a, folders))
    import_existing, import_since = _import_existing(loaded, at, a, problems)
    password = None
    if "password" in a:
        with gather_problems(problems):
            password = read_secret(a["password"], loaded, (*at, "password"))
    oauth = a.get("oauth2", {})
    token_file = resolve_path(base, oauth["token_file"]) if "token_file" in oauth else None
    return ImapAccount(
        name=a["name"], host=a["host"], username=a["username"],
        port=a.get("port", 993 if security == "tls" else 143), security=security,
        password=password,
        oauth2_token_file=token_file,
        oauth2_token_command=oauth.get("token_command"),
        ca_file=resolve_path(base, a["ca_file"]) if "ca_file" in a else None,
        folders=folders, after_store=a.get("after_store", "seen"), move_to=a.get("move_to"),
        quarantine_folder=a.get("quarantine_folder"), import_existing=import_existing,
        import_since=import_since, idle=a.get("idle", True),
        poll_interval=parse_duration(a.get("poll_interval", "60s")),
        batch_size=a.get("batch_size", 100), enabled=a.get("enabled", True))


def _folders(a: dict[str, Any]) -> tuple[ImapFolderSettings, ...]:
    """Folders written as a bare name or as {name, update_only}."""
    return tuple(ImapFolderSettings(f) if isinstance(f, str)
                 else ImapFolderSettings(f["name"], f.get("update_only", False))
                 for f in a.get("folders", ["INBOX"]))


def _mistakes(loaded: LoadedYaml, at: KeyPath, a: dict[str, Any],
              folders: tuple[ImapFolderSettings, ...]) -> list[ConfigProblem]:
    """Settings that fit the schema but not each other."""
    problems = []
    if a.get("security", "tls") == "none" and a["host"].lower() not in _LOOPBACK:
        problems.append(loaded.problem((*at, "security"), "security none would send the "
                                       "password in clear: allowed only for a loopback host; "
                                       "use tls or starttls"))
    if a.get("after_store", "seen") == "move" and not a.get("move_to"):
        problems.append(loaded.problem((*at, "after_store"), "after_store: move needs move_to"))
    names = [f.name for f in folders]
    for special in ("move_to", "quarantine_folder"):
        if a.get(special) in names:
            problems.append(loaded.problem((*at, special), f"{a[special]!r} is also a watched "
                                           "folder: mail would go round in circles"))
    return problems


def _import_existing(loaded: LoadedYaml, at: KeyPath, a: dict[str, Any],
                     problems: list[ConfigProblem]) -> tuple[str, date | None]:
    """`none`, `all` or `since YYYY-MM-DD` as the mode and the date."""
    mode, _, since = a.get("import_existing", "none").partition(" ")
    try:
        return mode, date.fromisoformat(since) if since else None
    except ValueError:
        problems.append(loaded.problem((*at, "import_existing"), f"not a date: {since!r}"))
        return mode, None
