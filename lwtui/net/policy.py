"""The `in` hook on an IPv6 address, by policy routing (a method of lwtui.net.routes).

IPv6 local routes have metric 0, which netlink cannot recreate (0 becomes
1024), so the kernel's local route stays untouched. A rule `to ADDR lookup T`,
placed before the `lookup local` rule, sends the address to a private table T
whose local route carries the encap. The local rule sits at pref 0, so it is
moved behind ours while a temporary copy at pref 1 keeps local delivery
working. Restore removes lwtui's own rule (its full identity: preference,
table, protocol, address) and its own route (the local route carrying its
program, by name) from any intermediate state; never a whole table, which may
hold what someone else added, or be reused by a later session in a namespace
of the same name.
"""

from __future__ import annotations

import ipaddress
import time

from pyroute2.netlink.exceptions import NetlinkError

from lwtui.net.attrs import (LOCAL, RTPROT_KERNEL, Attachment, LwtuiEncap, RouteError, Target, bpf_encap, find_route,
                           refuse_unusable, route_kwargs, route_net, route_table, where)
from lwtui.net.netlink import dump, ignore_gone, netlink_error, rules

POLICY_TABLE_BASE = 0x6C77         # private tables for IPv6 `in`: the first free one from here
RULE_PROTO = 0x6C                  # FRA_PROTOCOL of lwtui's rules, so cleanup can tell them apart


def local_rules(rule_list: list[dict]) -> list[dict]:
    """Plain `lookup local` rules (no selectors) not made by lwtui, by preference."""
    plain = {"dst_len", "src_len", "FRA_TABLE", "FRA_PRIORITY", "FRA_PROTOCOL", "FRA_SUPPRESS_PREFIXLEN"}
    return sorted((r for r in rule_list if r["FRA_TABLE"] == LOCAL and set(r) <= plain and not r["dst_len"]
                   and not r["src_len"] and r.get("FRA_PROTOCOL") != RULE_PROTO), key=lambda r: r["FRA_PRIORITY"])


def _free_table(ipr, name: str) -> int:
    """A table no route or rule uses, searched from a place that depends on the program name."""
    used = {route_table(r) for fam in (2, 10) for r in dump(ipr, fam)}
    used |= {r["FRA_TABLE"] for fam in (2, 10) for r in rules(ipr, fam)}
    start = sum(name.encode()) * 131 % 4096
    return next(POLICY_TABLE_BASE + (start + i) % 4096 for i in range(4096)
                if POLICY_TABLE_BASE + (start + i) % 4096 not in used)


def _rule_pref(att: Attachment) -> int:
    pref = att.extra.get("local_pref", 0)
    return pref - 1 if pref > 0 else 0


def plan_policy(ipr, t: Target, net) -> tuple[dict, int, int]:
    """Check that `in` can go on IPv6 address `net`: (its local route, local rule pref, its protocol).

    Changes nothing; RouteError names what is in the way.
    """
    local = find_route(dump(ipr, 10), t, net)
    refuse_unusable(local, t, net)
    rule_list = rules(ipr, 10)
    steer = [r for r in rule_list
             if r.get("FRA_DST") and ipaddress.ip_network(f"{r['FRA_DST']}/{r['dst_len']}") == net]
    if steer and steer[0].get("FRA_PROTOCOL") == RULE_PROTO:
        mine = [x for x in dump(ipr, 10) if route_table(x) == steer[0]["FRA_TABLE"] and route_net(x) == net]
        progs = [n for x in mine for n in x["progs"].values()]
        if progs:
            what = f"{net} in {where(t.netns)}"
            raise LwtuiEncap(f"{what} is already steered to lwtui program {progs[0]} (table "
                             f"{steer[0]['FRA_TABLE']}) left by an earlier lwtui session: run `lwtui detach --all`",
                             what, progs)
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
                     {"table": _free_table(ipr, name), "local_pref": pref, "local_proto": proto})
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
    """Undo attach_policy from any intermediate state (also after SIGKILL half-way).

    Only what this attachment made goes: the local route in its table that
    carries its program, and its rule to that table, unless that rule now
    steers to another program's route (a later session that got the same
    table number); lwtui's stand-in local rule only while the local rule is moved.
    """
    table, changed, rule_list = att.extra["table"], False, rules(ipr, 10)
    assert att.original is not None       # a policy attachment always saved its local route
    original = att.original
    net = route_net(original)
    if not local_rules(rule_list):     # killed while the local rule was moved: put it back before anything else
        ipr.rule("add", family=10, priority=att.extra.get("local_pref", 0), table=LOCAL,
                 protocol=att.extra.get("local_proto", RTPROT_KERNEL))
        changed = True
    in_table = [r for r in dump(ipr, 10) if route_table(r) == table and route_net(r) == net
                and r["type"] == original["type"]]
    mine = [r for r in in_table if r["progs"].get("in") == att.prog_name]
    theirs = len(in_table) > len(mine)
    for r in rule_list:
        if r.get("FRA_PROTOCOL") != RULE_PROTO:
            continue
        stand_in = r["FRA_TABLE"] == LOCAL and not r.get("FRA_DST") and r["FRA_PRIORITY"] == 1
        steer = (r["FRA_TABLE"] == table and r.get("FRA_DST") == str(net.network_address)
                 and r["dst_len"] == net.prefixlen and r["FRA_PRIORITY"] == _rule_pref(att))
        if stand_in or (steer and not theirs):
            sel = {"dst": r["FRA_DST"], "dst_len": r["dst_len"]} if r.get("FRA_DST") else {}
            ignore_gone(ipr.rule, "del", family=10, priority=r["FRA_PRIORITY"], table=r["FRA_TABLE"],
                        protocol=RULE_PROTO, **sel)
            changed = True
    for r in mine:
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
