"""Routes as data: the pure half of lwtui.net.routes (no netlink, no pyroute2).

A route message (pyroute2's, or a recorded dict of that shape) becomes a
JSON-friendly dict (`route_to_dict`) that keeps every attribute `replace`
must send back, and goes back to pyroute2 keyword arguments (`route_kwargs`).
The lookups that decide which route a Target names, and the refusals (foreign
encap, multipath, nexthop objects), work on those dicts, so they are testable
on recorded messages.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Literal, overload

from lwtui.core.names import HOOKS

MAIN, LOCAL = 254, 255
RTN_UNICAST, RTN_LOCAL = 1, 2
RTPROT_KERNEL, RTPROT_STATIC = 2, 4
RTNH_F_ONLINK = 4
LWTUNNEL_ENCAP_BPF = 6
MAX_HEADROOM = 256                 # LWT_BPF_MAX_HEADROOM
USER_HZ = 100                      # unit of RTA_CACHEINFO's rta_expires (clock_t)
_RTA_NH_ID = 30                    # pyroute2 0.9.7 decodes it as UNKNOWN
GONE = (errno.ENOENT, errno.ESRCH, errno.ENODEV)
_ENCAP_TYPES = {1: "mpls", 2: "ip", 3: "ila", 4: "ip6", 5: "seg6", 6: "bpf", 7: "seg6local",
                8: "rpl", 9: "ioam6", 10: "xfrm"}
_HEADER = ("family", "dst_len", "src_len", "tos", "table", "proto", "scope", "type", "flags")
_COPY = {"RTA_DST": "dst", "RTA_SRC": "src", "RTA_OIF": "oif", "RTA_GATEWAY": "gateway",
         "RTA_PRIORITY": "priority", "RTA_PREFSRC": "prefsrc", "RTA_FLOW": "flow",
         "RTA_TABLE": "table", "RTA_VIA": "via", "RTA_PREF": "pref"}


class RouteError(Exception):
    """A route cannot be attached or restored; the message names the fix."""


class LwtuiEncap(RouteError):
    """The route already carries lwtui programs (`progs`: their names) of another process.

    A session can name the one that holds them (from the state files, by
    program name); the message alone says what to do when none does.
    """

    def __init__(self, message: str, route: str, progs: list[str]):
        super().__init__(message)
        self.route = route
        self.progs = progs


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


def parse_prefix(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Parse `10.0.0.3/32`, `fd00::3/128` or a bare address (a host prefix); host bits are an error."""
    try:
        return ipaddress.ip_network(str(text).strip(), strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            fixed = ipaddress.ip_network(str(text).strip(), strict=False)
            raise RouteError(f"{text} has host bits set: use {fixed}, or the address alone for a host route") from None
        raise RouteError(f"{text!r} is not an IP prefix: write e.g. 10.0.0.3/32 or fd00:6c77::3/128") from None


def attr_pairs(attrs) -> Iterator[tuple]:
    for a in attrs or ():
        yield a[0], a[1]


def plain(value):
    """A JSON-friendly copy of a decoded attribute value."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "header"}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _bpf_progs(encap) -> dict:
    """{hook: program name} of a decoded RTA_ENCAP of type bpf."""
    hooks = {"LWT_BPF_IN": "in", "LWT_BPF_OUT": "out", "LWT_BPF_XMIT": "xmit"}
    return {hooks[n]: dict(attr_pairs(v.get("attrs"))).get("LWT_BPF_PROG_NAME", "?")
            for n, v in attr_pairs(encap.get("attrs")) if n in hooks}


def route_to_dict(msg) -> dict:
    """A route message (pyroute2's, or a recorded dict of that shape) as a JSON-friendly dict.

    Keeps what `replace` must send back (header fields, the attrs in _COPY,
    metrics as {RTAX_*: value}, the expiry in seconds), the bpf programs on it
    ("progs"), and what makes a route unusable (encap, multipath, nexthop object).
    """
    d: dict[str, Any] = {k: int(msg.get(k) or 0) for k in _HEADER}
    attrs, d["progs"] = {}, {}
    for name, value in attr_pairs(msg.get("attrs")):
        if name in _COPY:
            attrs[name] = plain(value)
        elif name == "RTA_METRICS":
            attrs[name] = dict(attr_pairs(value.get("attrs")))
        elif name == "RTA_CACHEINFO" and value.get("rta_expires"):
            d["expires"] = math.ceil(value["rta_expires"] / USER_HZ)
        elif name == "RTA_ENCAP_TYPE":
            d["encap_type"] = int(value)
        elif name == "RTA_ENCAP" and dict(attr_pairs(msg.get("attrs"))).get("RTA_ENCAP_TYPE") == LWTUNNEL_ENCAP_BPF:
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


def check_target(t: Target):
    if t.hook not in HOOKS:
        raise RouteError(f"unknown hook {t.hook!r}: use one of {', '.join(HOOKS)}")
    if t.headroom and t.hook != "xmit":
        raise RouteError("headroom applies to the xmit hook only")
    if not 0 <= t.headroom <= MAX_HEADROOM:
        raise RouteError(f"headroom must be 0..{MAX_HEADROOM} bytes")
    return parse_prefix(t.prefix)


def where(netns: str | None) -> str:
    return f"namespace {netns}" if netns else "the host namespace"


def hook_route_kind(t: Target) -> tuple[int, int]:
    """(table, route type) a hook attaches to."""
    return (LOCAL, RTN_LOCAL) if t.hook == "in" else (MAIN, RTN_UNICAST)


def _closest(routes: list[dict], net, table: int, rtype: int) -> list[str]:
    """Up to 3 prefixes of that table and type: those covering `net` first, then the nearest."""
    cands = {route_net(r) for r in routes if route_table(r) == table and r["type"] == rtype
             and route_net(r).version == net.version}
    addr = int(net.network_address)
    return [str(n) for n in sorted(cands, key=lambda n: (not n.supernet_of(net),
                                                         abs(int(n.network_address) - addr)))[:3]]


@overload
def find_route(routes: list[dict], t: Target, net, required: Literal[True] = True) -> dict: ...
@overload
def find_route(routes: list[dict], t: Target, net, required: bool) -> dict | None: ...


def find_route(routes: list[dict], t: Target, net, required: bool = True) -> dict | None:
    """The route `t` means: the lowest-metric one of that prefix, type and table."""
    table, rtype = hook_route_kind(t)
    cands = sorted((r for r in routes if route_table(r) == table and r["type"] == rtype and route_net(r) == net
                    and r["src_len"] == 0 and r["tos"] == 0), key=route_priority)
    if len(cands) > 1 and route_priority(cands[0]) == route_priority(cands[1]):
        raise RouteError(f"{net} in {where(t.netns)} matches several routes of metric "
                         f"{route_priority(cands[0])}: remove the duplicates first")
    if cands or not required:
        return cands[0] if cands else None
    near = ", ".join(_closest(routes, net, table, rtype)) or "none"
    if t.hook == "in":
        raise RouteError(f"{net} is not a local address in {where(t.netns)} (local: {near}): the in hook "
                         "attaches to a local address's route in table local; add the address first")
    raise RouteError(f"no route {net} in {where(t.netns)} (closest: {near}); pass --dev DEV to create it")


def refuse_unusable(d: dict, t: Target, net) -> None:
    if d.get("multipath"):
        raise RouteError(f"{net} in {where(t.netns)} is a multipath route: pyroute2 cannot put a program on "
                         "each nexthop; use a single-nexthop route")
    if d.get("nh_id"):
        raise RouteError(f"{net} in {where(t.netns)} uses a nexthop object (nhid), which carries its own "
                         "encap; use a route with an inline nexthop")
    enc = describe_encap(d)
    if enc:
        what = f"{net} in {where(t.netns)}"
        ours = [n for n in d["progs"].values() if n.startswith("lwtui")]
        if ours:
            raise LwtuiEncap(f"{what} already carries encap {enc} left by an earlier lwtui session: "
                             "run `lwtui detach --all`", what, ours)
        raise RouteError(f"{what} already carries encap {enc}: remove it first")


def bpf_encap(members: list[tuple[Attachment, int]]) -> dict:
    """The bpf encap of attachments sharing a route (one program per hook)."""
    enc: dict = {"type": "bpf"}
    for att, fd in members:
        enc[att.target.hook] = {"fd": fd, "name": att.prog_name}
        if att.target.hook == "xmit" and att.target.headroom:
            enc["xmit"]["headroom"] = att.target.headroom
    return enc


def same_route(routes: list[dict], d: dict, hook: str | None = None, prog: str | None = None) -> dict | None:
    """The route that `replace` with `d` hits: same family, table, prefix, tos and metric.

    With `prog`, the one carrying that program at `hook` comes first (see kernel_twin).
    """
    def key(r):
        return r["family"], route_table(r), route_net(r), r["tos"], route_priority(r), r["src_len"]
    hits = [r for r in routes if key(r) == key(d)]
    mine = [r for r in hits if prog is not None and r["progs"].get(hook) == prog]
    found = mine or hits
    return found[0] if found else None


def kernel_twin(routes: list[dict], d: dict) -> dict | None:
    """A route without encap that `replace` with `d` would also hit: the kernel's own copy.

    IPv4 keeps routes that differ only in their encap side by side. When a
    link comes back up, the kernel re-adds the local route of its address
    beside the one carrying lwtui's program; putting the original back with
    `replace` then fails with EEXIST. The route lwtui owns is the one with
    its encap.
    """
    key = (d["family"], route_table(d), route_net(d), d["tos"], route_priority(d), d["src_len"], d["type"])
    return next((r for r in routes if not r.get("encap_type") and
                 (r["family"], route_table(r), route_net(r), r["tos"], route_priority(r), r["src_len"], r["type"])
                 == key), None)


def route_key(t: Target, d: dict) -> tuple:
    return t.netns, d["family"], route_table(d), str(route_net(d)), route_priority(d)

