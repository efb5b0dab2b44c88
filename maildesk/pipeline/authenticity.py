"""Is the sender of a mail who it says it is? Pure: reads Authentication-Results, judges, decides.

maildesk mails a new ticket's sender automatically (the acknowledgement). A spammer who forges
`From: victim@` would make maildesk mail the victim (backscatter), so automatic mail goes out
only under the configured policy (PRODUCT.md §8):

- `parse_authentication_results` reads one RFC 8601 header value (comments, quoted strings,
  `method/version`, `reason=`, `ptype.property=` and `policy.*` props) and never raises.
- `judge_authenticity` picks what may be believed and says pass / fail / none (plus a spam
  verdict, with a short reason). Believed are: maildesk's own check of the listener
  (`inbound.auth_results`: kept beside the mail, not in it, so nobody outside wrote it), else
  the TOPMOST Authentication-Results header of the mail, and only when its authserv-id is a
  trusted one and it was written by a trusted relay (SMTP: the client IP is a trusted relay;
  IMAP or pipe: the mailbox's MTA, known by its authserv-id alone). Anything lower down may be
  the sender's own forgery, which is why it is never looked at.
- `autoreply_refusal` applies the policy (`require-pass` / `block-fail` / `off`) to a verdict.

"Aligned": dmarc=pass for the From domain, or spf=pass / dkim=pass for a domain of the same
organisation (relaxed alignment, RFC 7489 §3.1, by the Public Suffix List).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from maildesk.config.model import Authenticity
from maildesk.netaddr import in_networks
from maildesk.probes import source_ip

MAX_VALUE_CHARS = 8192        # a longer header is cut: nobody's results need more
MAX_RESULTS = 64              # method results read from one header

POLICIES = ("require-pass", "block-fail", "off")


@dataclass(frozen=True)
class MethodResult:
    """One `method=result` of a header, with its properties (`header.d`, `smtp.mailfrom` ...)."""

    method: str                              # lower-case: spf, dkim, dmarc, arc, iprev ...
    result: str                              # lower-case: pass, fail, softfail, none ...
    props: tuple[tuple[str, str], ...] = ()  # (lower-case "ptype.property", value as written)
    reason: str | None = None

    def prop(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.props if k == name), None)


@dataclass(frozen=True)
class AuthResults:
    """One parsed Authentication-Results value."""

    authserv_id: str
    results: tuple[MethodResult, ...] = ()

    def of(self, method: str) -> tuple[MethodResult, ...]:
        return tuple(r for r in self.results if r.method == method)


@dataclass(frozen=True)
class AuthenticityVerdict:
    """What was found of the sender's authenticity, and from where (for the ticket's event)."""

    result: str            # "pass" (an aligned pass), "fail" (an explicit fail), "none"
    spam: bool = False     # a trusted relay's spam filter said spam
    reason: str = ""


# -- parsing ----------------------------------------------------------------------------------

class _CommentStripper:
    """Reads a header value one character at a time, keeping what is outside comments."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.depth = 0             # nesting of comments
        self.quoted = False        # in a quoted string (never inside a comment)
        self.escaped = False       # the last character was a backslash that quotes this one

    def feed(self, ch: str) -> None:
        if self.escaped or (ch == "\\" and (self.quoted or self.depth)):
            # A quoted pair: kept in a quoted string, dropped with its comment.
            self.escaped = not self.escaped
            if self.depth == 0:
                self.out.append(ch)
        elif self.depth:
            self._in_comment(ch)
        elif self.quoted:
            self.out.append(ch)
            self.quoted = ch != '"'
        else:
            self._outside(ch)

    def _in_comment(self, ch: str) -> None:
        if ch == "(":
            self.depth += 1
        elif ch == ")":
            self.depth -= 1
            if self.depth == 0:
                self.out.append(" ")

    def _outside(self, ch: str) -> None:
        if ch == "(":
            self.depth = 1
            return
        # A stray ")" is kept as it stands.
        self.quoted = ch == '"'
        self.out.append(ch)


