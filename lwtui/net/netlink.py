"""rtnetlink plumbing for lwtui.net.routes: a socket in a namespace, dumps, errors.

Sockets are short-lived on purpose: a socket held open in a namespace keeps
that namespace alive after `ip netns del`, and lwtui must never keep the
host's objects alive behind the user's back.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Iterator

from pyroute2 import IPRoute
from pyroute2.netlink import NETLINK_ROUTE
from pyroute2.netlink.exceptions import NetlinkError

from lwtui.net.attrs import GONE, RouteError, attr_pairs, plain, route_to_dict
from lwtui.net.nssocket import netlink_fileno

RTM_F_FIB_MATCH = 0x2000           # `ip route get fibmatch`: return the FIB entry that matched


class NamespaceGone(RouteError):
    """The namespace named by a target does not exist (any more)."""


@contextmanager
def rtnl(netns: str | None) -> Iterator[IPRoute]:
    """An rtnetlink socket in `netns` (never creating it), closed on exit."""
    try:
        ipr = IPRoute(fileno=netlink_fileno(netns, NETLINK_ROUTE), groups=0) if netns else IPRoute(groups=0)
    except FileNotFoundError:
        raise NamespaceGone(f"no namespace {netns}: see `ip netns list`") from None
    try:
        yield ipr
    finally:
        ipr.close()


def dump(ipr, family: int) -> list[dict]:
    """Every route of one family, as route_to_dict dicts."""
    return [route_to_dict(m) for m in ipr.route("dump", family=family)]


def fib_match(ipr, addr: str) -> dict | None:
    """The route a lookup of `addr` hits (one netlink round trip, whatever the table size), or None."""
    try:
        msgs = ipr.route("get", dst=addr, flags=RTM_F_FIB_MATCH)
    except NetlinkError as e:
        if e.code in GONE + (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return None
        raise
    return route_to_dict(msgs[0]) if msgs else None


def rules(ipr, family: int) -> list[dict]:
    """Policy rules of one family: header fields plus FRA_* attributes, priority and table always present."""
    out = []
    for m in ipr.rule("dump", family=family):
        d = {k: int(m.get(k) or 0) for k in ("dst_len", "src_len")}
        d.update(plain(dict(attr_pairs(m.get("attrs")))))
        d.setdefault("FRA_PRIORITY", 0)
        d.setdefault("FRA_TABLE", int(m.get("table") or 0))
        out.append(d)
    return out


def netlink_error(what: str, e: NetlinkError) -> RouteError:
    """A RouteError that says what failed and the likely fix."""
    hint = {errno.EPERM: "run as root (CAP_NET_ADMIN)",
            errno.EINVAL: "the kernel refused the attributes; check the program type matches the hook",
            errno.EEXIST: "a route with these attributes exists already",
            errno.ENODEV: "the device is gone"}.get(e.code, "see `ip -d route`")
    return RouteError(f"{what}: {e.args[1] if len(e.args) > 1 else e} (errno {e.code}): {hint}")


def ignore_gone(fn, *args, **kw) -> None:
    """Call a netlink delete; an object that is already gone is fine."""
    try:
        fn(*args, **kw)
    except NetlinkError as e:
        if e.code not in GONE:
            raise
