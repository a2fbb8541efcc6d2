"""`lwtui watch`: the headless view of a Session, as JSON lines or a rich table.

JSON lines are a contract (README.md, "JSON lines"): one object per line, "type"
first; flows carry hook, proto, src, dst, sport/dport, packets, bytes, drops,
would_drops, verdict, first_seen, last_seen (RFC 3339 UTC), the rates of what
passed (pps, bps) and of what was dropped (drop_pps) or, in dry-run, matched
and passed (would_drop_pps), and pid and comm where the process behind the
flow's local socket is known; stats carry lwtui's own cost (ns_per_packet by
hook, from the kernel's run-time statistics) and, with --pcap, the pcap file's
counts (pcap: files with packets and skipped, and lost). ICMP flows carry icmp_type and
icmp_code in place of ports: "type" is taken by the record type.
"""

from __future__ import annotations

import json
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from lwtui.core.flowcols import FlowRows, FlowView
from lwtui.core.model import FlowId, FlowRecord, Snapshot, Totals
from lwtui.core.names import addr_text, endpoint
from lwtui.core.records import event_json, flow_fields, flow_json, rfc3339, rule_json  # noqa: F401  (re-exported)
from lwtui.core.units import fmt_bits, fmt_bytes, fmt_cost, fmt_count, fmt_duration
from lwtui.session.protocol import RoutesGone, SessionLike

if TYPE_CHECKING:
    from rich.text import JustifyMethod


def moving(r: FlowRecord) -> bool:
    """Whether any of a flow's rates is above 0."""
    return bool(r.pps or r.bps or r.drops_ps or r.would_drops_ps)


def stats_json(t: Totals, when: float) -> dict:
    return {"type": "stats", "time": rfc3339(when), "packets": t.packets, "bytes": t.bytes,
            "drops": t.drops, "would_drops": t.would_drops, "parse_errors": t.parse_errors,
            "events_lost": events_lost(t), "new_flows": t.new_flows,
            "flows_evicted": t.flows_evicted, "flows_unseen": t.flows_unseen,
            "active_flows": t.active_flows, "flow_capacity": t.flow_capacity,
            "pps": round(t.pps, 3), "bps": round(t.bps, 3), "drop_pps": round(t.drops_ps, 3),
            "would_drop_pps": round(t.would_drops_ps, 3),
            "ns_per_packet": {h: None if ns is None else round(ns, 1) for h, ns in t.ns_per_packet().items()}}


def pcap_json(snap: Snapshot) -> dict:
    """The pcap files being written: packets in each, those a full file skipped, and the
    captures lost before any file saw them (rate cap, full buffer; of any flow)."""
    return {"files": [{"path": r.path, "packets": r.packets, "skipped": r.skipped} for r in snap.recordings],
            "lost": snap.capture_lost}


def events_lost(t: Totals) -> int:
    """Events that never reached lwtui. The programs count every failed perf output
    (events_failed, exact); the reader's lost callback reports the same losses later
    and in part, so the two are not added: the larger is the count."""
    return max(t.events_failed, t.events_lost)


