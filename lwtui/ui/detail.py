"""The detail pane: everything about the selected flow, and a larger rate chart."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Static

from lwtui.core.model import FlowRecord
from lwtui.core.names import endpoint
from lwtui.core.units import fmt_bits, fmt_bytes, fmt_count, fmt_duration, noun
from lwtui.ui.cells import MARKERS, VERDICT_WORDS, clock_text, flags_text, rate_pkts
from lwtui.ui.chart import stacked_chart

MAX_STRETCH = 4   # columns per tick at most, when a flow has few ticks of history


def _row(out: Text, label: str, *parts) -> None:
    out.append(f" {label:<10}", style="dim")
    out.append_text(Text.assemble(*parts))
    out.append("\n")


def _key_parts(rec: FlowRecord) -> tuple:
    f = rec.id
    if f.is_icmp:
        return ((f"{f.src} → {f.dst}", "bold"), f"   type {f.sport} code {f.dport}")
    frag = "   non-first fragment (no ports)" if f.fragment else ""
    return ((f"{endpoint(f.src, f.sport)} → {endpoint(f.dst, f.dport)}", "bold"), frag)


def sender_note(rec: FlowRecord) -> str:
    """What a sender on this host sees of a drop at out/xmit, so nobody takes it for a permissions
    problem: BPF_DROP there returns EPERM to the sending socket (UDP, ICMP: at once); TCP sees
    nothing, retransmits and times out. At `in`, and for forwarded packets, the drop is silent."""
    if rec.verdict != "drop" or rec.id.hook not in ("out", "xmit"):
        return ""
    if rec.id.proto == 6:
        return "local TCP senders: it retransmits, times out"
    return 'local senders get EPERM: this block'


def _process_parts(owners: dict, rec: FlowRecord) -> tuple:
    owner = owners.get(rec.id)
    if owner is None:
        return (("unknown", "dim"), ("   (no local socket found for this flow)", "dim"))
    return ((owner.comm, "bold"), f"   pid {owner.pid}   user {owner.user}")


def detail_text(rec: FlowRecord, now: float, owners: dict | None = None, recordings: tuple = ()) -> Text:
    """The left side of the pane, as Rich text; `owners` (Snapshot.owners) adds the process
    row where the session looks processes up, `recordings` (Snapshot.recordings) the pcap
    files this flow's dropped packets go to."""
    f = rec.id
    out = Text()
    _row(out, "flow", *_key_parts(rec))
    _row(out, "key", f"hook {f.hook} · IPv{f.family} · proto {f.proto_name} ({f.proto})")
    mark, style = MARKERS.get(rec.verdict, ("?", "magenta"))
    verdict = [(f"{mark} {VERDICT_WORDS.get(rec.verdict, rec.verdict)}", style)]
    if rec.verdict != "allow" and rec.rule:
        verdict += [("  by ", "dim"), (rec.rule, "bold"), ("   a allows it again", "dim")]
    elif rec.verdict != "allow":      # the kernel's verdict for its last packet; its rule is gone
        verdict += [("  by a rule lifted since its last packet", "dim")]
    else:
        verdict += [("   d drop flow · h block host · p block port", "dim")]
    _row(out, "verdict", *verdict)
    note = sender_note(rec)
    if note:
        _row(out, "sender", (note, "yellow"))
    _row(out, "counters", (fmt_count(rec.packets), "bold"), f" {noun(rec.packets, 'pkt')}   ",
         (fmt_bytes(rec.bytes), "bold"),
         "   ", (fmt_count(rec.drops), "bold red" if rec.drops else "bold"), " dropped",
         *((("   ", (fmt_count(rec.would_drops), "bold yellow"), " would-drop (passed, dry-run)")
            if rec.would_drops else ())))
    rates = [(fmt_bits(rec.bps), "bold"), "  ", (rate_pkts(rec.pps), "bold"), " passed   ",
             (rate_pkts(rec.drops_ps), "bold red" if rec.drops_ps else "bold"), " dropped"]
    if rec.would_drops_ps:
        rates += ["   ", (rate_pkts(rec.would_drops_ps), "bold yellow"), " would-drop"]
    _row(out, "rate", *rates)
    _row(out, "tcp flags", flags_text(f, rec.tcp_flags, long=True))
    _row(out, "first", clock_text(rec.first_seen), (f"  ({fmt_duration(now - rec.first_seen)} ago)", "dim"))
    _row(out, "last", clock_text(rec.last_seen), (f"  (idle {fmt_duration(rec.idle(now))})", "dim"))
    if owners is not None:
        _row(out, "process", *_process_parts(owners, rec))
    for r in recordings:
        if r.flow is None or r.flow == f:
            _row(out, "pcap", ("● REC ", "bold red"), (r.path, "bold"), f"  {fmt_count(r.packets)} pkts",
                 *(((f"  {fmt_count(r.skipped)} not written (file full)", "red"),) if r.skipped else ()),
                 *((("   w stops", "dim"),) if r.flow is not None else ()))
    out.rstrip()
    return out


