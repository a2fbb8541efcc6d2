"""lwtui's programs on routes, found by the route dumps alone (no state file needed).

Every program lwtui attaches is named `lwtui_HOOK_ID` (ID: the kernel's
program id), and route dumps carry those names: `encap bpf out
lwtui_out_123`. So after a SIGKILL whose state file was lost or damaged,
the routes still say what lwtui changed, in every namespace. What a dump
allows restoring:

- a route that carries lwtui's encap (out, xmit, and `in` on an IPv4 local
  route): the same route without the encap (`replace`, or deleting lwtui's
  copy when the kernel re-added its own beside it);
- the private table of an IPv6 `in` hook (lwtui.net.policy): its rules and
  route go, the kernel's local rule stays (or comes back).

A route lwtui created with `--dev` cannot be told from one that was there:
it stays, without the encap. Which programs still belong to a running
session is not this module's call (see lwtui.session.recovery).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyroute2 import netns as _netns
from pyroute2.netlink.exceptions import NetlinkError

from lwtui.net.attrs import (LOCAL, RTPROT_KERNEL, Attachment, Target, describe_encap, route_net, route_table,
                             where)
from lwtui.net.netlink import dump, netlink_error, rtnl
from lwtui.net.policy import POLICY_TABLE_BASE

PROG_NAME = re.compile(r"lwtui_(in|out|xmit)_([0-9]+)\Z")
_POLICY_TABLES = range(POLICY_TABLE_BASE, POLICY_TABLE_BASE + 4096)


def prog_id(name: str) -> int | None:
    """The kernel program id in one of lwtui's program names, None for another name."""
    m = PROG_NAME.match(name)
    return int(m.group(2)) if m else None


@dataclass
class Leftover:
    """A route carrying lwtui's programs, as its namespace's dump shows it."""
    netns: str | None
    route: dict

    @property
    def progs(self) -> dict[str, str]:
        return self.route["progs"]

    @property
    def policy(self) -> bool:
        """An IPv6 `in` hook's private table (restored by policy), not a route changed in place."""
        return self.route["family"] == 10 and route_table(self.route) in _POLICY_TABLES

    def describe(self) -> str:
        table = route_table(self.route)
        name = {254: "main", LOCAL: "local"}.get(table, str(table))
        return f"{route_net(self.route)} (table {name}) in {where(self.netns)}: encap {describe_encap(self.route)}"

    def attachment(self) -> Attachment:
        """What lwtui.net.routes.detach needs to undo it, built from the dump."""
        hook, name = next(iter(sorted(self.progs.items())))
        target = Target(prefix=str(route_net(self.route)), hook=hook, netns=self.netns)
        plain = {k: v for k, v in self.route.items() if k != "encap_type"}
        plain["progs"] = {}
        if self.policy:     # the route in lwtui's private table names the address and type it stood for
            return Attachment(target, name, "policy", plain,
                              {"table": route_table(self.route), "local_pref": 0, "local_proto": RTPROT_KERNEL})
        return Attachment(target, name, "replace", plain)


def namespaces() -> list[str | None]:
    """This namespace (None) and every named one (`ip netns list`)."""
    return [None, *sorted(_netns.listnetns())]


def find(netns: str | None) -> list[Leftover]:
    """Routes of `netns` whose encap holds lwtui's programs and nothing else.

    Raises RouteError (NamespaceGone when the namespace went away), or OSError.
    """
    try:
        with rtnl(netns) as ipr:
            routes = dump(ipr, 2) + dump(ipr, 10)
    except NetlinkError as e:
        raise netlink_error(f"reading the routes of {where(netns)}", e) from None
    return [Leftover(netns, r) for r in routes
            if r["progs"] and all(prog_id(n) is not None for n in r["progs"].values())]
