"""End to end: the demo lab in real namespaces, with real servers, traffic and teardown.

Each test builds its own lab (prefix lwtui-t<pid>...) and a finalizer always takes
it down. Teardown is checked against `ip netns list` and /proc, not against the
lab's own bookkeeping.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time

import pytest

from lwtui.lab import traffic as labtraffic
from lwtui.lab.lab import BULK_SIZE, Lab, LabError, netns_pids
from lwtui.net.netns import ns_run
from lwtui.core.procs import proc_start_time
from tests.e2e.traffic import udp_send

JOBS = ("http4", "http6", "bulk", "ping4", "ping6", "udp4", "udp6")


@pytest.fixture
def make_lab(request):
    """Lab(prefix=lwtui-t<pid><suffix>, ...), always taken down at the end."""
    def make(suffix: str, **kw) -> Lab:
        lab = Lab(prefix=f"lwtui-t{os.getpid()}{suffix}", **kw)
        request.addfinalizer(lab.down)
        return lab
    return make


def wait_until(pred, timeout: float = 10.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout}s")


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {n["name"] for n in json.loads(out)} if out.strip() else set()


def lab_processes(lab: Lab) -> list[tuple[int, int | None]]:
    """(pid, start time) of everything in the lab's namespaces, from `ip netns pids`."""
    t = lab.topology
    pids = netns_pids(t.client_ns) + netns_pids(t.server_ns)
    return [(pid, proc_start_time(pid)) for pid in pids]


def still_running(procs: list[tuple[int, int | None]]) -> list[int]:
    """The pids that still run as the same process (zombies awaiting init's reaping do not)."""
    running = []
    for pid, start in procs:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and start is not None and proc_start_time(pid) == start:
            running.append(pid)
    return running


def curl(ns: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    return ns_run(ns, ["curl", "-g", "-s", "--max-time", "3", *extra, url], timeout=10)


def assert_gone(lab: Lab, procs: list[tuple[int, int | None]]) -> None:
    t = lab.topology
    assert not {t.client_ns, t.server_ns} & namespaces()
    assert still_running(procs) == []
    assert not lab.state_dir.exists()
    assert lab.status()["up"] is False


def test_lab_serves_counts_and_goes_away(make_lab):
    lab = make_lab("a", traffic=False, lifetime=120)
    t = lab.up()
    st = lab.status()
    assert st["up"] and st["processes"]["server"]["alive"]
    assert not st["traffic"] and "client" not in st["processes"]

    # Reachable from the client namespace, over IPv4 and IPv6.
    r = curl(t.client_ns, f"http://{t.server_v4}:{labtraffic.HTTP4_PORT}/")
    assert r.returncode == 0 and "lwtui lab" in r.stdout
    r = curl(t.client_ns, f"http://[{t.server_v6}]:{labtraffic.HTTP6_PORT}/")
    assert r.returncode == 0 and "lwtui lab" in r.stdout
    r = curl(t.client_ns, f"http://{t.server_v4}:{labtraffic.HTTP4_PORT}/{labtraffic.BULK_NAME}",
             "-o", "/dev/null", "-w", "%{size_download}")
    assert r.returncode == 0 and int(r.stdout) == BULK_SIZE

    # The UDP sink counts exactly what arrives (no generator runs here).
    assert udp_send(t.client_ns, t.server_v4, labtraffic.UDP_PORT, 25, 100)[1] == 25
    assert udp_send(t.client_ns, t.server_v6, labtraffic.UDP_PORT, 5, 100)[1] == 5

    def server_stats():
        return lab.status()["processes"]["server"]["stats"]
    wait_until(lambda: server_stats().get("udp4_datagrams") == 25 and server_stats().get("udp6_datagrams") == 5,
               what="25 + 5 datagrams at the sink")
    s = server_stats()
    assert s["udp4_bytes"] == 25 * 100 and s["http4_requests"] == 2 and s["http6_requests"] == 1

    # Only host routes to the peer: nothing in the lab can reach beyond it.
    routes = json.loads(ns_run(t.client_ns, ["ip", "-j", "route", "show"]).stdout)
    assert [r["dst"] for r in routes if r["dst"] == "default"] == []

    # A second `up` of the same lab refuses and leaves the running one alone.
    with pytest.raises(LabError, match="already up"):
        Lab(prefix=lab.prefix).up()
    assert lab.status()["up"]

    procs = lab_processes(lab)
    assert procs and st["processes"]["server"]["pid"] in [p for p, _ in procs]
    lab.down()
    assert_gone(lab, procs)
    lab.down()  # idempotent
    assert_gone(lab, procs)


def test_lab_traffic_reaches_the_servers_until_down(make_lab):
    lab = make_lab("b", lifetime=60)
    lab.up()

    def jobs():
        return lab.status()["processes"]["client"]["stats"].get("jobs", {})
    wait_until(lambda: all(jobs().get(j, {}).get("ok", 0) >= 1 for j in JOBS), timeout=15,
               what="one success of every traffic job")
    assert {j: s["failed"] for j, s in jobs().items()} == {j: 0 for j in JOBS}

    def received():
        return lab.status()["processes"]["server"]["stats"].get("udp4_datagrams", 0)
    first = received()
    wait_until(lambda: received() >= first + 10, what="the UDP stream to keep flowing")
    st = lab.status()
    assert st["up"] and st["traffic"]
    assert st["processes"]["server"]["stats"]["http4_requests"] >= 2  # page + bulk at least

    procs = lab_processes(lab)
    assert {st["processes"][n]["pid"] for n in ("server", "client")} <= {p for p, _ in procs}
    lab.down()
    assert_gone(lab, procs)
    lab.down()
    assert_gone(lab, procs)


def test_lab_commands_leave_the_lab_running_detached(make_lab):
    lab = make_lab("c")  # for the finalizer: the commands below act on the same prefix

    def lwtui(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lwtui", "lab", *argv, "--prefix", lab.prefix],
                              capture_output=True, text=True, timeout=60)

    r = lwtui("up")
    assert r.returncode == 0, r.stderr
    r = lwtui("status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["up"] and st["traffic"]
    for when in (st["settings"]["started"], st["processes"]["server"]["stats"]["started"]):
        started = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))     # RFC 3339, not epoch seconds
        assert when.endswith("Z") and abs(time.time() - started.timestamp()) < 120, when
    r = lwtui("status")
    assert r.returncode == 0, r.stderr
    assert f"lab {lab.prefix}: up" in r.stdout and "{" not in r.stdout       # a table, not a Python dict
    assert f"[{lab.topology.server_v6}]:8081" in r.stdout                     # brackets kept (no markup)
    assert re.search(r"server\s+│\s+pid \d+ alive, started \d", r.stdout), r.stdout
    procs = lab_processes(lab)
    server = st["processes"]["server"]["pid"]
    assert server in [p for p, _ in procs]
    assert still_running([(server, proc_start_time(server))]) == [server]  # outlived `lab up`

    r = lwtui("down")
    assert r.returncode == 0, r.stderr
    assert lwtui("status", "--json").returncode == 1
    assert_gone(lab, procs)


def test_lab_prefix_must_be_ours():
    for bad in ("demo", "lwtui/x", "lwtui-" + "x" * 30):
        with pytest.raises(LabError, match="must start with 'lwtui'"):
            Lab(prefix=bad)
