"""Session: the one API the dashboard and the headless commands use.

Owns the probe (programs and maps), the route attachments, the flow table and
the rule store. Its lifecycle is a fixed sequence (start: compile, pin, attach;
then snapshot/poll; close: detach, unpin), and close() is idempotent and
reached from every exit path: use it as a context manager.

Threads: poll_events() blocks (the reader thread's loop); snapshot() reads
maps (a worker thread, once per tick); block()/allow() are quick map writes,
fine from any thread. A lock keeps the flow table consistent between them.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Callable, Iterable

from . import kstructs, pins, routes
from .flows import FlowTable, flow_id_from_key, Counters
from .model import AttachedRoute, EventEntry, FlowId, Snapshot, Totals
from .rules import Rule, parse_rule, rule_for, rules_blocking
from .verdicts import RuleStore

EVENT_LOG_MAX = 1000
# Flows and events are stamped with the coarse clock (one tick of resolution,
# ~20 ns cheaper per packet than a precise read here); rule TTLs stay exact.
EXTRA_CFLAGS = ("-DLWTUI_COARSE_CLOCK",)


class SessionError(RuntimeError):
    """The session cannot start or act; the message names the fix."""


def _require_root() -> None:
    if os.geteuid() != 0:
        raise SessionError("lwtui needs root (CAP_BPF and CAP_NET_ADMIN): run it with sudo")


class Session:
    """Attach to routes, count flows, apply verdicts; restore everything on close()."""

    def __init__(self, targets: Iterable[routes.Target], *, name: str | None = None,
                 dry_run: bool = False, max_flows: int = 65536, idle_timeout: float = 60.0,
                 drop_event_interval: float = 1.0, on_status: Callable[[str], None] | None = None):
        self.targets = list(targets)
        if not self.targets:
            raise SessionError("no route given: name at least one ROUTE (see `lwtui --help`)")
        self.name = pins.valid_name(name or pins.new_session_name())
        self.dry_run = dry_run
        self.max_flows = max_flows
        self.drop_event_interval = drop_event_interval
        self.flows = FlowTable(idle_timeout=idle_timeout)
        self.attachments: list[routes.Attachment] = []
        self.probe = None
        self.store: RuleStore | None = None
        self.state: pins.SessionState | None = None
        self.started = time.time()
        self._mono_to_wall = time.time() - time.monotonic()
        self._lock = threading.Lock()
        self._events: collections.deque[EventEntry] = collections.deque(maxlen=EVENT_LOG_MAX)
        self._lost = 0
        self._closed = False
        self._on_status = on_status or (lambda msg: None)
        self._last_totals: tuple[float, dict] | None = None
        self._totals = Totals()

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> "Session":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Compile, pin, attach every target; on any failure undo what was done and raise."""
        _require_root()
        self._refuse_busy_routes()
        from .probe import Probe  # BCC is heavy: import only when a session starts
        hooks = sorted({t.hook for t in self.targets}, key=lambda h: kstructs.HOOK_BY_NAME[h])
        try:
            self._on_status("compiling BPF programs")
            self.probe = Probe(hooks=hooks, max_flows=self.max_flows, extra_cflags=EXTRA_CFLAGS)
            self.probe.set_config(dry_run=self.dry_run, rules_gen=1,
                                  drop_event_interval_ns=int(self.drop_event_interval * 1e9))
            self.store = RuleStore({n: self.probe.map_fd(n) for n in pins.PINNED_MAPS})
            self.state = pins.SessionState(name=self.name, pid=os.getpid(),
                                           start_time=pins.proc_start_time(os.getpid()),
                                           started=self.started, dry_run=self.dry_run)
            self.state.save()
            pins.pin_maps(self.name, self.store.fds)
            self.probe.open_events(self._on_event, self._on_lost)
            for t in self.targets:
                self._on_status(f"attaching {t.hook} to {t.prefix}" + (f" in {t.netns}" if t.netns else ""))
                att = routes.attach(t, self.probe.prog_fd(t.hook), self.probe.prog_name(t.hook),
                                    on_saved=self._save_attachment)
                self.attachments.append(att)
        except BaseException:
            self.close()
            raise
        self._log("info", f"session {self.name} attached to " +
                  ", ".join(f"{t.prefix} ({t.hook})" for t in self.targets))

    def _refuse_busy_routes(self) -> None:
        mine = {(t.netns, t.prefix, t.hook) for t in self.targets}
        for st in pins.list_states():
            for a in st.attachments:
                t = a.get("target", {})
                if (t.get("netns"), t.get("prefix"), t.get("hook")) in mine:
                    if st.alive:
                        raise SessionError(f"{t.get('prefix')} ({t.get('hook')}) is already watched by "
                                           f"session {st.name} (pid {st.pid}): stop it first")
                    raise SessionError(f"{t.get('prefix')} ({t.get('hook')}) is held by stale session "
                                       f"{st.name} (pid {st.pid} is gone): run `lwtui detach --all` first")

    def _save_attachment(self, att: routes.Attachment) -> None:
        """Called by routes.attach before it modifies the route: persist the original."""
        assert self.state is not None
        self.state.attachments.append(att.to_dict())
        self.state.save()

    def close(self) -> list[str]:
        """Detach every route and remove pins and state; idempotent, never raises for gone routes."""
        if self._closed:
            return []
        self._closed = True
        statuses = []
        errors = []
        for att in reversed(self.attachments):
            try:
                statuses.append(f"{att.target.prefix} ({att.target.hook}): {routes.detach(att)}")
            except Exception as e:  # keep going: every other route must still be restored
                errors.append(f"{att.target.prefix} ({att.target.hook}): {e}")
        self.attachments = []
        if self.state is not None:
            if errors:
                self.state.save()  # keep the state file so `lwtui detach --all` can retry
            else:
                self.state.remove()
        pins.unpin(self.name)
        if self.probe is not None:
            self.probe.close()
        if errors:
            raise SessionError("could not restore: " + "; ".join(errors) + " — run `lwtui detach --all`")
        return statuses

    @property
    def closed(self) -> bool:
        return self._closed

    # -- events (reader thread) -----------------------------------------
    def poll_events(self, timeout_ms: int = 100) -> None:
        """Block up to timeout_ms for perf events; callbacks fill the event log."""
        if not self._closed and self.probe is not None:
            self.probe.poll_events(timeout_ms)

    def _on_event(self, ev: kstructs.LwtuiEvent) -> None:
        fid = flow_id_from_key(ev.key)
        when = ev.ts_ns / 1e9 + self._mono_to_wall
        if ev.type == kstructs.EV_NEW:
            with self._lock:
                self.flows.note_new(fid, when)
            self._log("new", _flow_text(fid), fid, when)
        elif ev.type == kstructs.EV_DROP:
            what = "would drop" if self.dry_run else "dropped"
            self._log("drop", f"{what} {_flow_text(fid)} ({ev.drops} so far, "
                      f"{kstructs.RULE_KIND_NAMES.get(ev.rule_kind, '')} rule)", fid, when)

    def _on_lost(self, count: int) -> None:
        self._lost += count
        self._log("lost", f"{count} events lost (reader too slow)")

    def _log(self, kind: str, text: str, flow: FlowId | None = None, when: float | None = None) -> None:
        self._events.append(EventEntry(time=when or time.time(), kind=kind, text=text, flow=flow))

    # -- snapshots (worker thread) ---------------------------------------
    def snapshot(self) -> Snapshot:
        """Read counters from the kernel, merge them, and return a copy for the views."""
        if self.probe is None or self._closed:
            raise SessionError("session is not running")
        now = time.time()
        expired = self.store.expire()
        for r in expired:
            self._log("allow", f"rule expired: {r.text}")
        raw = self.probe.read_flows()
        stats = self.probe.read_stats()
        rule_list = self.store.entries()
        active_rules = [parse_rule(e.text) for e in rule_list]
        gen = self.store.config().rules_gen
        drop_word = "would-drop" if self.dry_run else "drop"
        rows = []
        for key, st in raw:
            fid = flow_id_from_key(key)
            verdict, rule_text = "allow", ""
            # The kernel's cached verdict is current when its generation matches;
            # otherwise the rules changed since the flow's last packet: ask them.
            if st.verdict == kstructs.DROP or st.rules_gen != gen:
                matched = rules_blocking(fid, active_rules) if active_rules else []
                if matched:
                    verdict, rule_text = drop_word, matched[0].text
            rows.append((fid, Counters(
                packets=st.packets, bytes=st.bytes, drops=st.drops,
                first_seen=st.first_seen_ns / 1e9 + self._mono_to_wall,
                last_seen=st.last_seen_ns / 1e9 + self._mono_to_wall,
                tcp_flags=st.tcp_flags, verdict=verdict, rule=rule_text)))
        with self._lock:
            self.flows.update(now, rows)
            records = self.flows.records()
        events = []
        while self._events:
            events.append(self._events.popleft())
        self._totals = self._make_totals(now, stats, len(records))
        return Snapshot(time=now, flows=records, totals=self._totals, rules=rule_list, events=events,
                        routes=[AttachedRoute(a.target.prefix, a.target.hook, a.target.netns, a.target.dev)
                                for a in self.attachments],
                        dry_run=self.dry_run, started=self.started, session=self.name)

    def _make_totals(self, now: float, stats: dict, active: int) -> Totals:
        pps = bps = dps = 0.0
        if self._last_totals is not None:
            t0, s0 = self._last_totals
            dt = now - t0
            if dt > 0:
                pps = max(0, stats["packets"] - s0["packets"]) / dt
                bps = max(0, stats["bytes"] - s0["bytes"]) * 8 / dt
                dps = max(0, stats["drops"] + stats["would_drops"] - s0["drops"] - s0["would_drops"]) / dt
        self._last_totals = (now, stats)
        return Totals(packets=stats["packets"], bytes=stats["bytes"], drops=stats["drops"],
                      would_drops=stats["would_drops"], parse_errors=stats["parse_errors"],
                      events_failed=stats["events_failed"], events_lost=self._lost,
                      new_flows=stats["new_flows"], flow_update_failed=stats["flow_update_failed"],
                      pps=pps, bps=bps, drops_ps=dps, active_flows=active,
                      flow_capacity=self.probe.map_max_entries("flows"))

    # -- verdicts (any thread) -------------------------------------------
    def block(self, rule: Rule | str, ttl: float | None = None) -> Rule:
        """Drop what `rule` matches from the next packet on."""
        r = self._store().add(rule, ttl=ttl)
        self._log("block", f"block {r.text}" + (f" for {ttl:g}s" if ttl else ""))
        return r

    def allow(self, rule: Rule | str) -> bool:
        """Lift a rule; False when it was not there."""
        r = parse_rule(rule) if isinstance(rule, str) else rule
        gone = self._store().remove(r)
        if gone:
            self._log("allow", f"allow {r.text}")
        return gone

    def block_flow(self, flow: FlowId, kind: str = "flow", ttl: float | None = None) -> Rule:
        """The dashboard's d/h/p: block this flow, its remote host or its service port."""
        return self.block(rule_for(flow, kind), ttl=ttl)

    def allow_flow(self, flow: FlowId) -> list[Rule]:
        """Lift every rule that blocks this flow (the dashboard's `a`)."""
        active = [parse_rule(e.text) for e in self._store().entries()]
        lifted = [r for r in rules_blocking(flow, active) if self.allow(r)]
        return lifted

    def rules(self) -> list:
        return self._store().entries()

    def set_dry_run(self, on: bool) -> None:
        self._store().set_dry_run(on)
        self.dry_run = on
        if self.state is not None:
            self.state.dry_run = on
            self.state.save()
        self._log("info", "dry-run on: rules count would-drops, nothing is dropped" if on
                  else "dry-run off: rules drop packets")

    def _store(self) -> RuleStore:
        if self.store is None or self._closed:
            raise SessionError("session is not running")
        return self.store


def _flow_text(f: FlowId) -> str:
    def ep(addr, port):
        a = f"[{addr}]" if addr.version == 6 else str(addr)
        return a if f.is_icmp or f.fragment else f"{a}:{port}"
    extra = f" type {f.sport} code {f.dport}" if f.is_icmp else ""
    frag = " (fragment)" if f.fragment else ""
    return f"{f.hook} {f.proto_name} {ep(f.src, f.sport)} -> {ep(f.dst, f.dport)}{extra}{frag}"
