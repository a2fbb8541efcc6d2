"""lwtui.net.routes on real routes in real namespaces, checked with iproute2 (the oracle).

Every test attaches real programs (`r0 = retval; exit`, loaded with bpf(2)),
checks with `ip -j -d route` that the route carries them, checks with ping that
a BPF_DROP program really drops, detaches, and compares the namespace's whole
routing state (routes of every table and the rules) byte for byte with before.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lwtui.kernel import bpfsys
from lwtui.net import routes
from lwtui.net.netns import destroy_topology, ns_run
from lwtui.net.routes import Attachment, RouteError, Target

pytestmark = [pytest.mark.kernel, pytest.mark.host_wide]   # see tests/conftest.py

ROOT = Path(__file__).resolve().parents[2]
PROG_TYPES = {"in": bpfsys.PROG_TYPE_LWT_IN, "out": bpfsys.PROG_TYPE_LWT_OUT, "xmit": bpfsys.PROG_TYPE_LWT_XMIT}
_serial = itertools.count(1)

# A separate process attaching a program: a foreign owner, or a session to SIGKILL.
CHILD = """
import json, sys
from lwtui.kernel import bpfsys
from lwtui.net import routes
hook, prefix, ns, name, mode = sys.argv[1:6]
types = {"in": bpfsys.PROG_TYPE_LWT_IN, "out": bpfsys.PROG_TYPE_LWT_OUT, "xmit": bpfsys.PROG_TYPE_LWT_XMIT}
fd = bpfsys.prog_load_trivial(types[hook], 0, name)
routes.attach(routes.Target(prefix, hook, ns), fd, name, lambda a: print(json.dumps(a.to_dict()), flush=True))
print("attached", flush=True)
if mode == "hang":
    sys.stdin.read()
