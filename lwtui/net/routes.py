"""Attach BPF programs to routes' LWT hooks (in/out/xmit) and restore the routes exactly.

Methods, as verified on the target kernel:
- "replace" (out, xmit; in on IPv4): `replace` the route with every attribute
  copied from its dump plus the encap (replace keeps only what is sent), and
  restore by `replace` with the saved attributes.
- "policy" (in on IPv6): see lwtui.net.policy.
- "add" (a Target with `dev` and no route): create the route with the encap,
  delete it on detach.
Hooks of one process on the same route share one encap (e.g. out and xmit).

`preflight` runs every check `attach` makes and changes nothing, so a session
can refuse bad targets before it touches any route. `attach` hands the
Attachment to `on_saved` before changing anything, so a state file can restore
the route after SIGKILL (`Attachment.from_dict`). `check` tells, cheaply,
whether an attachment is still in place (the route may be deleted, its device
or namespace removed, or its encap replaced by someone else).

The pure half (route dicts, lookups, refusals) is lwtui.net.attrs, the
netlink plumbing lwtui.net.netlink; their public names are re-exported here.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from pyroute2.netlink.exceptions import NetlinkError

from lwtui.net.attrs import (  # noqa: F401 (re-exported: lwtui.net.routes is the public face)
    GONE, HOOKS, LOCAL, MAIN, RTN_LOCAL, RTN_UNICAST, RTNH_F_ONLINK, RTPROT_STATIC, Attachment,
    LwtuiEncap, RouteError, Target, bpf_encap, check_target, describe_encap, find_route, kernel_twin,
    parse_prefix,
    refuse_unusable, route_key, route_kwargs, route_net, route_priority, route_table, route_to_dict, same_route,
    where)
from lwtui.net.netlink import NamespaceGone, dump, fib_match, netlink_error, rtnl
from lwtui.net.policy import RULE_PROTO, attach_policy, detach_policy, plan_policy, policy_encap  # noqa: F401

# This process's live attachments by route: (Attachment, prog fd) pairs sharing one encap;
# per process on purpose (docs/ARCHITECTURE.md, "Threads and who owns what").
_LIVE: dict[tuple, list[tuple[Attachment, int]]] = {}


def _family(net) -> int:
    return 2 if net.version == 4 else 10


# -- attach ----------------------------------------------------------------------

def resolve(target: Target) -> dict:
    """The route `target` names (main table for out/xmit, the local route for in) as route_to_dict.

    Raises RouteError naming the closest routes when there is none.
    """
    net = check_target(target)
    with rtnl(target.netns) as ipr:
        return find_route(dump(ipr, _family(net)), target, net)


def _plan(ipr, target: Target, net) -> tuple[str, dict | None, list]:
    """How `attach` would go: ("policy"|"add"|"replace"|"share", route, live group). Changes nothing."""
    if target.hook == "in" and net.version == 6:
        return "policy", plan_policy(ipr, target, net)[0], []
    route = find_route(dump(ipr, _family(net)), target, net, required=target.dev is None or target.hook == "in")
    if route is None:
        if not ipr.link_lookup(ifname=target.dev):
            raise RouteError(f"no device {target.dev} in {where(target.netns)}: see `ip link`")
        return "add", None, []
    group = _LIVE.get(route_key(target, route), [])
    if group and target.hook not in route["progs"] and \
            route["progs"] == {a.target.hook: a.prog_name for a, _ in group}:
        return "share", route, group   # another hook of this process: share the encap and the saved original
    refuse_unusable(route, target, net)
    return "replace", route, []


def preflight(target: Target) -> None:
    """Every check `attach` makes (namespace, route, device, foreign encap, multipath), changing nothing."""
    net = check_target(target)
    with rtnl(target.netns) as ipr:
        _plan(ipr, target, net)


def attach(target: Target, prog_fd: int, prog_name: str,
           on_saved: Callable[[Attachment], None]) -> Attachment:
    """Attach program `prog_fd` (named `prog_name`, unique per load) at the target's hook.

    Refuses routes that carry an encap (unless it is this process's own, on
    another hook of the same route), multipath routes and nexthop objects.
    `on_saved(att)` runs before the route changes. When the change fails the
    route is left (or put back) as it was and RouteError is raised.
    """
    net = check_target(target)
    with rtnl(target.netns) as ipr:
        how, route, group = _plan(ipr, target, net)
        if how == "policy":
            return attach_policy(ipr, target, net, prog_fd, prog_name, on_saved)
        if how == "add":
            return _attach_add(ipr, target, net, prog_fd, prog_name, on_saved)
        assert route is not None    # "share" and "replace" found one
        if how == "share":
            first = group[0][0]
            att = Attachment(target, prog_name, first.method, first.original, dict(first.extra))
            return _apply(ipr, att, prog_fd, "replace", route, group, on_saved)
        base = dict(route, saved_at=time.time())
        return _apply(ipr, Attachment(target, prog_name, "replace", base), prog_fd, "replace", base, [], on_saved)


def _attach_add(ipr, t: Target, net, fd: int, name: str, on_saved) -> Attachment:
    idx = ipr.link_lookup(ifname=t.dev)
    if not idx:
        raise RouteError(f"no device {t.dev} in {where(t.netns)}: see `ip link`")
    made = {"family": _family(net), "dst_len": net.prefixlen, "src_len": 0, "tos": 0,
            "table": MAIN, "proto": RTPROT_STATIC, "scope": 253 if net.version == 4 else 0,
            "type": RTN_UNICAST, "flags": 0, "progs": {},
            "attrs": {"RTA_DST": str(net.network_address), "RTA_OIF": idx[0], "RTA_TABLE": MAIN,
                      **({"RTA_PRIORITY": 1024} if net.version == 6 else {})}}
    return _apply(ipr, Attachment(t, name, "add", None, {"route": made}), fd, "add", made, [], on_saved)


def _apply(ipr, att: Attachment, fd: int, cmd: str, base: dict, group: list, on_saved) -> Attachment:
    """Save `att`, then `cmd` the route `base` with the group's encap plus ours, and read it back."""
    t = att.target
    on_saved(att)
    try:
        ipr.route(cmd, **route_kwargs(base), encap=bpf_encap(group + [(att, fd)]))
    except NetlinkError as e:
        raise netlink_error(f"attaching {t.hook} to {t.prefix} in {where(t.netns)}", e) from None
    now = same_route(dump(ipr, base["family"]), base, t.hook, att.prog_name)
    if now is None or now["progs"].get(t.hook) != att.prog_name:
        raise RouteError(f"attaching {att.prog_name} to {t.prefix} did not take effect (the route shows "
                         f"{describe_encap(now) if now else 'nothing'}): give each program load a unique name")
    _LIVE[route_key(t, base)] = group + [(att, fd)]    # a fresh group drops stale members
    return att


