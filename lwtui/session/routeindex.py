"""Which watched route a flow belongs to, from its hook and destination address.

The kernel's flow key carries the hook but not the route: at every hook the
destination lies inside the route's prefix (out and xmit: the remote address
the route leads to; in: the local address of the local route), so the most
specific prefix of that hook holding the destination names the route. Two
targets with the same hook and overlapping prefixes in different namespaces
cannot be told apart this way; the first listed wins.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, NamedTuple

_V4_MAPPED = 0xFFFF << 32


class RouteRef(NamedTuple):
    """A watched route as the metrics and the attribution name it."""
    prefix: str
    hook: str
    netns: str | None


def _mapped(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    """(network, mask) on the 128-bit IPv4-mapped space the kernel keys flows in."""
    if net.version == 4:
        return _V4_MAPPED | int(net.network_address), ((1 << 128) - 1) ^ ((1 << (32 - net.prefixlen)) - 1)
    return int(net.network_address), int(net.netmask)


class RouteIndex:
    """Targets of a session by hook, most specific prefix first."""

    def __init__(self, targets: Iterable):
        by_hook: dict[str, list] = {}
        for t in targets:
            try:
                net = ipaddress.ip_network(t.prefix, strict=False)
            except ValueError:
                continue
            base, mask = _mapped(net)
            plen = net.prefixlen + (96 if net.version == 4 else 0)
            by_hook.setdefault(t.hook, []).append((plen, base, mask, RouteRef(t.prefix, t.hook, t.netns)))
        self._by_hook = {h: sorted(v, key=lambda e: -e[0]) for h, v in by_hook.items()}

    def lookup(self, hook: str, daddr16: bytes) -> RouteRef | None:
        """The route of a flow seen at `hook` going to `daddr16` (flow_key.daddr), or None."""
        return self._find(hook, int.from_bytes(daddr16, "big"))

    def route_of(self, hook: str, dst: ipaddress.IPv4Address | ipaddress.IPv6Address) -> RouteRef | None:
        """The route of a flow seen at `hook` going to `dst`, or None."""
        return self._find(hook, (_V4_MAPPED | int(dst)) if dst.version == 4 else int(dst))

    def _find(self, hook: str, addr: int) -> RouteRef | None:
        candidates = self._by_hook.get(hook)
        if not candidates:
            return None
        for _, base, mask, ref in candidates:
            if addr & mask == base:
                return ref
        return None
