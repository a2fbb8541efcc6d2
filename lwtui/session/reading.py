"""What a Session reads from the kernel: events as they come, and the maps once per tick.

A mixin, so lwtui.session.live stays about the session's lifecycle. The
reader thread's poll_events() turns new-flow events into flow table entries
and event log lines, and drop events into log lines naming the rule; past
EVENTS_LISTED events in a second (a new-flow storm) the rest of that second's
are counted and said in one line per kind at the next read of the map,
since events are a hint: that read finds every flow, and the counts come
from the kernel. Once per
tick (the snapshot's worker thread, under the Session's _read_lock) the flow
map is read in one batch into numpy columns and merged into the FlowStore;
a dropped flow's rule is named from the kind (and compound entry) the kernel
cached with its verdict; the totals add the kernel's per-hook statistics,
lwtui's own loss counts and the programs' run time.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Optional

import numpy as np

from lwtui.core import flowcols
from lwtui.core.eventlog import flow_text
from lwtui.core.flowcols import FlowView
from lwtui.core.flows import FlowStore
from lwtui.core.rates import TotalRates
from lwtui.core.model import FlowId, Totals
from lwtui.core.ruleindex import RuleIndex
from lwtui.core.rules import Rule, rule_of_kind
from lwtui.core.units import noun, plural
from lwtui.kernel import kstructs
from lwtui.kernel.codec import FlowIdCache, flow_columns, flow_id_from_key
from lwtui.kernel.verdicts import RuleStore, unreadable_message
from lwtui.session import faults

if TYPE_CHECKING:
    from lwtui.kernel.probe import Probe

EVENTS_LISTED = 2000    # events a second handled one by one (a flow table row, a log line); the rest counted


def kernel_counters(st: np.ndarray, mono_to_wall: float, dry_run: bool) -> np.ndarray:
    """Summed flow values (kstructs.FLOW_STATS_DTYPE) as flowcols.COUNTER_DTYPE rows: wall-clock
    times, the kernel's cached verdict (would-drop in dry-run); rules left to name (0)."""
    out = np.empty(len(st), dtype=flowcols.COUNTER_DTYPE)
    for name in ("packets", "bytes", "drops"):
        out[name] = st[name]
    out["first_seen"] = st["first"] / 1e9 + mono_to_wall
    out["last_seen"] = st["last"] / 1e9 + mono_to_wall
    out["tcp_flags"] = st["flags"]
    verdict = kstructs.cached_field(st["cached"], kstructs.CACHED_VERDICT)
    stopping = (verdict == kstructs.DROP) | (verdict == kstructs.WOULD_DROP)
    would = dry_run | (verdict == kstructs.WOULD_DROP)
    out["verdict"] = np.where(stopping, np.where(would, flowcols.WOULD_DROP, flowcols.DROP), flowcols.ALLOW)
    out["rule"] = 0
    return out


