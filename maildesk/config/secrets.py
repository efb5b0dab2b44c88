"""The signing secret file: created once with mode 0600, read at load, rotated by prepending.

One key a line (URL-safe base64 of 32 random bytes); the first line signs, every line
verifies, so a rotated-out key keeps the return paths it signed valid until they expire.
Lines starting with `#` are comments. The keys never appear in YAML, logs or reprs.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from maildesk.addresses import SigningKeys
from maildesk.config.errors import ConfigError, ConfigProblem

KEY_BYTES = 32
_HEADER = ("# maildesk signing keys: the first line signs return paths, every line verifies.\n"
           "# `maildesk keys rotate` adds a new first line; delete a line once its tags have\n"
           "# expired (outbound bounce_tag_validity). Keep this file secret (mode 0600).\n")


def _new_key_line() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def _problem(path: Path, message: str) -> ConfigError:
    return ConfigError([ConfigProblem(str(path), 0, "security.secret_file", message)])


def create_secret_file(path: Path) -> bool:
    """Write a new key file unless one exists; True when it was created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(_HEADER + _new_key_line() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return True


def load_signing_keys(path: Path, *, create: bool = True) -> SigningKeys:
    """The keys in `path`; the file is made first when missing and `create` is set."""
    try:
        if create:
            create_secret_file(path)
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise _problem(path, f"cannot read or create the signing key file: "
                             f"{exc.strerror if isinstance(exc, OSError) else exc}") from None
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.urlsafe_b64decode(line.encode("ascii"))
        except ValueError:
            key = b""
        if len(key) < 16:
            raise _problem(path, f"line {n} is not a key (base64 of at least 16 bytes)")
        keys.append(key)
    if not keys:
        raise _problem(path, "holds no key")
    return SigningKeys(tuple(keys))


def rotate_secret_file(path: Path) -> int:
    """Put a new signing key first; the older ones keep verifying. Returns how many there are."""
    old = load_signing_keys(path)
    lines = [_new_key_line(), *(base64.urlsafe_b64encode(k).decode("ascii") for k in old.keys)]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(_HEADER + "\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(lines)
