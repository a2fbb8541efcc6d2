"""End to end: the real `lwtui` command on real routes in namespaces.

`watch --json` counts exactly what the test sends; `block`/`allow` from another
process act on the running session; after exit the routes are as before
(`ip -j -d route`, the independent oracle).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from tests.e2e.cli import Watch, lwtui_env, ok, run, watch  # noqa: F401 (fixtures)
from tests.e2e.traffic import PacedUdp, curl, http_server, ping, udp_send

RATE = 50          # datagrams per second of the paced senders
WINDOW = 3.0       # the rate window: a stopped flow reads 0 within it


def flow_with(w: Watch, timeout=20, **match) -> dict:
    return w.wait_for(lambda d: d["type"] == "flow" and all(d.get(k) == v for k, v in match.items()),
                      timeout=timeout, what=f"flow {match}")


@pytest.mark.parametrize("family", [4, 6])
def test_watch_out_counts_exactly_what_was_sent(topo, route_dump, watch, family):
    cli, srv = (topo.client_v4, topo.server_v4) if family == 4 else (topo.client_v6, topo.server_v6)
    prefix = f"{srv}/32" if family == 4 else f"{srv}/128"
    before = route_dump(topo.client_ns)
    w = watch(prefix, "--netns", topo.client_ns, "--interval", "0.3",
                      "--duration", "120", "--session", f"t{os.getpid()}")
    n, size = 25, 300
    sport, sent = udp_send(topo.client_ns, srv, 5353, n, size)
    assert sent == n
    hdr = 28 if family == 4 else 48
    f = flow_with(w, proto="udp", src=cli, dst=srv, sport=sport, dport=5353, packets=n)
    assert f["bytes"] == n * (size + hdr)
    assert f["hook"] == "out" and f["verdict"] == "allow" and f["drops"] == 0

    replies = ping(topo.client_ns, srv, 5, size=56)
    assert replies == 5
    proto = "icmp" if family == 4 else "icmpv6"
    echo = 8 if family == 4 else 128
    f = flow_with(w, proto=proto, icmp_type=echo, icmp_code=0, packets=5)
    assert f["bytes"] == 5 * (56 + 8 + (20 if family == 4 else 40))
    assert f["src"] == cli and f["dst"] == srv
    assert w.wait_for(lambda d: d["type"] == "new" and d.get("proto") == "udp" and d.get("sport") == sport,
                      what="the new-flow event")
    assert w.stop() == 128 + signal.SIGTERM
    assert route_dump(topo.client_ns) == before


def test_block_and_allow_from_another_process(topo, route_dump, watch, lwtui_env, tmp_path):
    before = route_dump(topo.client_ns)
    (tmp_path / "index.html").write_text("hello\n")
    name = f"t{os.getpid()}b"
    with http_server(topo.server_ns, topo.server_v4, 8080, str(tmp_path)):
        url = f"http://{topo.server_v4}:8080/index.html"
        w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns,
                          "--interval", "0.3", "--duration", "120", "--session", name)
        assert curl(topo.client_ns, url)
        flow_with(w, proto="tcp", dport=8080, dst=topo.server_v4)

        r = ok(lwtui_env, "block", "port", "8080/tcp", "--session", name)
        assert "8080/tcp" in r.stdout
        rules = [json.loads(x) for x in ok(lwtui_env, "rules", "--session", name, "--json").stdout.splitlines()]
        assert [(x["rule"], x["kind"]) for x in rules] == [("port 8080/tcp", "port")]

        assert not curl(topo.client_ns, url, timeout=1.5)
        # UDP keeps flowing while TCP 8080 is blocked
        sport, sent = udp_send(topo.client_ns, topo.server_v4, 5353, 10, 100)
        assert sent == 10
        flow_with(w, proto="udp", sport=sport, packets=10)
        dropped = w.wait_for(lambda d: d["type"] == "flow" and d["dport"] == 8080 and d["drops"] >= 1,
                             what="a dropped 8080 flow")
        assert dropped["verdict"] == "drop" and dropped["rule"] == "port 8080/tcp"
        hits = [json.loads(x) for x in ok(lwtui_env, "rules", "--session", name, "--json").stdout.splitlines()]
        assert hits[0]["hits"] >= 1

        ok(lwtui_env, "allow", "port", "8080/tcp", "--session", name)
        assert curl(topo.client_ns, url)
        assert ok(lwtui_env, "rules", "--session", name, "--json").stdout == ""
        assert w.stop() == 128 + signal.SIGTERM
    assert route_dump(topo.client_ns) == before


@pytest.mark.parametrize("family", [4, 6])
def test_in_hook_on_local_route_blocks_and_restores(topo, route_dump, watch, lwtui_env, tmp_path, family):
    srv = topo.server_v4 if family == 4 else topo.server_v6
    prefix = f"{srv}/32" if family == 4 else f"{srv}/128"
    before = route_dump(topo.server_ns)
    (tmp_path / "index.html").write_text("hello\n")
    name = f"t{os.getpid()}i{family}"
    host = srv if family == 4 else f"[{srv}]"
    with http_server(topo.server_ns, srv, 8080, str(tmp_path)):
        w = watch(prefix, "--hook", "in", "--netns", topo.server_ns,
                          "--interval", "0.3", "--duration", "120", "--session", name)
        url = f"http://{host}:8080/index.html"
        assert curl(topo.client_ns, url)
        f = flow_with(w, proto="tcp", dport=8080, dst=srv, hook="in")
        assert f["packets"] >= 3  # SYN, ACK, request at least
        n, size = 12, 200
        sport, _ = udp_send(topo.client_ns, srv, 5353, n, size)
        f = flow_with(w, proto="udp", sport=sport, packets=n, hook="in")
        assert f["bytes"] == n * (size + (28 if family == 4 else 48))

        client = topo.client_v4 if family == 4 else topo.client_v6
        ok(lwtui_env, "block", "host", client, "--session", name)
        assert not curl(topo.client_ns, url, timeout=1.5)
        ok(lwtui_env, "allow", "host", client, "--session", name)
        assert curl(topo.client_ns, url)
        assert w.stop() == 128 + signal.SIGTERM
    assert route_dump(topo.server_ns) == before


def test_block_without_session_is_a_clear_error(lwtui_env):
    r = run(lwtui_env, "block", "port", "8080", "--session", "lwtui-no-such-session")
    assert r.returncode == 2
    assert r.stderr.startswith("lwtui: no running session named 'lwtui-no-such-session'")
    assert "Traceback" not in r.stderr


def test_bad_rule_is_a_one_line_error(lwtui_env):
    r = run(lwtui_env, "block", "port", "70000")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    error, text, caret = r.stderr.rstrip("\n").splitlines()
    assert error.startswith("lwtui: port must be a number 0..65535")
    # the pointer line sits under the offending token
    assert text[caret.index("^"):caret.rindex("^") + 1] == "70000"


def test_idle_flows_expire_after_the_configured_time(topo, watch):
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", "0.2", "--expire", "1",
              "--duration", "60")
    sport, _ = udp_send(topo.client_ns, topo.server_v4, 5353, 3, 50)
    flow_with(w, proto="udp", sport=sport, packets=3)
    active = w.wait_for(lambda d: d["type"] == "stats" and d["active_flows"] >= 1, what="an active flow")
    gone = w.wait_for(lambda d: d["type"] == "stats" and d["active_flows"] == 0, timeout=10,
                      what="the idle flow expired")
    assert active["time"] < gone["time"]


# -- rates, drops and would-drops against a sender at a known rate -------------------------

def reports(w: Watch, sport: int) -> list[dict]:
    return [d for d in w.seen if d["type"] == "flow" and d.get("sport") == sport]


def stats_after(w: Watch, report: dict) -> dict:
    """The stats line of the same snapshot as `report` (it closes each interval's lines)."""
    i = next(i for i, d in enumerate(w.seen) if d is report)
    return w.wait_for(lambda d: d["type"] == "stats" and any(x is d for x in w.seen[i:]),
                      what="the stats line after a flow line")


def rx_packets(ns: str, dev: str) -> int:
    """Packets the device received (`ip -s link`, an oracle lwtui has no part in)."""
    out = subprocess.run(["ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    return json.loads(out)[0]["stats64"]["rx"]["packets"]


def near(value: float, expected: float, rel: float = 0.15) -> bool:
    return abs(value - expected) <= rel * expected


def test_a_steady_flow_reads_its_rate_from_the_second_report_then_zero(topo, watch):
    interval, n, sport = 0.5, 6 * RATE, 40100
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", str(interval),
              "--duration", "60")
    with PacedUdp(topo.client_ns, topo.server_v4, 5353, n, RATE, sport=sport) as tx:
        sent, seconds = tx.result()
    assert sent == n and near(n / seconds, RATE, 0.02), (sent, seconds)
    flow_with(w, sport=sport, packets=n)
    idle = w.wait_for(lambda d: d["type"] == "flow" and d.get("sport") == sport and d["pps"] == 0,
                      timeout=WINDOW + 3 * interval + 5, what="the record with rates 0 once the flow stopped")
    assert idle["packets"] == n and idle["bps"] == 0 and idle["drop_pps"] == 0 and idle["would_drop_pps"] == 0
    running = [d for d in reports(w, sport) if d["packets"] < n]     # taken while the sender sent
    assert len(running) >= 8, running
    assert all(near(d["pps"], RATE) for d in running[1:]), [d["pps"] for d in running]
    assert all(near(d["bps"], RATE * (100 + 28) * 8) for d in running[1:]), [d["bps"] for d in running]
    assert [d for d in reports(w, sport) if d["packets"] == n][-1] is idle   # nothing after it
    # The header's totals are taken as the rows' rates (the flow is the only traffic): they
    # agree, but for a packet that came between the reads of the flows and of the totals.
    for d in running[1:]:
        st = stats_after(w, d)
        assert abs(st["pps"] - d["pps"]) <= 0.05 * RATE and abs(st["bps"] - d["bps"]) <= 0.05 * d["bps"], (st, d)


def test_dry_run_counts_would_drops_never_drops(topo, watch, lwtui_env):
    name, n, sport = f"t{os.getpid()}d", 2 * RATE, 40201
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", "0.3", "--duration", "60",
              "--session", name, "--dry-run")
    ok(lwtui_env, "block", "port", "5353/udp", "--session", name)
    ok(lwtui_env, "block", "host", topo.server_v4, "--session", name)
    before = rx_packets(topo.server_ns, topo.dev)
    with PacedUdp(topo.client_ns, topo.server_v4, 5353, n, RATE, sport=sport) as tx:
        sent, _ = tx.result()
    assert sent == n                                          # no send failed: nothing was dropped
    assert rx_packets(topo.server_ns, topo.dev) - before >= n    # and all of it arrived
    f = flow_with(w, sport=sport, packets=n)
    assert (f["drops"], f["would_drops"], f["verdict"]) == (0, n, "would-drop")
    assert f["rule"] == "host " + topo.server_v4              # the kind the kernel names: host before port
    running = reports(w, sport)[1:-1]
    assert running and all(d["drop_pps"] == 0 and d["pps"] > 0 and d["would_drop_pps"] > 0 for d in running)
    st = stats_after(w, f)
    assert st["drops"] == 0 and st["would_drops"] >= n and st["drop_pps"] == 0
    for d in running[1:]:       # the totals' would-drop rate is the row's (the only such flow)
        assert abs(stats_after(w, d)["would_drop_pps"] - d["would_drop_pps"]) <= 0.1 * RATE, (stats_after(w, d), d)


def test_a_blocked_flow_passes_nothing_and_shows_its_drop_rate(topo, watch, lwtui_env):
    name, n, sport, interval = f"t{os.getpid()}x", 4 * RATE, 40202, 0.5
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", str(interval),
              "--duration", "60", "--session", name)
    ok(lwtui_env, "block", "port", "5353/udp", "--session", name)
    with PacedUdp(topo.client_ns, topo.server_v4, 5353, n, RATE, sport=sport) as tx:
        sent, _ = tx.result()
    assert sent == 0                                          # every sendto failed with EPERM
    f = flow_with(w, sport=sport, packets=n)
    assert (f["drops"], f["would_drops"], f["verdict"], f["rule"]) == (n, 0, "drop", "port 5353/udp")
    running = [d for d in reports(w, sport) if d["packets"] < n]
    assert len(running) >= 4, running
    assert all(d["pps"] == 0 and d["bps"] == 0 for d in reports(w, sport))   # nothing passed, ever
    assert all(near(d["drop_pps"], RATE) for d in running[1:]), [d["drop_pps"] for d in running]
    idle = w.wait_for(lambda d: d["type"] == "flow" and d.get("sport") == sport and d["drop_pps"] == 0,
                      timeout=WINDOW + 3 * interval + 5, what="the record with rates 0 once the flow stopped")
    assert idle["drops"] == n
    st = stats_after(w, f)
    assert st["drops"] >= n and st["would_drops"] == 0
    for d in running[1:]:       # the totals' drop rate is the row's (the only dropped flow)
        assert abs(stats_after(w, d)["drop_pps"] - d["drop_pps"]) <= 0.1 * RATE, (stats_after(w, d), d)
