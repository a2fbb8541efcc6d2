"""Attach BPF programs to routes' LWT hooks (in/out/xmit) and restore the routes exactly.

Methods, as verified on the target kernel:
- "replace" (out, xmit; in on IPv4): `replace` the route with every attribute
  copied from its dump plus the encap (replace keeps only what is sent), and
  restore by `replace` with the saved attributes.
- "policy" (in on IPv6): local routes have metric 0, which netlink cannot
  recreate (0 becomes 1024), so the kernel's local route stays untouched. A
  rule `to ADDR lookup T`, placed before the `lookup local` rule, sends the
  address to a private table T whose local route carries the encap. The local
  rule sits at pref 0, so it is moved behind ours while a temporary copy at
  pref 1 keeps local delivery working. Restore removes the rule and the table.
- "add" (a Target with `dev` and no route): create the route with the encap,
  delete it on detach.
Hooks of one process on the same route share one encap (e.g. out and xmit).

`attach` hands the Attachment to `on_saved` before changing anything, so a
state file can restore the route after SIGKILL (`Attachment.from_dict`).
"""

from __future__ import annotations

import errno
import ipaddress
import math
import struct
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

HOOKS = ("in", "out", "xmit")
MAIN, LOCAL = 254, 255
RTN_UNICAST, RTN_LOCAL = 1, 2
RTPROT_KERNEL, RTPROT_STATIC = 2, 4
RTNH_F_ONLINK = 4
LWTUNNEL_ENCAP_BPF = 6
MAX_HEADROOM = 256                 # LWT_BPF_MAX_HEADROOM
POLICY_TABLE_BASE = 0x6C77         # private tables for IPv6 `in`: the first free one from here
RULE_PROTO = 0x6C                  # FRA_PROTOCOL of lwtui's rules, so cleanup can tell them apart
USER_HZ = 100                      # unit of RTA_CACHEINFO's rta_expires (clock_t)
_RTA_NH_ID = 30                    # pyroute2 0.9.7 decodes it as UNKNOWN
_GONE = (errno.ENOENT, errno.ESRCH, errno.ENODEV)
_ENCAP_TYPES = {1: "mpls", 2: "ip", 3: "ila", 4: "ip6", 5: "seg6", 6: "bpf", 7: "seg6local",
                8: "rpl", 9: "ioam6", 10: "xfrm"}
_HEADER = ("family", "dst_len", "src_len", "tos", "table", "proto", "scope", "type", "flags")
_COPY = {"RTA_DST": "dst", "RTA_SRC": "src", "RTA_OIF": "oif", "RTA_GATEWAY": "gateway",
         "RTA_PRIORITY": "priority", "RTA_PREFSRC": "prefsrc", "RTA_FLOW": "flow",
         "RTA_TABLE": "table", "RTA_VIA": "via", "RTA_PREF": "pref"}


class RouteError(Exception):
    """A route cannot be attached or restored; the message names the fix."""


class _NamespaceGone(RouteError):
    pass


@dataclass(frozen=True)
class Target:
    """Where to attach: a route's prefix, the hook, the namespace (None: this one)."""
    prefix: str
    hook: str
    netns: str | None = None
    dev: str | None = None      # create the route on this device if missing, remove it on detach
    headroom: int = 0           # xmit only


@dataclass
class Attachment:
    """What restoring needs: the route as it was (`original`) and how it was changed."""
    target: Target
    prog_name: str
    method: str                 # "replace" | "add" | "policy"
    original: dict | None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"target": asdict(self.target), "prog_name": self.prog_name, "method": self.method,
                "original": self.original, "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> "Attachment":
        return cls(Target(**d["target"]), d["prog_name"], d["method"], d.get("original"), d.get("extra") or {})


# This process's live attachments by route: (Attachment, prog fd) pairs sharing one encap.
_LIVE: dict[tuple, list[tuple[Attachment, int]]] = {}


# -- pure helpers ----------------------------------------------------------------

