"""End to end on the paths older kernels take: `watch --json` with every kernel
feature that has a fallback hidden (LWTUI_HIDE_FEATURES=all) counts exactly
what a sender sent and drops a blocked flow, says its fallbacks in the session
record, and leaves the routes as they were (`ip -j -d route`)."""

from __future__ import annotations

import json
import os
import signal

import pytest

from lwtui.kernel import features
from tests.e2e.cli import lwtui_env, ok, run, watch  # noqa: F401 (fixtures)
from tests.e2e.test_evidence import packets
from tests.e2e.traffic import udp_send


def test_watch_with_every_fallback(topo, route_dump, watch, lwtui_env):
    env = {**lwtui_env, features.HIDE_ENV: "all"}
    cli, srv = topo.client_v4, topo.server_v4
    name = f"t{os.getpid()}fb"
    before = route_dump(topo.client_ns)
    w = watch(f"{srv}/32", "--netns", topo.client_ns, "--interval", "0.3", "--duration", "120",
              "--session", name, "--events", "ringbuf", env=env, ready=False)
    s = w.session(timeout=90)       # the unrolled build (no bounded loops) compiles ~3 times as long
    assert s["fallbacks"] == [f.name for f in features.FALLBACKS]
    assert s["events"] == "perf"        # ringbuf asked for, hidden: the perf buffer
    note = w.wait_for(lambda d: d["type"] == "log" and d["text"].startswith("BPF ring buffer"), what="the note")
    assert note["text"] == (f"BPF ring buffer (--events ringbuf): hidden by {features.HIDE_ENV}, "
                            "so events through the perf buffer")

    n, size = 25, 300
    sport, sent = udp_send(topo.client_ns, srv, 5353, n, size)
    assert sent == n
    f = w.wait_for(lambda d: d["type"] == "flow" and d.get("sport") == sport and d["packets"] == n,
                   what=f"the flow with {n} packets")
    assert (f["bytes"], f["drops"], f["verdict"], f["src"], f["dst"]) == (n * (size + 28), 0, "allow", cli, srv)
    assert w.wait_for(lambda d: d["type"] == "new" and d.get("sport") == sport, what="the new-flow event")
    stats = w.wait_for(lambda d: d["type"] == "stats" and d["packets"] == n, what="totals")
    assert stats["ns_per_packet"] == {}     # no run-time statistics: no own-cost figure

    ok(env, "block", "port", "5354/udp", "--session", name)
    sport2, sent2 = udp_send(topo.client_ns, srv, 5354, 10, 100)
    assert sent2 == 0       # a drop at OUT is EPERM to the sender: all 10 refused
    f = w.wait_for(lambda d: d["type"] == "flow" and d.get("sport") == sport2 and d["drops"] == 10,
                   what="the blocked flow with 10 drops")
    assert (f["packets"], f["verdict"], f["rule"]) == (10, "drop", "port 5354/udp")
    rules = [json.loads(x) for x in ok(env, "rules", "--session", name, "--json").stdout.splitlines()]
    assert [(r["rule"], r["hits"]) for r in rules] == [("port 5354/udp", 10)]
    assert w.stop() == 128 + signal.SIGTERM
    assert route_dump(topo.client_ns) == before


@pytest.mark.parametrize("hidden", [f.name for f in features.FALLBACKS])
def test_each_fallback_alone_runs_a_whole_session(topo, route_dump, watch, lwtui_env, tmp_path, hidden):
    """One feature hidden: the session names that fallback alone, counts exactly,
    a compound rule (the compound loop) drops exactly its datagrams, the pcap
    file (tcpdump reads it) holds exactly those, the own-cost figure is there
    unless run-time statistics are hidden, and the routes come back."""
    env = {**lwtui_env, features.HIDE_ENV: hidden}
    cli, srv = topo.client_v4, topo.server_v4
    name, pcap = f"t{os.getpid()}f{hidden[:4]}", tmp_path / "drops.pcap"
    before = route_dump(topo.client_ns)
    w = watch(f"{srv}/32", "--netns", topo.client_ns, "--interval", "0.3", "--duration", "120",
              "--session", name, "--events", "ringbuf", "--pcap", str(pcap), env=env, ready=False)
    s = w.session(timeout=90)       # without bounded loops the unrolled build compiles ~3 times as long
    assert (s["fallbacks"], s["events"]) == ([hidden], "perf" if hidden == "ringbuf" else "ringbuf")

    n, size = 12, 200
    sport, sent = udp_send(topo.client_ns, srv, 5353, n, size)
    assert sent == n
    f = w.wait_for(lambda d: d["type"] == "flow" and d.get("sport") == sport and d["packets"] == n,
                   what=f"the flow with {n} packets")
    assert (f["bytes"], f["drops"], f["verdict"]) == (n * (size + 28), 0, "allow")

    rule = f"src host {cli} and dst port 5354/udp"
    ok(env, "block", rule, "--session", name)
    sport2, sent2 = udp_send(topo.client_ns, srv, 5354, 6, 100)
    assert sent2 == 0       # EPERM for each: all 6 dropped at OUT
    f = w.wait_for(lambda d: d["type"] == "flow" and d.get("sport") == sport2 and d["drops"] == 6,
                   what="the blocked flow with 6 drops")
    assert (f["packets"], f["verdict"], f["rule"]) == (6, "drop", rule)
    stats = w.wait_for(lambda d: d["type"] == "stats" and d.get("pcap", {}).get("files", [{}])[0].get("packets") == 6,
                       what="the stats line counting 6 recorded packets")
    assert (stats["packets"], stats["drops"]) == (n + 6, 6)
    assert set(stats["ns_per_packet"]) == (set() if hidden == "run_stats" else {"out"})
    rules = [json.loads(x) for x in ok(env, "rules", "--session", name, "--json").stdout.splitlines()]
    assert [(r["rule"], r["hits"]) for r in rules] == [(rule, 6)]
    assert w.stop() == 128 + signal.SIGTERM
    assert [p[1:] for p in packets(pcap)] == [(cli, sport2, srv, 5354)] * 6
    assert route_dump(topo.client_ns) == before


