"""Per-packet cost of each lwtui program through BPF_PROG_TEST_RUN.

Every round measures, for each hook (in, out, xmit) and each packet (TCP,
UDP, ICMP, IPv6 TCP), the mean ns/run over `repeat` runs of:
  noop     `r0 = BPF_OK; exit` (the floor of the hook and the harness)
  minimal  the seed article's parse-and-compare program (BCC, same run)
  lwtui    the real program, compiled with the flags a Session uses:
           existing flow, allowed; allowed with the compound map full
           (COMPOUND_MAX = 8 unrelated compound rules, the kernel's limit:
           1,000 compound rules cannot be installed); then dropped by a host
           rule; then allowed with 1,000 unrelated single-key rules, and
           with those plus the 8 compound rules.
Each steady-state figure is the fastest of BATCHES batches of repeat / BATCHES
runs (see best_of_batches); a case with BPF run-time statistics on is timed
too. Case order rotates from round to round; figures are medians over rounds
and every ratio is taken within one round, against the no-op timed in the same
phase of the round (each group of cases times the no-op again: a shared
machine's speed drifts between phases).

New flows cannot come from one test run (it repeats one packet), so they are
measured one packet per call: a pass over N packets from N distinct sources
(every packet a new flow), the same pass again (every packet now an existing
flow) and the no-op over the same packets. All three carry the same per-call
timer overhead, so their differences are the program's. A second probe with a
1,024-entry flow map measures new flows when the LRU map is full and every
insert evicts (there the second pass is all new flows again). New-flow events
go to a perf buffer read by a thread blocked in its poll, as a session's
reader is, so the batched wakeups cost what they cost in a session.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time

from lwtui.kernel import bpfsys
from lwtui.kernel.kstructs import COMPOUND_MAX
from lwtui.kernel.pins import PINNED_MAPS
from lwtui.kernel.probe import Probe
from lwtui.kernel.verdicts import RuleStore

from . import packets
from .common import BenchError, Result, Spread, log, pin_one_cpu, ratio_spread, require_root
from .progs import Minimal, Noop, lwtui_cflags

from lwtui.core.names import HOOKS
BPF_OK, BPF_DROP = 0, 2
SMALL_MAP = 1024


def many_rules(n: int = 1000) -> list[str]:
    """`n` rules (flow, host, port) that match none of the benchmark packets."""
    out = []
    for i in range(n):
        a, b = divmod(i, 250)
        if i % 10 < 4:
            out.append(f"flow tcp 192.168.{a}.{b + 1}:{1000 + i} 172.31.{a}.{b + 1}:{2000 + i}")
        elif i % 10 < 7:
            out.append(f"host 172.16.{a}.{b}/32" if i % 2 else f"host fd00:bad:{a}::{b + 1}/128")
        else:
            out.append(f"port {1000 + i}/{'tcp' if i % 2 else 'udp'}")
    return out


def compound_rules(n: int = COMPOUND_MAX) -> list[str]:
    """`n` compound rules (one conjunction each: `compound` holds COMPOUND_MAX
    of them in all) that match none of the benchmark packets."""
    return [f"src host 198.51.100.{i + 1} and dst port {4000 + i}/tcp and not src port 22" for i in range(n)]


def _with_source(pkt: bytes, kind: str, index: int) -> bytes:
    """The packet with its source address replaced: a distinct flow per index."""
    hi, lo = divmod(index, 250)
    if kind == "tcp6":
        src = ipaddress.IPv6Address(f"fd00:6c77:1::{hi:x}:{lo + 1:x}").packed
        return pkt[:22] + src + pkt[38:]
    src = ipaddress.IPv4Address(f"10.{100 + hi // 250}.{hi % 250}.{lo + 1}").packed
    return pkt[:26] + src + pkt[30:]


class _Events:
    """A session's reader: a thread blocked in the perf buffer poll, counting
    events and losses. Blocked in epoll, it makes the program's batched
    wakeups real, so a new flow's cost includes them."""

    def __init__(self, probe: Probe):
        self.probe, self.events, self.lost = probe, 0, 0
        probe.open_events(self._on_event, self._on_lost)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="bench-events", daemon=True)
        self._thread.start()

    def _on_event(self, ev) -> None:
        self.events += 1

    def _on_lost(self, n: int) -> None:
        self.lost += n

    def _read(self) -> None:
        while not self._stop.is_set():
            self.probe.poll_events(50)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _run(fd: int, data: bytes, repeat: int, want: int, what: str) -> int:
    ret, ns = bpfsys.prog_test_run(fd, data, repeat)
    if ret != want:
        raise BenchError(f"{what}: returned {ret}, expected {want}: the case does not measure what it says")
    return ns


