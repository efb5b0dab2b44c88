"""Values that several sections of the configuration share: paths, secrets, networks, URLs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from maildesk.config.errors import ConfigError, ConfigProblem
from maildesk.config.load import KeyPath, LoadedYaml
from maildesk.netaddr import IpNetwork, parse_network


def resolve_path(base: Path, value: str) -> Path:
    """`~` expanded; a relative path is relative to `base` (the directory of the file)."""
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p).resolve()


def read_secret(spec: dict[str, str], loaded: LoadedYaml, key_path: KeyPath) -> str:
    """Read a secret named by {env: NAME} or {file: PATH}; never from the YAML itself."""
    if "env" in spec:
        value = os.environ.get(spec["env"])
        if value is None:
            raise ConfigError([loaded.problem(
                key_path, f"environment variable {spec['env']} is not set")])
        return value
    path = resolve_path(loaded.path.parent, spec["file"])
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([loaded.problem(
            key_path, f"cannot read secret file {path}: {exc.strerror}")]) from None


def resolve_database_url(url: str, base: Path) -> str:
    """Relative SQLite paths are relative to the config file's directory; plain postgresql://
    URLs use psycopg 3, the driver maildesk installs."""
    m = re.match(r"^sqlite(\+\w+)?:///(.*)$", url)
    if m and m.group(2) and m.group(2) != ":memory:" and not m.group(2).startswith("/"):
        return f"sqlite{m.group(1) or ''}:///{resolve_path(base, m.group(2))}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def parse_networks(loaded: LoadedYaml, key: KeyPath, values: list[object],
                   problems: list[ConfigProblem]) -> list[IpNetwork]:
    """IPs and CIDR networks of a list in the YAML; each bad one is a problem at its line."""
    out = []
    for i, text in enumerate(values):
        network = parse_network(text)
        if network is None:
            problems.append(loaded.problem((*key, i), f"{text!r} is not an IP address or CIDR "
                                           "network (e.g. 192.0.2.10 or 2001:db8::/64)"))
        else:
            out.append(network)
    return out
