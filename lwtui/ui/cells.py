"""How a flow looks in a table row: one Rich Text per column.

Pure formatting (Rich only, no widgets), so the table widget only diffs cells
and the detail pane reuses the same words.
"""

from __future__ import annotations

import time

from rich.text import Text

from lwtui.core import names
from lwtui.core.model import FlowId, FlowRecord
from lwtui.core.resolve import NameCache
from lwtui.core.units import fmt_bits, fmt_bytes, fmt_count, fmt_duration, sparkline

# (column key, label, width or None for auto-sized)
COLUMNS = [
    ("v", " ", 1),
    ("hook", "hook", 4),
    ("proto", "proto", 6),
    ("src", "source", None),
    ("dst", "destination", None),
    ("proc", "process", 18),
    ("pkts", "pkts", 6),
    ("bytes", "bytes", 8),
    ("bps", "bits/s", 10),
    ("pps", "pkts/s", 7),
    ("trend", "trend", 8),
    ("flags", "flags", 5),
    ("drops", "drop/s", 7),
    ("age", "age/idle", 11),
]
# The drops column in dry-run: the rate of packets a rule matched and that passed.
WOULD_DROPS_LABEL = "would/s"
RIGHT = {"pkts", "bytes", "bps", "pps", "drops", "age"}
TREND_WIDTH = 8

MARKERS = {"allow": ("●", "green"), "drop": ("×", "bold red"), "would-drop": ("◐", "bold yellow")}
VERDICT_WORDS = {"allow": "allowed", "drop": "DROPPED", "would-drop": "WOULD DROP (dry-run)"}

# names.TCP_FLAGS in the order a handshake reads: S A P F R U E C.
TCP_FLAGS = sorted(names.TCP_FLAGS, key=lambda flag: "SAPFRUEC".index(flag[1]))
ICMP_NAMES = {(1, 0): "reply", (1, 8): "echo", (1, 3): "unreach", (1, 11): "ttl-exc",
              (58, 128): "echo", (58, 129): "reply", (58, 1): "unreach", (58, 3): "ttl-exc",
              (58, 135): "nd-sol", (58, 136): "nd-adv"}


class KeyedText(Text):
    """A cell that knows its row's key, so the table can sort rows by our own order."""

    def __init__(self, *args, row_key: str = "", **kw):
        super().__init__(*args, **kw)
        self.row_key = row_key


def row_key(f: FlowId) -> str:
    """Stable string key of a flow (DataTable row keys are strings)."""
    return f"{f.hook} {f.proto} {f.src} {f.sport} {f.dst} {f.dport}" + (" frag" if f.fragment else "")


def endpoint(f: FlowId, src: bool, resolver: NameCache | None = None) -> str:
    """An address with its port; ICMP puts type/code on the destination instead. With a
    resolver (the dashboard's n), the host and service names where known."""
    addr, port = (f.src, f.sport) if src else (f.dst, f.dport)
    host = resolver.host(str(addr)) if resolver is not None else None
    if f.is_icmp:
        if src:
            return host or str(addr)
        name = ICMP_NAMES.get((f.proto, f.sport), "")
        return f"{host or addr} {f.sport}/{f.dport}" + (f" {name}" if name else "")
    if f.fragment:
        return f"{host or names.addr_text(addr)} (frag)"
    if resolver is None:
        return names.endpoint(addr, port)
    service = resolver.service(port, f.proto_name)
    return f"{host or names.addr_text(addr)}:{service or port}"


def flags_text(f: FlowId, flags: int, long: bool = False) -> str:
    """TCP flags seen, as letters (S A P F R U E C) or names; '-' for other protocols."""
    if f.proto != 6:
        return "-"
    parts = [name if long else letter for bit, letter, name in TCP_FLAGS if flags & bit]
    return (" " if long else "").join(parts) or "none"


def rate_bits(bps: float) -> str:
    return fmt_bits(bps)


def rate_pkts(pps: float) -> str:
    return f"{fmt_count(pps)}/s"


def age_text(rec: FlowRecord, now: float) -> str:
    return f"{fmt_duration(max(0.0, now - rec.first_seen))} / {fmt_duration(rec.idle(now))}"


def clock_text(t: float) -> str:
    """Wall-clock time of day, local time (TZ decides; tests pin it)."""
    return time.strftime("%H:%M:%S", time.localtime(t))


def drops_cell(rec: FlowRecord, base: str, faded: bool, dry_run: bool) -> Text:
    """The drops column: packets dropped per second, or in dry-run those a rule matched
    (they passed): never the one for the other."""
    rate, style = (rec.would_drops_ps, " bold yellow") if dry_run else (rec.drops_ps, " bold red")
    return Text(rate_pkts(rate) if rate else "·", justify="right",
                style=(base + style) if rate and not faded else base)


def process_cell(owners: dict | None, f: FlowId, base: str) -> Text:
    """The process behind the flow's local socket (Snapshot.owners): command and pid;
    "unknown" when none was found (never guessed); empty where nobody looks (a replay)."""
    if owners is None:
        return Text("")
    owner = owners.get(f)
    if owner is None:
        return Text("unknown", style="dim")
    return Text(f"{owner.comm} {owner.pid}", style=base)


def row_cells(rec: FlowRecord, now: float, fade_after: float, key: str,
              dry_run: bool = False, owners: dict | None = None,
              resolver: NameCache | None = None) -> tuple[Text, ...]:
    """The cells of one flow row, in COLUMNS order; idle flows are dimmed. Rates are
    of what passed (bits/s, pkts/s, trend) and of what was dropped (drop/s), or with
    dry_run of what a rule matched and passed (would/s). `owners`: Snapshot.owners;
    `resolver`: names for the endpoints (None: addresses and port numbers)."""
    f = rec.id
    faded = rec.idle(now) >= fade_after
    base = "dim" if faded else ""
    mark, mstyle = MARKERS.get(rec.verdict, ("?", "magenta"))
    marker = KeyedText(mark, style="dim " + mstyle if faded else mstyle, row_key=key)
    blocked = rec.verdict != "allow"
    addr_style = base + (" red" if rec.verdict == "drop" else " yellow" if blocked else "")
    # Headroom above the row's own peak: a steady flow reads as a level line,
    # not a solid slab merging with the rows around it.
    hist = list(rec.history)[-TREND_WIDTH:]
    trend = sparkline(hist, TREND_WIDTH, top=max(hist, default=0.0) * 1.15) if hist else ""
    trend_style = "red" if rec.verdict == "drop" else "yellow" if blocked else "cyan"
    return (
        marker,
        Text(f.hook, style=base),
        Text(f.proto_name, style=base),
        Text(endpoint(f, True, resolver), style=addr_style),
        Text(endpoint(f, False, resolver), style=addr_style),
        process_cell(owners, f, base),
        Text(fmt_count(rec.packets), justify="right", style=base),
        Text(fmt_bytes(rec.bytes), justify="right", style=base),
        Text(rate_bits(rec.bps), justify="right", style=base if rec.bps else "dim"),
        Text(rate_pkts(rec.pps), justify="right", style=base if rec.pps else "dim"),
        Text(trend, style="dim " + trend_style if faded else trend_style),
        Text(flags_text(f, rec.tcp_flags), style=base),
        drops_cell(rec, base, faded, dry_run),
        Text(age_text(rec, now), justify="right", style=base),
    )
