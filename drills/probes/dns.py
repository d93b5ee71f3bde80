"""The DNS probe: the query and answer wire format (RFC 1035) and its sampler.

One UDP query a sample, from a fresh connected socket opened in the probe's thread, inside the
source node; a retry is the next sample.
"""

from __future__ import annotations

import random
import socket
import struct
from ipaddress import IPv4Address, IPv6Address

from drills.clock import Clock
from drills.errors import BadInput
from drills.probes.samplers import NoSocket, connected, why
from drills.scenario.probes import DnsSpec

IPAddress = IPv4Address | IPv6Address
DNS_PORT = 53


_DNS_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
_RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def dns_query(ident: int, name: str, rtype: str) -> bytes:
    """A recursive-desired query for `name`/`rtype`, class IN (RFC 1035 §4.1)."""
    try:
        labels = [label.encode("idna") for label in name.rstrip(".").split(".") if label]
    except UnicodeError:
        raise BadInput(f"'{name}' is not a valid DNS name") from None
    if any(len(label) > 63 for label in labels) or sum(len(label) + 1 for label in labels) > 254:
        raise BadInput(f"'{name}' is not a valid DNS name (a label over 63 or the name over 253 characters)")
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", _DNS_TYPES[rtype], 1)


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]  # IndexError on a truncated message
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length


def dns_answer(response: bytes, query: bytes, rtype: str) -> tuple[bool, str] | None:
    """Verdict on `response` to `query`: None when it answers another query (id or question
    differ); else (ok, detail), ok meaning rcode 0 with at least one answer of type `rtype`."""
    if len(response) < 12 or response[:2] != query[:2] or not response[2] & 0x80:
        return None
    question = query[12:]
    if response[12 : 12 + len(question)].lower() != question.lower():
        return None
    flags, _qd, answers = struct.unpack_from("!HHH", response, 2)
    if flags & 0x0F:
        return False, f"rcode {flags & 0x0F} ({_RCODES.get(flags & 0x0F, 'error')})"
    wanted, matching, pos = _DNS_TYPES[rtype], 0, 12 + len(question)
    try:
        for _ in range(answers):
            pos = _skip_name(response, pos)
            kind, _class, _ttl, length = struct.unpack_from("!HHIH", response, pos)
            pos += 10 + length
            matching += kind == wanted
    except (IndexError, struct.error):
        pos = len(response) + 1
    if pos > len(response):  # a name, record header or rdata runs past the end
        return False, "malformed response"
    if matching:
        return True, f"{matching} {rtype} answer{'s' if matching > 1 else ''}"
    truncated = " (truncated)" if flags & 0x0200 else ""
    return False, f"no {rtype} answer ({answers} of other types){truncated}"


class Dns(NoSocket):
    """One UDP query a sample, from a fresh connected socket (so only the server's answers
    arrive, and an ICMP port unreachable shows as a refusal); any retry is the next sample."""

    def __init__(
        self,
        source: IPAddress | None,
        target: IPAddress,
        port: int,
        spec: DnsSpec,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self._source, self._target, self._port, self._clock, self._rng = source, target, port, clock, rng
        self._timeout_s, self._name, self._rtype = spec.timeout_s, spec.query, spec.record
        dns_query(0, self._name, self._rtype)  # bad names are refused now, not once a sample

    def take(self, sent_s: float) -> tuple[bool, float | None, str]:
        query = dns_query(self._rng.getrandbits(16), self._name, self._rtype)
        now_s = self._clock.now_s
        deadline = now_s() + self._timeout_s
        try:
            with connected(socket.SOCK_DGRAM, self._source, self._target, self._port, self._timeout_s) as sock:
                sock.send(query)
                while (remaining := deadline - now_s()) > 0:
                    sock.settimeout(remaining)
                    verdict = dns_answer(sock.recv(65535), query, self._rtype)
                    if verdict is not None:
                        latency_s = self._clock.now_s() - sent_s
                        ok, detail = verdict
                        return ok, latency_s if ok else None, detail
        except TimeoutError:
            pass
        except ConnectionRefusedError:
            return False, None, f"port unreachable: no DNS server on {self._target} port {self._port}"
        except OSError as exc:
            return False, None, f"query failed: {why(exc)}"
        return False, None, f"no answer within {self._timeout_s:g} s"