"""


@pytest.fixture
def progs():
    """progs(hook, retval) -> (fd, unique name) of a loaded trivial program; fds closed after the test."""
    fds = []

    def load(hook: str, retval: int = 0, stem: str = "lwtui") -> tuple[int, str]:
        name = f"{stem}_{hook}_{next(_serial)}"
        fds.append(bpfsys.prog_load_trivial(PROG_TYPES[hook], retval, name))
        return fds[-1], name

    yield load
    for fd in fds:
        os.close(fd)


def where(topo, hook: str, family: int) -> tuple[str, str, str]:
    """(namespace, prefix, address): egress hooks in the client towards the server, `in` on the server."""
    addr = topo.server_v4 if family == 4 else topo.server_v6
    ns = topo.server_ns if hook == "in" else topo.client_ns
    return ns, f"{addr}/{32 if family == 4 else 128}", addr


def encaps(dump: str, dst: str) -> list[dict]:
    """Routes to `dst` (any table) that carry an encap, as the oracle prints them."""
    d = json.loads(dump)
    return [{"table": r.get("table", "main"), "encap": r["encap"], "progs": {h: r[h] for h in routes.HOOKS if h in r}}
            for r in d["route4"] + d["route6"] if r.get("dst") == dst and "encap" in r]


def ping_ok(topo, addr: str, size: int | None = None, df: bool = False) -> subprocess.CompletedProcess:
    argv = ["ping", "-c1", "-W1"] + (["-s", str(size)] if size else []) + (["-M", "do"] if df else []) + [addr]
    return ns_run(topo.client_ns, argv, timeout=10)


def ip(ns: str, *args: str) -> None:
    res = subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, f"ip {' '.join(args)}: {res.stderr}"


def child(*argv: str, hang: bool = False) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", CHILD, *argv, "hang" if hang else "exit"], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- attach, drop, restore ---------------------------------------------------------

@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("hook", ["out", "xmit", "in"])
def test_attach_drops_and_restores_exactly(topo, route_dump, progs, hook, family):
    ns, prefix, addr = where(topo, hook, family)
    assert ping_ok(topo, addr).returncode == 0, "the topology must pass traffic before any program"
    before = route_dump(ns)
    target = Target(prefix, hook, ns, headroom=14 if hook == "xmit" else 0)
    for retval, passes in ((2, False), (0, True)):
        fd, name = progs(hook, retval)
        saved = []
        att = routes.attach(target, fd, name, lambda a: saved.append((json.dumps(a.to_dict()), route_dump(ns))))
        assert len(saved) == 1 and saved[0][1] == before, "on_saved must run before the route changes"
        assert [e["progs"] for e in encaps(route_dump(ns), addr)] == [{hook: name}]
        assert (ping_ok(topo, addr).returncode == 0) is passes, f"retval {retval} at {hook}"
        assert routes.detach(att) == "restored"
        assert route_dump(ns) == before
        assert routes.detach(att) == "already restored"
        assert route_dump(ns) == before
    assert ping_ok(topo, addr).returncode == 0


def test_ipv6_in_uses_a_private_table_and_leaves_the_local_route(topo, route_dump, progs):
    ns, prefix, addr = where(topo, "in", 6)
    local_before = [r for r in json.loads(route_dump(ns))["route6"] if r.get("table") == "local" and r["dst"] == addr]
    fd, name = progs("in")
    att = routes.attach(Target(prefix, "in", ns), fd, name, lambda a: None)
    dump = json.loads(route_dump(ns))
    assert att.method == "policy"
    assert [r for r in dump["route6"] if r.get("table") == "local" and r["dst"] == addr] == local_before
    assert [e["table"] for e in encaps(json.dumps(dump), addr)] == [str(att.extra["table"])]
    first = dump["rule6"][0]
    assert (first["priority"], first.get("dst"), first["table"]) == (0, addr, str(att.extra["table"]))
    assert routes.detach(att) == "restored"


def test_xmit_headroom_reaches_the_kernel(topo, route_dump, progs):
    """Dumps do not show the headroom, but the kernel takes it off the path MTU (1500 - 14 = 1486)."""
    for family, payload in ((4, 1472), (6, 1452)):
        ns, prefix, addr = where(topo, "xmit", family)
        before = route_dump(ns)
        assert ping_ok(topo, addr, payload, df=True).returncode == 0
        fd, name = progs("xmit")
        att = routes.attach(Target(prefix, "xmit", ns, headroom=14), fd, name, lambda a: None)
        too_big = ping_ok(topo, addr, payload, df=True)
        assert too_big.returncode != 0 and "1486" in too_big.stdout + too_big.stderr
        assert ping_ok(topo, addr, payload - 14, df=True).returncode == 0
        assert routes.detach(att) == "restored"
        assert route_dump(ns) == before
        assert ping_ok(topo, addr, payload, df=True).returncode == 0


def test_out_and_xmit_share_one_route(topo, route_dump, progs):
    ns, prefix, addr = where(topo, "out", 4)
    before = route_dump(ns)
    (fo, no), (fx, nx) = progs("out"), progs("xmit")
    a_out = routes.attach(Target(prefix, "out", ns), fo, no, lambda a: None)
    a_x = routes.attach(Target(prefix, "xmit", ns, headroom=8), fx, nx, lambda a: None)
    assert a_x.original == a_out.original
    assert [e["progs"] for e in encaps(route_dump(ns), addr)] == [{"out": no, "xmit": nx}]
    assert ping_ok(topo, addr).returncode == 0
    assert routes.detach(a_out) == "detached (other hooks stay)"
    assert [e["progs"] for e in encaps(route_dump(ns), addr)] == [{"xmit": nx}]
    assert routes.detach(a_x) == "restored"
    assert route_dump(ns) == before


# -- every attribute survives --------------------------------------------------------

RICH = [
    ("route", "add", "10.0.0.9/32", "via", "10.0.0.3", "dev", "lwtui0", "src", "10.0.0.2", "metric", "7",
     "realm", "5", "mtu", "1400", "advmss", "1300", "proto", "static"),
    ("route", "add", "10.0.1.0/24", "via", "10.0.0.3", "dev", "lwtui0", "onlink", "initcwnd", "20"),
    ("route", "add", "default", "via", "10.0.0.3", "dev", "lwtui0"),
    ("route", "add", "10.0.0.3/32", "dev", "lwtui0", "table", "100"),
    ("-6", "route", "add", "fd00:6c77::9/128", "via", "fd00:6c77::3", "dev", "lwtui0", "mtu", "1380",
     "pref", "high", "metric", "77", "proto", "static"),
    ("-6", "route", "add", "default", "via", "fd00:6c77::3", "dev", "lwtui0", "metric", "2048"),
]


@pytest.mark.parametrize("prefix", ["10.0.0.9/32", "10.0.1.0/24", "0.0.0.0/0", "10.0.0.0/24", "10.0.0.3/32",
                                    "fd00:6c77::9/128", "::/0", "fd00:6c77::/64"])
def test_every_attribute_survives(topo, route_dump, progs, prefix):
    ns = topo.client_ns
    for cmd in RICH:
        ip(ns, *cmd)
    before = route_dump(ns)
    fd, name = progs("out")
    att = routes.attach(Target(prefix, "out", ns), fd, name, lambda a: None)
    net = routes.parse_prefix(prefix)
    dst = "default" if net.prefixlen == 0 else (str(net.network_address) if net.prefixlen in (32, 128) else prefix)
    shown = encaps(route_dump(ns), dst)
    assert [(e["table"], e["progs"]) for e in shown] == [("main", {"out": name})]
    assert routes.detach(att) == "restored"
    assert route_dump(ns) == before


def test_expiring_route_keeps_its_expiry(topo, route_dump, progs):
    ns = topo.client_ns
    ip(ns, "-6", "route", "add", "fd00:6c77::e/128", "dev", "lwtui0", "expires", "600")

    def without_expiry():
        d = json.loads(route_dump(ns))
        exp = [r.pop("expires") for r in d["route6"] if "expires" in r]
        return d, exp

    before, _ = without_expiry()
    fd, name = progs("out")
    att = routes.attach(Target("fd00:6c77::e/128", "out", ns), fd, name, lambda a: None)
    assert routes.detach(att) == "restored"
    after, expiry = without_expiry()
    assert after == before
    assert len(expiry) == 1 and 580 <= expiry[0] <= 600


# -- refusals leave everything as it was ------------------------------------------------

def _refused(ns, route_dump, target, fd, name, match) -> None:
    before, saved = route_dump(ns), []
    with pytest.raises(RouteError, match=match):
        routes.attach(target, fd, name, saved.append)
    assert saved == [], "a refused route must not be saved"
    assert route_dump(ns) == before


def test_refuses_a_foreign_bpf_program(topo, route_dump, progs):
    ns, prefix, addr = where(topo, "out", 4)
    other = child("out", prefix, ns, "other_out")
    out, err = other.communicate(timeout=30)
    assert other.returncode == 0 and out.splitlines()[-1] == "attached", err
    for hook in ("out", "xmit"):
        fd, name = progs(hook)
        _refused(ns, route_dump, Target(prefix, hook, ns), fd, name, "already carries encap bpf out other_out")


def test_refuses_foreign_encaps(topo, route_dump, progs):
    ns = topo.client_ns
    ip(ns, "route", "add", "10.0.0.51/32", "encap", "ip", "id", "5", "dst", "10.0.0.3", "dev", "lwtui0")
    # ip6 comes with LWT itself (seg6 is a kernel option some kernels leave out)
    ip(ns, "-6", "route", "add", "fd00:6c77::51/128", "encap", "ip6", "id", "5", "dst", "fd00::1", "dev", "lwtui0")
    fd, name = progs("out")
    _refused(ns, route_dump, Target("10.0.0.51/32", "out", ns), fd, name, "already carries encap ip: remove it")
    _refused(ns, route_dump, Target("fd00:6c77::51/128", "out", ns), fd, name, "already carries encap ip6")


def test_refuses_multipath_and_nexthop_objects(topo, route_dump, progs):
    ns = topo.client_ns
    ip(ns, "route", "add", "10.0.0.20/32", "nexthop", "via", "10.0.0.3", "dev", "lwtui0",
       "nexthop", "via", "10.0.0.4", "dev", "lwtui0")
    ip(ns, "nexthop", "add", "id", "7", "via", "10.0.0.3", "dev", "lwtui0")
    ip(ns, "route", "add", "10.0.0.21/32", "nhid", "7")
    fd, name = progs("out")
    _refused(ns, route_dump, Target("10.0.0.20/32", "out", ns), fd, name, "multipath")
    _refused(ns, route_dump, Target("10.0.0.21/32", "out", ns), fd, name, "nexthop object")


def test_missing_route_names_the_closest(topo, route_dump, progs):
    fd, name = progs("out")
    cli, srv = topo.client_ns, topo.server_ns
    _refused(cli, route_dump, Target("10.0.0.9/32", "out", cli), fd, name,
             rf"no route 10\.0\.0\.9/32 in namespace {cli} \(closest: 10\.0\.0\.0/24, 10\.0\.0\.3/32\).*--dev")
    _refused(cli, route_dump, Target("fd00:6c77::9/128", "xmit", cli), fd, name,
             r"closest: fd00:6c77::/64, fd00:6c77::3/128")
    fd_in, name_in = progs("in")
    _refused(srv, route_dump, Target("10.0.0.9/32", "in", srv), fd_in, name_in,
             r"not a local address .*local: 10\.0\.0\.3/32")
    _refused(srv, route_dump, Target("fd00:6c77::9/128", "in", srv, dev="lwtui0"), fd_in, name_in,
             r"not a local address .*local: fd00:6c77::3/128")
    with pytest.raises(RouteError, match="no namespace lwtui-nonexistent"):
        routes.resolve(Target("10.0.0.3/32", "out", "lwtui-nonexistent"))


def test_host_bits_and_bad_targets(topo, route_dump, progs):
    fd, name = progs("out")
    ns = topo.client_ns
    _refused(ns, route_dump, Target("10.0.0.3/24", "out", ns), fd, name, r"host bits set: use 10\.0\.0\.0/24")
    _refused(ns, route_dump, Target("fd00:6c77::3/64", "out", ns), fd, name, "use fd00:6c77::/64")
    _refused(ns, route_dump, Target("10.0.0.3/32", "out", ns, headroom=14), fd, name, "xmit hook only")
    _refused(ns, route_dump, Target("10.0.0.3/32", "sideways", ns), fd, name, "unknown hook")


def test_wrong_program_type_changes_nothing(topo, route_dump, progs):
    """The kernel refuses a program of another hook's type; the route (and for IPv6 in, the rules) stay."""
    fd_in, name_in = progs("in")
    fd_out, name_out = progs("out")
    for target, fd, name in ((Target(f"{topo.server_v4}/32", "out", topo.client_ns), fd_in, name_in),
                             (Target(f"{topo.server_v6}/128", "in", topo.server_ns), fd_out, name_out)):
        before = route_dump(target.netns)
        with pytest.raises(RouteError, match="errno 22"):
            routes.attach(target, fd, name, lambda a: None)
        assert route_dump(target.netns) == before


