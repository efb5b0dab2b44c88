"""The listener's limit bookkeeping (ingress/limits.py): sessions, junk and errors, the DATA
deadline, the descriptor budget, quiet logs."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import shutil
from pathlib import Path

import pytest

from maildesk.config import ConfigError, load_settings
from maildesk.config.model import SmtpListener
from maildesk.ingress.limits import (AcceptErrorHandler, DataDeadline, LogThrottle,
                                     RelayNetworks, Refusal, SessionBudget, SessionTable,
                                     client_ip, fd_session_cap)


ROOT = Path(__file__).resolve().parents[3]


def test_the_limits_are_read_from_the_smtp_section_and_a_bad_relay_is_named(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    path = tmp_path / "config" / "maildesk.yaml"
    assert load_settings(path).smtp == SmtpListener()  # the example states the defaults
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  relays: []", "  relays: [192.0.2.10, 2001:db8::/64]")
                    .replace("idle_timeout: 300s", "idle_timeout: 5m"), encoding="utf-8")
    smtp = load_settings(path).smtp
    assert smtp.idle_timeout == 300.0 and smtp.overload_idle_timeout == 10.0
    assert "192.0.2.10" in RelayNetworks(smtp.relays) and "2001:db8::1" in RelayNetworks(
        smtp.relays)
    path.write_text(text.replace("  relays: []", "  relays: [192.0.2.300]"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    (problem,) = err.value.problems
    assert problem.key == "smtp.relays[0]" and "CIDR" in problem.message
    assert problem.line == next(i for i, line in enumerate(text.splitlines(), 1)
                                if line.startswith("  relays:"))


def limits(**kw) -> SmtpListener:
    if "relays" in kw:
        kw["relays"] = tuple(ipaddress.ip_network(r) for r in kw["relays"])
    return SmtpListener(**kw)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- sessions ----------------------------------------------------------------------------------
def test_per_ip_cap_then_total_cap():
    table, lim = SessionTable(), limits(max_sessions=5, max_sessions_per_ip=2)
    assert table.admit("192.0.2.1", lim) is None
    assert table.admit("192.0.2.1", lim) is None
    assert table.admit("192.0.2.1", lim) is Refusal.TOO_MANY_FROM_IP
    assert [table.admit(f"192.0.2.{i}", lim) for i in (2, 3, 4)] == [None] * 3
    assert table.admit("192.0.2.9", lim) is Refusal.TOO_MANY_SESSIONS
    assert table.active == 5 and table.sessions_from("192.0.2.1") == 2
    table.release("192.0.2.1")
    assert table.admit("192.0.2.1", lim) is None  # a slot came free
    for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"):
        table.release(ip)
    assert table.active == 0 and table.sessions_from("192.0.2.1") == 0


def test_relays_are_exempt_from_the_per_ip_cap_only():
    table = SessionTable()
    lim = limits(max_sessions=4, max_sessions_per_ip=1, relays=["127.0.8.0/24", "::1/128"])
    assert [table.admit("127.0.8.3", lim) for _ in range(3)] == [None] * 3
    assert table.admit("127.0.8.3", lim) is None
    assert table.admit("127.0.8.3", lim) is Refusal.TOO_MANY_SESSIONS


def test_relay_networks_match_mapped_and_scoped_addresses():
    relays = RelayNetworks(["192.0.2.0/24", ipaddress.ip_network("fe80::/10")])
    assert "192.0.2.7" in relays and "::ffff:192.0.2.7" in relays and "fe80::1%eth0" in relays
    assert "198.51.100.1" not in relays and "not an ip" not in relays and None not in relays
    assert not RelayNetworks().contains("192.0.2.7")


def test_client_ip_of_a_peername():
    assert client_ip(("192.0.2.1", 25)) == "192.0.2.1"
    assert client_ip(("::ffff:192.0.2.1", 25, 0, 0)) == "192.0.2.1"
    assert client_ip(("2001:db8::1", 25, 0, 0)) == "2001:db8::1"
    assert client_ip(None) is None and client_ip("unix") is None


def test_the_descriptor_budget_lowers_max_sessions_and_says_so_once(caplog):
    assert fd_session_cap(64, soft_limit=256) == 192
    assert fd_session_cap(64, soft_limit=32) == 1
    table = SessionTable(fd_cap=3, log=logging.getLogger("test.limits"))
    lim = limits(max_sessions=100, max_sessions_per_ip=100)
    with caplog.at_level(logging.WARNING, "test.limits"):
        assert [table.admit("192.0.2.1", lim) for _ in range(4)] == [None] * 3 + [
            Refusal.TOO_MANY_SESSIONS]
    lowered = [r for r in caplog.records if "lowered to 3" in r.getMessage()]
    assert len(lowered) == 1
    assert SessionTable(fd_cap=300).max_sessions(lim) == 100


def test_overload_is_more_than_the_fraction_of_the_maximum():
    table, lim = SessionTable(), limits(max_sessions=10, max_sessions_per_ip=10,
                                        overload_fraction=0.5)
    for _ in range(5):
        table.admit("192.0.2.1", lim)
    assert not table.overloaded(lim)
    table.admit("192.0.2.1", lim)
    assert table.overloaded(lim)


# -- one session -------------------------------------------------------------------------------
def test_junk_commands_past_the_limit():
    budget = SessionBudget(max_junk=3, max_errors=20, overshoot_limit=0)
    assert [budget.junk_command() for _ in range(4)] == [False, False, False, True]


def test_errors_up_to_the_limit_then_hang_up_and_a_stored_message_forgives():
    budget = SessionBudget(max_junk=10, max_errors=3, overshoot_limit=0)
    assert [budget.error_reply() for _ in range(2)] == [False, False]
    budget.message_stored()
    assert [budget.error_reply() for _ in range(3)] == [False, False, True]


def test_recipient_overshoot_counts_as_errors_only_past_its_own_limit():
    budget = SessionBudget(max_junk=10, max_errors=2, overshoot_limit=900)
    assert not any(budget.error_reply(overshoot=True) for _ in range(900))
    assert budget.errors == 0
    assert [budget.error_reply(overshoot=True) for _ in range(2)] == [False, True]


def test_data_deadline_follows_the_minimum_rate():
    d = DataDeadline(now=0.0, timeout=300.0, min_rate=500.0)
    d.received(1000, now=1.0)       # 2 s earned, but never beyond 300 s from now
    assert d.at == 301.0
    slow = DataDeadline(now=0.0, timeout=10.0, min_rate=500.0)
    for second in range(1, 100):     # 100 bytes/s: 0.2 s earned per second
        slow.received(100, now=float(second))
        if slow.left(float(second)) <= 0:
            break
    assert second == 13                 # 10 / (1 - 0.2) = 12.5 s, then cut
    unlimited = DataDeadline(now=0.0, timeout=10.0, min_rate=0)
    unlimited.received(1, now=50.0)
    assert unlimited.left(50.0) == 10.0


# -- quiet logs --------------------------------------------------------------------------------
def test_throttle_logs_once_per_interval_with_the_count_held_back(caplog):
    clock = Clock()
    throttle = LogThrottle(logging.getLogger("test.throttle"), interval=10.0, monotonic=clock)
    with caplog.at_level(logging.INFO, "test.throttle"):
        assert throttle.log("k", logging.INFO, "refused %s", "a")
        assert not any(throttle.log("k", logging.INFO, "refused %s", "b") for _ in range(500))
        clock.now += 10
        assert throttle.log("k", logging.INFO, "refused %s", "c")
        assert not throttle.log("k", logging.INFO, "refused %s", "d")
        throttle.flush("k", logging.INFO, "%d more")
        throttle.flush("k", logging.INFO, "%d more")  # nothing held: nothing said
    assert [r.getMessage() for r in caplog.records] == [
        "refused a", "refused c (500 more since the last such line)", "1 more"]


def test_accept_errors_give_one_line_per_interval_and_no_traceback(caplog):
    loop = asyncio.new_event_loop()
    clock = Clock()
    handler = AcceptErrorHandler(logging.getLogger("test.accept"), monotonic=clock)
    handler.install(loop)
    try:
        context = {"message": "socket.accept() out of system resource",
                   "exception": OSError(errno.EMFILE, "Too many open files")}
        with caplog.at_level(logging.DEBUG):
            for _ in range(1000):
                loop.call_exception_handler(context)
            handler.flush()
        lines = [r for r in caplog.records if r.name == "test.accept"]
        assert len(lines) == 2 and not any(r.exc_info for r in lines)
        assert "EMFILE" in lines[0].getMessage() and "999 more" in lines[1].getMessage()
        assert handler.failures == 1000
        caplog.clear()
        with caplog.at_level(logging.DEBUG):  # anything else: asyncio's own handler
            loop.call_exception_handler({"message": "something else", "exception": ValueError()})
        assert any("something else" in r.getMessage() for r in caplog.records
                   if r.name == "asyncio")
    finally:
        loop.close()


@pytest.mark.parametrize("code", [errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
def test_other_resource_errors_of_accept_are_quiet_too(code, caplog):
    loop = asyncio.new_event_loop()
    try:
        AcceptErrorHandler(logging.getLogger("test.accept")).install(loop)
        with caplog.at_level(logging.DEBUG):
            for _ in range(10):
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(code, "x")})
        assert len([r for r in caplog.records if r.name == "test.accept"]) == 1
        assert not [r for r in caplog.records if r.name == "asyncio"]
    finally:
        loop.close()


def test_accept_retries_after_the_listener_closed_are_quiet(caplog):
    """asyncio retries accept() a second after EMFILE; if the listener closed meanwhile (at
    shutdown) each retry fails on the closed socket: no traceback for those."""
    def _start_serving() -> None:  # stands for BaseSelectorEventLoop._start_serving
        raise ValueError("Invalid file descriptor: -1")

    loop = asyncio.new_event_loop()
    try:
        AcceptErrorHandler(logging.getLogger("test.accept")).install(loop)
        with caplog.at_level(logging.DEBUG):
            for _ in range(100):
                loop.call_soon(_start_serving)
            loop.run_until_complete(asyncio.sleep(0.01))
        assert not [r for r in caplog.records if r.name == "asyncio"]
        assert len([r for r in caplog.records if r.name == "test.accept"]) == 1
    finally:
        loop.close()
