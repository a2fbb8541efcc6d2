"""The `in` hook on an IPv6 address, by policy routing (a method of lwtui.net.routes).

IPv6 local routes have metric 0, which netlink cannot recreate (0 becomes
1024), so the kernel's local route stays untouched. A rule `to ADDR lookup T`,
placed before the `lookup local` rule, sends the address to a private table T
whose local route carries the encap. The local rule sits at pref 0, so it is
moved behind ours while a temporary copy at pref 1 keeps local delivery
working. Restore removes the rule and the table, from any intermediate state.
"""

from __future__ import annotations

import ipaddress
import time

from pyroute2.netlink.exceptions import NetlinkError

from lwtui.net.attrs import (LOCAL, RTPROT_KERNEL, Attachment, RouteError, Target, bpf_encap, find_route,
                           refuse_unusable, route_kwargs, route_net, route_table, where)
from lwtui.net.netlink import dump, ignore_gone, netlink_error, rules

POLICY_TABLE_BASE = 0x6C77         # private tables for IPv6 `in`: the first free one from here
RULE_PROTO = 0x6C                  # FRA_PROTOCOL of lwtui's rules, so cleanup can tell them apart


def local_rules(rule_list: list[dict]) -> list[dict]:
    """Plain `lookup local` rules (no selectors) not made by lwtui, by preference."""
    plain = {"dst_len", "src_len", "FRA_TABLE", "FRA_PRIORITY", "FRA_PROTOCOL", "FRA_SUPPRESS_PREFIXLEN"}
    return sorted((r for r in rule_list if r["FRA_TABLE"] == LOCAL and set(r) <= plain and not r["dst_len"]
                   and not r["src_len"] and r.get("FRA_PROTOCOL") != RULE_PROTO), key=lambda r: r["FRA_PRIORITY"])


def _free_table(ipr) -> int:
    used = {route_table(r) for fam in (2, 10) for r in dump(ipr, fam)}
    used |= {r["FRA_TABLE"] for fam in (2, 10) for r in rules(ipr, fam)}
    return next(n for n in range(POLICY_TABLE_BASE, POLICY_TABLE_BASE + 4096) if n not in used)


def plan_policy(ipr, t: Target, net) -> tuple[dict, int, int]:
    """Check that `in` can go on IPv6 address `net`: (its local route, local rule pref, its protocol).

    Changes nothing; RouteError names what is in the way.
    """
    local = find_route(dump(ipr, 10), t, net)
    refuse_unusable(local, t, net)
    rule_list = rules(ipr, 10)
    steer = [r for r in rule_list
             if r.get("FRA_DST") and ipaddress.ip_network(f"{r['FRA_DST']}/{r['dst_len']}") == net]
    if steer:
        raise RouteError(f"a rule already steers {net} in {where(t.netns)} (pref {steer[0]['FRA_PRIORITY']}, "
                         f"table {steer[0]['FRA_TABLE']}): remove it (`ip -6 rule del ...`) or run "
                         "`lwtui detach --all`")
    lrules = local_rules(rule_list)
    if not lrules:
        raise RouteError(f"no IPv6 `lookup local` rule in {where(t.netns)}: restore it with "
                         "`ip -6 rule add pref 0 lookup local`")
    return local, lrules[0]["FRA_PRIORITY"], lrules[0].get("FRA_PROTOCOL", 0)


def attach_policy(ipr, t: Target, net, fd: int, name: str, on_saved) -> Attachment:
    """Steer `net` to a private table whose local route carries program `fd`; undone on failure."""
    local, pref, proto = plan_policy(ipr, t, net)
    att = Attachment(t, name, "policy", dict(local, saved_at=time.time()),
                     {"table": _free_table(ipr), "local_pref": pref, "local_proto": proto})
    on_saved(att)
    dst, table = {"dst": str(net.network_address), "dst_len": net.prefixlen}, att.extra["table"]
    try:
        ipr.route("add", **dict(route_kwargs(local), table=table, priority=1024), encap=bpf_encap([(att, fd)]))
        if pref > 0:    # room before the local rule: it can stay where it is
            ipr.rule("add", family=10, priority=pref - 1, table=table, protocol=RULE_PROTO, **dst)
        else:           # a new pref-0 rule lands after the local one: move that behind ours, a copy covering the gap
            ipr.rule("add", family=10, priority=1, table=LOCAL, protocol=RULE_PROTO)
            ipr.rule("add", family=10, priority=0, table=table, protocol=RULE_PROTO, **dst)
            ipr.rule("del", family=10, priority=0, table=LOCAL, protocol=proto)
            ipr.rule("add", family=10, priority=0, table=LOCAL, protocol=proto)
            ipr.rule("del", family=10, priority=1, table=LOCAL, protocol=RULE_PROTO)
    except NetlinkError as e:
        detach_policy(ipr, att)
        raise netlink_error(f"attaching in to {net} in {where(t.netns)}", e) from None
    return att


def detach_policy(ipr, att: Attachment) -> str:
    """Undo attach_policy from any intermediate state (also after SIGKILL half-way)."""
    table, changed, rule_list = att.extra["table"], False, rules(ipr, 10)
    if not local_rules(rule_list):     # killed while the local rule was moved: put it back before anything else
        ipr.rule("add", family=10, priority=att.extra.get("local_pref", 0), table=LOCAL,
                 protocol=att.extra.get("local_proto", RTPROT_KERNEL))
        changed = True
    for r in rule_list:
        if r.get("FRA_PROTOCOL") == RULE_PROTO and r["FRA_TABLE"] in (table, LOCAL):
            sel = {"dst": r["FRA_DST"], "dst_len": r["dst_len"]} if r.get("FRA_DST") else {}
            ignore_gone(ipr.rule, "del", family=10, priority=r["FRA_PRIORITY"], table=r["FRA_TABLE"],
                        protocol=RULE_PROTO, **sel)
            changed = True
    for r in dump(ipr, 10):
        if route_table(r) == table:
            ignore_gone(ipr.route, "del", **route_kwargs(r))
            changed = True
    return "restored" if changed else "already restored"


def policy_encap(ipr, net, routes: list[dict] | None = None) -> dict | None:
    """The local route lwtui's rule steers `net` to (in its private table), or None."""
    for r in rules(ipr, 10):
        if r.get("FRA_PROTOCOL") == RULE_PROTO and r.get("FRA_DST") == str(net.network_address):
            mine = [x for x in (routes if routes is not None else dump(ipr, 10))
                    if route_table(x) == r["FRA_TABLE"] and route_net(x) == net]
            return mine[0] if mine else None
    return None
