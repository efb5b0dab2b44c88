"""winmail.dat (TNEF, Outlook's rich-text wrapper) -> the files and text it carries.

Pure. tnefparse is third-party code fed hostile bytes, so any failure means "cannot unpack",
and the caller keeps winmail.dat itself as the attachment.
"""

from __future__ import annotations

from dataclasses import dataclass

from tnefparse import TNEF

MAX_FILES = 200


@dataclass(frozen=True)
class TnefContent:
    files: tuple[tuple[str, bytes], ...]   # (filename as stored, data)
    text: str | None                       # plain body, if the TNEF carries one
    html: str | None                       # HTML body, if it carries one


def unpack_tnef(data: bytes) -> TnefContent | None:
    """The attachments and body inside a TNEF blob; None when it cannot be read."""
    try:
        tnef = TNEF(data, do_checksum=False)
        files: list[tuple[str, bytes]] = []
        for attachment in tnef.attachments[:MAX_FILES]:
            payload = attachment.data
            if not isinstance(payload, bytes) or not payload:
                continue
            try:
                name = attachment.long_filename()
            except Exception:  # a name in an undecodable codepage: the caller names it
                name = ""
            files.append((name if isinstance(name, str) else "", payload))
        codepage = tnef.codepage if isinstance(tnef.codepage, str) else "cp1252"
        text = _as_text(tnef.body, codepage)
        html = _as_text(tnef.htmlbody, codepage)
    except Exception:
        return None
    return TnefContent(tuple(files), text, html)


def _as_text(value: object, codepage: str) -> str | None:
    if isinstance(value, bytes):
        try:
            value = value.decode(codepage, "replace")
        except LookupError:
            value = value.decode("cp1252", "replace")
    if not isinstance(value, str):
        return None
    value = value.rstrip("\x00")
    return value if value.strip() else None