# -- created routes, vanished namespaces, killed sessions ------------------------------

@pytest.mark.parametrize("prefix", ["10.0.0.9/32", "fd00:6c77::9/128"])
def test_dev_creates_the_route_and_removes_it(topo, route_dump, progs, prefix):
    ns = topo.client_ns
    before = route_dump(ns)
    fd, name = progs("out")
    att = routes.attach(Target(prefix, "out", ns, dev="lwtui0"), fd, name, lambda a: None)
    assert att.method == "add" and att.original is None
    dst = str(routes.parse_prefix(prefix).network_address)
    assert [e["progs"] for e in encaps(route_dump(ns), dst)] == [{"out": name}]
    assert routes.detach(Attachment.from_dict(json.loads(json.dumps(att.to_dict())))) == "removed"
    assert route_dump(ns) == before
    assert routes.detach(att) == "route gone"
    with pytest.raises(RouteError, match="no device lwtui9"):
        routes.attach(Target(prefix, "out", ns, dev="lwtui9"), fd, name, lambda a: None)
    assert route_dump(ns) == before


def test_detach_after_the_namespace_is_gone(topo, progs):
    ns, prefix, _ = where(topo, "out", 6)
    fd, name = progs("out")
    att = routes.attach(Target(prefix, "out", ns), fd, name, lambda a: None)
    destroy_topology(topo.prefix)
    assert routes.detach(att) == "namespace gone"
    assert routes.detach(att) == "namespace gone"


