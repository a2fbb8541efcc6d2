"""Recorded snapshots, and a Session stand-in that plays them back.

The dashboard talks to a session through the interface in
lwtui.session.protocol (`SessionLike`). A
`ReplaySession` implements that interface over a list of recorded `Snapshot`s,
so screenshots, snapshot tests and demos show the same screen every time
without a kernel. Blocks and allows act on the replay's own rule list and flip
the verdict of the flows they match, as the kernel maps would.

Recording format (JSON, one file):
    {"format": "lwtui-recording", "version": 1, "snapshots": [SNAPSHOT, ...]}
where SNAPSHOT is `Snapshot` as a dict (dataclasses.asdict shape), addresses
as strings, `history` as a list. Pure Python: no BCC, no netlink, no textual.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from lwtui.session.guard import ssh_flow_blocked_by
from lwtui.core.model import AttachedRoute, EventEntry, FlowId, FlowRecord, RuleEntry, Snapshot, Totals
from lwtui.core.grammar import parse_rule
from lwtui.core.rules import FLOW_DRY_RUN, Rule, rule_for, rules_blocking
from lwtui.core.pcap import PcapWriter
from lwtui.session.protocol import SessionError

if TYPE_CHECKING:
    from lwtui.net.routes import Target

FORMAT = "lwtui-recording"
_PRECEDENCE = {"flow": 0, "host": 1, "port": 2, "rule": 3}
VERSION = 1


# -- serialisation ----------------------------------------------------------

def _flow_id_to_dict(f: FlowId) -> dict:
    return {"hook": f.hook, "proto": f.proto, "src": str(f.src), "sport": f.sport,
            "dst": str(f.dst), "dport": f.dport, "fragment": f.fragment}


def _flow_id_from_dict(d: dict) -> FlowId:
    return FlowId(hook=d["hook"], proto=int(d["proto"]), src=ipaddress.ip_address(d["src"]),
                  sport=int(d["sport"]), dst=ipaddress.ip_address(d["dst"]), dport=int(d["dport"]),
                  fragment=bool(d.get("fragment", False)))


def snapshot_to_dict(s: Snapshot) -> dict:
    """A Snapshot as plain JSON-ready data."""
    flows = []
    for r in s.flows:
        d = {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name != "id"}
        d["id"] = _flow_id_to_dict(r.id)
        d["history"] = list(r.history)
        d["drop_history"] = list(r.drop_history)
        flows.append(d)
    events = [{"time": e.time, "kind": e.kind, "text": e.text,
               "flow": _flow_id_to_dict(e.flow) if e.flow else None} for e in s.events]
    return {"time": s.time, "flows": flows, "totals": dataclasses.asdict(s.totals),
            "rules": [dataclasses.asdict(r) for r in s.rules], "events": events,
            "routes": [dataclasses.asdict(r) for r in s.routes], "dry_run": s.dry_run,
            "keep_blocks": s.keep_blocks, "started": s.started, "session": s.session,
            "fallbacks": list(s.fallbacks)}


def snapshot_from_dict(d: dict) -> Snapshot:
    """The inverse of snapshot_to_dict."""
    flows = []
    for fd in d.get("flows", []):
        fd = dict(fd)
        fid = _flow_id_from_dict(fd.pop("id"))
        fd["history"] = tuple(fd.get("history", ()))
        fd["drop_history"] = tuple(fd.get("drop_history", ()))
        flows.append(FlowRecord(id=fid, **fd))
    events = [EventEntry(time=e["time"], kind=e["kind"], text=e["text"],
                         flow=_flow_id_from_dict(e["flow"]) if e.get("flow") else None)
              for e in d.get("events", [])]
    return Snapshot(time=d["time"], flows=flows, totals=Totals(**d.get("totals", {})),
                    rules=[RuleEntry(**r) for r in d.get("rules", [])], events=events,
                    routes=[AttachedRoute(**r) for r in d.get("routes", [])],
                    dry_run=d.get("dry_run", False), keep_blocks=d.get("keep_blocks", False),
                    started=d.get("started", 0.0), session=d.get("session", ""),
                    fallbacks=tuple(d.get("fallbacks", ())))


def record_snapshots(snapshots: Iterable[Snapshot], path: str | os.PathLike) -> Path:
    """Write snapshots to a recording file (see the module docstring); returns the path."""
    lines = [json.dumps(snapshot_to_dict(s), separators=(",", ":")) for s in snapshots]
    p = Path(path)
    # One snapshot per line: diffs of a regenerated recording stay readable.
    p.write_text(f'{{"format": "{FORMAT}", "version": {VERSION}, "snapshots": [\n'
                 + ",\n".join(lines) + "\n]}\n")
    return p


def load_recording(path: str | os.PathLike) -> list[Snapshot]:
    """Read a recording file; ValueError names what is wrong with it."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not an lwtui recording (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: recording version {data.get('version')}, this lwtui reads {VERSION}")
    snaps = [snapshot_from_dict(s) for s in data.get("snapshots", [])]
    if not snaps:
        raise ValueError(f"{path}: the recording holds no snapshots")
    return snaps


