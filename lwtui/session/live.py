"""Session: the one API the dashboard and the headless commands use.

Owns the probe (programs and maps), the route attachments, the flow table and
the rule store. Its lifecycle is a fixed sequence (start: check, compile, pin,
attach; then snapshot/poll; close: detach, unpin), and close() is idempotent
and reached from every exit path: use it as a context manager.

Restore guarantee (docs/ARCHITECTURE.md): start() checks every target before it changes
anything, records each attachment (state file and self.attachments) before
its route changes, and undoes what it did when anything fails; close() runs
with SIGINT/SIGTERM/SIGHUP held (lwtui.session.signals.critical) so a second Ctrl-C
cannot stop a restore half-way. With keep_blocks and active rules, close()
leaves the programs and pins in place and marks the state file `kept`.

Threads: poll_events() blocks (the reader thread's loop); snapshot() reads
maps and looks up the processes of new flows (a worker thread, once per
tick); the session's own route checker thread checks every few seconds that
the routes still carry the programs, never waiting behind a tick;
block()/allow() are quick map writes, fine from any thread. Locks keep the
flow table and the attachments consistent.

The event reading and the map reading behind snapshot() are in lwtui.session.reading, the rule
commands (block, allow, TTLs, dry-run) in lwtui.session.rulecommands, the
route checks in lwtui.session.routecheck: mixins of Session, each declaring
what it uses of it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterable

from lwtui.session import faults, guard, signals
from lwtui.core import paths, procs
from lwtui.kernel import features, kstructs, pins, runstats
from lwtui.session import holders, state
from lwtui.session.routecheck import ROUTE_CHECK_INTERVAL, RouteChecks  # noqa: F401 (the interval: for callers)
from lwtui.net import routes
from lwtui.core.flows import FlowStore
from lwtui.core.rates import HitSplit, TotalRates
from lwtui.kernel.codec import FlowIdCache
from lwtui.core.model import AttachedRoute, FlowId, Snapshot, Totals
from lwtui.core.pcap import PcapWriter
from lwtui.core.ruleindex import RuleIndex
from lwtui.core.rules import Rule
from lwtui.core.eventlog import EVENT_LOG_MAX, EventQueue  # noqa: F401 (EVENT_LOG_MAX: the limit, for users)
from lwtui.kernel.verdicts import RuleStore
from lwtui.session.owners import OwnerResolver
from lwtui.session.capture import Recorder
from lwtui.session.reading import KernelReading
from lwtui.session.rulecommands import RuleCommands
from lwtui.session.protocol import RestoreFailed, RoutesGone, SessionError  # noqa: F401 (RoutesGone: for callers)

if TYPE_CHECKING:
    from lwtui.kernel.probe import Probe

# The flags a kernel with every feature gets (lwtui.kernel.features.decide): flows
# and events stamped with the coarse clock (one tick of resolution, read once
# per jiffy and CPU, ~20-40 ns cheaper per packet than a precise read here);
# rule TTLs stay exact. A session
# takes its flags from the probe of the running kernel.
EXTRA_CFLAGS = ("-DLWTUI_COARSE_CLOCK",)


def _require_root() -> None:
    try:
        guard.require_privileges()
    except guard.PrivilegeError as e:
        raise SessionError(str(e)) from None


class Session(KernelReading, RuleCommands, RouteChecks):
    """Attach to routes, count flows, apply verdicts; restore everything on close()."""

    def __init__(self, targets: Iterable[routes.Target], *, name: str | None = None,
                 dry_run: bool = False, max_flows: int = 65536, idle_timeout: float = 60.0,
                 drop_event_interval: float = 1.0, keep_blocks: bool = False, events: str = "perf",
                 on_status: Callable[[str], None] | None = None, rules: Iterable[tuple[Rule, float | None]] = ()):
        self.targets = list(targets)
        self._initial_rules = list(rules)     # --rules FILE: in the maps before the first attach
        if not self.targets:
            raise SessionError("no route given: name at least one ROUTE (see `lwtui --help`)")
        self.name = paths.valid_name(state.new_session_name() if name is None else name)
        self.dry_run = dry_run
        self.keep_blocks = keep_blocks
        self.max_flows = max_flows
        self.transport = events  # how events travel: "perf" or "ringbuf" (lwtui.kernel.probe)
        self.drop_event_interval = drop_event_interval
        self.flows = FlowStore(max_flows=max_flows, idle_timeout=idle_timeout)
        self._ids = FlowIdCache()  # one FlowId object per kernel key (events, dropped flows' rules)
        self._rule_texts: frozenset[str] = frozenset()     # the rules _rule_of was made under
        self._rule_of: dict[tuple, int] = {}    # (key, rule kind, slot) -> rule_code of a dropped flow
        self.attachments: list[routes.Attachment] = []
        self.lost: list[tuple[routes.Target, str]] = []   # routes that went away while attached, and why
        self.kept = False
        self.warnings: list[str] = []     # said after close(), on stderr: what was left alone and why
        self.probe: Probe | None = None
        self.features: features.Plan | None = None  # what the kernel offers, the path taken for each
        self.store: RuleStore | None = None
        self.state: state.SessionState | None = None
        self.started = time.time()
        self._mono_to_wall = time.time() - time.monotonic()
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()   # one reading of the maps at a time: snapshot, a dry-run switch
        self._routes_lock = threading.Lock()
        self._events = EventQueue()
        self._lost = 0
        self._listed, self._unlisted, self._unreadable_said = (0.0, 0), {}, 0   # (lwtui.session.reading)
        self._closed = False
        self._claim: int | None = None      # the lock on the session name (lwtui.session.state.claim)
        self._pinned = False        # pins of this name are ours to remove (pin_maps was called)
        self._guarded = False
        self._on_status = on_status or (lambda msg: None)
        self._rates = TotalRates(self.flows.rate_window, self.started)
        self._hits = HitSplit()
        self._next_route_check = 0.0
        self._checker: threading.Thread | None = None       # checks the routes; never waits behind a tick
        self._checks_stop = threading.Event()
        self._index = RuleIndex()       # which rule blocks a flow, for flows whose kernel verdict is stale
        self._twins: set[int] = set()     # attachments whose route has a kernel twin (ids), logged once
        self._check_failures: dict[int, int] = {}   # attachment id -> route checks failed in a row
        self._totals = Totals()
        self._flow_loss = (0, 0)    # (flows_evicted, flows_unseen) as of the last map read
        self._runstats = runstats.RunStats()   # the kernel times our programs while this is open
        self._owners = OwnerResolver(self.targets)
        self._recorder = Recorder(self._log, self._ids)   # pcap files of dropped packets

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> "Session":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Check, compile, pin, attach every target; on any failure undo what was done and raise."""
        _require_root()
        self._guarded = True
        signals.guard()                 # from here on, close() must run: a flood of signals cannot skip it
        try:
            self._claim = state.claim(self.name)
            pins.check_root()
            busy = holders.busy_route(self.targets)     # one route, one session
            if busy:
                raise SessionError(busy)
            for t in self.targets:      # bad routes are refused before anything is compiled or changed
                self._named(routes.preflight, t)
            from lwtui.kernel.probe import Probe  # BCC is heavy: import only when a session starts
            hooks = sorted({t.hook for t in self.targets}, key=lambda h: kstructs.HOOK_BY_NAME[h])
            plan = self._plan()
            self._on_status("compiling BPF programs")
            self.probe = Probe(hooks=hooks, max_flows=self.max_flows, extra_cflags=plan.cflags,
                               events=plan.events, batch=plan.batch)
            self.probe.set_config(dry_run=self.dry_run, rules_gen=1,
                                  drop_event_interval_ns=int(self.drop_event_interval * 1e9))
            self.store = RuleStore({n: self.probe.map_fd(n) for n in pins.PINNED_MAPS})
            for rule, ttl in self._initial_rules:   # in force before the first packet is judged
                self.store.add(rule, ttl=ttl)
            try:
                if plan.run_stats:
                    self._runstats.open()   # the kernel times lwtui's programs from now on
            except runstats.RunStatsError as e:
                self._log("info", f"lwtui's own cost is not shown: {e.strerror} (BPF_ENABLE_STATS needs Linux 5.8+)")
            # The totals' rates count from here: the kernel's counters are 0 until the first attach.
            self._rates = TotalRates(self.flows.rate_window, time.time())
            self.state = state.SessionState(name=self.name, pid=os.getpid(),
                                           start_time=procs.proc_start_time(os.getpid()),
                                           started=self.started, dry_run=self.dry_run,
                                           keep_blocks=self.keep_blocks)
            self.state.save()
            self._pinned = True
            pins.pin_maps(self.name, self.store.fds)
            self.probe.open_events(self._on_event, self._on_lost)
            self._recorder.bind(self.probe)
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
        if self._initial_rules:
            self._log("info", f"{len(self._initial_rules)} rule(s) of the rules file in force from the first packet")

    def _plan(self) -> features.Plan:
        """Probe the kernel and pick a path per feature; each fallback is logged, and
        a transport asked for that the kernel lacks is said on the status line too."""
        self._on_status("probing kernel features")
        try:
            plan = features.plan(self.transport)
        except features.FeatureError as e:
            raise SessionError(str(e)) from None
        refused = features.refusal(plan)
        if refused:
            raise SessionError(refused)
        for note in features.notes(plan):
            self._log("info", note)
        if plan.events != self.transport:
            self._on_status(f"--events {self.transport}: no BPF ring buffer here, events go through the perf buffer")
            self.transport = plan.events
        self.features = plan
        return plan

    @property
    def fallbacks(self) -> list[str]:
        """The kernel features this session runs without (an older path taken for each)."""
        return self.features.fallback_names if self.features is not None else []

    def run_stats(self) -> dict[str, tuple[int, int]]:
        """(run_time_ns, run_cnt) of each hook's program, read now; empty without run-time statistics."""
        probe = self.probe
        if probe is None or not self._runstats.on:
            return {}
        return {h: runstats.prog_run_stats(probe.prog_fd(h)) for h in probe.hooks}

    def _attach(self, t: routes.Target) -> None:
        """Attach one target with signals held, so it is never half done when a signal lands."""
        assert self.probe is not None       # start() made it
        self._on_status(f"attaching {t.hook} to {t.prefix}" + (f" in {t.netns}" if t.netns else ""))
        with signals.critical():
            try:
                faults.check("attach")
            except faults.InjectedFault as e:
                raise routes.RouteError(f"attaching {t.hook} to {t.prefix}: {e}") from None
            with state.attach_lock():     # one attach at a time: the next one sees this route taken
                self._named(routes.attach, t, self.probe.prog_fd(t.hook), self.probe.prog_name(t.hook),
                            on_saved=self._save_attachment)

    @staticmethod
    def _named(step, t: routes.Target, *args, **kw):
        """Run a route step; a route holding lwtui programs is refused naming the session that holds them."""
        try:
            return step(t, *args, **kw)
        except routes.LwtuiEncap as e:
            held = holders.holding(e)
            if held is None:
                raise
            raise SessionError(held) from None

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
        with signals.critical():
            if self._closed:
                return []
            self._closed = True     # set with signals held: a signal cannot stop close() half-way
            try:
                self._recorder.close()
                self._checks_stop.set()
                checker = self._checker     # not alive: its start() was cut short by a signal (join would raise)
                if checker is not None and checker.is_alive() and checker is not threading.current_thread():
                    checker.join(timeout=5.0)   # a check under way holds _routes_lock, then sees _closed
                with self._routes_lock:
                    if self.keep_blocks and self.attachments:
                        try:
                            n = self._active_rules()
                        except OSError as e:    # unknown is not "none": keep, the safe reading of --keep-blocks
                            return self._keep(None, f"{e.strerror or e}")
                        if n:
                            return self._keep(n)
                    return self._restore()
            finally:
                self._release()

    def _release(self) -> None:
        """Give up the session name and the signal guard (close() is done)."""
        if self._claim is not None:
            state.release(self.name, self._claim)
            self._claim = None
        if self._guarded:
            self._guarded = False
            signals.unguard()

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
        pins_left: pins.PinError | None = None
        if not errors and self._pinned:
            try:
                left = pins.unpin(self.name)
                if left:
                    self.warnings.append(pins.left_message(self.name, left))
            except pins.PinError as e:  # the routes are back; what is in the way is named, never followed
                pins_left = e
        if self.probe is not None:
            self.probe.close()
        self._runstats.close()
        if errors:
            raise RestoreFailed("could not restore: " + "; ".join(errors) + " — run `lwtui detach --all`")
        if pins_left is not None:
            if not statuses:    # no route was changed (start() refused at the pins): the error as it is
                raise pins_left
            raise RestoreFailed(f"the routes are restored, but not the session's pins: {pins_left}")
        return statuses

    def _active_rules(self) -> int:
        """How many rules are in force; OSError when the rule maps cannot be read."""
        return len(self.store.entries()) if self.store is not None else 0

    def _keep(self, n: int | None, error: str = "") -> list[str]:
        """--keep-blocks: leave programs, rules and pins; mark the state file `kept`.

        n is the number of active rules, None when they could not be read (`error`).
        """
        assert self.state is not None       # there are attachments: start() saved the state
        self.kept = True
        self.state.kept = True
        self.state.save()
        for att in self.attachments:
            routes.forget(att)
        if self.probe is not None:
            self.probe.close()   # the routes hold the programs, the pins hold the verdict maps
        self._runstats.close()
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


    def _log(self, kind: str, text: str, flow: FlowId | None = None, when: float | None = None) -> None:
        self._events.add(kind, text, flow, when)

    def log(self, kind: str, text: str) -> None:
        """A line in the session's event log from beside it (the metrics server): shown with the next snapshot."""
        self._log(kind, text)

    # -- snapshots (worker thread) ---------------------------------------
    def snapshot(self) -> Snapshot:
        """Read counters from the kernel, merge them, and return a copy for the views."""
        if self.probe is None or self.store is None or self._closed:
            raise SessionError("session is not running")
        faults.check("snapshot")
        with self._read_lock:
            now = time.time()
            active, expired = self.store.sweep()
            for r in expired:
                self._log("allow", f"rule expired: {r.text}")
            rule_list = self._hits.update([e for e, _ in active], self.dry_run)
            self._index.update([r for _, r in active])   # O(changed rules): names the rule of a dropped flow
            records = self._read_flows(now, [r for _, r in active])
            by_hook = self.probe.read_stats_by_hook()
            once = kstructs.count_once(by_hook, [(t.netns, t.prefix, t.hook) for t in self.targets])
            self._totals = self._make_totals(now, once, len(records), by_hook)
        owners = self._owners.resolve(records)
        recordings, capture_lost = self._recorder.status()
        # The routes before the events: the route checker logs why a route went before dropping it.
        attached = [AttachedRoute(a.target.prefix, a.target.hook, a.target.netns, a.target.dev)
                    for a in list(self.attachments)]
        return Snapshot(time=now, flows=records, totals=self._totals, rules=rule_list, owners=owners,
                        events=self._events.drain(), routes=attached,
                        dry_run=self.dry_run, keep_blocks=self.keep_blocks, started=self.started,
                        session=self.name, fallbacks=tuple(self.fallbacks),
                        recordings=recordings, capture_lost=capture_lost)

    # -- evidence (any thread) -------------------------------------------
    def record(self, writer: PcapWriter, flow: FlowId | None = None) -> None:
        """Write dropped and would-drop packets (only `flow`'s, if given) to a pcap file."""
        if self._closed:
            raise SessionError("session is not running")
        self._recorder.record(writer, flow)

    def stop_recording(self, writer: PcapWriter) -> None:
        """Stop writing to that file and close it."""
        self._recorder.stop(writer)

