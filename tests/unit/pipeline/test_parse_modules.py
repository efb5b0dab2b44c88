"""The parser's modules on their own: the raw multipart split, the header-block repair, the
address splitting with hidden encoded words, and parse.py's re-exports."""

from __future__ import annotations

from maildesk.pipeline import parse, parsed
from maildesk.pipeline.headerblock import parse_tree, repair_header_block, strip_envelope
from maildesk.pipeline.headers import parse_addresses
from maildesk.pipeline.mimepart import safe_filename
from maildesk.pipeline.rawparts import split_multipart


def test_parse_re_exports_the_result_types():
    assert parse.ParsedMessage is parsed.ParsedMessage
    assert parse.Unparseable is parsed.Unparseable
    assert parse.Address is parsed.Address
    assert parse.AttachmentInfo is parsed.AttachmentInfo


def test_split_multipart_gives_the_line_break_before_a_delimiter_to_the_delimiter():
    for eol in (b"\r\n", b"\n", b"\r"):
        body = eol.join([b"preamble", b"--b", b"one", b"--b", b"two", b"--b--", b"epilogue"])
        regions = split_multipart(body, 0, len(body), b"b")
        assert [body[s:e] for s, e in regions] == [b"one", b"two"]


def test_split_multipart_without_close_delimiter_runs_to_the_end():
    body = b"--b\nonly\n"
    assert [body[s:e] for s, e in split_multipart(body, 0, len(body), b"b")] == [b"only\n"]


def test_repair_makes_a_junk_line_before_a_real_header_a_continuation():
    raw = b"From: a@example.com\njunk line\nSubject: hi\n\nbody\n"
    assert repair_header_block(raw) == b"From: a@example.com\n junk line\nSubject: hi\n\nbody\n"
    defects: list[str] = []
    data, msg, structured = parse_tree(raw, defects)
    assert msg["Subject"] == "hi" and structured
    assert defects == ["header: junk lines in the header block repaired"]


def test_repair_removes_obsolete_space_before_the_colon():
    assert repair_header_block(b"Subject  : x\n\nbody") == b"Subject: x\n\nbody"
    assert repair_header_block(b"Subject: x\n\nbody") is None


def test_strip_envelope_drops_mbox_from_line_and_leading_blank_lines():
    assert strip_envelope(b"From a@b Mon Jan 1\n\n  \nSubject: x\n") == b"Subject: x\n"
    assert strip_envelope(b"From: a@b\n") == b"From: a@b\n"


def test_a_comma_inside_an_encoded_word_does_not_split_the_address():
    pairs = parse_addresses("=?utf-8?q?Petrov=2C_Ivan?= <IVAN@example.ru>, b@example.ru")
    assert pairs == [("Petrov, Ivan", "ivan@example.ru"), ("", "b@example.ru")]


def test_broken_quoting_falls_back_to_a_scan_and_notes_it():
    notes: list[str] = []
    pairs = parse_addresses('"Ivan <ivan@example.ru>, "Olga" <olga@example.ru>', None, notes)
    assert [a for _, a in pairs] == ["ivan@example.ru", "olga@example.ru"]
    assert notes == ["address: broken quoting, addresses found by scanning"]


def test_safe_filename_drops_paths_and_hostile_characters():
    assert safe_filename("..\\..\\evil<1>.exe") == "evil_1_.exe"
    assert safe_filename(" . ") is None