# -- playback ---------------------------------------------------------------

def _split_history(rec: FlowRecord, dropped: list[bool]) -> None:
    """Move the bits/s of the ticks that were dropped (flags aligned on the newest)
    from the flow's history to its drop history."""
    hist = list(rec.history)
    flags = ([False] * len(hist) + dropped)[-len(hist):] if hist else []
    rec.drop_history = tuple(v if f else 0.0 for v, f in zip(hist, flags))
    rec.history = tuple(0.0 if f else v for v, f in zip(hist, flags))


@dataclasses.dataclass
class _Active:
    """A rule the replay holds, with the bookkeeping the kernel maps would keep."""
    rule: Rule
    created: float
    expires_at: float | None
    hits: int = 0
    would_drops: int = 0
    dry_run: bool = False       # this rule alone counts would-drops


class ReplaySession:
    """Plays recorded Snapshots through the Session interface the dashboard uses.

    Each snapshot() call serves the next recorded frame (the last one again
    once the recording ends), with the replay's rules applied: matching flows
    get verdict "drop" ("would-drop" in dry-run) and count the packets seen
    since as drops. Every call the dashboard makes is appended to `calls`, so
    tests can assert on exactly what a key press asked for. `start` skips
    the first frames (a screenshot wants flows with some history already).
    """

    def __init__(self, snapshots: Iterable[Snapshot], *, name: str | None = None,
                 dry_run: bool | None = None, start: int = 0):
        self._frames = [copy.deepcopy(s) for s in snapshots]
        if not self._frames:
            raise ValueError("a replay needs at least one snapshot")
        first = self._frames[0]
        self.name = name or first.session or "replay"
        self.dry_run = first.dry_run if dry_run is None else dry_run
        self.keep_blocks = False        # the replay's rules end with it
        self.calls: list[tuple] = []
        self.lost: list[tuple[Target, str]] = []   # a recording loses no route of its own
        self._index = min(max(0, start), len(self._frames) - 1)
        self._now = self._frames[self._index].time
        self._lock = threading.Lock()
        self._closed = threading.Event()
        # Events of skipped frames come out with the first snapshot, as a
        # session's first snapshot carries everything since it started.
        self._events: list[EventEntry] = [e for f in self._frames[:self._index] for e in f.events]
        self._rules: dict[str, _Active] = {}
        self._extra_drops: dict[FlowId, int] = {}
        self._extra_would: dict[FlowId, int] = {}
        self._dropped_ticks: dict[FlowId, list[bool]] = {}
        self._last_packets: dict[FlowId, int] = {}
        for entry in first.rules:
            self._rules[entry.text] = _Active(parse_rule(entry.text), entry.created,
                                              None if entry.expires_in is None
                                              else first.time + entry.expires_in, entry.hits,
                                              entry.would_drops)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def frame(self) -> int:
        """Index of the next frame snapshot() will serve."""
        return self._index

    # -- the Session interface ------------------------------------------
    def snapshot(self) -> Snapshot:
        """The next recorded frame, with the replay's rules and events applied."""
        with self._lock:
            snap = copy.deepcopy(self._frames[self._index])
            self._index = min(self._index + 1, len(self._frames) - 1)
            self._now = snap.time
            self._expire(snap.time)
            self._apply_rules(snap)
            snap.events = snap.events + self._events
            self._events = []
            snap.rules = self._entries(snap.time)
            snap.dry_run = self.dry_run
            snap.session = self.name
            return snap

    def poll_events(self, timeout_ms: int = 100) -> None:
        """Events come with the frames: just wait, as a real reader would."""
        self._closed.wait(timeout_ms / 1000)

    def block(self, rule: Rule | str, ttl: float | None = None) -> Rule:
        r = parse_rule(rule) if isinstance(rule, str) else rule
        self.calls.append(("block", r.text, ttl))
        with self._lock:
            self._rules[r.text] = _Active(r, self._now, None if not ttl else self._now + ttl)
            self._log("block", f"block {r.text}" + (f" for {ttl:g}s" if ttl else ""))
        return r

    def would_cut_ssh(self, rule: Rule | str) -> str | None:
        """As Session.would_cut_ssh: the user's own SSH connection when `rule` would block it."""
        return ssh_flow_blocked_by(parse_rule(rule) if isinstance(rule, str) else rule)

    def allow(self, rule: Rule | str) -> bool:
        r = parse_rule(rule) if isinstance(rule, str) else rule
        self.calls.append(("allow", r.text))
        with self._lock:
            gone = self._rules.pop(r.text, None) is not None
            if gone:
                self._log("allow", f"allow {r.text}")
        return gone

    def block_flow(self, flow: FlowId, kind: str = "flow", ttl: float | None = None) -> Rule:
        self.calls.append(("block_flow", flow, kind, ttl))
        return self.block(rule_for(flow, kind), ttl=ttl)

    def allow_flow(self, flow: FlowId) -> list[Rule]:
        self.calls.append(("allow_flow", flow))
        with self._lock:
            active = [a.rule for a in self._rules.values()]
        return [r for r in rules_blocking(flow, active) if self.allow(r)]

    def rules(self) -> list[RuleEntry]:
        with self._lock:
            return self._entries(self._now)

    def set_ttl(self, rule: Rule | str, ttl: float | None) -> bool:
        r = parse_rule(rule) if isinstance(rule, str) else rule
        self.calls.append(("set_ttl", r.text, ttl))
        with self._lock:
            held = self._rules.get(r.text)
            if held is not None:
                held.expires_at = None if not ttl else self._now + ttl
        return held is not None

    def set_rule_dry_run(self, rule: Rule | str, on: bool) -> bool:
        r = parse_rule(rule) if isinstance(rule, str) else rule
        self.calls.append(("set_rule_dry_run", r.text, on))
        if r.kind == "flow":    # as the kernel's store: the flag lives in a compound entry
            raise ValueError(FLOW_DRY_RUN)
        with self._lock:
            held = self._rules.get(r.text)
            if held is not None:
                held.dry_run = on
        return held is not None

    def set_dry_run(self, on: bool) -> None:
        self.calls.append(("set_dry_run", on))
        with self._lock:
            self.dry_run = on
            self._log("info", "dry-run on: rules count would-drops, nothing is dropped" if on
                      else "dry-run off: rules drop packets")

    def record(self, writer: PcapWriter, flow: FlowId | None = None) -> None:
        """A replay has no packets: refused, and the file is removed again."""
        self.calls.append(("record", writer.path, flow))
        writer.discard()
        raise SessionError("a replay has no packets to record: recording needs a live session")

    def stop_recording(self, writer: PcapWriter) -> None:
        writer.close()

    def close(self) -> list[str]:
        self._closed.set()
        return []

    # -- internals ------------------------------------------------------
    def _log(self, kind: str, text: str) -> None:
        self._events.append(EventEntry(time=self._now, kind=kind, text=text))

    def _expire(self, now: float) -> None:
        for text, a in list(self._rules.items()):
            if a.expires_at is not None and a.expires_at <= now:
                del self._rules[text]
                self._log("allow", f"rule expired: {text}")

    def _apply_rules(self, snap: Snapshot) -> None:
        """Recompute every flow's verdict from the replay's rules, as the kernel would: a
        blocked flow's packets since the block are dropped (would-drops in dry-run, which
        pass), its rates and history move from passed to dropped."""
        active = [a.rule for a in self._rules.values()]
        moved = {"pps": 0.0, "bps": 0.0, "drops_ps": 0.0, "would_drops_ps": 0.0}
        for rec in snap.flows:
            delta = max(0, rec.packets - self._last_packets.get(rec.id, rec.packets))
            self._last_packets[rec.id] = rec.packets
            # The kernel looks up exact flow, then host, then port: the first hit decides.
            matched = sorted(rules_blocking(rec.id, active), key=lambda r: _PRECEDENCE[r.kind]) if active else []
            # As the kernel: the first enforcing rule drops; dry-run rules only count (would-drop).
            enforcing = [r for r in matched if not self._rules[r.text].dry_run]
            matched = enforcing[:1] + [r for r in matched if r not in enforcing[:1]]
            dropping = bool(enforcing) and not self.dry_run
            word = "would-drop" if self.dry_run or not enforcing else "drop"
            ticks = self._dropped_ticks[rec.id] = (self._dropped_ticks.get(rec.id, []) + [dropping])[-256:]
            if not matched:
                rec.verdict, rec.rule = "allow", ""
            else:
                rec.verdict, rec.rule = word, matched[0].text
                held = self._rules[matched[0].text]
                held.hits += delta
                held.would_drops += 0 if dropping else delta
                counts = self._extra_drops if dropping else self._extra_would
                counts[rec.id] = counts.get(rec.id, 0) + delta
                if dropping:
                    moved["pps"] -= rec.pps
                    moved["bps"] -= rec.bps
                    moved["drops_ps"] += rec.pps
                    rec.drops_ps, rec.pps, rec.bps = rec.pps, 0.0, 0.0
                else:
                    moved["would_drops_ps"] += rec.pps
                    rec.would_drops_ps = rec.pps
            rec.drops += self._extra_drops.get(rec.id, 0)
            rec.would_drops += self._extra_would.get(rec.id, 0)
            if any(ticks):
                _split_history(rec, ticks)
        t = snap.totals
        snap.totals = dataclasses.replace(
            t, drops=t.drops + sum(self._extra_drops.values()),
            would_drops=t.would_drops + sum(self._extra_would.values()),
            **{k: max(0.0, getattr(t, k) + v) for k, v in moved.items()})

    def _entries(self, now: float) -> list[RuleEntry]:
        return [RuleEntry(text=text, kind=a.rule.kind, hits=a.hits,
                          expires_in=None if a.expires_at is None else max(0.0, a.expires_at - now),
                          created=a.created, would_drops=a.would_drops, dry_run=a.dry_run)
                for text, a in self._rules.items()]