def test_detach_after_the_device_is_gone(topo, route_dump, progs):
    cli, prefix, _ = where(topo, "out", 4)
    srv, prefix6, _ = where(topo, "in", 6)
    rules6 = json.loads(route_dump(srv))["rule6"]
    (fo, no), (fi, ni) = progs("out"), progs("in")
    a_out = routes.attach(Target(prefix, "out", cli), fo, no, lambda a: None)
    a_in = routes.attach(Target(prefix6, "in", srv), fi, ni, lambda a: None)
    ip(cli, "link", "del", topo.dev)            # takes the peer in the server namespace along
    assert routes.detach(a_out) == "route gone"
    assert routes.detach(a_in) == "restored"    # the steering rule outlives the device: removed
    assert json.loads(route_dump(srv))["rule6"] == rules6


@pytest.mark.parametrize("hook,family", [("out", 4), ("xmit", 6), ("in", 4), ("in", 6)])
def test_restore_from_saved_state_after_sigkill(topo, route_dump, hook, family):
    ns, prefix, addr = where(topo, hook, family)
    before = route_dump(ns)
    session = child(hook, prefix, ns, f"lwtui_k{next(_serial)}", hang=True)
    try:
        saved = session.stdout.readline()
        assert session.stdout.readline().strip() == "attached", session.stderr.read()
    finally:
        session.kill()
        session.wait(timeout=10)
    assert len(encaps(route_dump(ns), addr)) == 1, "the program stays attached after its loader died"
    att = Attachment.from_dict(json.loads(saved))
    assert routes.detach(att) == "restored"
    assert route_dump(ns) == before
    assert routes.detach(att) == "already restored"
    assert ping_ok(topo, addr).returncode == 0


