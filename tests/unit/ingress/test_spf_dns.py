"""pyspf asks maildesk's resolver through _SpfQuery.dns: answers in pyspf's shapes, each name
asked once, and more than two lookups that find nothing a PermError (RFC 7208 §4.6.4)."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
import spf

from maildesk.ingress.authcheck import DnsTempError, _SpfQuery


class Name:
    def __init__(self, text: str) -> None:
        self.text = text

    def to_text(self, omit_final_dot: bool) -> str:
        return self.text if omit_final_dot else self.text + "."


class FakeLookups:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def records(self, name: str, rdtype: str) -> list:
        self.asked.append((name, rdtype))
        if name.startswith("dead."):
            raise DnsTempError(f"DNS timeout for {name} {rdtype}")
        if name.startswith("void"):
            return []
        return {"A": [NS(address="192.0.2.1")], "AAAA": [NS(address="2001:db8::1")],
                "MX": [NS(preference=10, exchange=Name("mx.example.com"))],
                "PTR": [NS(target=Name("host.example.com"))],
                "TXT": [NS(strings=[b"v=spf1", b" -all"])]}[rdtype]


def query() -> tuple[_SpfQuery, FakeLookups]:
    lookups = FakeLookups()
    return _SpfQuery(lookups, i="192.0.2.9", s="a@example.com", h="mail.example.com"), lookups


def test_answers_come_in_pyspfs_shapes_and_are_asked_once() -> None:
    q, lookups = query()
    assert q.dns("Example.COM.", "A") == ["192.0.2.1"]
    assert q.dns("example.com", "A") == ["192.0.2.1"]
    assert q.dns("example.com", "AAAA") == ["2001:db8::1"]
    assert q.dns("example.com", "MX") == [(10, "mx.example.com")]
    assert q.dns("example.com", "PTR") == ["host.example.com"]
    assert q.dns("example.com", "TXT") == [(b"v=spf1", b" -all")]
    assert lookups.asked.count(("example.com", "A")) == 1


def test_names_dns_cannot_ask_find_nothing_without_asking() -> None:
    q, lookups = query()
    for name in ("", "a..example", "x" * 64 + ".example"):
        assert q.dns(name, "A") == []
    assert lookups.asked == [] and q.void_lookups == 0


def test_a_failing_resolver_is_a_temperror() -> None:
    q, _ = query()
    with pytest.raises(spf.TempError, match="DNS timeout for dead.example A"):
        q.dns("dead.example", "A")


def test_the_third_void_lookup_is_a_permerror() -> None:
    q, _ = query()
    assert q.dns("void1.example", "A", ignore_void=True) == [] and q.void_lookups == 0
    assert q.dns("void1.example", "A") == [] and q.dns("void2.example", "TXT") == []
    with pytest.raises(spf.PermError, match="Void lookup limit of 2 exceeded"):
        q.dns("void1.example", "A")   # from the cache, still void