def _strip_comments(text: str) -> str:
    """Remove (nested) comments outside quoted strings; a comment becomes one space."""
    stripper = _CommentStripper()
    for ch in text:
        stripper.feed(ch)
    return "".join(stripper.out)


def _split_semicolons(text: str) -> list[str]:
    """Split at `;` outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    """`"a b"` -> `a b`; a quoted local part keeps its domain: `"a b"@x` -> `a b@x`."""
    m = re.match(r'^"((?:[^"\\]|\\.)*)"(.*)$', value, re.S)
    if m is None:
        return value
    return re.sub(r"\\(.)", r"\1", m.group(1)) + m.group(2)


_KEYWORD = r"[A-Za-z0-9][A-Za-z0-9_-]*"
# Unquoted values may hold "=" (base64 in header.b); pairs are apart by white space.
_VALUE = r'"(?:[^"\\]|\\.)*"(?:@[^\s";]+)?|[^\s";]+'
_AUTHSERV = re.compile(rf"\s*({_VALUE})")
_METHOD = re.compile(rf"\s*({_KEYWORD})(?:\s*/\s*\d+)?\s*=\s*({_KEYWORD})")
_PROP = re.compile(rf"\s*({_KEYWORD}(?:\s*\.\s*[A-Za-z0-9_.-]+)?)\s*=\s*({_VALUE})")


def parse_authentication_results(value: str) -> AuthResults | None:
    """One Authentication-Results header value (RFC 8601 §2.2) -> AuthResults; None when it
    names no authserv-id. Never raises: what cannot be read in a result is left out, and a
    result is never invented."""
    text = _strip_comments(value[:MAX_VALUE_CHARS].replace("\r", " ").replace("\n", " "))
    head, *segments = _split_semicolons(text)
    m = _AUTHSERV.match(head)
    if m is None:
        return None
    authserv_id = _unquote(m.group(1)).strip().lower()
    if not authserv_id:
        return None
    results: list[MethodResult] = []
    for segment in segments[:MAX_RESULTS]:
        method = _METHOD.match(segment)
        if method is None:
            continue  # "none" (no result), or something unreadable
        props: list[tuple[str, str]] = []
        reason = None
        pos = method.end()
        while True:
            prop = _PROP.match(segment, pos)
            if prop is None:
                break
            pos = prop.end()
            name = re.sub(r"\s+", "", prop.group(1)).lower()
            val = _unquote(prop.group(2))
            if name == "reason":
                reason = val
            elif "." in name:
                props.append((name, val))
        results.append(MethodResult(method.group(1).lower(), method.group(2).lower(),
                                    tuple(props), reason))
    return AuthResults(authserv_id, tuple(results))


def format_authentication_results(authserv_id: str, results: tuple[MethodResult, ...]) -> str:
    """The value of an Authentication-Results header (no name), quoting what needs it."""
    parts = [_pvalue(authserv_id)]
    if not results:
        parts.append("none")
    for r in results:
        text = f"{r.method}={r.result}"
        if r.reason:
            text += f" reason={_quote(r.reason)}"
        for name, val in r.props:
            text += f" {name}={_pvalue(val)}"
        parts.append(text)
    return "; ".join(parts)


_SAFE = re.compile(r"[A-Za-z0-9._+@-]+")


def _quote(value: str) -> str:
    value = re.sub(r"[\x00-\x1f\x7f]", "", value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pvalue(value: str) -> str:
    """A property value as a token where it is one; quoted otherwise (`;`, spaces, quotes,
    controls from a hostile envelope can never break out of it)."""
    return value if _SAFE.fullmatch(value) else _quote(value)  # `$` would let a final LF in


# -- alignment ---------------------------------------------------------------------------------

@cache
def _psl():  # type: ignore[no-untyped-def]
    # Loaded once, on first use: reading the bundled list costs about 0.1 s.
    from publicsuffixlist import PublicSuffixList
    return PublicSuffixList()


def domain_of(value: str | None) -> str:
    """The domain of an address, `@domain`, `<addr>` or a bare domain; lower-case."""
    value = (value or "").strip().strip("<>").strip()
    return value.rpartition("@")[2].strip().rstrip(".").lower()


def organizational_domain(domain: str) -> str:
    """The registrable domain (`mail.shop.co.uk` -> `shop.co.uk`); a public suffix itself,
    or something that is no domain, stands for itself."""
    domain = domain_of(domain)
    if not domain:
        return ""
    try:
        return _psl().privatesuffix(domain) or domain
    except Exception:  # an odd label (IDN, empty): only an exact match aligns
        return domain


def aligned(domain: str | None, from_domain: str) -> bool:
    """Relaxed alignment: the same organisational domain."""
    domain = domain_of(domain)
    return bool(domain and from_domain) and (
        domain == from_domain or organizational_domain(domain) == organizational_domain(from_domain))


# -- judging -----------------------------------------------------------------------------------

def _describe(r: MethodResult) -> str:
    props = " ".join(f"{k}={v}" for k, v in r.props if k in (
        "smtp.mailfrom", "smtp.helo", "header.d", "header.from"))
    return f"{r.method}={r.result}{' ' + props if props else ''}"


# A check returns (result, why) when it decides and None when it has nothing to say;
# evaluate_results asks them in order.
_Check = Callable[[AuthResults, str], tuple[str, str] | None]


def _dmarc_fail(results: AuthResults, from_domain: str) -> tuple[str, str] | None:
    """DMARC failed for the From we would answer (a result about another From is ignored)."""
    for r in results.of("dmarc"):
        header_from = r.prop("header.from")
        if header_from is not None and domain_of(header_from) != from_domain:
            continue
        if r.result == "fail":
            return "fail", _describe(r)
    return None


def _aligned_pass(results: AuthResults, from_domain: str) -> tuple[str, str] | None:
    """DMARC passed for the From, or SPF or DKIM passed for a domain aligned with it."""
    passes = [r for r in results.of("dmarc") if r.result == "pass"
              and domain_of(r.prop("header.from") or from_domain) == from_domain]
    passes += [r for r in results.of("spf") if r.result == "pass" and aligned(
        r.prop("smtp.mailfrom") or r.prop("smtp.helo"), from_domain)]
    passes += [r for r in results.of("dkim") if r.result == "pass" and aligned(
        r.prop("header.d") or r.prop("header.i"), from_domain)]
    return ("pass", _describe(passes[0])) if passes else None


def _explicit_fail(results: AuthResults, from_domain: str) -> tuple[str, str] | None:
    """An explicit fail, with nothing aligned passing: the From is very likely forged.
    A DKIM fail counts only when no DKIM signature passed at all."""
    dkim = results.of("dkim")
    fails = [r for r in results.of("spf") if r.result == "fail"]
    if not any(r.result == "pass" for r in dkim):
        fails += [r for r in dkim if r.result == "fail"]
    return ("fail", _describe(fails[0])) if fails else None


_CHECKS: tuple[_Check, ...] = (_dmarc_fail, _aligned_pass, _explicit_fail)


def _nothing_decided(results: AuthResults) -> tuple[str, str]:
    found = "; ".join(_describe(r) for r in results.results if r.method in ("spf", "dkim", "dmarc"))
    return "none", f"no aligned pass ({found})" if found else "no SPF, DKIM or DMARC result"


def evaluate_results(results: AuthResults, from_domain: str) -> tuple[str, str]:
    """("pass" | "fail" | "none", what decided it) for the address a reply would go to."""
    for check in _CHECKS:
        decided = check(results, from_domain)
        if decided is not None:
            return decided
    return _nothing_decided(results)


def _topmost(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers if k.lower() == name), None)


def trusted_relay(ip: str | None, settings: Authenticity) -> bool:
    """Is `ip` one of the relays whose headers (Authentication-Results, spam flag) we read?"""
    return in_networks(ip, settings.trusted_relays)


def spam_verdict(value: str | None, settings: Authenticity) -> bool:
    spam = settings.spam_header
    if spam is None or value is None:
        return False
    value = value.strip()
    if spam.pattern is not None:
        return spam.pattern.search(value) is not None
    # A value list is compared with the first word: `X-Spam-Status: Yes, score=7.1 ...`.
    first = re.split(r"[\s,;]+", value, maxsplit=1)[0].lower()
    return first in spam.values


def judge_authenticity(headers: tuple[tuple[str, str], ...], *, sender: str,
                       source: str | None, own_results: str | None,
                       settings: Authenticity) -> AuthenticityVerdict:
    """Judge the sender's authenticity from what may be believed (module docstring)."""
    from_domain = domain_of(sender)
    ip = source_ip(source)
    via_smtp = bool(source and source.startswith("smtp:"))
    # Headers are read only from a relay we trust: over SMTP its IP says so; IMAP and pipe
    # mail was put in the mailbox by its own MTA, which the authserv-id names.
    relay = trusted_relay(ip, settings) if via_smtp else True
    spam = False
    spam_reason = ""
    if settings.spam_header is not None and (
            trusted_relay(ip, settings) if via_smtp else bool(settings.trusted_authserv_ids)):
        value = _topmost(headers, settings.spam_header.name)
        if spam_verdict(value, settings):
            spam = True
            spam_reason = f"spam verdict {settings.spam_header.name}: {value.strip()[:80]}"
    parsed = None
    where = ""
    if own_results:
        parsed = parse_authentication_results(own_results)
        where = "maildesk's own check"
    elif relay:
        # Only the topmost header: a copy further down, even with our relay's id, may have come
        # with the mail (when several milters each write one, the DMARC verdict must be on top).
        top = _topmost(headers, "Authentication-Results")
        candidate = parse_authentication_results(top) if top is not None else None
        if candidate is not None and candidate.authserv_id in settings.trusted_authserv_ids:
            parsed = candidate
            where = f"Authentication-Results of {candidate.authserv_id}"
    if parsed is None:
        result, why = "none", "no trusted Authentication-Results"
    else:
        result, why = evaluate_results(parsed, from_domain)
        why = f"{why} ({where})"
    reason = "; ".join(x for x in (spam_reason, why) if x)
    return AuthenticityVerdict(result, spam, reason)