def parse_prefix(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Parse `10.0.0.3/32`, `fd00::3/128` or a bare address (a host prefix); host bits are an error."""
    try:
        return ipaddress.ip_network(str(text).strip(), strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            fixed = ipaddress.ip_network(str(text).strip(), strict=False)
            raise RouteError(f"{text} has host bits set: use {fixed}, or the address alone for a host route") from None
        raise RouteError(f"{text!r} is not an IP prefix: write e.g. 10.0.0.3/32 or fd00:6c77::3/128") from None


def _pairs(attrs) -> Iterator[tuple]:
    for a in attrs or ():
        yield a[0], a[1]


def _plain(value):
    """A JSON-friendly copy of a decoded attribute value."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "header"}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _bpf_progs(encap) -> dict:
    """{hook: program name} of a decoded RTA_ENCAP of type bpf."""
    hooks = {"LWT_BPF_IN": "in", "LWT_BPF_OUT": "out", "LWT_BPF_XMIT": "xmit"}
    return {hooks[n]: dict(_pairs(v.get("attrs"))).get("LWT_BPF_PROG_NAME", "?")
            for n, v in _pairs(encap.get("attrs")) if n in hooks}


def route_to_dict(msg) -> dict:
    """A route message (pyroute2's, or a recorded dict of that shape) as a JSON-friendly dict.

    Keeps what `replace` must send back (header fields, the attrs in _COPY,
    metrics as {RTAX_*: value}, the expiry in seconds), the bpf programs on it
    ("progs"), and what makes a route unusable (encap, multipath, nexthop object).
    """
    d = {k: int(msg.get(k) or 0) for k in _HEADER}
    attrs, d["progs"] = {}, {}
    for name, value in _pairs(msg.get("attrs")):
        if name in _COPY:
            attrs[name] = _plain(value)
        elif name == "RTA_METRICS":
            attrs[name] = dict(_pairs(value.get("attrs")))
        elif name == "RTA_CACHEINFO" and value.get("rta_expires"):
            d["expires"] = math.ceil(value["rta_expires"] / USER_HZ)
        elif name == "RTA_ENCAP_TYPE":
            d["encap_type"] = int(value)
        elif name == "RTA_ENCAP" and dict(_pairs(msg.get("attrs"))).get("RTA_ENCAP_TYPE") == LWTUNNEL_ENCAP_BPF:
            d["progs"] = _bpf_progs(value)
        elif name == "RTA_MULTIPATH":
            d["multipath"] = len(value)
        elif name == "UNKNOWN" and value.get("header", {}).get("type") == _RTA_NH_ID:
            d["nh_id"] = True
    d["attrs"] = attrs
    return d


def route_net(d: dict):
    return ipaddress.ip_network(f"{d['attrs'].get('RTA_DST') or ('0.0.0.0' if d['family'] == 2 else '::')}"
                                f"/{d['dst_len']}")


def route_table(d: dict) -> int:
    return d["attrs"].get("RTA_TABLE", d["table"])


def route_priority(d: dict) -> int:
    return d["attrs"].get("RTA_PRIORITY", 0)


def describe_encap(d: dict) -> str | None:
    """"bpf out NAME xmit NAME", "mpls", ... or None for a route without encap."""
    et = d.get("encap_type")
    if not et:
        return None
    if et == LWTUNNEL_ENCAP_BPF:
        return " ".join(["bpf"] + [f"{h} {d['progs'][h]}" for h in HOOKS if h in d["progs"]])
    return _ENCAP_TYPES.get(et, f"type {et}")


def route_kwargs(d: dict, now: float | None = None) -> dict:
    """pyroute2 route() keyword arguments that recreate route `d` exactly (without encap).

    An expiring route gets the time it had left when `d` was saved (d["saved_at"]) minus the time since.
    """
    kw = {k: d[k] for k in _HEADER}
    kw["flags"] = d["flags"] & RTNH_F_ONLINK   # the others are state flags the kernel refuses
    kw.update({key: d["attrs"][name] for name, key in _COPY.items() if name in d["attrs"]})
    if d["attrs"].get("RTA_METRICS"):
        kw["metrics"] = dict(d["attrs"]["RTA_METRICS"])
    if d.get("expires"):
        now = time.time() if now is None else now
        left = d["expires"] - (now - d.get("saved_at", now))
        kw["expires"] = struct.pack("=I", max(1, int(left)))   # pyroute2 sends RTA_EXPIRES raw
    return kw


def _check(t: Target):
    if t.hook not in HOOKS:
        raise RouteError(f"unknown hook {t.hook!r}: use one of {', '.join(HOOKS)}")
    if t.headroom and t.hook != "xmit":
        raise RouteError("headroom applies to the xmit hook only")
    if not 0 <= t.headroom <= MAX_HEADROOM:
        raise RouteError(f"headroom must be 0..{MAX_HEADROOM} bytes")
    return parse_prefix(t.prefix)


def _where(netns: str | None) -> str:
    return f"namespace {netns}" if netns else "the host namespace"


def _kind(t: Target) -> tuple[int, int]:
    """(table, route type) a hook attaches to."""
    return (LOCAL, RTN_LOCAL) if t.hook == "in" else (MAIN, RTN_UNICAST)


def _closest(routes: list[dict], net, table: int, rtype: int) -> list[str]:
    """Up to 3 prefixes of that table and type: those covering `net` first, then the nearest."""
    cands = {route_net(r) for r in routes if route_table(r) == table and r["type"] == rtype
             and route_net(r).version == net.version}
    addr = int(net.network_address)
    return [str(n) for n in sorted(cands, key=lambda n: (not n.supernet_of(net),
                                                         abs(int(n.network_address) - addr)))[:3]]


def _find(routes: list[dict], t: Target, net, required: bool = True) -> dict | None:
    """The route `t` means: the lowest-metric one of that prefix, type and table."""
    table, rtype = _kind(t)
    cands = sorted((r for r in routes if route_table(r) == table and r["type"] == rtype and route_net(r) == net
                    and r["src_len"] == 0 and r["tos"] == 0), key=route_priority)
    if len(cands) > 1 and route_priority(cands[0]) == route_priority(cands[1]):
        raise RouteError(f"{net} in {_where(t.netns)} matches several routes of metric "
                         f"{route_priority(cands[0])}: remove the duplicates first")
    if cands or not required:
        return cands[0] if cands else None
    near = ", ".join(_closest(routes, net, table, rtype)) or "none"
    if t.hook == "in":
        raise RouteError(f"{net} is not a local address in {_where(t.netns)} (local: {near}): the in hook "
                         "attaches to a local address's route in table local; add the address first")
    raise RouteError(f"no route {net} in {_where(t.netns)} (closest: {near}); pass --dev DEV to create it")


def _refuse_unusable(d: dict, t: Target, net) -> None:
    if d.get("multipath"):
        raise RouteError(f"{net} in {_where(t.netns)} is a multipath route: pyroute2 cannot put a program on "
                         "each nexthop; use a single-nexthop route")
    if d.get("nh_id"):
        raise RouteError(f"{net} in {_where(t.netns)} uses a nexthop object (nhid), which carries its own "
                         "encap; use a route with an inline nexthop")
    enc = describe_encap(d)
    if enc:
        hint = (" left by an earlier lwtui session: run `lwtui detach --all`"
                if any(n.startswith("lwtui") for n in d["progs"].values()) else ": remove it first")
        raise RouteError(f"{net} in {_where(t.netns)} already carries encap {enc}{hint}")


def _encap(members: list[tuple[Attachment, int]]) -> dict:
    """The bpf encap of attachments sharing a route (one program per hook)."""
    enc: dict = {"type": "bpf"}
    for att, fd in members:
        enc[att.target.hook] = {"fd": fd, "name": att.prog_name}
        if att.target.hook == "xmit" and att.target.headroom:
            enc["xmit"]["headroom"] = att.target.headroom
    return enc


# -- netlink plumbing --------------------------------------------------------------

@contextmanager
def _rtnl(netns: str | None) -> Iterator[IPRoute]:
    """An rtnetlink socket in `netns` (never creating it), closed on exit."""
    try:
        ipr = IPRoute(netns=netns, flags=0, groups=0) if netns else IPRoute(groups=0)
    except FileNotFoundError:
        raise _NamespaceGone(f"no namespace {netns}: see `ip netns list`") from None
    try:
        yield ipr
    finally:
        ipr.close()


def _dump(ipr, family: int) -> list[dict]:
    return [route_to_dict(m) for m in ipr.route("dump", family=family)]


def _netlink(what: str, e: NetlinkError) -> RouteError:
    hint = {errno.EPERM: "run as root (CAP_NET_ADMIN)",
            errno.EINVAL: "the kernel refused the attributes; check the program type matches the hook",
            errno.EEXIST: "a route with these attributes exists already",
            errno.ENODEV: "the device is gone"}.get(e.code, "see `ip -d route`")
    return RouteError(f"{what}: {e.args[1] if len(e.args) > 1 else e} (errno {e.code}): {hint}")


def _same_route(routes: list[dict], d: dict) -> dict | None:
    """The route that `replace` with `d` hits: same family, table, prefix, tos and metric."""
    def key(r):
        return r["family"], route_table(r), route_net(r), r["tos"], route_priority(r), r["src_len"]
    return next((r for r in routes if key(r) == key(d)), None)


def _route_key(t: Target, d: dict) -> tuple:
    return t.netns, d["family"], route_table(d), str(route_net(d)), route_priority(d)


# -- attach ----------------------------------------------------------------------

def resolve(target: Target) -> dict:
    """The route `target` names (main table for out/xmit, the local route for in) as route_to_dict.

    Raises RouteError naming the closest routes when there is none.
    """
    net = _check(target)
    with _rtnl(target.netns) as ipr:
        return _find(_dump(ipr, 2 if net.version == 4 else 10), target, net)


def attach(target: Target, prog_fd: int, prog_name: str,
           on_saved: Callable[[Attachment], None]) -> Attachment:
    """Attach program `prog_fd` (named `prog_name`, unique per load) at the target's hook.

    Refuses routes that carry an encap (unless it is this process's own, on
    another hook of the same route), multipath routes and nexthop objects.
    `on_saved(att)` runs before the route changes. When the change fails the
    route is left (or put back) as it was and RouteError is raised.
    """
    net = _check(target)
    with _rtnl(target.netns) as ipr:
        if target.hook == "in" and net.version == 6:
            return _attach_policy(ipr, target, net, prog_fd, prog_name, on_saved)
        route = _find(_dump(ipr, 2 if net.version == 4 else 10), target, net,
                      required=target.dev is None or target.hook == "in")
        if route is None:
            return _attach_add(ipr, target, net, prog_fd, prog_name, on_saved)
        group = _LIVE.get(_route_key(target, route), [])
        if group and target.hook not in route["progs"] and \
                route["progs"] == {a.target.hook: a.prog_name for a, _ in group}:
            first = group[0][0]     # another hook of this process: share the encap and the saved original
            att = Attachment(target, prog_name, first.method, first.original, dict(first.extra))
            return _apply(ipr, att, prog_fd, "replace", route, group, on_saved)
        _refuse_unusable(route, target, net)
        base = dict(route, saved_at=time.time())
        return _apply(ipr, Attachment(target, prog_name, "replace", base), prog_fd, "replace", base, [], on_saved)


def _attach_add(ipr, t: Target, net, fd: int, name: str, on_saved) -> Attachment:
    idx = ipr.link_lookup(ifname=t.dev)
    if not idx:
        raise RouteError(f"no device {t.dev} in {_where(t.netns)}: see `ip link`")
    made = {"family": 2 if net.version == 4 else 10, "dst_len": net.prefixlen, "src_len": 0, "tos": 0,
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
        ipr.route(cmd, **route_kwargs(base), encap=_encap(group + [(att, fd)]))
    except NetlinkError as e:
        raise _netlink(f"attaching {t.hook} to {t.prefix} in {_where(t.netns)}", e) from None
    now = _same_route(_dump(ipr, base["family"]), base)
    if now is None or now["progs"].get(t.hook) != att.prog_name:
        raise RouteError(f"attaching {att.prog_name} to {t.prefix} did not take effect (the route shows "
                         f"{describe_encap(now) if now else 'nothing'}): give each program load a unique name")
    _LIVE[_route_key(t, base)] = group + [(att, fd)]    # a fresh group drops stale members
    return att


# -- IPv6 `in`: policy routing ---------------------------------------------------

def _rules(ipr, family: int) -> list[dict]:
    out = []
    for m in ipr.rule("dump", family=family):
        d = {k: int(m.get(k) or 0) for k in ("dst_len", "src_len")}
        d.update(_plain(dict(_pairs(m.get("attrs")))))
        d.setdefault("FRA_PRIORITY", 0)
        d.setdefault("FRA_TABLE", int(m.get("table") or 0))
        out.append(d)
    return out


def _local_rules(rules: list[dict]) -> list[dict]:
    """Plain `lookup local` rules (no selectors) not made by lwtui, by preference."""
    plain = {"dst_len", "src_len", "FRA_TABLE", "FRA_PRIORITY", "FRA_PROTOCOL", "FRA_SUPPRESS_PREFIXLEN"}
    return sorted((r for r in rules if r["FRA_TABLE"] == LOCAL and set(r) <= plain and not r["dst_len"]
                   and not r["src_len"] and r.get("FRA_PROTOCOL") != RULE_PROTO), key=lambda r: r["FRA_PRIORITY"])


def _free_table(ipr) -> int:
    used = {route_table(r) for fam in (2, 10) for r in _dump(ipr, fam)}
    used |= {r["FRA_TABLE"] for fam in (2, 10) for r in _rules(ipr, fam)}
    return next(n for n in range(POLICY_TABLE_BASE, POLICY_TABLE_BASE + 4096) if n not in used)


def _attach_policy(ipr, t: Target, net, fd: int, name: str, on_saved) -> Attachment:
    local = _find(_dump(ipr, 10), t, net)
    _refuse_unusable(local, t, net)
    rules = _rules(ipr, 10)
    steer = [r for r in rules if r.get("FRA_DST") and ipaddress.ip_network(f"{r['FRA_DST']}/{r['dst_len']}") == net]
    if steer:
        raise RouteError(f"a rule already steers {net} in {_where(t.netns)} (pref {steer[0]['FRA_PRIORITY']}, "
                         f"table {steer[0]['FRA_TABLE']}): remove it (`ip -6 rule del ...`) or run "
                         "`lwtui detach --all`")
    lrules = _local_rules(rules)
    if not lrules:
        raise RouteError(f"no IPv6 `lookup local` rule in {_where(t.netns)}: restore it with "
                         "`ip -6 rule add pref 0 lookup local`")
    pref, proto = lrules[0]["FRA_PRIORITY"], lrules[0].get("FRA_PROTOCOL", 0)
    att = Attachment(t, name, "policy", dict(local, saved_at=time.time()),
                     {"table": _free_table(ipr), "local_pref": pref, "local_proto": proto})
    on_saved(att)
    dst, table = {"dst": str(net.network_address), "dst_len": net.prefixlen}, att.extra["table"]
    try:
        ipr.route("add", **dict(route_kwargs(local), table=table, priority=1024), encap=_encap([(att, fd)]))
        if pref > 0:    # room before the local rule: it can stay where it is
            ipr.rule("add", family=10, priority=pref - 1, table=table, protocol=RULE_PROTO, **dst)
        else:           # a new pref-0 rule lands after the local one: move that behind ours, a copy covering the gap
            ipr.rule("add", family=10, priority=1, table=LOCAL, protocol=RULE_PROTO)
            ipr.rule("add", family=10, priority=0, table=table, protocol=RULE_PROTO, **dst)
            ipr.rule("del", family=10, priority=0, table=LOCAL, protocol=proto)
            ipr.rule("add", family=10, priority=0, table=LOCAL, protocol=proto)
            ipr.rule("del", family=10, priority=1, table=LOCAL, protocol=RULE_PROTO)
    except NetlinkError as e:
        _detach_policy(ipr, att)
        raise _netlink(f"attaching in to {net} in {_where(t.netns)}", e) from None
    return att


def _detach_policy(ipr, att: Attachment) -> str:
    """Undo _attach_policy from any intermediate state (also after SIGKILL half-way)."""
    table, changed, rules = att.extra["table"], False, _rules(ipr, 10)
    if not _local_rules(rules):     # killed while the local rule was moved: put it back before anything else
        ipr.rule("add", family=10, priority=att.extra.get("local_pref", 0), table=LOCAL,
                 protocol=att.extra.get("local_proto", RTPROT_KERNEL))
        changed = True
    for r in rules:
        if r.get("FRA_PROTOCOL") == RULE_PROTO and r["FRA_TABLE"] in (table, LOCAL):
            sel = {"dst": r["FRA_DST"], "dst_len": r["dst_len"]} if r.get("FRA_DST") else {}
            _ignore_gone(ipr.rule, "del", family=10, priority=r["FRA_PRIORITY"], table=r["FRA_TABLE"],
                         protocol=RULE_PROTO, **sel)
            changed = True
    for r in _dump(ipr, 10):
        if route_table(r) == table:
            _ignore_gone(ipr.route, "del", **route_kwargs(r))
            changed = True
    return "restored" if changed else "already restored"


def _ignore_gone(fn, *args, **kw) -> None:
    try:
        fn(*args, **kw)
    except NetlinkError as e:
        if e.code not in _GONE:
            raise


# -- detach ------------------------------------------------------------------------

def detach(att: Attachment) -> str:
    """Restore what `att` changed; idempotent.

    Returns "restored", "removed", "detached (other hooks stay)", "already
    restored", "route gone", "namespace gone" or "left alone: ..." (the route
    now carries someone else's encap). Raises RouteError only when netlink
    refuses the restore itself.
    """
    others = _forget(att)
    try:
        with _rtnl(att.target.netns) as ipr:
            if att.method == "policy":
                return _detach_policy(ipr, att)
            return _detach_route(ipr, att, others)
    except _NamespaceGone:
        return "namespace gone"
    except NetlinkError as e:
        if e.code in _GONE:
            return "route gone"
        raise _netlink(f"restoring {att.target.prefix} in {_where(att.target.netns)}", e) from None


def _forget(att: Attachment) -> list[tuple[Attachment, int]]:
    """Drop `att` from the live registry; returns the other live hooks on its route."""
    for key, group in list(_LIVE.items()):
        if any(a is att for a, _ in group):
            group[:] = [(a, fd) for a, fd in group if a is not att]
            if not group:
                del _LIVE[key]
            return list(group)
    return []


def _detach_route(ipr, att: Attachment, others: list) -> str:
    base = att.original if att.method == "replace" else att.extra["route"]
    cur = _same_route(_dump(ipr, base["family"]), base)
    if cur is None:
        return "route gone"
    if cur["progs"].get(att.target.hook) != att.prog_name:
        enc = describe_encap(cur)
        return f"left alone: the route now carries encap {enc}" if enc else "already restored"
    if others:
        ipr.route("replace", **route_kwargs(cur), encap=_encap(others))
        return "detached (other hooks stay)"
    if att.method == "add":
        ipr.route("del", **route_kwargs(cur))
        return "removed"
    ipr.route("replace", **route_kwargs(base))
    return "restored"


# -- inspection ----------------------------------------------------------------------

def current_encap(target: Target) -> str | None:
    """The encap on the route `target` names, e.g. "bpf out lwtui_out_12"; None without encap or route."""
    net = _check(target)
    try:
        with _rtnl(target.netns) as ipr:
            routes = _dump(ipr, 2 if net.version == 4 else 10)
            if target.hook == "in" and net.version == 6:
                for r in _rules(ipr, 10):
                    if r.get("FRA_PROTOCOL") == RULE_PROTO and r.get("FRA_DST") == str(net.network_address):
                        mine = [x for x in routes if route_table(x) == r["FRA_TABLE"] and route_net(x) == net]
                        return describe_encap(mine[0]) if mine else None
    except _NamespaceGone:
        return None
    route = _find(routes, target, net, required=False)
    return describe_encap(route) if route else None


def list_routes(netns: str | None = None) -> list[dict]:
    """Routes a picker can offer: main-table unicast ones (out, xmit) and local addresses (in).

    Each: prefix, family (4/6), table ("main"/"local"), dev, metric, hooks
    (empty when the route cannot take a program) and encap (or None).
    """
    with _rtnl(netns) as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        routes = _dump(ipr, 2) + _dump(ipr, 10)
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
