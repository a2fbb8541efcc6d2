"""Recovery that does not trust state files alone, and blocks that are kept when asked.

After SIGKILL the routes still name lwtui's programs (`encap bpf out
lwtui_out_NNN`): `detach --all` finds them in every namespace and takes them
off, also when the state file is damaged, and says what it did and what is
left. A link flap beside an `in` hook (the kernel re-adds its own local route)
is noticed, and the restore keeps the kernel's route. --keep-blocks keeps the
blocks when the rules cannot be read. The oracle is iproute2's dump.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from lwtui.kernel import pins
from lwtui.net.routes import Target
from lwtui.session import state
from lwtui.session.live import Session
from tests.e2e.cli import lwtui_env, ok, run, watch  # noqa: F401 (fixtures)
from tests.e2e.test_reliability import V4, V6, _sessions, encaps
from tests.e2e.traffic import ping, udp_send

pytestmark = pytest.mark.host_wide     # see tests/conftest.py


def _mine(text: str, *namespaces: str) -> list[str]:
    """The output lines about these namespaces (other namespaces on the host are not this test's)."""
    return [line for line in text.splitlines() if any(f"namespace {ns}" in line for ns in namespaces)]


def test_sigkill_with_damaged_state_files_is_recovered_from_the_route_dumps(topo, route_dump, watch, lwtui_env):
    cli, srv = topo.client_ns, topo.server_ns
    before = route_dump(cli), route_dump(srv)
    w1 = watch(V4, V6, "--hook", "out,xmit", "--netns", cli)
    w2 = watch(V4, V6, "--hook", "in", "--netns", srv)
    for w in (w1, w2):
        w.stop(signal.SIGKILL)
    assert len(encaps(route_dump(cli))) == 2 and len(encaps(route_dump(srv))) == 2
    damaged = lwtui_env.states()
    assert len(damaged) == 2
    damaged[0].write_text(damaged[0].read_text()[:40])      # cut short, as by a full disk
    damaged[1].write_text("[1, 2")                          # garbage

    r = ok(lwtui_env, "sessions", "--json")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert sorted(d["path"] for d in lines if d["type"] == "unreadable") == sorted(map(str, damaged))
    left = sorted((d["netns"], d["prefix"]) for d in lines if d["type"] == "leftover" and d["netns"] in (cli, srv))
    assert left == sorted([(cli, V4), (cli, V6), (srv, V4), (srv, V6)])
    text = ok(lwtui_env, "sessions").stdout
    assert len(_mine(text, cli, srv)) == 4 and "left behind by a session that is gone" in text, text
    assert all(f"unreadable state file {p} (" in text for p in damaged), text

    r = run(lwtui_env, "doctor")
    leftovers = next(line for line in r.stdout.splitlines() if "leftovers" in line)
    assert r.returncode == 1 and leftovers.startswith("FAIL") and "left behind: " in leftovers, r.stdout
    assert all(f"in namespace {ns}: encap bpf" in leftovers for ns in (cli, srv))
    assert all(f"{p}: unreadable state file" in leftovers for p in damaged)
    assert "fix: lwtui detach --all" in r.stdout

    r = run(lwtui_env, "detach", "--all")
    assert r.returncode == 1, r.stdout       # the unreadable state files are left
    mine = _mine(r.stdout, cli, srv)
    assert len(mine) == 4 and all(line.endswith(": restored") for line in mine), r.stdout
    assert all(f"{p}: unreadable state file" in r.stdout for p in damaged), r.stdout
    assert (route_dump(cli), route_dump(srv)) == before
    assert lwtui_env.pin_dirs() == []

    for p in damaged:
        p.unlink()
    r = ok(lwtui_env, "detach", "--all")
    assert _mine(r.stdout, cli, srv) == [] and "left:" not in r.stdout


def test_detach_all_leaves_a_running_session_alone(topo, route_dump, watch, lwtui_env):
    """A running session whose state file is damaged keeps its route: it holds its programs."""
    cli = topo.client_ns
    w = watch(V4, "--netns", cli, "--interval", "0.2")
    during = route_dump(cli)
    lwtui_env.states()[0].write_text("{")
    r = run(lwtui_env, "detach", "--all")
    assert _mine(r.stdout, cli) == [] and r.returncode == 1, r.stdout
    assert route_dump(cli) == during
    sport, sent = udp_send(cli, "10.0.0.3", 5353, 3, 10)
    w.wait_for(lambda d: d["type"] == "flow" and d.get("sport") == sport and d["packets"] == sent == 3,
               what="the flow still counted by the running session")


def _local_routes(dump: str, addr: str) -> list[dict]:
    return [r for r in json.loads(dump)["route4"] if r.get("table") == "local" and r["dst"] == addr]


def _flap(ns: str, dev: str) -> None:
    for updown in ("down", "up"):
        subprocess.run(["ip", "-n", ns, "link", "set", dev, updown], check=True)


def test_link_flap_beside_an_in_hook_is_noticed_and_restored(topo, route_dump, watch, lwtui_env):
    srv, cli = topo.server_ns, topo.client_ns
    plain = _local_routes(route_dump(srv), "10.0.0.3")
    assert len(plain) == 1 and "encap" not in plain[0]
    w = watch(V4, "--hook", "in", "--netns", srv, "--interval", "0.2")
    ok(lwtui_env, "block", "host", "10.0.0.2")
    _flap(srv, topo.dev)
    _flap(cli, topo.dev)       # the client's route to 10.0.0.3 went with its link: put it back
    subprocess.run(["ip", "-n", cli, "route", "replace", "10.0.0.3/32", "dev", topo.dev], check=True)
    twins = _local_routes(route_dump(srv), "10.0.0.3")
    assert len(twins) == 2 and sum("encap" in r for r in twins) == 1, twins
    line = w.wait_for(lambda d: d["type"] == "log" and d["kind"] == "warn" and "re-added" in d["text"],
                      timeout=15, what="the warning about the kernel's twin route")
    assert line["text"].startswith(f"{V4} (in) in {srv}: the kernel re-added its own local route")
    assert ping(cli, "10.0.0.3", 3) == 0, "lwtui's route still carries the block"
    assert w.stop(signal.SIGINT) == 130, w.stderr
    assert "Traceback" not in w.stderr and "could not restore" not in w.stderr
    assert _local_routes(route_dump(srv), "10.0.0.3") == plain
    assert encaps(route_dump(srv)) == []
    assert ping(cli, "10.0.0.3", 3) == 3
    assert lwtui_env.states() == []


@pytest.mark.parametrize("how", [["--all"], ["--session", "flapped"]], ids=["all", "session"])
def test_link_flap_after_sigkill_is_restored_by_detach(topo, route_dump, watch, lwtui_env, how):
    srv = topo.server_ns
    plain = _local_routes(route_dump(srv), "10.0.0.3")
    w = watch(V4, "--hook", "in", "--netns", srv, "--session", "flapped")
    w.stop(signal.SIGKILL)
    _flap(srv, topo.dev)
    flapped = _local_routes(route_dump(srv), "10.0.0.3")
    assert len(flapped) == 2
    saved = [s.read_text() for s in lwtui_env.states()]
    r = ok(lwtui_env, "detach", *how)
    assert f"{V4} (in): removed lwtui's copy (the kernel's own route stays)" in r.stdout, \
        (r.stdout, flapped, _local_routes(route_dump(srv), "10.0.0.3"), saved)
    assert _local_routes(route_dump(srv), "10.0.0.3") == plain
    assert encaps(route_dump(srv)) == []
    assert lwtui_env.states() == [] and lwtui_env.pin_dirs() == []


def _udp_passes(ns: str) -> bool:
    return udp_send(ns, "10.0.0.3", 5353, 3, 10)[1] == 3   # BPF_DROP at out: sendto fails with EPERM


def test_keep_blocks_keeps_when_the_rules_cannot_be_read(topo, route_dump, lwtui_env, monkeypatch):
    """The rule map's fd is replaced by /dev/null's: reading the rules fails for real, and
    --keep-blocks keeps (the safe reading) and says why, instead of restoring."""
    cli = topo.client_ns
    monkeypatch.setattr(state, "RUN_DIR", lwtui_env.run_dir)
    monkeypatch.setattr(pins, "PIN_ROOT", lwtui_env.pin_root)
    before = route_dump(cli)
    s = Session([Target(prefix=V4, hook="out", netns=cli)], name="keepme", keep_blocks=True)
    try:
        s.start()
        s.block("port 5353/udp")
        assert not _udp_passes(cli)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, s.store.fds["port_rules"])
        os.close(devnull)
        statuses = s.close()
        assert s.kept and len(statuses) == 1
        assert statuses[0].startswith("session keepme kept: its rules could not be read (")
        assert "--keep-blocks" in statuses[0] and "lwtui detach --session keepme" in statuses[0]
        assert not _udp_passes(cli), "the block is still in force"
        assert [s["state"] for s in _sessions(lwtui_env)] == ["kept"]
    finally:
        s.close()
        r = run(lwtui_env, "detach", "--session", "keepme")
    assert r.returncode == 0 and "restored" in r.stdout, r.stdout + r.stderr
    assert route_dump(cli) == before
    assert _udp_passes(cli)