class KernelReading:
    """Needs the Session's probe, store, flows, dry_run, _closed, _lock, _ids, _rule_texts,
    _rule_of, _index, _mono_to_wall, _flow_loss, _lost, _rates, _listed, _unlisted,
    _unreadable_said, _log() and run_stats()."""

    # What the reading uses of the Session (it sets them in __init__ and start()):
    probe: Optional[Probe]
    store: Optional[RuleStore]
    flows: FlowStore
    dry_run: bool
    _closed: bool
    _lock: threading.Lock              # the flow table between the reader and the tick
    _ids: FlowIdCache
    _rule_texts: frozenset[str]
    _rule_of: dict[tuple, int]
    _index: RuleIndex
    _mono_to_wall: float
    _flow_loss: tuple[int, int]
    _lost: int
    _rates: TotalRates
    _listed: tuple[float, int]        # (end of the current second of events, events in it)
    _unlisted: dict[int, int]         # event type -> events past EVENTS_LISTED a second since the last read
    _unreadable_said: int             # RuleStore.unreadable entries the event log last said

    if TYPE_CHECKING:     # the Session's
        def run_stats(self) -> dict[str, tuple[int, int]]: ...

        def _log(self, kind: str, text: str, flow: FlowId | None = None, when: float | None = None) -> None: ...

    @property
    def reader_lost(self) -> int:
        """Events the reader was told it lost (perf buffer's lost callback)."""
        return self._lost

    # -- events (reader thread) -----------------------------------------
    def poll_events(self, timeout_ms: int = 100) -> None:
        """Block up to timeout_ms for events; callbacks fill the event log."""
        faults.check("reader")
        if not self._closed and self.probe is not None:
            self.probe.poll_events(timeout_ms)

    def _on_event(self, ev: kstructs.LwtuiEvent) -> None:
        now = time.monotonic()
        end, n = self._listed
        if now >= end:
            end, n = now + 1.0, 0
        self._listed = (end, n + 1)
        if n >= EVENTS_LISTED:      # a storm: counted (said at the next read of the map), not handled one by one
            with self._lock:
                self._unlisted[ev.type] = self._unlisted.get(ev.type, 0) + 1
            return
        fid = flow_id_from_key(ev.key, self._ids)
        when = ev.ts_ns / 1e9 + self._mono_to_wall
        if ev.type == kstructs.EV_NEW:
            with self._lock:
                self.flows.note_new(fid, when)
            self._log("new", flow_text(fid), fid, when)
        elif ev.type == kstructs.EV_DROP:
            # The kernel's count is of every match, dropped or (dry-run) passed: say so.
            what = "would drop" if self.dry_run or ev.verdict == kstructs.WOULD_DROP else "dropped"
            self._log("drop", f"{what} {flow_text(fid)} ({self._rule_words(fid, ev.rule_kind)})", fid, when)

    def _say_unlisted(self) -> None:
        """One log line per kind for the events past EVENTS_LISTED a second since the last
        read of the map (under _lock)."""
        unlisted, self._unlisted = self._unlisted, {}
        if n := unlisted.get(kstructs.EV_NEW, 0):
            self._log("new", f"and {n:,} more new {noun(n, 'flow')} (past {EVENTS_LISTED:,} events a second "
                      "they are counted, not listed): the table has every one the kernel's map holds")
        if n := unlisted.get(kstructs.EV_DROP, 0):
            self._log("drop", f"and {n:,} more drop {noun(n, 'event')} (past {EVENTS_LISTED:,} events a second "
                      "they are counted, not listed): the table and the header count every drop")

    def _rule_words(self, fid: FlowId, kind: int) -> str:
        """The rule behind a drop event: "host rule" for a single-key kind; a compound rule by
        its text (the kernel's `compound` entries are few, their rules as of the last tick)."""
        if kind not in (kstructs.RULE_COMPOUND, kstructs.RULE_COMPOUND_DRY):
            return f"{kstructs.RULE_KIND_NAMES.get(kind, '')} rule".lstrip()
        slots = self.store.compound_slots if self.store is not None else {}
        texts = sorted({r.text for r in list(slots.values()) if r.matches(fid)})
        return f"rule: {texts[0]}" if texts else "compound rule"

    def _on_lost(self, count: int) -> None:
        self._lost += count
        self._log("lost", f"{plural(count, 'event')} lost (reader too slow)")

    # -- snapshots (worker thread, under _read_lock) -----------------------
    def _read_flows(self, now: float, active_rules: list[Rule]) -> FlowView:
        """Read the flow map into the flow table (what it gained since the last read is
        booked under the current mode); the table's view. Holds _read_lock."""
        assert self.probe is not None       # snapshot() checked
        self._say_unreadable()
        # The kernel's count of entries made, read before the map: the read then holds every
        # entry counted here that the LRU has not evicted, so the losses below are never
        # over-stated (flows made during the read are counted at the next one).
        made = self.probe.read_stats()["new_flows"]
        keys, stats = self.probe.read_flow_arrays()
        counters = self._counters(keys, stats, active_rules)
        with self._lock:
            if self._unlisted:
                self._say_unlisted()
            self.flows.update_columns(now, flow_columns(keys), counters, dry_run=self.dry_run)
            self._flow_loss = (max(0, made - len(keys)), max(0, made - self.flows.kernel_flows_seen))
            return self.flows.view()

    def _say_unreadable(self) -> None:
        """An error line in the event log when the compound entries no rule decodes from change
        (RuleStore.unreadable, as of this tick's sweep): drops they cause name no rule listed."""
        entries, hits = self.store.unreadable if self.store is not None else (0, 0)
        if entries != self._unreadable_said:
            self._unreadable_said = entries
            if entries:
                self._log("error", unreadable_message(entries, hits))

    def _counters(self, keys: np.ndarray, st: np.ndarray, active_rules: list[Rule]) -> np.ndarray:
        """The flows as the kernel has them, as flowcols.COUNTER_DTYPE rows. A flow's verdict is
        the kernel's, given with its last packet; the rule is the one of the kind the kernel
        names (rule_kind) among the rules in the maps, empty when that rule was lifted since."""
        out = kernel_counters(st, self._mono_to_wall, self.dry_run)
        rows = np.flatnonzero(out["verdict"] != flowcols.ALLOW)
        cached = st["cached"]
        if len(rows):
            texts = frozenset(r.text for r in active_rules)
            if texts != self._rule_texts:        # the rules changed: every flow's rule is named again
                self._rule_texts, self._rule_of = texts, {}
            kinds = kstructs.cached_field(cached[rows], kstructs.CACHED_KIND).tolist()
            slots = kstructs.cached_field(cached[rows], kstructs.CACHED_RULE).tolist()
            raw = keys[rows]
            for j, i in enumerate(rows.tolist()):
                memo = (raw[j].tobytes(), kinds[j], slots[j])
                code = self._rule_of.get(memo)
                if code is None:
                    fid = flow_id_from_key(kstructs.FlowKey.from_buffer_copy(memo[0]), self._ids)
                    code = self._rule_of[memo] = self.flows.rule_code(self._rule_text(fid, kinds[j], slots[j]))
                out["rule"][i] = code
        return out

    def _rule_text(self, fid: FlowId, kind: int, slot: int) -> str:
        """The rule behind a dropped flow: the kernel names the kind (and a compound rule's
        entry); the index finds that kind's rule without trying each."""
        rule = self.store.compound_slots.get(slot) if (
            kind in (kstructs.RULE_COMPOUND, kstructs.RULE_COMPOUND_DRY) and self.store is not None) else None
        if rule is None or not self._index.holds(rule):
            rule = rule_of_kind(fid, kstructs.RULE_KIND_NAMES.get(kind, ""), self._index.matching(fid))
        return rule.text if rule is not None else ""

    def _make_totals(self, now: float, stats: dict, active: int, by_hook: dict) -> Totals:
        assert self.probe is not None       # snapshot() checked
        return Totals(packets=stats["packets"], bytes=stats["bytes"], drops=stats["drops"],
                      would_drops=stats["would_drops"], parse_errors=stats["parse_errors"],
                      events_failed=stats["events_failed"], events_lost=self._lost,
                      new_flows=stats["new_flows"], flow_update_failed=stats["flow_update_failed"],
                      active_flows=active, flow_capacity=self.probe.map_max_entries("flows"),
                      flows_evicted=self._flow_loss[0], flows_unseen=self._flow_loss[1],
                      bpf_runtime=tuple((h, ns, n) for h, (ns, n) in self.run_stats().items()),
                      by_hook=by_hook,
                      **self._rates.update(now, stats, self.flows.dropped_bytes, self.flows.first_packet,
                                           self.flows.first_drop, self.flows.first_would_drop))
