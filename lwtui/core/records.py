"""Flows, rules and events as JSON-ready records, with times in RFC 3339 UTC.

One shape for every output: `watch --json` lines, `rules --json`,
`sessions --json` and the dashboard's CSV/JSON exports all write these, so a
field is named and formatted the same wherever it appears.
"""

from __future__ import annotations

import datetime as dt

from lwtui.core.compound import CompoundRule
from lwtui.core.eventlog import level_of
from lwtui.core.grammar import parse_rule
from lwtui.core.model import EventEntry, FlowId, FlowRecord, Owner, RuleEntry


def rfc3339(ts: float) -> str:
    """Seconds since the epoch as RFC 3339 UTC with milliseconds: 2026-01-01T12:00:00.000Z."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def flow_fields(f: FlowId) -> dict:
    """The key of a flow; ICMP carries icmp_type/icmp_code in place of ports."""
    d: dict = {"hook": f.hook, "proto": f.proto_name, "src": str(f.src), "dst": str(f.dst)}
    if f.is_icmp:
        d.update(icmp_type=f.sport, icmp_code=f.dport)
    else:
        d.update(sport=f.sport, dport=f.dport)
    if f.fragment:
        d["fragment"] = True
    return d


def flow_json(r: FlowRecord, owner: Owner | None = None) -> dict:
    d = {"type": "flow", **flow_fields(r.id), "packets": r.packets, "bytes": r.bytes,
         "drops": r.drops, "would_drops": r.would_drops, "verdict": r.verdict}
    if r.rule:
        d["rule"] = r.rule
    if owner is not None:   # the process behind the flow's local socket, where known
        d.update(pid=owner.pid, comm=owner.comm)
    d.update(first_seen=rfc3339(r.first_seen), last_seen=rfc3339(r.last_seen),
             pps=round(r.pps, 3), bps=round(r.bps, 3), drop_pps=round(r.drops_ps, 3),
             would_drop_pps=round(r.would_drops_ps, 3))
    return d


def event_json(e: EventEntry) -> dict:
    if e.kind == "new" and e.flow is not None:
        return {"type": "new", **flow_fields(e.flow), "time": rfc3339(e.time)}
    if e.kind == "drop" and e.flow is not None:
        return {"type": "drop", **flow_fields(e.flow), "time": rfc3339(e.time), "text": e.text}
    if e.kind == "lost":
        return {"type": "lost", "time": rfc3339(e.time), "text": e.text}
    return {"type": "log", "kind": e.kind, "time": rfc3339(e.time), "text": e.text}


def event_record(e: EventEntry) -> dict:
    """An event as the dashboard's event log shows it: time, kind, level, text, and its flow if any."""
    d = {"time": rfc3339(e.time), "kind": e.kind, "level": level_of(e.kind), "text": e.text}
    if e.flow is not None:
        d.update(flow_fields(e.flow))
    return d


def rule_json(r: RuleEntry) -> dict:
    """A rule as `rules --json` and `watch --json` give it; a compound rule
    (kind "rule") also with its terms, per conjunction (one kernel entry each)."""
    d = {"type": "rule", "rule": r.text, "kind": r.kind, "hits": r.hits,
         "expires_in": None if r.expires_in is None else round(r.expires_in, 3),
         "created": rfc3339(r.created), "dry_run": r.dry_run}
    if r.kind == "rule":
        rule = parse_rule(r.text)
        if isinstance(rule, CompoundRule):
            d["terms"] = rule.terms
    return d
