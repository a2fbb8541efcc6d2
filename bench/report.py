"""Render bench/results/*.json as the Markdown tables of BENCHMARKS.md.

The tables go between `<!-- results:begin -->` and `<!-- results:end -->`;
everything else in BENCHMARKS.md (the method, the discussion) is written by
hand and left alone. Every cell is a median over rounds with its range
(min-max) in parentheses, straight from the result files: nothing here
measures anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from lwtui.core.names import HOOKS

from .common import RESULTS, ROOT

DOC = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _s(d: dict | None, scale: float = 1.0, digits: int = 0, unit: str = "") -> str:
    """'median (min-max)' of a Spread dict."""
    if not d:
        return "-"
    f = f"{{:,.{digits}f}}"
    med, lo, hi = (f.format(d[k] * scale) for k in ("median", "min", "max"))
    return f"{med}{unit}" if d.get("n", 1) == 1 or lo == hi else f"{med}{unit} ({lo}-{hi})"


def _table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _machine(doc: dict) -> str:
    m = doc["machine"]
    la0 = "/".join(f"{x:g}" for x in m.get("loadavg_start", []))
    la1 = "/".join(f"{x:g}" for x in m.get("loadavg_end", []))
    return (f"*Run {doc['started']} ({doc['seconds']:.0f} s) on {m['nproc']} x {m['cpu_model']}, kernel "
            f"{m['kernel']}, {m['mem_gib']} GiB, Python {m['python']}, BCC {m['bcc']}; load average "
            f"{la0} at start, {la1} at end. Parameters: "
            + ", ".join(f"{k}={v}" for k, v in doc["params"].items() if not k.startswith("raw") and "stacks" not in k) + ".*")


def _targets(doc: dict) -> str:
    notes = "".join(f"\n- {n}" for n in doc.get("notes", []) if "\n" not in n)
    notes = f"\n\nNotes from the run:{notes}" if notes else ""
    if not doc["targets"]:
        return notes
    rows = [[t["target"], f"{t['measured']:g}{t['unit']}",
             f"{'>=' if t.get('higher_is_better') else '<='} {t['limit']:g}{t['unit']}",
             "met" if t["met"] else "**missed**", t["detail"]] for t in doc["targets"]]
    return "\n\n" + _table(["target", "measured (median)", "limit", "", "spread"], rows) + notes


def _with_rules(row: dict | None) -> list[str]:
    """ns and x-no-rules cells of a case with rules installed ('-' for result
    files from before the case existed)."""
    if not row:
        return ["-", "-"]
    return [_s(row["ns"]), _s(row["x_no_rules"], digits=3, unit="x")]


def microbench(doc: dict) -> str:
    steady = {(r["program"], r["hook"], r["packet"], r["case"]): r for r in doc["rows"] if r["section"] == "steady"}
    hooks = sorted({k[1] for k in steady}, key=HOOKS.index)
    kinds = [k for k in ("tcp", "udp", "icmp", "tcp6") if any(x[2] == k for x in steady)]
    rows = []
    for h in hooks:
        for k in kinds:
            g = lambda p, c: steady.get((p, h, k, c))  # noqa: E731
            rows.append([h, k, _s(g("noop", "allowed")["ns"]), _s(g("minimal", "allowed")["ns"]),
                         _s(g("lwtui", "allowed")["ns"]), _s(g("lwtui", "allowed")["x_noop"], digits=2, unit="x"),
                         _s(g("lwtui", "dropped")["ns"]), _s(g("lwtui", "dropped")["x_noop"], digits=2, unit="x"),
                         *[cell for p in ("lwtui+1000 rules", "lwtui+8 compound", "lwtui+1000 rules+8 compound")
                           for cell in _with_rules(g(p, "allowed"))]])
    t1 = _table(["hook", "packet", "no-op ns", "minimal ns", "lwtui ns (existing, allowed)", "x no-op",
                 "lwtui ns (dropped)", "x no-op", "lwtui ns (1,000 rules)", "x no rules",
                 "lwtui ns (8 compound)", "x no rules", "lwtui ns (1,000 + 8 compound)", "x no rules"], rows)
    on = [r for r in doc["rows"] if r["section"] == "steady" and r.get("added_ns")]
    if on:
        t1 += ("\n\nWith BPF run-time statistics on (`BPF_ENABLE_STATS`, which a session turns on for its "
               "cost figure; the kernel then times every run of every BPF program), existing IPv4 TCP flow, "
               "allowed:\n\n" + _table(
                   ["hook", "no-op ns", "added to the no-op ns", "lwtui ns", "added to lwtui ns", "lwtui x no-op"],
                   [[r["hook"], _s(r["noop_ns"]), _s(r["noop_added_ns"]), _s(r["ns"]), _s(r["added_ns"]),
                     _s(r["x_noop"], digits=2, unit="x")] for r in on]))
    new = [r for r in doc["rows"] if r["section"] == "new_flow"]
    rows = []
    for r in new:
        full = "full" in r["program"]  # there the second pass evicts too: no existing flows to compare with
        rows.append([r["program"], r["rules"], r["packet"], _s(r["ns_noop"]), "-" if full else _s(r["ns_existing"]),
                     _s(r["ns_new"]), "-" if full else _s(r["new_minus_existing_ns"]), _s(r["new_minus_noop_ns"])])
    t2 = _table(["program", "rules", "packet", "no-op ns/call", "existing flow ns/call", "new flow ns/call",
                 "new - existing ns", "new - no-op ns"], rows)
    batches = doc["params"].get("batches")
    per = (f"the fastest of {batches} batches of {doc['params']['repeat'] // batches:,} runs per round" if batches
           else f"{doc['params']['repeat']:,} runs per round")
    return (f"### Per-packet cost (BPF_PROG_TEST_RUN)\n\n{_machine(doc)}\n\nSteady state, mean ns per run "
            f"over {per}:\n\n{t1}\n\nNew flows, one packet per call "
            f"(median over {doc['params']['new_flow_packets']:,} packets per round, then median over rounds):"
            f"\n\n{t2}{_targets(doc)}\n")


def throughput(doc: dict) -> str:
    rows = []
    for r in doc["rows"]:
        obs = r.get("observer", {})
        note = ", ".join(f"{k} {v:,}" for k, v in obs.items()) if obs else ""
        rows.append([r["condition"], _s(r["tcp_bps"], 1e-9, 2), _s(r["tcp_bps_x_none"], digits=3, unit="x"),
                     _s(r.get("tcp_cpu_ns_per_kib_x_none"), digits=3, unit="x"),
                     _s(r["udp_sent_pps"], 1e-3, 0), _s(r["udp_sent_pps_x_none"], digits=3, unit="x"),
                     _s(r["udp_pps"], 1e-3, 0), _s(r["udp_pps_x_none"], digits=3, unit="x"),
                     _s(r.get("udp_cpu_ns_per_packet"), digits=0), _s(r.get("udp_cpu_ns_per_packet_x_none"), digits=3, unit="x"),
                     _s(r["observer_cpu_tcp"], digits=2), _s(r["observer_cpu_udp"], digits=2), note])
    t = _table(["condition", "TCP Gbit/s", "x none", "TCP sender CPU/KiB x none",
                "UDP 64 B kpkt/s through the route", "x none", "UDP kpkt/s received", "x none",
                "UDP sender CPU ns/packet", "x none", "observer CPU (TCP)",
                "observer CPU (UDP)", "observer's own counts (all rounds)"], rows)
    return f"### Throughput through a veth pair (iperf3)\n\n{_machine(doc)}\n\n{t}{_targets(doc)}\n"


def storm(doc: dict) -> str:
    lw = [r for r in doc["rows"] if r["section"] == "lwtui"]
    rows = [[str(r["rate"]), _s(r["sent_per_s"]), _s(r["new_flows_per_s"]), _s(r["delivered"]), _s(r["failed"]),
             _s(r["lost_fraction"], 100, 1, "%"), _s(r["table_flows"]), _s(r["rss_mib"], digits=0)] for r in lw]
    t1 = _table(["target rate (flows/s)", "sent/s", "new flows/s (kernel)", "events delivered", "events lost",
                 "lost", "flows in table", "peak RSS MiB"], rows)
    summ = next((r for r in doc["rows"] if r["section"] == "summary"), {})
    tr = [r for r in doc["rows"] if r["section"] == "transport"]
    rows = []
    for r in tr:
        top = r["capacity"][-1]
        rows.append([r["transport"], _s(r["minus_noop_ns"]), f"{r['max_lossless_rate']:,}",
                     f"{top['rate']:,.0f}", _s(top["generated_per_s"]), _s(top["delivered_per_s"]),
                     _s(top["failed_fraction"], 100, 1, "%")])
    t2 = _table(["transport", "ns per event in the program (minus no-op)", "highest lossless rate generated (events/s)",
                 "top rate tried", "generated/s", "delivered/s", "failed"], rows)
    return (f"### New-flow storm\n\n{_machine(doc)}\n\n{t1}\n\nHighest rate with zero lost events in every round: "
            f"{summ.get('lossless_flows_per_s_every_round', 0):,.0f} flows/s (best single step "
            f"{summ.get('lossless_flows_per_s_best_step', 0):,.0f}); peak RSS {summ.get('peak_rss_mib', 0)} MiB."
            f"\n\nPerf buffer vs ring buffer (bench/baselines/events.c):\n\n{t2}{_targets(doc)}\n")


def latency(doc: dict) -> str:
    st = {r["what"]: r for r in doc["rows"] if r["section"] == "startup"}
    rows = [[k.replace("_", " "), _s(v.get("s"), digits=3, unit=" s") if "s" in v else _s(v["x"], digits=1, unit="x")]
            for k, v in st.items()]
    t1 = _table(["start-up", "median (range)"], rows)
    rows = [[r["via"], _s(r["call_us"], digits=0), _s(r["seen_after_start_us"], digits=0),
             _s(r["seen_after_return_us"], digits=0) if r["via"] == "api" else "-",
             f"{r['dropping_at_first_read']} of {r['rounds']}" if r["via"] == "api" else "-",
             _s(r["packet_gap_us"], digits=1)]
            for r in doc["rows"] if r["section"] == "verdict"]
    t2 = _table(["block via", "call (api) / command (cli) us", "first drop seen after start us",
                 "first drop seen after return us", "dropping at first read after return", "flood packet gap us"], rows)
    return f"### Start-up and verdict latency\n\n{_machine(doc)}\n\n{t1}\n\n{t2}{_targets(doc)}\n"


def dashboard(doc: dict) -> str:
    rows = []
    for r in doc["rows"]:
        fed = {"churn": f"{r['flows_fed']:,} ({r['flows']:,} new per tick)",
               "long-lived": f"{r['flows']:,} for {r['ticks']} ticks"}.get(r["case"], f"{r['flows']:,}")
        rows.append([fed, f"{r['table_flows']:,}", f"{r['rows_shown']:,}", _s(r["snapshot_ms"], digits=1),
                     _s(r["apply_ms"], digits=1), _s(r["tick_ms"], digits=1), _s(r.get("kernel_read_ms"), digits=1),
                     f"{r['rss_mib']:.0f}", f"{r['rss_with_bcc_mib']:.0f}" if r.get("rss_with_bcc_mib") else "-"])
    t = _table(["flows fed", "flows in table", "rows shown", "build snapshot ms", "apply to table ms",
                "request to screen ms", "kernel read + decode ms", "RSS MiB", "RSS MiB with BCC loaded"], rows)
    return f"### Dashboard scaling\n\n{_machine(doc)}\n\n{t}{_targets(doc)}\n"


def ablation(doc: dict) -> str:
    rows = [[r["variant"], _s(r["ns"], digits=1), _s(r.get("x_noop"), digits=2, unit="x"),
             _s(r.get("saved_ns"), digits=1)] for r in doc["rows"]]
    t = _table(["variant (existing IPv4 TCP flow, allowed, out)", "ns/run", "x no-op", "ns saved vs as compiled (above each one's no-op)"], rows)
    return f"### Where the common case's time goes (ablation)\n\n{_machine(doc)}\n\n{t}\n"


def capture(doc: dict) -> str:
    rows = [[r["case"], _s(r["ns"], digits=1), _s(r.get("vs_dropped_off"), digits=2, unit="x"),
             _s(r.get("captures_sent_per_round"))] for r in doc["rows"]]
    t = _table(["case (TCP packet, out)", "ns/run", "x dropped, off", "captures sent per round"], rows)
    return f"### What packet capture costs (--pcap)\n\n{_machine(doc)}\n\n{t}\n\n{_targets(doc)}\n"


def ptydash(doc: dict) -> str:
    rows = [[f"{r['case']} ({r['tree']})", f"{r['cpu_core_share']:.3f}",
             f"{r['rss_mib']:.0f} (peak {r['peak_rss_mib']:.0f})",
             f"{r['rss_anon_mib']:.0f} / {r['rss_file_mib']:.0f}" if "rss_anon_mib" in r else "-",
             f"{r['key_answer_ms_median']:.0f} ({r['key_answer_ms_max']:.0f})", f"{r['first_snapshot_s']:.1f}"]
            for r in doc["rows"]]
    t = _table(["case", "CPU, share of one core", "RSS MiB", "anon / file MiB", "key answer ms, median (max)",
                "first data s"], rows)
    return (f"### Dashboard in a pseudo-terminal, {doc['params']['flows']:,} moving flows (ptydash)\n\n"
            f"{_machine(doc)}\n\n{t}\n\n{_targets(doc)}\n")


RENDER = {"microbench": microbench, "ablation": ablation, "throughput": throughput, "storm": storm, "latency": latency,
          "dashboard": dashboard, "capture": capture, "ptydash": ptydash}


def render(directory: Path = RESULTS) -> str:
    parts = []
    for name, fn in RENDER.items():
        path = directory / f"{name}.json"
        if path.exists():
            parts.append(fn(json.loads(path.read_text())))
        else:
            parts.append(f"### {name}\n\nNo result yet: run `python -m bench {name}`.\n")
    return "\n".join(parts)


def update(doc_path: Path = DOC) -> Path:
    """Replace the tables between the markers (appending the markers if absent)."""
    text = doc_path.read_text() if doc_path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n<!-- generated by `python -m bench --report` from bench/results/*.json -->\n\n{render()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc_path.write_text(text)
    return doc_path