def test_on_this_kernel_nothing_falls_back(topo, watch, lwtui_env):
    """The main path: every feature there, the ring buffer used when asked for."""
    env = {k: v for k, v in lwtui_env.items() if k != features.HIDE_ENV}
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", "0.3", "--duration", "60",
              "--events", "ringbuf", env=env)
    s = w.session()
    assert (s["fallbacks"], s["events"]) == ([], "ringbuf")
    stats = w.wait_for(lambda d: d["type"] == "stats", what="totals")
    assert set(stats["ns_per_packet"]) == {"out"}       # run-time statistics on: lwtui's own cost
    assert w.stop() == 128 + signal.SIGTERM


def test_a_bad_hide_list_is_refused_changing_nothing(topo, route_dump, lwtui_env):
    before = route_dump(topo.client_ns)
    r = run({**lwtui_env, features.HIDE_ENV: "batches"}, "watch", f"{topo.server_v4}/32", "--netns",
            topo.client_ns, "--json", "--duration", "1")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().startswith(f"lwtui: {features.HIDE_ENV} names unknown feature(s) batches: use all or")
    assert route_dump(topo.client_ns) == before


def test_doctor_json_shows_the_hidden_features(lwtui_env):
    r = run({**lwtui_env, features.HIDE_ENV: "gso_segs,batch"}, "doctor", "--json")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    kernel = next(d for d in lines if d["type"] == "check" and d["name"] == "kernel")
    assert kernel["ok"] and kernel["found"].endswith("with fallbacks for batch, gso_segs"), kernel
    rows = {d["feature"]: d for d in lines if d["type"] == "feature"}
    assert set(rows) == set(features.BY_NAME)
    assert all(d["available"] for d in rows.values())       # 6.18 has them all
    assert [k for k, d in rows.items() if not d["used"]] == ["ringbuf", "batch", "gso_segs"]
    assert rows["gso_segs"]["hidden"] and rows["gso_segs"]["fallback"] == features.BY_NAME["gso_segs"].fallback
    assert rows["ringbuf"]["fallback"] is None      # there, used when asked for


def test_doctor_table_shows_the_hidden_feature_and_the_minimum(lwtui_env):
    """The human table: the hidden feature is there but not used, with its fallback
    named; every required feature, programs past 4,096 instructions among them, used."""
    r = run({**lwtui_env, features.HIDE_ENV: "gso_segs", "COLUMNS": "250"}, "doctor")
    assert "ok   kernel     " in r.stdout, r.stdout     # (not the exit code: another test's leftovers may fail it)
    cells = {c[0]: c for c in ([x.strip() for x in line.strip("│ ").split("│")] for line in r.stdout.splitlines()
                                if line.startswith("│"))}
    assert set(cells) == set(features.BY_NAME)
    assert cells["gso_segs"][3:] == ["yes (hidden)", "no", features.BY_NAME["gso_segs"].fallback]
    assert cells["large_programs"][2:] == ["5.2", "yes", "yes", "-"]
    assert [name for name, c in cells.items() if c[4] == "no"] == ["ringbuf", "gso_segs"]


def test_watch_table_names_the_fallbacks(topo, lwtui_env):
    """watch without --json: each table's title line names the fallbacks in use."""
    env = {**lwtui_env, features.HIDE_ENV: "gso_segs,batch", "COLUMNS": "250"}
    r = run(env, "watch", f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", "0.3",
            "--duration", "1.5", timeout=120)
    assert r.returncode == 0, r.stderr
    titles = [line for line in r.stdout.splitlines() if line.startswith("lwtui ")]
    assert titles and all(" FALLBACK batch,gso_segs  " in line for line in titles), r.stdout