# -- detach ------------------------------------------------------------------------

def detach(att: Attachment, open_prog: Callable[[str], int] | None = None) -> str:
    """Restore what `att` changed; idempotent.

    Returns "restored", "removed", "detached (other hooks stay)", "already
    restored", "route gone", "namespace gone", "removed lwtui's copy (the
    kernel's own route stays)" or "left alone: ..." (the route now carries
    someone else's encap). Raises RouteError only when netlink refuses the
    restore itself.

    `open_prog(name)` opens a program by its name (`lwtui_HOOK_ID`) for a
    process that did not load it (`lwtui detach`): telling lwtui's route from
    the kernel's twin takes the programs' fds (see kernel_twin).
    """
    fds = {a.prog_name: fd for group in _LIVE.values() if any(a is att for a, _ in group) for a, fd in group}
    others = forget(att)
    try:
        with rtnl(att.target.netns) as ipr:
            if att.method == "policy":
                return detach_policy(ipr, att)
            return _detach_route(ipr, att, others, fds, open_prog)
    except NamespaceGone:
        return "namespace gone"
    except NetlinkError as e:
        if e.code in GONE:
            return "route gone"
        raise netlink_error(f"restoring {att.target.prefix} in {where(att.target.netns)}", e) from None


def forget(att: Attachment) -> list[tuple[Attachment, int]]:
    """Drop `att` from this process's live registry; returns the other live hooks on its route."""
    for key, group in list(_LIVE.items()):
        if any(a is att for a, _ in group):
            group[:] = [(a, fd) for a, fd in group if a is not att]
            if not group:
                del _LIVE[key]
            return list(group)
    return []


def _changed_route(att: Attachment) -> dict:
    """The route `att` changed: its original (method replace) or the one it added (add)."""
    base = att.original if att.method == "replace" else att.extra["route"]
    assert base is not None    # a "replace" attachment always saved the original
    return base


def _detach_route(ipr, att: Attachment, others: list, fds: dict, open_prog) -> str:
    base = _changed_route(att)
    routes = dump(ipr, base["family"])
    cur = same_route(routes, base, att.target.hook, att.prog_name)
    if cur is None:
        return "route gone"
    if cur["progs"].get(att.target.hook) != att.prog_name:
        enc = describe_encap(cur)
        return f"left alone: the route now carries encap {enc}" if enc else "already restored"
    if kernel_twin(routes, cur) is not None:
        _delete_own(ipr, att, cur, fds, open_prog)
        return "removed lwtui's copy (the kernel's own route stays)"
    if others:
        ipr.route("replace", **route_kwargs(cur), encap=bpf_encap(others))
        return "detached (other hooks stay)"
    if att.method == "add":
        ipr.route("del", **route_kwargs(cur))
        return "removed"
    ipr.route("replace", **route_kwargs(base))
    return "restored"


