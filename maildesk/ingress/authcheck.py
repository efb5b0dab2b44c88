"""maildesk's own SPF, DKIM and DMARC check of a mail that reached its SMTP listener.

Where no MTA stands in front of the listener (or as a second opinion for clients other than
the trusted relays), the listener checks the sender itself before it stores the mail: SPF of
the envelope sender (or HELO) for the client IP (pyspf), each DKIM signature (dkimpy), and
DMARC alignment of the From domain (its `_dmarc` record looked up here, relaxed or strict
alignment by the Public Suffix List). The outcome is one Authentication-Results value with
maildesk's own authserv-id, stored beside the raw mail (`inbound.auth_results`), never in it.

Every DNS question goes to the one configured resolver (IP and port), and all of one message's
questions share one time budget: a slow or dead resolver makes `temperror`, never a DATA
command that hangs. Runs in a worker thread (it blocks on DNS).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from email.utils import getaddresses
from typing import Any

import dkim
import dns.exception
import dns.resolver
import spf

from maildesk.config.model import Authenticity, Settings
from maildesk.netaddr import plain_ip
from maildesk.pipeline.authenticity import (MethodResult, aligned, domain_of,
                                            format_authentication_results,
                                            organizational_domain, trusted_relay)

log = logging.getLogger(__name__)

MAX_DKIM_SIGNATURES = 5      # checked per message; more is somebody wasting our time
MAX_HEADER_BYTES = 256 * 1024


class DnsTempError(Exception):
    """The resolver did not answer in time, or failed (SERVFAIL): try again later."""


class Lookups:
    """DNS questions of one message to the configured resolver, within one time budget."""

    def __init__(self, nameserver: str, port: int, timeout: float,
                 monotonic: Callable[[], float] = time.monotonic):
        self._resolver = dns.resolver.Resolver(configure=False)  # never /etc/resolv.conf
        self._resolver.nameservers = [nameserver]
        self._resolver.port = port
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout
        self._now = monotonic
        self._deadline = monotonic() + timeout

    def records(self, name: str, rdtype: str) -> list:  # type: ignore[type-arg]
        """The answer's records ([] for none or NXDOMAIN); DnsTempError when it failed."""
        remaining = self._deadline - self._now()
        if remaining <= 0:
            raise DnsTempError("the time for this message's DNS lookups is spent")
        try:
            answer = self._resolver.resolve(name, rdtype, lifetime=remaining, search=False,
                                            raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout as exc:
            raise DnsTempError(f"DNS timeout for {name} {rdtype}") from exc
        except (dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout) as exc:
            raise DnsTempError(f"DNS failure for {name} {rdtype}: {exc}") from exc
        except (dns.exception.DNSException, ValueError) as exc:
            # A name that cannot be asked (an empty label, too long): nothing there.
            log.debug("DNS %s %s: %s", name, rdtype, exc)
            return []
        return list(answer.rrset or [])

    def txt(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in self.records(name, "TXT")]


class _SpfQuery(spf.query):
    """pyspf's evaluation, asking our resolver instead of the system's (pyspf's own lookup
    is a module global that reads /etc/resolv.conf)."""

    def __init__(self, lookups: Lookups, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._lookups = lookups

    def dns(self, name, qtype, cnames=None, ignore_void=False):  # type: ignore[no-untyped-def]
        name = str(name).rstrip(".").lower()
        if not _askable(name):
            return []
        key = (name, qtype)
        if key in self.cache:
            result = self.cache[key]
        else:
            result = self.cache[key] = self._ask(name, qtype)
        if not result and not ignore_void:
            self._count_void_lookup()
        return result

    def _ask(self, name: str, qtype: str) -> list:  # type: ignore[type-arg]
        """The answer in the shape pyspf's own lookup gives it."""
        try:
            rdata = self._lookups.records(name, qtype)
        except DnsTempError as exc:
            raise spf.TempError(str(exc)) from exc
        shape = _SPF_ANSWER_SHAPES.get(qtype, _strings)
        return [shape(r) for r in rdata]

    def _count_void_lookup(self) -> None:
        # RFC 7208 §4.6.4: more than two lookups that find nothing is an error.
        self.void_lookups += 1
        if self.void_lookups > spf.MAX_VOID_LOOKUPS:
            raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")


def _askable(name: str) -> bool:
    """A name DNS can be asked about: not empty, every label 1 to 63 characters."""
    return bool(name) and all(0 < len(label) < 64 for label in name.split("."))


def _strings(r: Any) -> tuple[bytes, ...]:
    return tuple(r.strings)


# How pyspf expects each record type (TXT and SPF: the record's strings).
_SPF_ANSWER_SHAPES: dict[str, Callable[[Any], Any]] = {
    "A": lambda r: r.address,
    "AAAA": lambda r: r.address,
    "MX": lambda r: (r.preference, r.exchange.to_text(True)),
    "PTR": lambda r: r.target.to_text(True),
}


def check_spf(lookups: Lookups, ip: str | None, helo: str | None,
              mail_from: str) -> MethodResult:
    """SPF of the envelope sender (of `postmaster@HELO` for the null sender) for `ip`."""
    helo = (helo or "").strip()
    if not ip or not (mail_from or helo):
        return MethodResult("spf", "none")
    identity = (("smtp.mailfrom", domain_of(mail_from)) if mail_from
                else ("smtp.helo", helo.lower()))
    try:
        # The time budget is the Lookups' (pyspf's own querytime counts only in its dns()).
        result, _code, _explanation = _SpfQuery(lookups, i=ip, s=mail_from, h=helo).check()
    except Exception as exc:  # pyspf on a sender it cannot parse
        log.debug("SPF check of %s from %s: %s", mail_from, ip, exc)
        result = "permerror"
    return MethodResult("spf", str(result).lower(), (identity,))


def check_dkim(lookups: Lookups, data: bytes) -> list[MethodResult]:
    """Every DKIM signature (the first few): pass, fail, temperror or permerror."""
    try:
        verifier = dkim.DKIM(data, logger=_QUIET)
        count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    except Exception:  # headers dkimpy cannot read: nothing to verify
        return [MethodResult("dkim", "none")]
    if count == 0:
        return [MethodResult("dkim", "none")]
    out = []
    for idx in range(min(count, MAX_DKIM_SIGNATURES)):
        trouble: list[str] = []

        def txt(name: bytes, timeout: float = 5) -> bytes | None:
            try:
                records = lookups.txt(name.decode("ascii").rstrip("."))
            except DnsTempError as exc:
                trouble.append("temperror")
                raise dkim.DnsTimeoutError(str(exc)) from exc
            except UnicodeDecodeError:
                records = []
            if not records:
                trouble.append("permerror")  # no key published for this selector
                return None
            return records[0]

        verifier = dkim.DKIM(data, logger=_QUIET)
        try:
            ok = verifier.verify(idx=idx, dnsfunc=txt)
            result = "pass" if ok else (trouble[0] if trouble else "fail")
        except dkim.ValidationError:
            result = "fail"        # the body or headers do not match the signature (or expired)
        except dkim.DKIMException:
            result = "permerror"   # a malformed signature or key
        except Exception as exc:
            log.debug("DKIM signature %d: %s", idx, exc)
            result = "permerror"
        fields = getattr(verifier, "signature_fields", None) or {}
        props = []
        for tag, prop in ((b"d", "header.d"), (b"i", "header.i"), (b"s", "header.s")):
            value = fields.get(tag)
            if value:
                props.append((prop, value.decode("ascii", "replace")))
        out.append(MethodResult("dkim", result, tuple(props)))
    return out


def _dmarc_record(lookups: Lookups, domain: str) -> dict[str, str] | None:
    records = [r.decode("utf-8", "replace") for r in lookups.txt(f"_dmarc.{domain}")]
    records = [r for r in records if re.match(r"^\s*v\s*=\s*DMARC1\s*(;|$)", r, re.I)]
    if len(records) != 1:   # none, or several (RFC 7489 §6.6.3: as if none)
        return None
    tags = {}
    for part in records[0].split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            tags[key.strip().lower()] = value.strip().lower()
    return tags


def _from_domain(data: bytes) -> str | None:
    """The one From address's domain; None when there is no From, or more than one address."""
    head = data[:MAX_HEADER_BYTES].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    values = []
    current: list[bytes] | None = None
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and current is not None:
            current.append(line)
            continue
        name, sep, value = line.partition(b":")
        current = None
        if sep and name.strip().lower() == b"from":
            current = [value]
            values.append(current)
    if len(values) != 1:
        return None
    text = b" ".join(values[0]).decode("utf-8", "replace")
    addresses = [a for _, a in getaddresses([text]) if a]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    return domain_of(addresses[0]) or None


def check_dmarc(lookups: Lookups, data: bytes, spf_result: MethodResult,
                dkim_results: list[MethodResult]) -> MethodResult:
    """DMARC (RFC 7489): an SPF or DKIM pass aligned with the From domain, when it has a policy."""
    from_domain = _from_domain(data)
    if from_domain is None:
        return MethodResult("dmarc", "permerror", reason="not exactly one From address")
    try:
        record = _dmarc_record(lookups, from_domain)
        org = organizational_domain(from_domain)
        if record is None and org != from_domain:
            record = _dmarc_record(lookups, org)
    except DnsTempError:
        return MethodResult("dmarc", "temperror", (("header.from", from_domain),))
    if record is None:
        return MethodResult("dmarc", "none", (("header.from", from_domain),))

    def lined_up(domain: str | None, mode: str) -> bool:
        if mode == "s":
            return domain_of(domain) == from_domain
        return aligned(domain, from_domain)

    ok = (spf_result.result == "pass" and lined_up(
        spf_result.prop("smtp.mailfrom"), record.get("aspf", "r"))) or any(
        r.result == "pass" and lined_up(r.prop("header.d"), record.get("adkim", "r"))
        for r in dkim_results)
    if not ok and (spf_result.result == "temperror"
                   or any(r.result == "temperror" for r in dkim_results)):
        # A lookup failed: a pass may have been missed, so no verdict (never a false fail).
        return MethodResult("dmarc", "temperror", (("header.from", from_domain),))
    return MethodResult("dmarc", "pass" if ok else "fail", (("header.from", from_domain),))


# dkimpy logs every signature that fails at ERROR; the result says it already. A logger of
# its own (not in the logging tree) that drops everything.
_QUIET = logging.Logger("maildesk.dkimpy", logging.CRITICAL + 1)


def authenticate(settings: Authenticity, authserv_id: str, peer_ip: str | None,
                 helo: str | None, mail_from: str, data: bytes) -> str | None:
    """The Authentication-Results value for one mail, or None when a trusted relay handed it
    over (its own Authentication-Results header speaks for the sender then)."""
    ip = _plain_ip(peer_ip)
    if trusted_relay(ip, settings):
        return None
    own = settings.own_check
    lookups = Lookups(own.nameserver, own.port, own.timeout.total_seconds())
    spf_result = check_spf(lookups, ip, helo, mail_from or "")
    dkim_results = check_dkim(lookups, data)
    dmarc = check_dmarc(lookups, data, spf_result, dkim_results)
    return format_authentication_results(authserv_id, (spf_result, *dkim_results, dmarc))


def _plain_ip(ip: str | None) -> str | None:
    """`::ffff:192.0.2.1` -> `192.0.2.1` (what SPF records list); None when not an address."""
    address = plain_ip(ip)
    return str(address) if address is not None else None


def make_authenticator(settings: Callable[[], Settings]) -> Callable[
        [str | None, str | None, str, bytes], str | None]:
    """What the listener calls for each mail (in a worker thread): the current settings' own
    check, None when it is switched off (a reload may do that)."""
    def run(peer_ip: str | None, helo: str | None, mail_from: str, data: bytes) -> str | None:
        s = settings()
        own = s.authenticity.own_check
        if not own.enabled:
            return None
        return authenticate(s.authenticity, own.authserv_id or s.domain, peer_ip, helo,
                            mail_from, data)
    return run