class RateChart(Widget):
    """Bits/s history of one flow, newest on the right, scaled to its peak, from 0:
    what passed in the flow's colour, what was dropped stacked on it in red."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.values: list[float] = []
        self.dropped: list[float] = []
        self.style_name = "cyan"
        self.interval = 1.0   # seconds per tick, for the time axis

    def set_values(self, values: list[float], style: str, dropped: list[float] | None = None) -> None:
        """Passed bits/s per tick, and dropped bits/s per tick (aligned on the newest)."""
        self.values, self.style_name, self.dropped = values, style, list(dropped or ())
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        n = max(len(self.values), len(self.dropped))
        passed = [0.0] * (n - len(self.values)) + list(self.values)
        dropped = [0.0] * (n - len(self.dropped)) + self.dropped
        label_w = 11
        cols = max(1, width - label_w - 1)
        passed, dropped = passed[-cols:], dropped[-cols:]
        peak = max((a + b for a, b in zip(passed, dropped)), default=0.0)
        # A young flow's few ticks are widened (up to 4 columns each) to fill the chart.
        each = max(1, min(MAX_STRETCH, cols // max(1, len(passed))))
        wide_p = [v for v in passed for _ in range(each)]
        wide_d = [v for v in dropped for _ in range(each)]
        rows = stacked_chart(wide_p, wide_d, len(wide_p) or cols, max(1, height - 1), top=peak or None)
        styles = {"": "", "pass": self.style_name, "drop": "red", "split": f"{self.style_name} on red"}
        out = Text()
        for i, row in enumerate(rows):
            label = fmt_bits(peak) if i == 0 else ("0" if i == len(rows) - 1 else "")
            out.append(f"{label:>{label_w - 1}} ", style="dim")
            for char, part in row:
                out.append(char, style=styles[part])
            out.append("\n")
        if passed:
            left = f"-{fmt_duration(len(passed) * self.interval)}"
            out.append(" " * label_w + left.ljust(max(0, len(wide_p) - 3)) + "now", style="dim")
            if any(dropped):
                out.append("   ").append("█", style="red").append(" dropped", style="dim")
        else:
            out.append(" " * label_w + "no history yet", style="dim")
        return out


class DetailPane(Horizontal):
    """Info on the left, chart on the right; the app sets `owners` and calls show(record, now)."""

    owners: dict | None = None   # Snapshot.owners of the latest snapshot
    recordings: tuple = ()       # Snapshot.recordings of the latest snapshot

    def compose(self) -> ComposeResult:
        yield Static("", id="detail-info")
        yield RateChart(id="detail-chart")

    def show(self, rec: FlowRecord | None, now: float) -> None:
        info = self.query_one("#detail-info", Static)
        chart = self.query_one(RateChart)
        if rec is None:
            info.update(Text(" no flow selected", style="dim"), layout=False)   # its size is fixed (the .tcss)
            chart.set_values([], "cyan")
            return
        info.update(detail_text(rec, now, self.owners, self.recordings), layout=False)
        style = {"drop": "red", "would-drop": "yellow"}.get(rec.verdict, "cyan")
        chart.set_values(list(rec.history), style, list(rec.drop_history))
