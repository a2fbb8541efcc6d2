"""`--metrics`: Prometheus text scraped over HTTP equals what the test sent and what was dropped.

lwtui runs inside the test's server namespace (nsenter --net: same mounts, so
`lwtui block` from the test reaches its pinned maps) and listens on that
namespace's loopback; the scraper runs there too. The oracle is the test's
own sends: datagrams counted by the sender, of one size each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lwtui.kernel import bpfsys, runstats
from tests.e2e.cli import ok, run, lwtui_env, watch  # noqa: F401 (fixtures)
from tests.e2e.traffic import udp_send

PORT = 9100
SCRAPE = ("import sys, urllib.request; "
          "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")


def in_netns(ns: str) -> list[str]:
    """Run a command in `ns`'s network namespace only (ip netns exec would remount /sys and hide bpffs)."""
    return ["nsenter", f"--net=/run/netns/{ns}"]


def scrape(ns: str, port: int = PORT) -> dict[tuple, float]:
    """GET /metrics from inside `ns`: {(sample name, sorted labels): value}."""
    r = subprocess.run([*in_netns(ns), sys.executable, "-c", SCRAPE, f"http://127.0.0.1:{port}/metrics"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    out = {}
    for fam in text_string_to_metric_families(r.stdout):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def series(samples: dict, name: str) -> dict[tuple, float]:
    return {lab: v for (n, lab), v in samples.items() if n == name}


def test_metrics_equal_what_was_sent_and_dropped(topo, route_dump, watch, lwtui_env):
    before = route_dump(topo.client_ns)
    name = f"t{os.getpid()}m"
    route = f"{topo.server_v4}/32"
    w = watch(route, "--netns", topo.client_ns, "--session", name, "--max-flows", "1024", "--duration", "120",
              "--metrics", f"127.0.0.1:{PORT}", "--metrics-flows", "2", prefix=in_netns(topo.server_ns))
    assert w.session()["metrics"] == f"http://127.0.0.1:{PORT}/metrics"
    size, wire = 200, 228
    srv, cli = topo.server_v4, topo.client_v4
    assert udp_send(topo.client_ns, srv, 5353, 20, size, sport=40000) == (40000, 20)     # A: allowed
    assert udp_send(topo.client_ns, srv, 5355, 10, size, sport=40001) == (40001, 10)     # C: allowed, then...
    ok(lwtui_env, "block", "port", "5354/udp", "--session", name)
    ok(lwtui_env, "block", "flow", "udp", f"{cli}:40001", f"{srv}:5355", "--session", name)
    assert udp_send(topo.client_ns, srv, 5354, 15, size, sport=40002) == (40002, 0)      # B: all dropped (EPERM)
    assert udp_send(topo.client_ns, srv, 5355, 6, size, sport=40001) == (40001, 0)       # ...C: 6 dropped

    m = scrape(topo.server_ns)
    assert series(m, "lwtui_packets_total") == {
        (("hook", "out"), ("route", route), ("verdict", "allow")): 30,
        (("hook", "out"), ("route", route), ("verdict", "drop")): 21}
    assert series(m, "lwtui_bytes_total") == {
        (("hook", "out"), ("route", route), ("verdict", "allow")): 30 * wire,
        (("hook", "out"), ("route", route), ("verdict", "drop")): 21 * wire}
    assert {dict(lab)["rule"]: v for lab, v in series(m, "lwtui_rule_hits_total").items()} == {
        "port 5354/udp": 15, f"flow udp {cli}:40001 {srv}:5355": 6}
    assert value(m, "lwtui_flows") == 3 and value(m, "lwtui_flow_capacity") == 1024
    assert value(m, "lwtui_parse_errors_total") == 0 and value(m, "lwtui_events_lost_total") == 0
    top = {(dict(lab)["sport"], dict(lab)["dport"]): v for lab, v in series(m, "lwtui_flow_bytes_total").items()}
    assert top == {("40000", "5353"): 20 * wire, ("40001", "5355"): 16 * wire}   # B (15 packets) is third
    assert w.stop() == 128 + signal.SIGTERM
    assert route_dump(topo.client_ns) == before


@pytest.mark.parametrize("how", ["not-local", "not-an-address", "port-in-use", "flows-without-metrics"])
def test_bad_metrics_address_is_bad_input(topo, route_dump, lwtui_env, how):
    before = route_dump(topo.client_ns)
    argv, expected = {
        "not-local": (["--metrics", "10.9.9.9:9100"],
                      "lwtui: --metrics 10.9.9.9:9100: 10.9.9.9 is not an address of this host: use 127.0.0.1"),
        "not-an-address": (["--metrics", "localhost:9100"],
                           "lwtui: argument --metrics: 'localhost:9100': 'localhost' is not an IP address"),
        "port-in-use": (["--metrics", str(PORT)], f"lwtui: --metrics 127.0.0.1:{PORT}: port {PORT} is already in use"),
        "flows-without-metrics": (["--metrics-flows", "5"], "lwtui: --metrics-flows needs --metrics"),
    }[how]
    holder = None
    if how == "port-in-use":
        holder = subprocess.Popen([*in_netns(topo.server_ns), sys.executable, "-c",
                                   "import socket, sys; s = socket.socket(); "
                                   f"s.bind(('127.0.0.1', {PORT})); s.listen(); print('up', flush=True); "
                                   "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "up"
    try:
        r = run(lwtui_env, "watch", f"{topo.server_v4}/32", "--netns", topo.client_ns, *argv,
                python=[*in_netns(topo.server_ns), sys.executable, "-m", "lwtui"])
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(timeout=10)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(expected) and r.stderr.count("\n") == 1, r.stderr
    assert route_dump(topo.client_ns) == before
    assert lwtui_env.states() == []


def _stats_enabled() -> str:
    return subprocess.run(["sysctl", "-n", "kernel.bpf_stats_enabled"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _witness_runs(fd: int) -> int:
    """Run a trivial program 10 times; its run count says whether the kernel keeps run-time statistics."""
    bpfsys.prog_test_run(fd, bytes(12) + b"\x08\x00" + bytes(40), repeat=10)
    return runstats.prog_run_stats(fd)[1]


@pytest.mark.alone     # run-time statistics are host-wide: see tests/conftest.py
def test_own_cost_is_counted_while_lwtui_runs_and_off_after_exit(topo, route_dump, watch):
    before = route_dump(topo.client_ns)
    assert _stats_enabled() == "0", "kernel.bpf_stats_enabled is on globally: this test needs it off"
    witness = bpfsys.prog_load_trivial(bpfsys.PROG_TYPE_LWT_OUT, name="lwtui_witness")
    try:
        assert _witness_runs(witness) == 0
        w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", "0.2", "--duration", "120",
                  "--metrics", str(PORT), prefix=in_netns(topo.server_ns))
        n = 25
        assert udp_send(topo.client_ns, topo.server_v4, 5353, n, 100)[1] == n
        m = scrape(topo.server_ns)
        assert value(m, "lwtui_bpf_runs_total", hook="out") == n        # one run per packet sent
        assert value(m, "lwtui_bpf_run_seconds_total", hook="out") > 0
        stats = w.wait_for(lambda d: d["type"] == "stats" and d["packets"] == n, what="stats after the sends")
        assert stats["ns_per_packet"]["out"] == pytest.approx(
            value(m, "lwtui_bpf_run_seconds_total", hook="out") * 1e9 / n, abs=0.1)
        assert _witness_runs(witness) == 10                               # on while lwtui runs...
        assert _stats_enabled() == "0"                                    # ...without the global switch
        assert w.stop() == 128 + signal.SIGTERM
        assert _stats_enabled() == "0"
        assert _witness_runs(witness) == 10                               # off again after exit
    finally:
        os.close(witness)
    assert route_dump(topo.client_ns) == before
