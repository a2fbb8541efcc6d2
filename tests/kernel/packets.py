"""Crafted packets for BPF_PROG_TEST_RUN, built with struct (no scapy).

Every builder returns bytes of one header plus what follows it; `frame()`
prepends the 14-byte Ethernet header that BPF_PROG_TEST_RUN strips before an
LWT program sees the IP header. Checksums are left zero: the programs never
check them.
"""

from __future__ import annotations

import ipaddress
import struct

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
# BPF_PROG_TEST_RUN refuses an IPv4 (IPv6) ethertype with fewer than 20 (40)
# bytes after it; the programs go by the version nibble, so shorter packets
# are sent with the local experimental ethertype instead.
ETH_P_EXPERIMENTAL = 0x88B5

TCP, UDP, ICMP, ICMPV6, GRE, SCTP = 6, 17, 1, 58, 47, 132
HOPOPTS, ROUTING, FRAGMENT, DSTOPTS, AH, NONE = 0, 43, 44, 60, 51, 59

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80


def _packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def frame(ip_packet: bytes, ethertype: int | None = None) -> bytes:
    """Ethernet header (zero MACs) + IP packet; the ethertype follows the version nibble."""
    if ethertype is None:
        ethertype = ETH_P_IPV6 if ip_packet and ip_packet[0] >> 4 == 6 else ETH_P_IP
    return b"\0" * 12 + struct.pack("!H", ethertype) + ip_packet


# -- L3 ---------------------------------------------------------------------

def ipv4(src: str, dst: str, proto: int, payload: bytes = b"", *, options: bytes = b"",
         frag_offset: int = 0, more_fragments: bool = False, ihl: int | None = None,
         version: int = 4, ident: int = 1, ttl: int = 64) -> bytes:
    """IPv4 header (options padded to 4 bytes) + payload.

    frag_offset is in 8-byte units, as on the wire. ihl/version override the
    computed values to build malformed headers.
    """
    options = options + b"\x00" * (-len(options) % 4)
    if ihl is None:
        ihl = 5 + len(options) // 4
    flags_frag = (0x2000 if more_fragments else 0) | (frag_offset & 0x1FFF)
    total = 20 + len(options) + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, ident, flags_frag,
                      ttl, proto, 0, _packed(src), _packed(dst))
    return hdr + options + payload


def ipv4_option_rr(slots: int = 3) -> bytes:
    """A Record Route option with `slots` empty address slots (3 + 4*slots bytes)."""
    return struct.pack("!BBB", 7, 3 + 4 * slots, 4) + b"\x00" * (4 * slots)


def ipv6(src: str, dst: str, nexthdr: int, payload: bytes = b"", *, version: int = 6,
         hop_limit: int = 64) -> bytes:
    """IPv6 fixed header + payload (which may start with extension headers)."""
    hdr = struct.pack("!IHBB16s16s", version << 28, len(payload), nexthdr, hop_limit,
                      _packed(src), _packed(dst))
    return hdr + payload