def test_ipv6_in_restored_when_killed_while_moving_the_local_rule(topo, route_dump, progs):
    ns, prefix, addr = where(topo, "in", 6)
    before = route_dump(ns)
    fd, name = progs("in", 2)
    att = routes.attach(Target(prefix, "in", ns), fd, name, lambda a: None)
    # the state between "delete the pref-0 local rule" and "add it back": only lwtui's stand-in at pref 1
    ip(ns, "-6", "rule", "add", "pref", "1", "lookup", "local", "protocol", str(routes.RULE_PROTO))
    ip(ns, "-6", "rule", "del", "pref", "0", "lookup", "local", "protocol", "kernel")
    assert ping_ok(topo, addr).returncode != 0
    assert routes.detach(Attachment.from_dict(att.to_dict())) == "restored"
    assert route_dump(ns) == before
    assert ping_ok(topo, addr).returncode == 0


def test_ipv6_in_on_two_addresses_and_a_moved_local_rule(topo, route_dump, progs):
    ns = topo.server_ns
    ip(ns, "-6", "addr", "add", "fd00:6c77::33/64", "dev", "lwtui0", "nodad")
    for local_pref in (0, 1000):
        if local_pref:
            ip(ns, "-6", "rule", "add", "pref", "1000", "lookup", "local")
            ip(ns, "-6", "rule", "del", "pref", "0", "lookup", "local")
        before = route_dump(ns)
        atts = []
        for addr in (topo.server_v6, "fd00:6c77::33"):
            fd, name = progs("in", 2)
            atts.append(routes.attach(Target(f"{addr}/128", "in", ns), fd, name, lambda a: None))
            assert ping_ok(topo, addr).returncode != 0
        rules = json.loads(route_dump(ns))["rule6"]
        local_at = next(i for i, r in enumerate(rules) if r["table"] == "local")
        assert {r.get("dst") for r in rules[:local_at]} == {topo.server_v6, "fd00:6c77::33"}
        for att in atts:                       # first attached, first detached
            assert routes.detach(att) == "restored"
        assert route_dump(ns) == before
        assert ping_ok(topo, "fd00:6c77::33").returncode == 0


def test_list_routes_offers_hooks(topo, progs):
    ns = topo.client_ns
    rows = {(r["prefix"], r["table"]): r for r in routes.list_routes(ns)}
    assert rows[(f"{topo.server_v4}/32", "main")]["hooks"] == ["out", "xmit"]
    assert rows[(f"{topo.server_v4}/32", "main")]["dev"] == "lwtui0"
    assert rows[(f"{topo.client_v4}/32", "local")]["hooks"] == ["in"]
    assert rows[("fd00:6c77::/64", "main")]["metric"] == 256
    fd, name = progs("out")
    att = routes.attach(Target(f"{topo.server_v6}/128", "out", ns), fd, name, lambda a: None)
    row = next(r for r in routes.list_routes(ns) if r["prefix"] == f"{topo.server_v6}/128")
    assert row["hooks"] == [] and row["encap"] == f"bpf out {name}"
    assert routes.detach(att) == "restored"