def autoreply_refusal(verdict: AuthenticityVerdict, policy: str) -> str | None:
    """Why no automatic mail may go to the sender under `policy`; None when it may."""
    if policy == "off":
        return None
    if verdict.spam:
        return f"authenticity ({policy}): {verdict.reason}"
    if verdict.result == "fail":
        return f"authenticity ({policy}): the sender failed authentication: {verdict.reason}"
    if policy == "require-pass" and verdict.result != "pass":
        return f"authenticity (require-pass): no authenticated sender: {verdict.reason}"
    return None


# -- agents ------------------------------------------------------------------------------------

def authenticated_by(headers: tuple[tuple[str, str], ...], authserv_id: str | None,
                     sender: str) -> bool:
    """Did the MTA `authserv_id` record a DKIM or SPF pass for the sender's own domain?

    The first Authentication-Results header with that id decides (RFC 8601 §5: the receiving
    MTA removes such headers arriving from outside; the one it adds comes first)."""
    if not authserv_id or "@" not in sender:
        return False
    domain = domain_of(sender)
    for name, value in headers:
        if name.lower() != "authentication-results":
            continue
        parsed = parse_authentication_results(value)
        if parsed is None or parsed.authserv_id != authserv_id.lower():
            continue
        return any(r.result == "pass" and any(
            k in ("header.d", "header.i", "smtp.mailfrom") and domain_of(v) == domain
            for k, v in r.props) for r in (*parsed.of("dkim"), *parsed.of("spf")))
    return False
