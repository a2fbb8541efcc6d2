"""The header strip: what is attached, the totals, the mode, and how long it has run.

Three lines, always visible. Events lost and parse errors are shown even when
zero: a person should see that nothing was lost, not guess it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from lwtui.core.model import Snapshot
from lwtui.core.units import fmt_bits, fmt_cost, fmt_count, fmt_duration, noun

VIEWS = [("flows", "Flows"), ("groups", "Groups"), ("rules", "Rules"), ("events", "Events")]
ROUTES_GONE = "no routes attached any more: press q"
COMPACT_WIDTH = 100     # under this, the totals use shorter words


@dataclass
class HeaderState:
    """What the app tells the header besides the snapshot."""
    snapshot: Snapshot | None = None
    dry_run: bool = False
    paused: bool = False
    next_ttl: float | None = None
    view: str = "flows"
    session: str = ""
    errors: int = 0              # "error" events seen (a route went away): the Events tab says so
    extra: list[str] = field(default_factory=list)


def routes_text(snap: Snapshot) -> Text:
    """Attached routes grouped by prefix, with their hooks and namespace; a warning when none is left."""
    by_prefix: dict[tuple, list[str]] = {}
    for r in snap.routes:
        by_prefix.setdefault((r.prefix, r.netns), []).append(r.hook)
    namespaces = {ns for _, ns in by_prefix}
    out = Text(" routes ", style="bold")
    if not by_prefix:   # a session starts with at least one: every route went away since
        out.append(f" {ROUTES_GONE} ", style="bold white on red")
        return out.append("  (nothing is watched; e: the event log says why)", style="dim")
    for i, ((prefix, ns), hooks) in enumerate(by_prefix.items()):
        if i:
            out.append("  ·  ", style="dim")
        out.append(prefix, style="bold cyan").append(" " + ",".join(hooks), style="cyan")
        if len(namespaces) > 1:
            out.append(f" (netns {ns or 'host'})", style="dim")
    if len(namespaces) == 1:
        ns = next(iter(namespaces))
        out.append("   netns ", style="dim").append(ns or "host (initial namespace)")
    return out


def totals_text(snap: Snapshot, compact: bool = False) -> Text:
    """Rates and counters; loss and errors coloured when they are not zero. Packets/s and
    bits/s are of what passed; drops/s of what was dropped; in dry-run, would-drops/s of
    what a rule matched and let through. compact (a narrow terminal, which cuts the line's
    end): shorter words, a (nearly) full flow table first, and the flow count (also in the table's
    note) after events lost and parse errors, so those stay on screen."""
    t = snap.totals
    lost = max(t.events_lost, t.events_failed)  # the same losses, counted in the kernel and by the reader
    warning = None       # the flow table full, or nearly
    if t.flow_capacity and t.active_flows >= t.flow_capacity:
        warning = (f" FLOW TABLE FULL ({fmt_count(t.flow_capacity)})" + (" " if compact else
                   ": the least recent flows make room (--max-flows) "), "bold white on red")
    elif t.flow_capacity and t.active_flows >= 0.9 * t.flow_capacity:
        warning = (f" flow table {100 * t.active_flows // t.flow_capacity}% full ", "bold black on yellow")
    parts: list[tuple[str, str, str]] = [(fmt_count(t.pps), "pkts/s", "bold"),
                                         (fmt_bits(t.bps), "" if compact else "passed", "bold")]
    flows = (fmt_count(t.active_flows), noun(t.active_flows, "flow" if compact else "active flow"), "bold")
    if not compact:
        parts.append(flows)
    parts.append((fmt_count(t.drops_ps), "drops/s", "bold red" if t.drops_ps else "bold"))
    if snap.dry_run or t.would_drops_ps:    # matched a rule and passed: never shown as drops
        parts.append((fmt_count(t.would_drops_ps), "would/s" if compact else "would-drops/s",
                      "bold yellow" if t.would_drops_ps else "bold"))
    errors = (fmt_count(t.parse_errors), noun(t.parse_errors, "parse error"),
              "bold yellow" if t.parse_errors else "bold")
    events = (fmt_count(lost), f"{noun(lost, 'event')} lost", "bold white on red" if lost else "bold")
    parts += [events, errors, flows] if compact else [errors, events]
    if t.flows_evicted:     # the kernel's flow map is full: its LRU makes room (see --max-flows)
        parts.append((fmt_count(t.flows_evicted), "evicted" if compact else f"{noun(t.flows_evicted, 'flow')} evicted",
                      "bold yellow"))
        parts.append((fmt_count(t.flows_unseen), "unseen" if compact else "never shown",
                      "bold white on red" if t.flows_unseen else "bold"))
    if t.bpf_runtime:   # lwtui's own cost, from the kernel's run-time statistics
        parts.append((fmt_cost(t.ns_per_packet()), "ns/pkt", "bold"))
    out = Text(" ")
    if warning and compact:
        out.append(*warning)
    for value, label, style in parts:
        out.append("  ").append(value, style=style).append(f" {label}" if label else "", style="dim")
    if warning and not compact:
        out.append("  ").append(*warning)
    return out


def title_text(state: HeaderState) -> Text:
    """Name, mode badge, uptime, flags, session name: what a narrow terminal cuts comes last."""
    snap = state.snapshot
    out = Text.assemble((" lwtui ", "bold reverse"), " ")
    if state.dry_run:
        out.append(" DRY-RUN ", style="bold black on yellow")
    else:
        out.append(" MONITOR ", style="bold black on green")
    if snap is not None:
        out.append(f"  up {fmt_duration(max(0.0, snap.time - snap.started))}", style="dim")
    if snap is not None and snap.keep_blocks:
        out.append(" ").append(" KEEP-BLOCKS ", style="bold white on magenta")
    if snap is not None and snap.fallbacks:     # an older kernel's path (`lwtui doctor` says which and why)
        out.append(" ").append(f" FALLBACK {','.join(snap.fallbacks)} ", style="bold black on cyan")
    if state.paused:
        out.append(" ").append(" PAUSED ", style="bold white on blue")
        out.append(" space resumes (the kernel keeps counting)", style="dim")
    if snap is not None:
        for r in snap.recordings:   # pcap files being written (--pcap, w)
            out.append(" ").append(" ● REC ", style="bold white on red")
            out.append(f" {r.path} {fmt_count(r.packets)} pkts", style="bold")
        if snap.recordings:
            lost = snap.capture_lost + sum(r.skipped for r in snap.recordings)
            out.append(f" {fmt_count(lost)} lost", style="bold red" if lost else "dim")
    if state.next_ttl:
        out.append(" ").append(f" next block: TTL {fmt_duration(state.next_ttl)} ", style="bold black on cyan")
    for extra in state.extra:
        out.append("  " + extra, style="yellow")
    out.append(f"  session {state.session or (snap.session if snap else '')}", style="dim")
    return out


def tabs_text(state: HeaderState) -> Text:
    """The view tabs; a click on one runs app.show_view (the same views as f, r, e)."""
    out = Text()
    count = len(state.snapshot.rules) if state.snapshot else 0
    for key, label in VIEWS:
        name = f"{label} ({count})" if key == "rules" and count else label
        style = "bold reverse" if key == state.view else "dim"
        if key == "events" and state.errors:
            name += f" ({state.errors} error{'s' if state.errors > 1 else ''})"
            style = "bold white on red"
        out.append(f" {name} ", style=Style.parse(style) + Style(meta={"@click": f"app.show_view({key!r})"}))
        out.append(" ")
    return out


class HeaderStrip(Static):
    """Renders HeaderState; the app calls show() with a new state."""

    def __init__(self, **kw):
        super().__init__("", **kw)
        self.state = HeaderState()

    @property
    def link_style(self) -> Style:
        """The tabs are links (clickable) but keep their own look, not Textual's link colour."""
        return Style()

    def show(self, **changes) -> None:
        """Change some HeaderState fields and redraw."""
        for k, v in changes.items():
            setattr(self.state, k, v)
        top = Table.grid(expand=True)
        top.add_column(ratio=1, no_wrap=True)
        top.add_column(justify="right", no_wrap=True)
        top.add_row(title_text(self.state), tabs_text(self.state))
        snap = self.state.snapshot
        if snap is None:
            self.update(Group(top, Text(" waiting for the first snapshot…", style="dim")))
            return
        lines = [routes_text(snap), totals_text(snap, compact=self.app.size.width < COMPACT_WIDTH)]
        for line in lines:      # one line each: a narrow terminal cuts the end, never wraps it away
            line.no_wrap, line.overflow = True, "ellipsis"
        self.update(Group(top, *lines), layout=False)   # three lines high (the stylesheet): no layout pass

    def on_resize(self) -> None:
        self.show()