def _delete_own(ipr, att: Attachment, cur: dict, fds: dict, open_prog) -> None:
    """Delete the route carrying lwtui's encap and not its kernel twin: the kernel matches the
    encap (by program names) only when the delete carries one, built from the programs' fds."""
    opened: list[int] = []
    enc: dict[str, Any] = {"type": "bpf"}
    try:
        for hook, name in cur["progs"].items():
            fd = fds.get(name)
            if fd is None and open_prog is not None:
                try:
                    fd = open_prog(name)
                except OSError as e:
                    raise RouteError(f"cannot open program {name} ({e.strerror})") from None
                opened.append(fd)
            if fd is None:
                raise RouteError(f"{att.target.prefix} in {where(att.target.netns)} has a plain twin and "
                                 f"{name} cannot be opened to tell them apart: run `lwtui detach --all`")
            enc[hook] = {"fd": fd, "name": name}
        ipr.route("del", **route_kwargs(cur), encap=enc)
    finally:
        for fd in opened:
            os.close(fd)


# -- inspection ----------------------------------------------------------------------

def check(att: Attachment) -> str | None:
    """None while `att`'s program is on its route; else why not: "namespace gone", "route gone",
    "device gone" or "encap replaced (...)".

    Cheap on big tables: one route lookup (`ip route get fibmatch`); a full
    dump only when the lookup hits another route (e.g. a more specific one).
    Raises RouteError (or OSError) when netlink fails: the caller tries again later.
    """
    t = att.target
    net = parse_prefix(t.prefix)
    try:
        with rtnl(t.netns) as ipr:
            hit = fib_match(ipr, str(net.network_address))
            if hit is not None and route_net(hit) == net and hit["progs"].get(t.hook) == att.prog_name:
                return None
            if att.method == "policy":
                cur = policy_encap(ipr, net)
            else:
                base = _changed_route(att)
                cur = same_route(dump(ipr, base["family"]), base, t.hook, att.prog_name)
            links = {link["index"] for link in ipr.get_links()}
    except NamespaceGone:
        return "namespace gone"
    except NetlinkError as e:
        raise netlink_error(f"checking {t.prefix} in {where(t.netns)}", e) from None
    if cur is None:
        oif = (att.original or att.extra.get("route") or {}).get("attrs", {}).get("RTA_OIF")
        return "device gone" if oif is not None and oif not in links else "route gone"
    if cur["progs"].get(t.hook) == att.prog_name:
        return None
    return f"encap replaced (the route now carries {describe_encap(cur) or 'no encap'})"


def has_kernel_twin(att: Attachment) -> bool:
    """True when the kernel re-added its own route beside the one carrying `att`'s program
    (a local route after its link went down and up: see kernel_twin). Only `in` on IPv4 can
    meet it; other attachments answer False without asking netlink."""
    original = att.original
    if att.method != "replace" or att.target.hook != "in" or original is None or original["family"] != 2:
        return False
    try:
        with rtnl(att.target.netns) as ipr:     # table local only: the main table may be huge
            routes = [route_to_dict(m) for m in ipr.route("dump", family=2, table=LOCAL)]
    except NamespaceGone:
        return False
    cur = same_route(routes, original, att.target.hook, att.prog_name)
    return cur is not None and cur["progs"].get(att.target.hook) == att.prog_name and \
        kernel_twin(routes, cur) is not None


def list_routes(netns: str | None = None) -> list[dict]:
    """Routes a picker can offer: main-table unicast ones (out, xmit) and local addresses (in).

    Each: prefix, family (4/6), table ("main"/"local"), dev, metric, hooks
    (empty when the route cannot take a program) and encap (or None).
    """
    with rtnl(netns) as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        routes = dump(ipr, 2) + dump(ipr, 10)
    out = []
    for r in routes:
        hooks = {(MAIN, RTN_UNICAST): ["out", "xmit"], (LOCAL, RTN_LOCAL): ["in"]}.get((route_table(r), r["type"]))
        if hooks is None or r["src_len"] or r["tos"]:
            continue
        enc = describe_encap(r)
        out.append({"prefix": str(route_net(r)), "family": 4 if r["family"] == 2 else 6,
                    "table": "main" if route_table(r) == MAIN else "local",
                    "dev": names.get(r["attrs"].get("RTA_OIF"), ""), "metric": route_priority(r),
                    "hooks": [] if enc or r.get("multipath") or r.get("nh_id") else hooks, "encap": enc})
    return out