class JsonReporter:
    """Writes each interval's changes: events, flows whose counters moved, totals.

    A flow that stops gets one more record, once its rates have fallen to 0."""

    def __init__(self, out: IO[str]):
        self.out = out
        self._seen: dict[FlowId, tuple] = {}   # what was last written of each flow

    def report(self, snap: Snapshot) -> None:
        lines = [e for e in map(event_json, snap.events) if e is not None]
        owners = snap.owners or {}
        for r in snap.flows:
            owner = owners.get(r.id)
            sig = (r.packets, r.drops, r.would_drops, r.verdict, r.rule, moving(r), owner)
            if self._seen.get(r.id) != sig:
                self._seen[r.id] = sig
                lines.append(flow_json(r, owner))
        stats = stats_json(snap.totals, snap.time)
        if snap.recordings:
            stats["pcap"] = pcap_json(snap)
        lines.append(stats)
        self.out.write("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in lines))
        self.out.flush()
        live = {r.id for r in snap.flows}
        for k in [k for k in self._seen if k not in live]:
            del self._seen[k]


def flow_table(snap: Snapshot, limit: int = 40):
    """A rich Table of the busiest flows."""
    from rich.table import Table
    t = snap.totals
    full = "TABLE FULL  " if t.flow_capacity and t.active_flows >= t.flow_capacity else ""
    keep = "KEEP-BLOCKS  " if snap.keep_blocks else ""
    keep += f"FALLBACK {','.join(snap.fallbacks)}  " if snap.fallbacks else ""
    title = (f"lwtui {snap.session}  {'DRY-RUN' if snap.dry_run else 'MONITOR'}  {keep}"
             f"{fmt_count(t.pps)} pkt/s  {fmt_bits(t.bps)} passed  flows {t.active_flows}  "
             f"drops {t.drops}  " + (f"would-drops {t.would_drops}  " if t.would_drops else "") +
             f"parse errors {t.parse_errors}  "
             f"lost {events_lost(t)}  " +
             (f"evicted {t.flows_evicted} (unseen {t.flows_unseen})  " if t.flows_evicted else "") +
             f"{full}up {fmt_duration(snap.time - snap.started)}")
    if t.bpf_runtime:
        title += f"  ns/pkt {fmt_cost(t.ns_per_packet())}"
    for rec in snap.recordings:
        title += f"  pcap {rec.path}: {rec.packets} pkts"
    if snap.recordings:
        title += f" ({snap.capture_lost + sum(rec.skipped for rec in snap.recordings)} lost)"
    table = Table(title=title, title_justify="left", expand=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("", "left"), ("hook", "left"), ("proto", "left"), ("source", "left"),
        ("destination", "left"), ("pkts", "right"), ("bytes", "right"),
        ("bits/s", "right"), ("pkts/s", "right"), ("drops", "right"), ("would-drops", "right"),
        ("verdict", "left"))
    for col, just in columns:
        table.add_column(col, justify=just, no_wrap=True)
    for r in busiest(snap.flows, limit):
        f = r.id
        src, dst = _endpoint(f, f.src, f.sport, True), _endpoint(f, f.dst, f.dport, False)
        mark = {"drop": "[red]✖[/]", "would-drop": "[yellow]◌[/]"}.get(r.verdict, " ")
        table.add_row(mark, f.hook, f.proto_name, src, dst, fmt_count(r.packets), fmt_bytes(r.bytes),
                      fmt_bits(r.bps), fmt_count(r.pps), _count_rate(r.drops, r.drops_ps),
                      _count_rate(r.would_drops, r.would_drops_ps), r.verdict + (f" ({r.rule})" if r.rule else ""))
    if not snap.flows:
        table.caption = "no traffic on the attached routes yet: send some (e.g. curl or ping through the route)"
    return table


def busiest(flows: Sequence[FlowRecord], limit: int) -> Sequence[FlowRecord]:
    """The `limit` flows of most bits/s, then bytes (ties in the session's order); of a
    flow table's view, sorted on its columns, records built for those rows only."""
    if isinstance(flows, FlowView):
        c = flows.cols
        return FlowRows(flows, np.lexsort((-c["bytes"], -c["bps"]))[:limit])
    return sorted(flows, key=lambda r: (r.bps, r.bytes), reverse=True)[:limit]


def _count_rate(count: int, rate: float) -> str:
    return f"{count} ({fmt_count(rate)}/s)" if rate else str(count)


def _endpoint(f: FlowId, addr, port: int, is_src: bool) -> str:
    if f.fragment:
        return addr_text(addr)
    if f.is_icmp:
        return f"{addr_text(addr)} {'type' if is_src else 'code'} {port}"
    return endpoint(addr, port)


class ReaderFailed(RuntimeError):
    """The event reader thread died; the watch stops (and its caller restores the routes)."""


def run_watch(session: SessionLike, *, interval: float, duration: float | None, as_json: bool,
              out: IO[str], stop: threading.Event | None = None,
              on_ready: Callable[[], None] | None = None) -> None:
    """Report every `interval` seconds until `duration` or `stop`; the caller owns the session.

    Raises ReaderFailed when the event reader dies, and RoutesGone
    (after reporting why) when every watched route went away.
    """
    stop = stop or threading.Event()
    failures: list[BaseException] = []
    reader = threading.Thread(target=_read_events, args=(session, stop, failures), name="lwtui-events",
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + duration if duration else None
    reporter = JsonReporter(out) if as_json else None
    live = None
    if not as_json:
        from rich.console import Console
        from rich.live import Live
        live = Live(console=Console(file=out), auto_refresh=False, transient=False)
        live.start()
    if on_ready:
        on_ready()
    try:
        while not stop.is_set():
            end = time.monotonic() + interval
            if deadline is not None:
                end = min(end, deadline)
            _sleep_until(end, stop)
            if failures:
                break
            snap = session.snapshot()
            if reporter:
                reporter.report(snap)
            elif live is not None:
                live.update(flow_table(snap), refresh=True)
            if not snap.routes:
                _all_gone(session)
            if deadline is not None and time.monotonic() >= deadline:
                break
        if failures:
            raise ReaderFailed(f"the event reader failed ({type(failures[0]).__name__}: {failures[0]})") \
                from failures[0]
    finally:
        stop.set()
        if live is not None:
            try:
                live.stop()
            except OSError:     # the terminal went away (SIGHUP follows): nothing to show it on
                pass
        reader.join(timeout=2)


def _sleep_until(end: float, stop: threading.Event) -> None:
    """Sleep in short slices until `end` (monotonic) or `stop`.

    Not stop.wait(): a signal that raises while the main thread waits on an
    Event can leave the Event's internal lock held, and the stop.set() in the
    caller's finally then blocks for ever (seen about once in 100 Ctrl-Cs).
    time.sleep is interrupted cleanly.
    """
    while not stop.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def _all_gone(session: SessionLike) -> None:
    why = "; ".join(f"{t.prefix} ({t.hook}){' in ' + t.netns if t.netns else ''}: {reason}"
                    for t, reason in session.lost) or "no route left"
    raise RoutesGone(f"every watched route is gone ({why}): nothing left to watch")


def _read_events(session: SessionLike, stop: threading.Event, failures: list) -> None:
    """The reader thread: poll until stopped; a failure is handed to the main loop, which stops."""
    try:
        while not stop.is_set() and not session.closed:
            session.poll_events(100)
    except BaseException as e:  # noqa: BLE001 - reported by run_watch, never lost in a thread
        failures.append(e)
        stop.set()
