"""A real DNS server on 127.0.0.1 or ::1 (UDP and TCP, same random port) answering from a dict.

Tests that need DNS (SPF, MX look-ups) point a resolver at it instead of mocking dnspython::

    records = {
        "example.com": {"TXT": ["v=spf1 mx -all"], "MX": ["10 mx.example.com"]},
        "mx.example.com": {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"]},
        "www.example.com": {"CNAME": ["example.com"]},
    }
    with DnsServer(records, servfail={"broken.example"}, delays={"slow.example": 5}) as server:
        resolver = make_resolver(server.nameservers)

Names are matched case-insensitively without the final dot. A name absent from ``records`` is
NXDOMAIN; a present name without the asked type is an empty NOERROR answer. Record values are
the usual zone-file text (relative names are taken as absolute), except TXT values, which are
the plain string (split into 255-byte character-strings by the server). CNAMEs are followed
within the data, as a recursive resolver would. Names in ``servfail`` answer SERVFAIL; names in
``delays`` answer after that many seconds (the wait ends early when the server stops).
A test may change the data between queries: ``set_records()`` for the records (parsed at
once, so a malformed value fails in the test), ``servfail`` and ``delays`` directly.
``queries`` records each question as (name, type, "udp" | "tcp").
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

Records = Mapping[str, Mapping[str, Sequence[str]]]

TTL = 60
MAX_CNAME_HOPS = 8
UDP_DEFAULT_PAYLOAD = 512


def _key(name: str | dns.name.Name) -> str:
    text = name.to_text() if isinstance(name, dns.name.Name) else name
    return text.rstrip(".").lower()


def _rdata(rdtype: dns.rdatatype.RdataType, value: str) -> dns.rdata.Rdata:
    if rdtype == dns.rdatatype.TXT:
        raw = value.encode()
        chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, chunks)
    return dns.rdata.from_text(
        dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
    )


class DnsServer:
    """Authoritative-looking answers for the names in ``records``, on a loopback address."""

    def __init__(
        self,
        records: Records | None = None,
        *,
        servfail: set[str] | None = None,
        delays: Mapping[str, float] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.records: dict[str, dict[str, list[dns.rdata.Rdata]]] = {}
        self.set_records(records or {})
        self.servfail: set[str] = {_key(n) for n in servfail or ()}
        self.delays: dict[str, float] = {_key(n): d for n, d in (delays or {}).items()}
        self.queries: list[tuple[str, str, str]] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._udp: socketserver.ThreadingUDPServer | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []
        self.port = 0

    def set_records(self, records: Records) -> None:
        """Replace the zone data; a malformed value raises here, in the test, not in the server."""
        parsed: dict[str, dict[str, list[dns.rdata.Rdata]]] = {}
        for name, types in records.items():
            entry = parsed.setdefault(_key(name), {})
            for type_text, values in types.items():
                rdtype = dns.rdatatype.from_text(type_text)
                entry[dns.rdatatype.to_text(rdtype)] = [_rdata(rdtype, v) for v in values]
        self.records = parsed

    @property
    def nameservers(self) -> str:
        """The value for the DNS_NAMESERVERS setting that points at this server."""
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    def start(self) -> DnsServer:
        server = self
        for _attempt in range(20):
            udp = _UdpServer((self.host, 0), _UdpHandler, server)
            port = udp.server_address[1]
            try:
                tcp = _TcpServer((self.host, port), _TcpHandler, server)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError(f"no port free for both UDP and TCP on {self.host}")
        self._udp, self._tcp, self.port = udp, tcp, port
        for srv in (udp, tcp):
            thread = threading.Thread(
                target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for srv in (self._udp, self._tcp):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        for thread in self._threads:
            thread.join()
        self._udp = self._tcp = None
        self._threads = []

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def answer(self, wire: bytes, transport: str) -> dns.message.Message | None:
        """The reply to one query in wire format, or None when it is not a DNS query."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name = _key(question.name)
        with self._lock:
            self.queries.append((name, dns.rdatatype.to_text(question.rdtype), transport))
        delay = self.delays.get(name)
        if delay and self._stopping.wait(delay):
            return None
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        rcode = self._fill(response, question.name, question.rdtype)
        response.set_rcode(rcode)
        return response

    def _fill(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.rcode.Rcode:
        owner = qname
        for _hop in range(MAX_CNAME_HOPS):
            data = self.records.get(_key(owner))
            if data is None:
                return dns.rcode.NXDOMAIN
            if rdtype != dns.rdatatype.CNAME and "CNAME" in data:
                cname = data["CNAME"][0]
                self._add(response, owner, dns.rdatatype.CNAME, [cname])
                owner = cname.target  # type: ignore[attr-defined]
                continue
            values = data.get(dns.rdatatype.to_text(rdtype), [])
            if values:
                self._add(response, owner, rdtype, values)
            return dns.rcode.NOERROR
        return dns.rcode.NOERROR

    @staticmethod
    def _add(
        response: dns.message.Message,
        owner: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        values: Sequence[dns.rdata.Rdata],
    ) -> None:
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, rdtype)
        for value in values:
            rrset.add(value, TTL)
        response.answer.append(rrset)


def udp_wire(response: dns.message.Message, query_wire: bytes) -> bytes:
    """The reply as it fits in a UDP datagram: truncated (TC, no records) when too big."""
    query = dns.message.from_wire(query_wire)
    limit = max(query.payload, UDP_DEFAULT_PAYLOAD) if query.edns >= 0 else UDP_DEFAULT_PAYLOAD
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        truncated = dns.message.make_response(query)
        truncated.flags |= dns.flags.AA | dns.flags.RA | dns.flags.TC
        return truncated.to_wire(max_size=limit)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class _LoopbackServer(socketserver.BaseServer):
    """What both transports share: the address family of the host, one thread per request."""

    daemon_threads = True
    block_on_close = False
    address_family: int

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[socketserver.BaseRequestHandler],
        dns_server: DnsServer,
    ) -> None:
        self.dns_server = dns_server
        self.address_family = _family(address[0])
        super().__init__(address, handler)


class _UdpServer(_LoopbackServer, socketserver.ThreadingUDPServer):
    pass


class _TcpServer(_LoopbackServer, socketserver.ThreadingTCPServer):
    allow_reuse_address = True


class _UdpHandler(socketserver.BaseRequestHandler):
    server: _UdpServer

    def handle(self) -> None:
        wire, sock = self.request
        response = self.server.dns_server.answer(wire, "udp")
        if response is not None:
            sock.sendto(udp_wire(response, wire), self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(5)
        for wire in _tcp_messages(conn):
            response = self.server.dns_server.answer(wire, "tcp")
            if response is None:
                return
            out = response.to_wire(max_size=65535)
            conn.sendall(struct.pack("!H", len(out)) + out)


def _tcp_messages(conn: socket.socket) -> Iterator[bytes]:
    """Length-prefixed messages until the client closes (RFC 1035 4.2.2)."""
    while True:
        try:
            header = _read_exactly(conn, 2)
            if header is None:
                return
            body = _read_exactly(conn, struct.unpack("!H", header)[0])
        except OSError:
            return
        if body is None:
            return
        yield body


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
