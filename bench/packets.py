"""Crafted packets for BPF_PROG_TEST_RUN.

Each packet starts with the 14-byte Ethernet header the kernel strips before
an LWT program runs (12 zero bytes and the ethertype), so the program sees the
IP header first, as on a route. Checksums are filled in although no program
here looks at them. Sizes follow a small data packet (about 100 bytes).
"""

from __future__ import annotations

import ipaddress
import struct

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
TCP_ACK = 0x10

SRC4, DST4, DROP4 = "10.0.0.2", "10.0.0.3", "10.0.0.9"
SRC6, DST6, DROP6 = "fd00:6c77::2", "fd00:6c77::3", "fd00:6c77::9"
SPORT, DPORT, DROP_PORT = 40000, 80, 8080


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _eth(ethertype: int) -> bytes:
    return b"\0" * 12 + struct.pack("!H", ethertype)


def _ipv4(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, 64, proto, 0,
                      ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return _eth(ETH_P_IP) + hdr + l4


def _ipv6(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64,
                      ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed)
    return _eth(ETH_P_IPV6) + hdr + l4


def _tcp(sport: int, dport: int, payload: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, TCP_ACK, 512, 0, 0) + b"x" * payload


def _udp(sport: int, dport: int, payload: int) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + payload, 0) + b"x" * payload


def _icmp_echo(ident: int, payload: int) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"x" * payload
    return body[:2] + struct.pack("!H", _csum(body)) + body[4:]


def packet(kind: str, sport: int = SPORT, dropped: bool = False) -> bytes:
    """One of "tcp", "udp", "icmp", "tcp6": a ~100-byte packet of that kind.

    `dropped` sends it to the address (and, for TCP/UDP, the port) the drop
    rules of the benchmarks match. `sport` makes distinct flows (for ICMP it
    is the echo identifier, which the flow key does not carry: the benchmarks
    vary TCP/UDP ports for new flows).
    """
    dst4, dst6 = (DROP4, DROP6) if dropped else (DST4, DST6)
    dport = DROP_PORT if dropped else DPORT
    if kind == "tcp":
        return _ipv4(SRC4, dst4, 6, _tcp(sport, dport, 50))
    if kind == "udp":
        return _ipv4(SRC4, dst4, 17, _udp(sport, dport, 64))
    if kind == "icmp":
        return _ipv4(SRC4, dst4, 1, _icmp_echo(sport & 0xFFFF, 56))
    if kind == "tcp6":
        return _ipv6(SRC6, dst6, 6, _tcp(sport, dport, 50))
    raise ValueError(f"unknown packet kind {kind!r}")


KINDS = ("tcp", "udp", "icmp", "tcp6")
# Rules (lwtui grammar) that drop every `dropped=True` packet above.
DROP_RULES = (f"host {DROP4}/32", f"host {DROP6}/128")
