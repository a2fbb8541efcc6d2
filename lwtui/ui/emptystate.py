"""What the flow area says when there is nothing to show, and what to try."""

from __future__ import annotations

import ipaddress

from rich.text import Text
from textual.widgets import Static

from lwtui.core.model import Snapshot
from lwtui.core.units import fmt_duration, plural


def _probe_address(prefix: str) -> str:
    """An address inside the prefix worth pinging: the address itself for a host route."""
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:      # not a prefix (a label from a recording): show it as given
        return prefix
    if net.num_addresses <= 2:
        return str(net.network_address)
    return str(net.network_address + 1)


def no_traffic_text(snap: Snapshot, other_routes: list[dict] | None = None) -> Text:
    """No flow has been seen on any attached route yet."""
    out = Text()
    out.append("No traffic yet", style="bold")
    waited = fmt_duration(max(0.0, snap.time - snap.started))
    out.append(f" on the attached routes (watching for {waited}).\n\n", style="")
    out.append("lwtui counts packets that take these routes:\n", style="dim")
    for r in snap.routes:
        where = f"ip netns exec {r.netns} " if r.netns else ""
        addr = _probe_address(r.prefix)
        if r.hook == "in":
            tip = f"traffic delivered to {addr} (from a peer: ping -c 3 {addr})"
        else:
            ping = "ping -6" if ":" in addr else "ping"
            tip = f"traffic sent to {r.prefix}: {where}{ping} -c 3 {addr}"
        out.append(f"  • {r.prefix} ({r.hook})", style="bold cyan").append(f"  {tip}\n")
    out.append("\nStill nothing? Check that the route is the one used: ", style="dim")
    first = snap.routes[0] if snap.routes else None
    if first is not None:
        where = f"ip netns exec {first.netns} " if first.netns else ""
        out.append(f"{where}ip route get {_probe_address(first.prefix)}", style="bold")
    out.append("\n`out` and `xmit` see packets leaving through the route, `in` packets delivered "
               "to a local address.", style="dim")
    attached = {r.prefix for r in snap.routes}
    others = [r for r in other_routes or [] if r.get("hooks") and r.get("prefix") not in attached]
    if others:
        out.append("\n\nOther routes in this namespace lwtui could watch:\n", style="dim")
        for o in others[:6]:
            out.append(f"  {o.get('prefix')}", style="cyan")
            out.append(f"  dev {o.get('dev')}  table {o.get('table')}  hooks {','.join(o.get('hooks', []))}\n",
                       style="dim")
    return out


def routes_gone_text(reasons: list[str]) -> Text:
    """Every watched route went away: nothing more can be counted."""
    out = Text.assemble(("No routes attached any more: press q.", "bold red"),
                        ("\n\nEvery route this session watched went away (deleted, or its device or "
                         "namespace removed): nothing is counted any more.\n", ""))
    if reasons:
        out.append("\n")
        for text in reasons[-6:]:
            out.append("  • ", style="red").append(text + "\n")
    return out


def filtered_out_text(filter_text: str, hidden: int) -> Text:
    """Flows exist but the filter hides them all."""
    return Text.assemble(("No flow matches ", "bold"), (filter_text, "bold yellow"),
                         (f"  ({plural(hidden, 'flow')} hidden).\n\n", ""),
                         ("Press / to change the filter; / then Enter on an empty line clears it.", "dim"))


class EmptyState(Static):
    """Shown in place of the flow table; the app calls one of the show_* methods."""

    def show_no_traffic(self, snap: Snapshot, other_routes: list[dict] | None) -> None:
        self.update(no_traffic_text(snap, other_routes))

    def show_routes_gone(self, reasons: list[str]) -> None:
        self.update(routes_gone_text(reasons))

    def show_filtered(self, filter_text: str, hidden: int) -> None:
        self.update(filtered_out_text(filter_text, hidden))
