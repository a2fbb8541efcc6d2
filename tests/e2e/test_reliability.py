"""Never break the host: whatever ends lwtui, the routes come back byte for byte.

Every test runs the real `lwtui` command against real routes in namespaces and
judges by iproute2's dump of every route and rule (`route_dump`), never by
lwtui's own view. Exits: Ctrl-C, SIGTERM, SIGHUP (a signal, and a terminal
that really goes away), a closed output pipe, a failure in the reader or in a
refresh, a failure half-way through attaching, SIGKILL (then `detach --all`).
Also: one session per route, foreign encaps, routes that vanish while
watched, state and pin files (modes, cleanup), --keep-blocks.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import signal
import subprocess
import time

import pytest

from lwtui.kernel.pins import PINNED_MAPS

from tests.e2e.cli import LWTUI, ROOT, Watch, lwtui_env, ok, run, watch  # noqa: F401 (fixtures)
from tests.e2e.traffic import nsrun, udp_send

pytestmark = pytest.mark.host_wide     # see tests/conftest.py

V4, V6 = "10.0.0.3/32", "fd00:6c77::3/128"


def encaps(dump: str) -> list[str]:
    """`dst encap` of every route carrying an encap, from the oracle's JSON."""
    d = json.loads(dump)
    return sorted(f"{r.get('dst')} {r.get('table', 'main')} {r['encap']}" for r in d["route4"] + d["route6"]
                  if "encap" in r)


def _sessions(env) -> list[dict]:
    """`lwtui sessions --json`'s sessions (its other lines name leftovers anywhere on the host)."""
    lines = [json.loads(x) for x in ok(env, "sessions", "--json").stdout.splitlines()]
    return [d for d in lines if d["type"] == "session"]


def assert_clean(env) -> None:
    """No state file, no pins left behind."""
    assert env.states() == [], [p.read_text() for p in env.states()]
    assert env.pin_dirs() == []