BATCHES = 10  # a steady-state figure is the fastest of this many batches of repeat / BATCHES runs


# Batches timed while BPF run-time statistics were on (some process held BPF_ENABLE_STATS),
# by whether another clean batch of the same figure could be used instead.
STATS_ON = {"replaced": 0, "kept": 0, "retried": 0}
RETRIES, RETRY_WAIT = 8, 2.0  # a group timed while statistics were on throughout is timed again after a wait


def best_of_batches(fd: int, data: bytes, repeat: int, want: int, what: str, batches: int = BATCHES,
                    allow_stats: bool = False) -> float:
    """Mean ns/run of the fastest of `batches` batches: a batch that other work on
    a shared machine preempted (the kernel counts that time too) comes out slow,
    the fastest is the program's own cost.

    While any process holds BPF run-time statistics on (lwtui's own session
    does, for its cost figure), the kernel times every BPF program run, which
    adds its own cost to each run; such batches (the program's run count moved)
    are left out unless no other batch is left (counted in STATS_ON) or
    `allow_stats` (a case that turns them on itself)."""
    clean, on = [], []
    for _ in range(batches):
        before = bpfsys.prog_info(fd)["run_cnt"]
        t = _run(fd, data, max(1, repeat // batches), want, what)
        (on if bpfsys.prog_info(fd)["run_cnt"] != before and not allow_stats else clean).append(t)
    if on:
        STATS_ON["replaced" if clean else "kept"] += len(on)
    return float(min(clean or on))


class Cases:
    """Named (fd, packet, expected return) cases timed with one repeat each."""

    def __init__(self):
        self.cases: dict[tuple, tuple[int, bytes, int]] = {}
        self.ns: dict[tuple, list[float]] = {}

    def add(self, key: tuple, fd: int, data: bytes, want: int) -> None:
        self.cases[key] = (fd, data, want)
        self.ns.setdefault(key, [])

    def time(self, keys: list[tuple], repeat: int, rnd: int, allow_stats: bool = False) -> None:
        """Time a group of cases; when another process held BPF run-time statistics
        on throughout some case, wait and time the group again (RETRIES times at most)."""
        keys = keys[rnd % len(keys):] + keys[:rnd % len(keys)]  # rotate the order each round
        for attempt in range(RETRIES + 1):
            kept = STATS_ON["kept"]
            got = {}
            for key in keys:
                fd, data, want = self.cases[key]
                _run(fd, data, 1, want, str(key))  # the flow exists (and its verdict is cached) first
                got[key] = best_of_batches(fd, data, repeat, want, str(key), allow_stats=allow_stats)
            if STATS_ON["kept"] == kept:
                break
            if attempt < RETRIES:
                STATS_ON["kept"] = kept  # replaced by the next attempt
                STATS_ON["retried"] += 1
                time.sleep(RETRY_WAIT)
        for key, ns in got.items():
            self.ns[key].append(ns)


def _single_pass(fd: int, pkts: list[bytes]) -> list[int]:
    return [bpfsys.prog_test_run(fd, p, 1)[1] for p in pkts]


def _median(xs: list[int]) -> float:
    return Spread.of([float(x) for x in xs]).median


def new_flow_round(probe: Probe, noop: Noop, kind: str, n: int, base: int,
                   hook: str = "out") -> dict[str, float]:
    """Median ns per call: new flows, the same flows again, the no-op.

    When the flow map holds fewer than n entries the second pass finds its
    flows evicted, so it measures new flows too (counted, not checked)."""
    pkts = [_with_source(packets.packet(kind), kind, base + i) for i in range(n)]
    before = probe.read_stats()["new_flows"]
    new = _single_pass(probe.prog_fd(hook), pkts)
    made = probe.read_stats()["new_flows"] - before
    existing = _single_pass(probe.prog_fd(hook), pkts)
    again = probe.read_stats()["new_flows"] - before - made
    floor = _single_pass(noop.fds[hook], pkts)
    small_map = probe.map_max_entries("flows") < n
    if made != n or (again != 0 and not small_map):
        raise BenchError(f"new-flow pass of {kind}: {made} new flows for {n} packets, {again} on the "
                         "second pass: the flow map did not behave as the method assumes")
    return {"new": _median(new), "existing": _median(existing), "noop": _median(floor)}


def run(rounds: int = 5, repeat: int = 1_000_000, new_n: int = 3000) -> Result:
    require_root()
    if repeat < 1_000_000:
        log(f"repeat={repeat}: below the 1e6 the published figures use (a quick run)")
    res = Result("microbench", params={"rounds": rounds, "repeat": repeat, "new_flow_packets": new_n,
                                       "kinds": list(packets.KINDS), "hooks": list(HOOKS)})
    flags = lwtui_cflags()
    res.params["lwtui_cflags"] = list(flags)
    res.params["cpu"] = pin_one_cpu()
    res.params["batches"] = BATCHES
    noop, minimal = Noop(HOOKS), Minimal(HOOKS)
    probe = Probe(hooks=HOOKS, extra_cflags=flags)
    small = Probe(hooks=("out",), max_flows=SMALL_MAP, extra_cflags=flags)
    try:
        _measure(res, rounds, repeat, new_n, noop, minimal, probe, small)
    finally:
        small.close()
        probe.close()
        minimal.close()
        noop.close()
    return res


def _prepare(probe: Probe) -> RuleStore:
    probe.set_config(dry_run=False, rules_gen=1, drop_event_interval_ns=1_000_000_000)
    return RuleStore({n: probe.map_fd(n) for n in PINNED_MAPS})


def _measure(res: Result, rounds: int, repeat: int, new_n: int, noop: Noop, minimal: Minimal,
             probe: Probe, small: Probe) -> None:
    store, _ = _prepare(probe), _prepare(small)
    ev, small_ev = _Events(probe), _Events(small)
    try:
        _rounds(res, rounds, repeat, new_n, noop, minimal, probe, small, store)
    finally:
        ev.close()
        small_ev.close()
    if ev.lost or small_ev.lost:
        res.notes.append(f"perf events lost during new-flow passes: {ev.lost} + {small_ev.lost}")
    if STATS_ON["replaced"] or STATS_ON["kept"]:
        res.notes.append(f"batches timed while another process held BPF run-time statistics on: "
                         f"{STATS_ON['replaced']} left out for a clean batch of the same figure, "
                         f"{STATS_ON['retried']} groups of cases timed again after a wait, "
                         f"{STATS_ON['kept']} batches kept (no clean batch after {RETRIES} retries)")
    res.notes.append(f"events received by the readers: {ev.events + small_ev.events}; failed in the kernel "
                     f"(last round): {probe.read_stats()['events_failed'] + small.read_stats()['events_failed']}")


def _rounds(res: Result, rounds: int, repeat: int, new_n: int, noop: Noop, minimal: Minimal,
            probe: Probe, small: Probe, store: RuleStore) -> None:
    extra, compound = many_rules(1000), compound_rules()
    c = Cases()
    plain, dropped, ruled, comp, both, stats_on = [], [], [], [], [], []
    for h in HOOKS:
        for k in packets.KINDS:
            pkt, dpkt = packets.packet(k), packets.packet(k, dropped=True)
            for key, fd, data, want, group in (
                    (("noop", h, k, "allowed"), noop.fds[h], pkt, BPF_OK, plain),
                    (("minimal", h, k, "allowed"), minimal.fds[h], pkt, BPF_OK, plain),
                    (("lwtui", h, k, "allowed"), probe.prog_fd(h), pkt, BPF_OK, plain),
                    (("minimal", h, k, "dropped"), minimal.fds[h], dpkt,
                     BPF_DROP if k == "tcp" else BPF_OK, dropped),
                    (("lwtui", h, k, "dropped"), probe.prog_fd(h), dpkt, BPF_DROP, dropped),
                    (("lwtui+1000 rules", h, k, "allowed"), probe.prog_fd(h), pkt, BPF_OK, ruled),
                    (("lwtui+8 compound", h, k, "allowed"), probe.prog_fd(h), pkt, BPF_OK, comp),
                    (("lwtui+1000 rules+8 compound", h, k, "allowed"), probe.prog_fd(h), pkt, BPF_OK, both)):
                c.add(key, fd, data, want)
                group.append(key)
            if k == "tcp":  # the cost of BPF run-time statistics, which a session turns on for its cost figure
                for prog, fd in (("noop", noop.fds[h]), ("lwtui", probe.prog_fd(h))):
                    c.add((prog, h, k, STATS_CASE), fd, pkt, BPF_OK)
                    stats_on.append((prog, h, k, STATS_CASE))
            # each group phase times the no-op again, next to its cases: the machine's speed drifts
            # between phases of a round on a shared host, so ratios are taken against the nearest floor
            for floor, group in ((FLOOR["comp"], comp), (FLOOR["dropped"], dropped), (FLOOR["ruled"], ruled),
                                 (FLOOR["both"], both)):
                c.add(("noop", h, k, floor), noop.fds[h], pkt, BPF_OK)
                group.append(("noop", h, k, floor))
    new: dict[tuple, list[dict]] = {}
    for rnd in range(rounds):
        log(f"microbench round {rnd + 1}/{rounds}")
        _one_round(c, new, rnd, repeat, new_n, noop, probe, small, store, extra, compound,
                   plain, stats_on, comp, dropped, ruled, both)
    _summarise(res, c, new, rounds)


def _one_round(c: Cases, new: dict, rnd: int, repeat: int, new_n: int, noop: Noop, probe: Probe, small: Probe,
               store: RuleStore, extra: list[str], compound: list[str], plain: list, stats_on: list, comp: list,
               dropped: list, ruled: list, both: list) -> None:
    """One round: new flows, then each group of steady-state cases with its rules."""
    for p in (probe, small):
        p.reset_maps()
    _prepare(probe)
    for i, k in enumerate(packets.KINDS):
        base = (rnd * 3 * len(packets.KINDS) + i) * new_n
        new.setdefault(("lwtui", k, "0 rules"), []).append(new_flow_round(probe, noop, k, new_n, base))
        new.setdefault(("lwtui, full 1024-entry map", k, "0 rules"), []).append(
            new_flow_round(small, noop, k, new_n, base))
    c.time(plain, repeat, rnd)
    stats_fd = bpfsys.enable_stats()
    try:
        c.time(stats_on, repeat, rnd, allow_stats=True)
    finally:
        os.close(stats_fd)
    for r in compound:
        store.add(r)
    c.time(comp, repeat, rnd)
    for r in compound:
        store.remove(r)
    for r in packets.DROP_RULES:
        store.add(r)
    c.time(dropped, repeat, rnd)
    for r in extra:
        store.add(r)
    c.time(ruled, repeat, rnd)
    for i, k in enumerate(packets.KINDS):
        base = ((rnd * 3 + 1) * len(packets.KINDS) + i) * new_n
        new.setdefault(("lwtui", k, "1002 rules"), []).append(new_flow_round(probe, noop, k, new_n, base))
    for r in compound:
        store.add(r)
    c.time(both, repeat, rnd)
    for i, k in enumerate(packets.KINDS):
        base = ((rnd * 3 + 2) * len(packets.KINDS) + i) * new_n
        new.setdefault(("lwtui", k, "1002 rules + 8 compound"), []).append(
            new_flow_round(probe, noop, k, new_n, base))


# The no-op timed next to each group of cases (see _rounds), by group.
FLOOR = {"comp": "floor:8 compound", "dropped": "floor:dropped", "ruled": "floor:1000 rules",
         "both": "floor:1000 rules+8 compound"}
STATS_CASE = "allowed, run-time statistics on"
_FLOOR_OF = {(prog, STATS_CASE): STATS_CASE for prog in ("noop", "lwtui")}
_FLOOR_OF.update({("lwtui+8 compound", "allowed"): FLOOR["comp"], ("lwtui", "dropped"): FLOOR["dropped"],
             ("minimal", "dropped"): FLOOR["dropped"], ("lwtui+1000 rules", "allowed"): FLOOR["ruled"],
             ("lwtui+1000 rules+8 compound", "allowed"): FLOOR["both"]})


def _floor(c: Cases, prog: str, hook: str, kind: str, variant: str) -> list[float]:
    """The no-op's ns/run timed next to this case in each round."""
    return c.ns[("noop", hook, kind, _FLOOR_OF.get((prog, variant), "allowed"))]


def _x_no_rules(c: Cases, prog: str, hook: str, kind: str) -> Spread:
    """Per round: (case / its no-op) over (lwtui without rules / its no-op)."""
    ns, fl = c.ns[(prog, hook, kind, "allowed")], _floor(c, prog, hook, kind, "allowed")
    base, bfl = c.ns[("lwtui", hook, kind, "allowed")], c.ns[("noop", hook, kind, "allowed")]
    return Spread.of([(a / f) / (b / g) for a, f, b, g in zip(ns, fl, base, bfl)])


def _summarise(res: Result, c: Cases, new: dict, rounds: int) -> None:
    for (prog, hook, kind, variant), ns in c.ns.items():
        if variant.startswith("floor:") or (prog == "noop" and variant == STATS_CASE):
            continue
        floor = _floor(c, prog, hook, kind, variant)
        row = {"section": "steady", "program": prog, "hook": hook, "packet": kind, "case": variant,
               "ns": Spread.of(ns).as_dict(1), "x_noop": ratio_spread(ns, floor).as_dict(2)}
        if prog.startswith("lwtui") and ("minimal", hook, kind, variant) in c.ns:
            row["x_minimal"] = ratio_spread(ns, c.ns[("minimal", hook, kind, variant)]).as_dict(2)
        if prog.startswith("lwtui+"):
            row["x_no_rules"] = _x_no_rules(c, prog, hook, kind).as_dict(3)
        if variant == STATS_CASE:  # what turning them on adds, to the no-op and to lwtui
            row["noop_ns"] = Spread.of(floor).as_dict(1)
            row["noop_added_ns"] = Spread.of([a - b for a, b in zip(floor, c.ns[("noop", hook, kind, "allowed")])]
                                             ).as_dict(1)
            row["added_ns"] = Spread.of([a - b for a, b in zip(ns, c.ns[("lwtui", hook, kind, "allowed")])]
                                        ).as_dict(1)
        res.rows.append(row)
    for (prog, kind, rules), per_round in new.items():
        nw = [r["new"] for r in per_round]
        ex = [r["existing"] for r in per_round]
        fl = [r["noop"] for r in per_round]
        res.rows.append({"section": "new_flow", "program": prog, "hook": "out", "packet": kind, "rules": rules,
                         "ns_new": Spread.of(nw).as_dict(1), "ns_existing": Spread.of(ex).as_dict(1),
                         "ns_noop": Spread.of(fl).as_dict(1),
                         "new_minus_existing_ns": Spread.of([a - b for a, b in zip(nw, ex)]).as_dict(1),
                         "new_minus_noop_ns": Spread.of([a - b for a, b in zip(nw, fl)]).as_dict(1)})
    for hook in HOOKS:
        key = ("lwtui", hook, "tcp", "allowed")
        x = ratio_spread(c.ns[key], c.ns[("noop", hook, "tcp", "allowed")])
        res.target(f"lwtui {hook}, existing IPv4 TCP flow, allowed: ns/run vs no-op", x.median, 2.0,
                   higher_is_better=False, unit="x",
                   detail=f"{x.low:.2f}-{x.high:.2f} over {rounds} rounds")
        for prog, what in (("lwtui+1000 rules", "1,000 single-key rules"),
                           ("lwtui+8 compound", "8 compound rules (the compound map's limit)"),
                           ("lwtui+1000 rules+8 compound", "1,000 single-key + 8 compound rules")):
            y = _x_no_rules(c, prog, hook, "tcp")
            res.target(f"lwtui {hook}, same case, {what} vs none", y.median, 1.10,
                       higher_is_better=False, unit="x",
                       detail=f"{y.low:.3f}-{y.high:.3f} over {rounds} rounds")
