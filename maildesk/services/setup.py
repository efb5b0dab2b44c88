"""Setting a desk up: the example config set, the signing key, checking a config set."""

from __future__ import annotations

import ipaddress
import shutil
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from maildesk.config import ConfigError, Settings, load_settings
from maildesk.services.errors import Refused

SKELETON_PARTS = ("config", "templates")


def write_skeleton(target: Path, *, force: bool = False) -> int:
    """Copy the example config set and templates under `target`; return how many files.
    Refused at the first file that exists unless `force` (the files before it stay written)."""
    skeleton = Path(str(resources.files("maildesk") / "skeleton"))
    written = 0
    for part in SKELETON_PARTS:
        src_root = skeleton / part
        for src in sorted(src_root.rglob("*")):
            if src.is_dir() or "__pycache__" in src.parts:
                continue
            dest = target / part / src.relative_to(src_root)
            if dest.exists() and not force:
                raise Refused(f"{dest} exists; use --force to overwrite")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            written += 1
    return written


@dataclass(frozen=True)
class InitResult:
    target: Path
    written: int
    key_file: Path | None = None
    key_error: ConfigError | None = None  # why no signing key was made (the copy still stands)

    @property
    def config_path(self) -> Path:
        return self.target / "config" / "maildesk.yaml"


def init_desk(target: Path, *, force: bool = False) -> InitResult:
    """`init`: the example config set under `target`, and its signing key made now rather
    than by the first command."""
    written = write_skeleton(target, force=force)
    result = InitResult(target, written)
    try:
        return replace(result, key_file=signing_key_file(result.config_path))
    except ConfigError as exc:
        return replace(result, key_error=exc)


def signing_key_file(config_path: str | Path) -> Path:
    """The return-path signing key of a config set, made (mode 0600) if it is missing:
    loading the settings makes it. Raises ConfigError."""
    return load_settings(config_path).security.secret_file


@dataclass(frozen=True)
class KeyRotation:
    path: Path
    keys: int  # in the file, the new one first


def rotate_signing_key(config_path: str | Path) -> KeyRotation:
    """Sign with a new key from now on; older keys keep verifying what they signed.
    Raises ConfigError."""
    from maildesk.config.secrets import rotate_secret_file

    path = signing_key_file(config_path)
    return KeyRotation(path, rotate_secret_file(path))


@dataclass(frozen=True)
class ConfigCheck:
    """`errors` are file:line: key: problem lines (empty when the set is valid); `checked`
    names what was found valid; `warning` is a risky but valid setting."""

    errors: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    warning: str | None = None


def check_config(config_path: str | Path) -> ConfigCheck:
    """Validate every config file and the templates the rules name."""
    from maildesk.outbound.compose import Composer, sample_context
    from maildesk.rules.engine import iter_templates

    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        return ConfigCheck(errors=[str(problem) for problem in exc.problems])
    composer = Composer(settings.templates_dir)
    problems = composer.check(sample_context(settings),
                              tuple(name for _, name in iter_templates(settings.ruleset)))
    if not composer.languages:
        return ConfigCheck(errors=[f"{settings.templates_dir}: no templates (expected "
                                   "<lang>/autoreply.txt)"])
    if problems:
        return ConfigCheck(errors=[str(problem) for problem in problems])
    checked = [str(path) for path in (settings.config_path, settings.lines_path,
                                      settings.rules_path, settings.sla_path)]
    checked.append(f"{settings.templates_dir} ({', '.join(sorted(composer.languages))})")
    return ConfigCheck(checked=checked, warning=backscatter_warning(settings))


def backscatter_warning(settings: Settings) -> str | None:
    """A listener reachable from other hosts with a policy weaker than require-pass lets
    anyone make maildesk mail a forged From address (PRODUCT.md §8)."""
    smtp = settings.smtp
    policy = settings.authenticity.policy
    if not smtp.enabled or policy == "require-pass":
        return None
    try:
        loopback = ipaddress.ip_address(smtp.host).is_loopback
    except ValueError:
        loopback = smtp.host.lower() == "localhost"
    if loopback:
        return None
    return (f"{settings.config_path}: the SMTP listener binds {smtp.host}:{smtp.port}, not a "
            f"loopback address, and authenticity.policy is {policy}: forged senders get "
            "automatic mail (backscatter). Use policy: require-pass with trusted_relays and "
            "trusted_authserv_ids of the MTA in front, or own_check.")
