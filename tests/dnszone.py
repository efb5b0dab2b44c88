"""A DNS server on loopback serving a small zone from a dict, for the authenticity tests.

`Zone` answers A, TXT (split into 255-byte strings, as a DKIM key needs) and NXDOMAIN for
names it does not know; `silent` makes it keep quiet, so a test can see a resolver time out.
Nothing in a test asks any other resolver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, TXT, A
from dnslib.dns import DNSError
from dnslib.server import BaseResolver, DNSLogger, DNSServer


@dataclass
class Zone(BaseResolver):
    txt: dict[str, list[str]] = field(default_factory=dict)
    a: dict[str, list[str]] = field(default_factory=dict)
    silent: bool = False
    asked: list[tuple[str, str]] = field(default_factory=list)

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.asked.append((qname, qtype))
        if self.silent:
            raise DNSError("silent")  # the server logs it (not here) and sends nothing back
        reply = request.reply()
        known = qname in self.txt or qname in self.a
        if qtype == "TXT":
            for value in self.txt.get(qname, []):
                data = value.encode()
                chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        elif qtype == "A":
            for value in self.a.get(qname, []):
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(value), ttl=60))
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class DnsServer:
    """`Zone` served over UDP on 127.0.0.1 at a free port, in a background thread."""

    def __init__(self, zone: Zone):
        self.zone = zone
        self.server = DNSServer(zone, port=0, address="127.0.0.1",
                                logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,"
                                                 "-data", prefix=False))
        self.port = self.server.server.server_address[1]

    def __enter__(self) -> DnsServer:
        self.server.start_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.server.server.server_close()
