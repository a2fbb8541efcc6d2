"""Session: the one API the dashboard and the headless commands use.

Owns the probe (programs and maps), the route attachments, the flow table and
the rule store. Its lifecycle is a fixed sequence (start: check, compile, pin,
attach; then snapshot/poll; close: detach, unpin), and close() is idempotent
and reached from every exit path: use it as a context manager.

Restore guarantee (DESIGN.md): start() checks every target before it changes
anything, records each attachment (state file and self.attachments) before
its route changes, and undoes what it did when anything fails; close() runs
with SIGINT/SIGTERM/SIGHUP held (lwtui.session.signals.critical) so a second Ctrl-C
cannot stop a restore half-way. With keep_blocks and active rules, close()
leaves the programs and pins in place and marks the state file `kept`.

Threads: poll_events() blocks (the reader thread's loop); snapshot() reads
maps (a worker thread, once per tick); the session's own route checker
thread checks every few seconds that the routes still carry the programs,
never waiting behind a tick; block()/allow() are quick map writes, fine
from any thread. Locks keep the flow table and the attachments consistent.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Iterable

from lwtui.session import faults, guard, signals
from lwtui.core import paths, procs
from lwtui.kernel import kstructs, pins
from lwtui.session import state
from lwtui.session.routecheck import ROUTE_CHECK_INTERVAL, RouteChecks
from lwtui.net import routes
from lwtui.core.flows import Counters, FlowTable
from lwtui.kernel.codec import FlowIdCache, flow_id_from_key
from lwtui.core.model import AttachedRoute, FlowId, Snapshot, Totals
from lwtui.core.grammar import parse_rule
from lwtui.core.ruleindex import RuleIndex
from lwtui.core.rules import Rule, rule_for, rules_blocking
from lwtui.core.eventlog import EVENT_LOG_MAX, EventLog, flow_text  # noqa: F401 (EVENT_LOG_MAX: the limit, for users)
from lwtui.kernel.verdicts import RuleStore
# Flows and events are stamped with the coarse clock (one tick of resolution,
# ~20 ns cheaper per packet than a precise read here); rule TTLs stay exact.
EXTRA_CFLAGS = ("-DLWTUI_COARSE_CLOCK",)


class SessionError(RuntimeError):
    """The session cannot start or act; the message names the fix."""


class RoutesGone(RuntimeError):
    """Every route the session watched went away (deleted, device or namespace removed)."""


def _require_root() -> None:
    try:
        guard.require_privileges()
    except guard.PrivilegeError as e:
        raise SessionError(str(e)) from None


def _route_kind(netns: str | None, prefix: str, hook: str) -> tuple:
    """Which route a hook uses: `in` the local route, out/xmit the main-table one (one encap each)."""
    return netns, prefix, "local" if hook == "in" else "main"


class Session(RouteChecks):
    """Attach to routes, count flows, apply verdicts; restore everything on close()."""

    def __init__(self, targets: Iterable[routes.Target], *, name: str | None = None,
                 dry_run: bool = False, max_flows: int = 65536, idle_timeout: float = 60.0,
                 drop_event_interval: float = 1.0, keep_blocks: bool = False, events: str = "perf",
                 on_status: Callable[[str], None] | None = None):
        self.targets = list(targets)
        if not self.targets:
            raise SessionError("no route given: name at least one ROUTE (see `lwtui --help`)")
        self.name = paths.valid_name(name or state.new_session_name())
        self.dry_run = dry_run
        self.keep_blocks = keep_blocks
        self.max_flows = max_flows
        self.transport = events  # how events travel: "perf" or "ringbuf" (lwtui.kernel.probe)
        self.drop_event_interval = drop_event_interval
        self.flows = FlowTable(max_flows=max_flows, idle_timeout=idle_timeout)
        self._ids = FlowIdCache()  # one FlowId object per kernel key, tick after tick
        self.attachments: list[routes.Attachment] = []
        self.lost: list[tuple[routes.Target, str]] = []   # routes that went away while attached, and why
        self.kept = False
        self.probe = None
        self.store: RuleStore | None = None
        self.state: state.SessionState | None = None
        self.started = time.time()
        self._mono_to_wall = time.time() - time.monotonic()
        self._lock = threading.Lock()
        self._routes_lock = threading.Lock()
        self._events = EventLog()
        self._lost = 0
        self._closed = False
        self._on_status = on_status or (lambda msg: None)
        self._last_totals: tuple[float, dict] | None = None
        self._next_route_check = 0.0
        self._checker: threading.Thread | None = None       # checks the routes; never waits behind a tick
        self._checks_stop = threading.Event()
        self._index = RuleIndex()       # which rule blocks a flow, for flows whose kernel verdict is stale
        self._twins: set[int] = set()     # attachments whose route has a kernel twin (ids), logged once
        self._totals = Totals()

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> "Session":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Check, compile, pin, attach every target; on any failure undo what was done and raise."""
        _require_root()
        self._refuse_busy_routes()
        for t in self.targets:          # bad routes are refused before anything is compiled or changed
            routes.preflight(t)
        pins.ensure_bpffs()
        from lwtui.kernel.probe import Probe  # BCC is heavy: import only when a session starts
        hooks = sorted({t.hook for t in self.targets}, key=lambda h: kstructs.HOOK_BY_NAME[h])
        try:
            self._on_status("compiling BPF programs")
            self.probe = Probe(hooks=hooks, max_flows=self.max_flows, extra_cflags=EXTRA_CFLAGS,
                               events=self.transport)
            self.probe.set_config(dry_run=self.dry_run, rules_gen=1,
                                  drop_event_interval_ns=int(self.drop_event_interval * 1e9))
            self.store = RuleStore({n: self.probe.map_fd(n) for n in pins.PINNED_MAPS})
            self.state = state.SessionState(name=self.name, pid=os.getpid(),
                                           start_time=procs.proc_start_time(os.getpid()),
                                           started=self.started, dry_run=self.dry_run,
                                           keep_blocks=self.keep_blocks)
            self.state.save()
            pins.pin_maps(self.name, self.store.fds)
            self.probe.open_events(self._on_event, self._on_lost)
            for t in self.targets:
                self._attach(t)
        except BaseException:
            self.close()
            raise
        self._next_route_check = time.monotonic() + ROUTE_CHECK_INTERVAL
        self._checker = threading.Thread(target=self._check_routes_loop, name="lwtui-routes", daemon=True)
        self._checker.start()
        self._log("info", f"session {self.name} attached to " +
                  ", ".join(f"{t.prefix} ({t.hook})" for t in self.targets))

    def _attach(self, t: routes.Target) -> None:
        """Attach one target with signals held, so it is never half done when a signal lands."""
        self._on_status(f"attaching {t.hook} to {t.prefix}" + (f" in {t.netns}" if t.netns else ""))
        with signals.critical():
            try:
                faults.check("attach")
            except faults.InjectedFault as e:
                raise routes.RouteError(f"attaching {t.hook} to {t.prefix}: {e}") from None
            routes.attach(t, self.probe.prog_fd(t.hook), self.probe.prog_name(t.hook),
                          on_saved=self._save_attachment)

    def _refuse_busy_routes(self) -> None:
        """One route, one session: refuse routes a running, kept or killed session holds."""
        mine = {_route_kind(t.netns, t.prefix, t.hook) for t in self.targets}
        for st in state.list_states():
            for a in st.attachments:
                t = a.get("target", {})
                if _route_kind(t.get("netns"), t.get("prefix"), t.get("hook")) not in mine:
                    continue
                what = f"{t.get('prefix')} ({t.get('hook')})"
                status = st.status
                if status == "running":
                    raise SessionError(f"{what} is already watched by session {st.name} (pid {st.pid}): "
                                       "stop it first")
                if status == "kept":
                    raise SessionError(f"{what} still carries the kept blocks of session {st.name}: "
                                       f"run `lwtui detach --session {st.name}` first")
                raise SessionError(f"{what} is held by stale session {st.name} (pid {st.pid} is gone): "
                                   "run `lwtui detach --all` first")

    def _save_attachment(self, att: routes.Attachment) -> None:
        """Called by routes.attach before it modifies the route: persist the original, and
        remember the attachment so close() restores it even if attach() never returns."""
        assert self.state is not None
        self.attachments.append(att)
        self.state.attachments.append(att.to_dict())
        self.state.save()

    def close(self) -> list[str]:
        """Detach every route and remove pins and state (or keep them: keep_blocks with active
        rules); idempotent, never raises for gone routes. Returns one status line per route."""
        if self._closed:
            return []
        with signals.critical():
            self._closed = True
            self._checks_stop.set()
            if self._checker is not None and self._checker is not threading.current_thread():
                self._checker.join(timeout=5.0)   # a check under way holds _routes_lock, then sees _closed
            with self._routes_lock:
                if self.keep_blocks and self.attachments:
                    try:
                        n = self._active_rules()
                    except OSError as e:    # unknown is not "none": keep, the safe reading of --keep-blocks
                        return self._keep(None, f"{e.strerror or e}")
                    if n:
                        return self._keep(n)
                return self._restore()

    def _restore(self) -> list[str]:
        statuses, errors = [], []
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
        if not errors:
            pins.unpin(self.name)
        if self.probe is not None:
            self.probe.close()
        if errors:
            raise SessionError("could not restore: " + "; ".join(errors) + " — run `lwtui detach --all`")
        return statuses

    def _active_rules(self) -> int:
        """How many rules are in force; OSError when the rule maps cannot be read."""
        return len(self.store.entries()) if self.store is not None else 0

    def _keep(self, n: int | None, error: str = "") -> list[str]:
        """--keep-blocks: leave programs, rules and pins; mark the state file `kept`.

        n is the number of active rules, None when they could not be read (`error`).
        """
        self.kept = True
        self.state.kept = True
        self.state.save()
        for att in self.attachments:
            routes.forget(att)
        if self.probe is not None:
            self.probe.close()   # the routes hold the programs, the pins hold the verdict maps
        where = ", ".join(f"{a.target.prefix} ({a.target.hook})" for a in self.attachments)
        what = (f"{n} rule(s) stay active on {where}" if n is not None else
                f"its rules could not be read ({error}), so its programs and whatever rules it has stay "
                f"on {where}, as --keep-blocks asks; see them with `lwtui rules --session {self.name}`")
        head = f"session {self.name} kept: " + what
        return [f"{head}; lift them with `lwtui allow RULE --session {self.name}`, restore the routes with "
                f"`lwtui detach --session {self.name}`"]

    @property
    def closed(self) -> bool:
        return self._closed

    # -- events (reader thread) -----------------------------------------
    def poll_events(self, timeout_ms: int = 100) -> None:
        """Block up to timeout_ms for events; callbacks fill the event log."""
        faults.check("reader")
        if not self._closed and self.probe is not None:
            self.probe.poll_events(timeout_ms)

    def _on_event(self, ev: kstructs.LwtuiEvent) -> None:
        fid = flow_id_from_key(ev.key, self._ids)
        when = ev.ts_ns / 1e9 + self._mono_to_wall
        if ev.type == kstructs.EV_NEW:
            with self._lock:
                self.flows.note_new(fid, when)
            self._log("new", flow_text(fid), fid, when)
        elif ev.type == kstructs.EV_DROP:
            what = "would drop" if self.dry_run else "dropped"
            self._log("drop", f"{what} {flow_text(fid)} ({ev.drops} so far, "
                      f"{kstructs.RULE_KIND_NAMES.get(ev.rule_kind, '')} rule)", fid, when)

    def _on_lost(self, count: int) -> None:
        self._lost += count
        self._log("lost", f"{count} events lost (reader too slow)")

    def _log(self, kind: str, text: str, flow: FlowId | None = None, when: float | None = None) -> None:
        self._events.add(kind, text, flow, when)

    # -- snapshots (worker thread) ---------------------------------------
    def snapshot(self) -> Snapshot:
        """Read counters from the kernel, merge them, and return a copy for the views."""
        if self.probe is None or self._closed:
            raise SessionError("session is not running")
        faults.check("snapshot")
        now = time.time()
        active, expired = self.store.sweep()
        for r in expired:
            self._log("allow", f"rule expired: {r.text}")
        raw = self.probe.read_flows()
        stats = self.probe.read_stats()
        rule_list = [e for e, _ in active]
        active_rules = [r for _, r in active]
        gen = self.store.config().rules_gen
        self._index.update(active_rules)   # O(changed rules); answers cached per flow until the next change
        rows = [self._row(key, st, active_rules, gen) for key, st in raw]
        with self._lock:
            self.flows.update(now, rows)
            records = self.flows.records()
        self._totals = self._make_totals(now, stats, len(records))
        # The routes before the events: the route checker logs why a route went before dropping it.
        attached = [AttachedRoute(a.target.prefix, a.target.hook, a.target.netns, a.target.dev)
                    for a in list(self.attachments)]
        return Snapshot(time=now, flows=records, totals=self._totals, rules=rule_list,
                        events=self._events.drain(), routes=attached,
                        dry_run=self.dry_run, keep_blocks=self.keep_blocks, started=self.started,
                        session=self.name)

    def _row(self, key, st, active_rules: list[Rule], gen: int) -> tuple[FlowId, Counters]:
        fid = flow_id_from_key(key, self._ids)
        verdict, rule_text = "allow", ""
        # The kernel's cached verdict is current when its generation matches;
        # otherwise the rules changed since the flow's last packet: ask them.
        if st.verdict == kstructs.DROP or st.rules_gen != gen:
            matched = self._index.blocking(fid) if active_rules else None
            if matched is not None:
                verdict, rule_text = ("would-drop" if self.dry_run else "drop"), matched.text
        return fid, Counters(packets=st.packets, bytes=st.bytes, drops=st.drops,
                             first_seen=st.first_seen_ns / 1e9 + self._mono_to_wall,
                             last_seen=st.last_seen_ns / 1e9 + self._mono_to_wall,
                             tcp_flags=st.tcp_flags, verdict=verdict, rule=rule_text)

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
        """Drop what `rule` matches from the next packet on (ask would_cut_ssh first)."""
        r = self._store().add(rule, ttl=ttl)
        self._log("block", f"block {r.text}" + (f" for {ttl:g}s" if ttl else ""))
        return r

    def would_cut_ssh(self, rule: Rule | str) -> str | None:
        """The user's own SSH connection (SSH_CONNECTION) when `rule` would block it, else None."""
        return guard.ssh_flow_blocked_by(parse_rule(rule) if isinstance(rule, str) else rule)

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

