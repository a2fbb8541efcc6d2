"""The detail pane: everything about the selected flow, and a larger rate chart."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Static

from lwtui.core.model import FlowRecord
from lwtui.core.units import fmt_bits, fmt_bytes, fmt_count, fmt_duration
from lwtui.ui.cells import MARKERS, VERDICT_WORDS, addr_text, clock_text, flags_text, rate_pkts
from lwtui.ui.chart import bar_chart

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
    return ((f"{addr_text(f.src)}:{f.sport} → {addr_text(f.dst)}:{f.dport}", "bold"), frag)


def sender_note(rec: FlowRecord) -> str:
    """What a sender on this host sees of a drop at out/xmit, so nobody takes it for a permissions
    problem: BPF_DROP there returns EPERM to the sending socket (UDP, ICMP: at once); TCP sees
    nothing, retransmits and times out. At `in`, and for forwarded packets, the drop is silent."""
    if rec.verdict != "drop" or rec.id.hook not in ("out", "xmit"):
        return ""
    if rec.id.proto == 6:
        return "a TCP sender on this host retransmits, then times out: this block"
    return 'a sender on this host gets EPERM, "Operation not permitted": this block, not its permissions'


def detail_text(rec: FlowRecord, now: float) -> Text:
    """The left side of the pane, as Rich text."""
    f = rec.id
    out = Text()
    _row(out, "flow", *_key_parts(rec))
    _row(out, "key", f"hook {f.hook} · IPv{f.family} · proto {f.proto_name} ({f.proto})")
    mark, style = MARKERS.get(rec.verdict, ("?", "magenta"))
    verdict = [(f"{mark} {VERDICT_WORDS.get(rec.verdict, rec.verdict)}", style)]
    if rec.verdict != "allow":
        verdict += [("  by ", "dim"), (rec.rule or "a rule (not listed)", "bold"), ("   a allows it again", "dim")]
    else:
        verdict += [("   d drop flow · h block host · p block port", "dim")]
    _row(out, "verdict", *verdict)
    note = sender_note(rec)
    if note:
        _row(out, "sender", (note, "yellow"))
    _row(out, "counters", (fmt_count(rec.packets), "bold"), " pkts   ", (fmt_bytes(rec.bytes), "bold"),
         "   ", (fmt_count(rec.drops), "bold red" if rec.drops else "bold"), " drops",
         (f" ({fmt_count(rec.drops_ps)}/s)" if rec.drops_ps else "", "red"))
    _row(out, "rate", (fmt_bits(rec.bps), "bold"), "   ", (rate_pkts(rec.pps), "bold"))
    _row(out, "tcp flags", flags_text(f, rec.tcp_flags, long=True))
    _row(out, "first", clock_text(rec.first_seen), (f"  ({fmt_duration(now - rec.first_seen)} ago)", "dim"))
    _row(out, "last", clock_text(rec.last_seen), (f"  (idle {fmt_duration(rec.idle(now))})", "dim"))
    out.rstrip()
    return out


class RateChart(Widget):
    """Bits/s history of one flow, newest on the right, scaled to its peak, from 0."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.values: list[float] = []
        self.style_name = "cyan"
        self.interval = 1.0   # seconds per tick, for the time axis

    def set_values(self, values: list[float], style: str) -> None:
        self.values, self.style_name = values, style
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        peak = max(self.values, default=0.0)
        label_w = 11
        cols = max(1, width - label_w - 1)
        shown = self.values[-cols:]
        # A young flow's few ticks are widened (up to 4 columns each) to fill the chart.
        each = max(1, min(MAX_STRETCH, cols // max(1, len(shown))))
        wide = [v for v in shown for _ in range(each)]
        lines = bar_chart(wide, len(wide) or cols, max(1, height - 1), top=peak or None)
        out = Text()
        for i, line in enumerate(lines):
            label = fmt_bits(peak) if i == 0 else ("0" if i == len(lines) - 1 else "")
            out.append(f"{label:>{label_w - 1}} ", style="dim")
            out.append(line, style=self.style_name)
            out.append("\n")
        if shown:
            left = f"-{fmt_duration(len(shown) * self.interval)}"
            out.append(" " * label_w + left.ljust(max(0, len(wide) - 3)) + "now", style="dim")
        else:
            out.append(" " * label_w + "no history yet", style="dim")
        return out


class DetailPane(Horizontal):
    """Info on the left, chart on the right; the app calls show(record, now)."""

    def compose(self) -> ComposeResult:
        yield Static("", id="detail-info")
        yield RateChart(id="detail-chart")

    def show(self, rec: FlowRecord | None, now: float) -> None:
        info = self.query_one("#detail-info", Static)
        chart = self.query_one(RateChart)
        if rec is None:
            info.update(Text(" no flow selected", style="dim"))
            chart.set_values([], "cyan")
            return
        info.update(detail_text(rec, now))
        style = {"drop": "red", "would-drop": "yellow"}.get(rec.verdict, "cyan")
        chart.set_values(list(rec.history), style)
