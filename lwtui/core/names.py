"""Names of things on the wire and in lwtui, defined once: hooks, protocols,
TCP flags, and how an endpoint is written.

Everything here is a fact of the protocols or of lwtui's own vocabulary, not of
the kernel's encodings (those are in lwtui.kernel.kstructs, which uses these).
"""

from __future__ import annotations

import ipaddress
from typing import Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

HOOKS = ("in", "out", "xmit")  # the LWT hooks, in the kernel's order (HOOK_IN=0 ...)

IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
PROTO_NAMES = {IPPROTO_ICMP: "icmp", IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_ICMPV6: "icmpv6"}
PROTO_BY_NAME = {v: k for k, v in PROTO_NAMES.items()}
ICMP_PROTOS = (IPPROTO_ICMP, IPPROTO_ICMPV6)
PORT_PROTOS = (IPPROTO_TCP, IPPROTO_UDP)  # the protocols whose ports lwtui reads

# TCP header flag bits, bit 0 (FIN) to bit 7 (CWR): (bit, letter, name).
TCP_FLAGS = ((0x01, "F", "FIN"), (0x02, "S", "SYN"), (0x04, "R", "RST"), (0x08, "P", "PSH"),
             (0x10, "A", "ACK"), (0x20, "U", "URG"), (0x40, "E", "ECE"), (0x80, "C", "CWR"))


def proto_name(proto: int) -> str:
    """'tcp' for 6, '132' for a protocol without a name here."""
    return PROTO_NAMES.get(proto, str(proto))


def addr_text(addr: IPAddress | str) -> str:
    """An address (an object or its text) as it stands before a port: IPv6 in brackets ([fd00::2])."""
    text = str(addr)
    return f"[{text}]" if ":" in text else text


def endpoint(addr: IPAddress | str, port: int | None = None) -> str:
    """ADDR:PORT, IPv6 in brackets ([fd00::2]:5000), as rules, tables, URLs and messages
    write it; the bare address when there is no port."""
    if port is None:
        return str(addr)
    return f"{addr_text(addr)}:{port}"