def ext_opts(nexthdr: int, length: int = 8) -> bytes:
    """Hop-by-hop or destination options header of `length` bytes (multiple of 8),
    padded with a PadN option."""
    assert length % 8 == 0 and length >= 8
    pad = length - 2
    return struct.pack("!BB", nexthdr, length // 8 - 1) + struct.pack("!BB", 1, pad - 2) + b"\0" * (pad - 2)


def ext_routing(nexthdr: int, segments: int = 1) -> bytes:
    """Type 0-style routing header carrying `segments` addresses (8 + 16*n bytes)."""
    body = struct.pack("!BBI", 0, segments, 0) + (b"\x20\x01\x0d\xb8" + b"\0" * 12) * segments
    return struct.pack("!BB", nexthdr, 2 * segments) + body


def ext_fragment(nexthdr: int, offset: int = 0, more: bool = False, ident: int = 0x1234) -> bytes:
    """Fragment header; offset in 8-byte units."""
    return struct.pack("!BBHI", nexthdr, 0, (offset << 3) | int(more), ident)


def ext_ah(nexthdr: int, icv_words: int = 1) -> bytes:
    """Authentication header: 12 bytes + icv_words * 4."""
    hdrlen = 1 + icv_words  # in 4-byte units, minus 2
    return struct.pack("!BBHII", nexthdr, hdrlen, 0, 0x100, 1) + b"\0" * 4 * icv_words


def ipv6_chain(src: str, dst: str, chain: list[str], proto: int, l4: bytes) -> bytes:
    """IPv6 with extension headers named in `chain` ("hop", "rt", "dst", "frag",
    "ah", in order) before `l4` of protocol `proto`."""
    kinds = {"hop": HOPOPTS, "rt": ROUTING, "dst": DSTOPTS, "frag": FRAGMENT, "ah": AH}
    numbers = [kinds[c] for c in chain] + [proto]
    body = l4
    for i in range(len(chain) - 1, -1, -1):
        nxt = numbers[i + 1]
        c = chain[i]
        if c in ("hop", "dst"):
            body = ext_opts(nxt) + body
        elif c == "rt":
            body = ext_routing(nxt) + body
        elif c == "frag":
            body = ext_fragment(nxt, 0, True) + body
        else:
            body = ext_ah(nxt) + body
    return ipv6(src, dst, numbers[0], body)


# -- L4 ---------------------------------------------------------------------

def tcp(sport: int, dport: int, flags: int = SYN, payload: bytes = b"", *, doff: int = 5) -> bytes:
    """TCP header (doff*4 bytes, options zero-filled) + payload."""
    hdr = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, doff << 4, flags, 65535, 0, 0)
    return hdr + b"\0" * max(0, doff * 4 - 20) + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(type_: int, code: int = 0, payload: bytes = b"") -> bytes:
    """ICMP: type, code, checksum, and 4 bytes of rest-of-header (id, seq)."""
    return struct.pack("!BBHHH", type_, code, 0, 0x42, 1) + payload


def icmpv6(type_: int, code: int = 0, payload: bytes = b"") -> bytes:
    """ICMPv6: type, code, checksum (4 bytes) + message body."""
    return struct.pack("!BBH", type_, code, 0) + payload


def l4(proto: int, sport: int = 0, dport: int = 0, payload: bytes = b"", flags: int = SYN) -> bytes:
    """The L4 header of `proto` with ports (ICMP: type/code), or raw payload."""
    if proto == TCP:
        return tcp(sport, dport, flags, payload)
    if proto == UDP:
        return udp(sport, dport, payload)
    if proto == ICMP:
        return icmp(sport, dport, payload)
    if proto == ICMPV6:
        return icmpv6(sport, dport, payload)
    return payload


L4_HEADER_LEN = {TCP: 20, UDP: 8, ICMP: 8, ICMPV6: 4}


def packet(family: int, proto: int, src: str, dst: str, sport: int = 0, dport: int = 0,
           payload: bytes = b"", flags: int = SYN) -> bytes:
    """A whole frame: Ethernet + IPv4/IPv6 + the L4 header of `proto` + payload."""
    body = l4(proto, sport, dport, payload, flags)
    ip = ipv4(src, dst, proto, body) if family == 4 else ipv6(src, dst, proto, body)
    return frame(ip)


# -- checksummed, for real sockets ------------------------------------------

def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    if ipaddress.ip_address(src).version == 4:
        return _packed(src) + _packed(dst) + struct.pack("!BBH", 0, proto, length)
    return _packed(src) + _packed(dst) + struct.pack("!IxxxB", length, proto)


def with_l4_checksum(src: str, dst: str, proto: int, seg: bytes) -> bytes:
    """`seg` (a TCP or UDP header + payload) with its checksum filled in."""
    at = 16 if proto == TCP else 6
    seg = seg[:at] + b"\0\0" + seg[at + 2:]
    c = checksum(_pseudo(src, dst, proto, len(seg)) + seg) or 0xFFFF
    return seg[:at] + struct.pack("!H", c) + seg[at + 2:]


def dstopts_chain(n: int, nexthdr: int, body: bytes) -> tuple[int, bytes]:
    """n destination-options headers before `body`; (first next-header value, bytes)."""
    for _ in range(n):
        body = ext_opts(nexthdr) + body
        nexthdr = DSTOPTS
    return nexthdr, body