def wait_until(pred, timeout: float = 10, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


# -- exits ---------------------------------------------------------------------------

@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signals_restore_every_route(topo, route_dump, watch, lwtui_env, sig, code):
    cli, srv = topo.client_ns, topo.server_ns
    before = route_dump(cli), route_dump(srv)
    w_out = watch(V4, V6, "--hook", "out,xmit", "--netns", cli, "--interval", "0.2")
    w_in = watch(V4, V6, "--hook", "in", "--netns", srv, "--interval", "0.2")
    assert len(encaps(route_dump(cli))) == 2 and len(encaps(route_dump(srv))) == 2
    assert len(lwtui_env.states()) == 2 and len(lwtui_env.pin_dirs()) == 2
    assert w_out.stop(sig) == code and w_in.stop(sig) == code
    assert "Traceback" not in w_out.stderr + w_in.stderr
    assert (route_dump(cli), route_dump(srv)) == before
    assert_clean(lwtui_env)


def test_terminal_hangup_restores(topo, route_dump, lwtui_env):
    """The table view on a real terminal; the terminal goes away (its master side closes): SIGHUP."""
    before = route_dump(topo.client_ns)
    master, slave = pty.openpty()
    proc = subprocess.Popen(LWTUI + ["watch", V4, "--netns", topo.client_ns, "--interval", "0.2"],
                            stdin=slave, stdout=slave, stderr=slave, env=lwtui_env, cwd=ROOT,
                            start_new_session=True, preexec_fn=_controlling_tty)
    os.close(slave)
    try:
        screen = b""
        deadline = time.monotonic() + 30
        while b"MONITOR" not in screen:    # the table's title: the session runs
            assert time.monotonic() < deadline and proc.poll() is None, screen.decode(errors="replace")
            screen += os.read(master, 65536)
        assert encaps(route_dump(topo.client_ns))
    finally:
        os.close(master)
    assert proc.wait(timeout=20) == 128 + signal.SIGHUP
    assert route_dump(topo.client_ns) == before
    assert_clean(lwtui_env)


def _controlling_tty() -> None:
    import fcntl
    import termios
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_closed_output_pipe_restores(topo, route_dump, lwtui_env):
    """`lwtui watch --json | head -n 3`: the reader goes away, lwtui exits quietly and restores."""
    before = route_dump(topo.client_ns)
    proc = subprocess.Popen(LWTUI + ["watch", V4, "--netns", topo.client_ns, "--json", "--interval", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=lwtui_env, cwd=ROOT)
    for _ in range(3):
        assert proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=20) == 141
    assert b"Traceback" not in proc.stderr.read()
    assert route_dump(topo.client_ns) == before
    assert_clean(lwtui_env)


@pytest.mark.parametrize("fault,message", [("reader", "lwtui: the event reader failed (InjectedFault"),
                                           ("snapshot", "lwtui: injected fault at snapshot #1"),
                                           ("snapshot:3", "lwtui: injected fault at snapshot #3")])
def test_a_failure_inside_restores(topo, route_dump, watch, lwtui_env, fault, message):
    before = route_dump(topo.client_ns)
    env = dict(lwtui_env, LWTUI_FAULT=fault)
    w = watch(V4, V6, "--netns", topo.client_ns, "--interval", "0.2", env=env)
    assert w.wait() == 1
    assert w.stderr.strip().splitlines() == [w.stderr.strip()] and w.stderr.startswith(message), w.stderr
    assert route_dump(topo.client_ns) == before
    assert_clean(lwtui_env)


def test_failed_attach_half_way_rolls_back(topo, route_dump, lwtui_env):
    """The second route fails after the first was attached: the first comes back, exit 2, one line."""
    ns = topo.client_ns
    before = route_dump(ns)
    monitor = subprocess.Popen(["ip", "-n", ns, "monitor", "route"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)     # `ip monitor` subscribes before lwtui starts
        r = run(dict(lwtui_env, LWTUI_FAULT="attach:2"), "watch", V4, V6, "--netns", ns, "--json")
    finally:
        time.sleep(0.3)
        monitor.terminate()
        seen = monitor.communicate(timeout=10)[0]
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [f"lwtui: attaching out to {V6}: injected fault at attach #2 "
                                     "(LWTUI_FAULT=attach:2)"]
    assert "encap bpf out lwtui_out_" in seen.split("\n")[0], "the first route was attached before the failure"
    assert seen.split()[0] == "10.0.0.3" and len(seen.strip().splitlines()) == 2, seen
    assert route_dump(ns) == before
    assert_clean(lwtui_env)


def test_missing_second_route_changes_nothing(topo, route_dump, lwtui_env):
    ns = topo.client_ns
    before = route_dump(ns)
    r = run(lwtui_env, "watch", V4, "10.0.0.9/32", "--netns", ns, "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [f"lwtui: no route 10.0.0.9/32 in namespace {ns} "
                                     "(closest: 10.0.0.0/24, 10.0.0.3/32); pass --dev DEV to create it"]
    assert route_dump(ns) == before
    assert_clean(lwtui_env)


# -- SIGKILL, stale sessions, state and pins -------------------------------------------

def test_sigkill_then_detach_all(topo, route_dump, watch, lwtui_env):
    cli, srv = topo.client_ns, topo.server_ns
    before = route_dump(cli), route_dump(srv)
    w1 = watch(V4, "--hook", "out,xmit", "--netns", cli)
    w2 = watch(V6, V4, "--hook", "in", "--netns", srv)
    for w in (w1, w2):
        w.stop(signal.SIGKILL)
    assert (route_dump(cli), route_dump(srv)) != before, "programs stay on the routes after SIGKILL"
    sessions = _sessions(lwtui_env)
    assert sorted(s["state"] for s in sessions) == ["stale", "stale"]
    for s in sessions:                          # RFC 3339, as in every JSON output, and recent
        started = dt.datetime.fromisoformat(s["started"].replace("Z", "+00:00"))
        assert s["started"].endswith("Z") and abs(time.time() - started.timestamp()) < 120, s["started"]

    for argv in (["watch", V4, "--netns", cli, "--json"], ["watch", V6, "--hook", "in", "--netns", srv]):
        r = run(lwtui_env, *argv)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "held by stale session" in r.stderr and "run `lwtui detach --all` first" in r.stderr

    r = ok(lwtui_env, "detach", "--all")
    assert r.stdout.count("restored") == 4, r.stdout      # out+xmit share a route: 2 lines each
    assert (route_dump(cli), route_dump(srv)) == before
    assert_clean(lwtui_env)
    assert "nothing to detach" in ok(lwtui_env, "detach", "--all").stdout


def test_state_and_pins_are_root_only_and_cleaned(topo, watch, lwtui_env):
    w = watch(V4, "--netns", topo.client_ns)
    name = w.session()["name"]
    mode = lambda p: os.stat(p).st_mode & 0o777  # noqa: E731
    state = lwtui_env.run_dir / f"{name}.json"
    assert mode(lwtui_env.run_dir) == 0o700 and mode(state) == 0o600
    pins = lwtui_env.pin_root / name
    assert mode(lwtui_env.pin_root) == 0o700 and mode(pins) == 0o700
    assert {p.name: mode(p) for p in pins.iterdir()} == {n: 0o600 for n in PINNED_MAPS}
    saved = state.read_text()
    w.stop(signal.SIGKILL)
    # Pins without a state file, and a half-written state file of a dead writer: detach --all removes
    # them, and restores the route from its dump (it names lwtui's program).
    state.unlink()
    (lwtui_env.run_dir / f"{name}.tmp999999999").write_text("{")
    r = ok(lwtui_env, "detach", "--all")
    assert "removed 1 orphaned pin dir" in r.stdout and "removed 1 half-written state file" in r.stdout
    assert f"{V4} (table main) in namespace {topo.client_ns}: encap bpf out lwtui_out_" in r.stdout
    assert "(no state file names it): restored" in r.stdout
    assert lwtui_env.pin_dirs() == [] and list(lwtui_env.run_dir.iterdir()) == []
    state.write_text(saved)     # a state file whose route was restored meanwhile
    assert f"{name}: {V4} (out): already restored" in ok(lwtui_env, "detach", "--all").stdout
    assert_clean(lwtui_env)


# -- one session per route, foreign encaps -----------------------------------------------

def test_second_session_on_the_route_is_refused_with_the_pid(topo, route_dump, watch, lwtui_env):
    first = watch(V4, "--netns", topo.client_ns)
    line = first.session()
    during = route_dump(topo.client_ns)
    for hook in ("out", "xmit"):
        r = run(lwtui_env, "watch", V4, "--hook", hook, "--netns", topo.client_ns, "--json")
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.splitlines() == [f"lwtui: {V4} (out) is already watched by session {line['name']} "
                                         f"(pid {line['pid']}): stop it first"]
    assert route_dump(topo.client_ns) == during
    assert first.proc.poll() is None, "the first session is not disturbed"


def test_foreign_encap_is_refused_by_name(topo, route_dump, lwtui_env):
    ns = topo.client_ns
    subprocess.run(["ip", "-n", ns, "route", "add", "10.0.0.51/32", "encap", "ip", "id", "5", "dst", "10.0.0.3",
                    "dev", topo.dev], check=True)
    before = route_dump(ns)
    r = run(lwtui_env, "watch", "10.0.0.51/32", "--netns", ns, "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [f"lwtui: 10.0.0.51/32 in namespace {ns} already carries encap ip: "
                                     "remove it first"]
    assert route_dump(ns) == before
    assert_clean(lwtui_env)


# -- routes that go away while watched ------------------------------------------------------

def _error_about(w: Watch, prefix: str, reason: str) -> dict:
    return w.wait_for(lambda d: d["type"] == "log" and d["kind"] == "error" and d["text"].startswith(prefix)
                      and reason in d["text"], timeout=15, what=f"an error line about {prefix} ({reason})")


def test_deleted_route_is_noticed_and_the_rest_carries_on(topo, route_dump, watch, lwtui_env):
    ns = topo.client_ns
    w = watch(V4, V6, "--netns", ns, "--interval", "0.2")
    subprocess.run(["ip", "-n", ns, "route", "del", V4], check=True)
    line = _error_about(w, V4, "route gone")
    assert "1 route(s) left" in line["text"]
    sport, sent = udp_send(ns, "fd00:6c77::3", 5353, 7, 10)
    w.wait_for(lambda d: d["type"] == "flow" and d.get("sport") == sport and d["packets"] == sent == 7,
               what="the IPv6 flow still counted")
    subprocess.run(["ip", "-n", ns, "route", "del", V6], check=True)
    _error_about(w, V6, "route gone")
    assert w.wait() == 1
    assert w.stderr.splitlines()[-1].startswith("lwtui: every watched route is gone (")
    assert "Traceback" not in w.stderr
    assert_clean(lwtui_env)
    assert encaps(route_dump(ns)) == []


def test_removed_device_is_noticed_and_the_policy_rule_cleaned(topo, route_dump, watch, lwtui_env):
    srv = topo.server_ns
    rules_before = json.loads(route_dump(srv))["rule6"]
    w = watch(V4, V6, "--hook", "in", "--netns", srv, "--interval", "0.2")
    assert json.loads(route_dump(srv))["rule6"] != rules_before
    subprocess.run(["ip", "-n", srv, "link", "del", topo.dev], check=True)
    for prefix in (V4, V6):
        _error_about(w, prefix, "gone")
    assert w.wait() == 1 and "every watched route is gone" in w.stderr
    assert json.loads(route_dump(srv))["rule6"] == rules_before, "lwtui's steering rule went with the route"
    assert_clean(lwtui_env)


def test_deleted_namespace_is_noticed(topo, watch, lwtui_env):
    w = watch(V4, "--netns", topo.client_ns, "--interval", "0.2")
    subprocess.run(["ip", "netns", "del", topo.client_ns], check=True)
    _error_about(w, V4, "namespace gone")
    assert w.wait() == 1
    assert f"{V4} (out) in {topo.client_ns}: namespace gone" in w.stderr
    assert_clean(lwtui_env)


# -- --keep-blocks ---------------------------------------------------------------------

def _udp_passes(ns: str) -> bool:
    return udp_send(ns, "10.0.0.3", 5353, 3, 10)[1] == 3   # BPF_DROP at out: sendto fails with EPERM


def test_keep_blocks_leaves_active_rules_until_detach(topo, route_dump, watch, lwtui_env):
    ns = topo.client_ns
    before = route_dump(ns)
    w = watch(V4, "--netns", ns, "--keep-blocks", "--session", "kept1")
    ok(lwtui_env, "block", "port", "5353/udp")
    assert not _udp_passes(ns)
    assert w.stop() == 143
    assert "session kept1 kept: 1 rule(s) stay active" in w.stderr
    sessions = _sessions(lwtui_env)
    assert [(s["name"], s["state"]) for s in sessions] == [("kept1", "kept")]
    assert "kept (blocks active)" in ok(lwtui_env, "sessions").stdout
    assert not _udp_passes(ns), "the block outlives the process"
    assert [json.loads(x)["rule"] for x in ok(lwtui_env, "rules", "--json").stdout.splitlines()] == \
        ["port 5353/udp"]
    r = run(lwtui_env, "watch", V4, "--netns", ns, "--json")
    assert r.returncode == 2 and "run `lwtui detach --session kept1` first" in r.stderr
    ok(lwtui_env, "allow", "port", "5353/udp")
    assert _udp_passes(ns)
    ok(lwtui_env, "block", "port", "5353/udp", "--session", "kept1")
    assert not _udp_passes(ns)
    assert "restored" in ok(lwtui_env, "detach", "--session", "kept1").stdout
    assert route_dump(ns) == before
    assert _udp_passes(ns)
    assert_clean(lwtui_env)


def test_keep_blocks_without_rules_restores(topo, route_dump, watch, lwtui_env):
    before = route_dump(topo.client_ns)
    w = watch(V4, "--netns", topo.client_ns, "--keep-blocks")
    assert w.stop(signal.SIGINT) == 130 and "kept" not in w.stderr
    assert route_dump(topo.client_ns) == before
    assert_clean(lwtui_env)


# -- the lock-out guard -------------------------------------------------------------------

def test_block_refuses_to_cut_the_own_ssh_connection(topo, watch, lwtui_env):
    watch(V4, "--netns", topo.client_ns, "--session", "guarded")
    env = dict(lwtui_env, SSH_CONNECTION="10.0.0.2 40022 10.0.0.3 22")
    for rule in (["port", "22"], ["host", "10.0.0.2"], ["flow", "tcp", "10.0.0.3:22", "10.0.0.2:40022"]):
        r = run(env, "block", *rule)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith(f"lwtui: '{' '.join(rule)}' would block your own SSH connection "
                                   "(ssh 10.0.0.2:40022 -> 10.0.0.3:22): add --force")
    assert ok(env, "rules", "--json").stdout == ""
    ok(env, "block", "port", "80")          # unrelated rules go through
    ok(env, "block", "port", "22", "--force")
    assert sorted(json.loads(x)["rule"] for x in ok(env, "rules", "--json").stdout.splitlines()) == \
        ["port 22", "port 80"]


# -- the fork()ed netlink helper never runs lwtui's cleanup ------------------------------

CHILD_SIGNAL = """
import os, signal, sys, time
from lwtui.session import signals
signals.install()
marker = sys.argv[1]
pid = os.fork()
if pid == 0:
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    finally:
        open(marker, "w").write("the child ran the parent's cleanup")
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_signal_in_a_forked_helper_exits_it_at_once(tmp_path):
    marker = tmp_path / "marker"
    r = subprocess.run([os.sys.executable, "-c", CHILD_SIGNAL, str(marker)], capture_output=True, text=True,
                       cwd=ROOT, timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(128 + signal.SIGTERM)
    assert not marker.exists()


def test_namespace_sockets_leave_the_event_reader_alone(topo, watch):
    """Regression: pyroute2's fork()ed namespace helper used to run lwtui's SIGTERM cleanup,
    emptying the perf buffer map; new-flow events then never arrived."""
    w = watch(V4, "--netns", topo.client_ns, "--interval", "0.2")
    for port in (7001, 7002, 7003):
        sport, _ = udp_send(topo.client_ns, "10.0.0.3", port, 1, 10)
        w.wait_for(lambda d: d["type"] == "new" and d.get("sport") == sport, timeout=10,
                   what=f"the new-flow event to port {port}")
    nsrun(topo.client_ns, ["true"])
