"""Where a MIME part's bytes lie in the raw message, found by its part path.

Pure. message/* parts (forwarded mails, delivery reports) are measured and hashed from the bytes
as received: re-generating them from the parsed tree is slower and not byte-exact. The splitting
follows the stdlib parser (a delimiter is a line `--boundary` with optional `--` and blanks; the
line break before it belongs to it), and the caller checks the part counts agree with the tree.
"""

from __future__ import annotations

import re
from email.message import Message

_EOL = re.compile(rb"\r\n|\r|\n")
_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(?:\r\n|\r|\n|$)")
_BLANK_LINE = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")


def body_start(data: bytes, start: int, end: int) -> int:
    """Offset where an entity's body begins: after the blank line that ends its headers."""
    first = _EOL.match(data, start, end)
    if first is not None:  # no headers at all: the body follows the empty first line
        return first.end()
    # Two line ends in a row always contain "\n\n", "\r\r" or "\n\r"; find() is far faster
    # than a regex scan of a long header block, which then only checks the spot it found.
    earliest = end
    for pair in (b"\n\n", b"\n\r", b"\r\r"):
        found = data.find(pair, start, min(end, earliest + 1))  # only before the best so far
        if found >= 0:
            earliest = found
    if earliest == end:
        return end
    m = _BLANK_LINE.search(data, max(start, earliest - 1), end)
    return m.end() if m is not None else end


def split_multipart(data: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """(start, end) of each body part between the delimiters (preamble and epilogue left out)."""
    marker = b"--" + boundary
    regions: list[tuple[int, int]] = []
    opened: int | None = None
    pos = start
    while True:
        at = data.find(marker, pos, end)
        if at < 0:
            break
        pos = at + len(marker)
        if at > start and data[at - 1:at] not in (b"\n", b"\r"):
            continue  # not at the start of a line
        tail = _DELIMITER_TAIL.match(data, pos, end)
        if tail is None:
            continue  # a longer boundary that starts with ours, or text after it
        line_end = tail.end()
        if opened is not None and at == opened:  # repeated delimiter lines: no part between
            opened = None if tail.group(1) else line_end
            if opened is None:
                return regions
            pos = line_end
            continue
        if opened is not None:
            regions.append((opened, max(opened, _before_line_break(data, start, at))))
        if tail.group(1):  # the close delimiter: the rest is epilogue
            return regions
        opened = line_end
        pos = line_end
    if opened is not None:  # no close delimiter: the last part runs to the end
        regions.append((opened, end))
    return regions


def _before_line_break(data: bytes, start: int, at: int) -> int:
    """Where the part before the delimiter at `at` ends: the line break before a delimiter
    belongs to the delimiter."""
    if at - 2 >= start and data[at - 2:at] == b"\r\n":
        return at - 2
    if at - 1 >= start and data[at - 1:at] in (b"\n", b"\r"):
        return at - 1
    return at


def locate_body(data: bytes, root: Message, path: tuple[int, ...]) -> tuple[int, int] | None:
    """(start, end) of the body of the part at `path` (0-based child indices); None if unsure."""
    start, end = 0, len(data)
    node = root
    for index in path:
        try:
            boundary = node.get_boundary()
            children = node.get_payload()
        except Exception:
            return None
        if not boundary or not isinstance(children, list):
            return None
        body = body_start(data, start, end)
        regions = split_multipart(data, body, end, boundary.encode("utf-8", "surrogateescape"))
        if len(regions) != len(children) or index >= len(regions):
            return None
        start, end = regions[index]
        node = children[index]
    return body_start(data, start, end), end
