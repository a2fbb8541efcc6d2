"""`lwtui lab status` as a person reads it (a table) and as a script does (JSON, RFC 3339 times)."""

from __future__ import annotations

import time

from rich.markup import escape
from rich.table import Table

from lwtui.core.records import rfc3339
from lwtui.core.units import fmt_duration


def with_rfc3339_times(value: object) -> object:
    """A copy of JSON-ready data whose "started" times (seconds since the epoch) are RFC 3339."""
    if isinstance(value, dict):
        return {k: rfc3339(v) if k == "started" and isinstance(v, (int, float)) and not isinstance(v, bool)
                else with_rfc3339_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_rfc3339_times(v) for v in value]
    return value


def lab_table(st: dict) -> Table:
    """`lwtui lab status` for a person: one row per thing the lab has."""
    yes = lambda ok, good="yes", bad="no": f"[green]{good}[/]" if ok else f"[red]{bad}[/]"  # noqa: E731
    t = Table(title=f"lab {st['prefix']}: " + ("up" if st["up"] else "down"), title_justify="left",
              show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("traffic", yes(st["traffic"], "running", "stopped"))
    for ns, present in st["namespaces"].items():
        t.add_row(f"netns {ns}", yes(present, "present", "missing"))
    for name, proc in st["processes"].items():
        stats = proc.get("stats") or {}
        started = stats.get("started")
        since = f", started {fmt_duration(time.time() - started)} ago" if isinstance(started, (int, float)) else ""
        t.add_row(name, f"pid {proc['pid']} " + yes(proc["alive"], "alive", "gone") + since)
    for ns, addrs in st["addresses"].items():
        t.add_row(f"addresses {ns}", escape(", ".join(map(str, addrs))))
    t.add_row("services", escape("\n".join(st["services"])))      # [IPv6]:port is not markup
    t.add_row("state", escape(st["state_dir"]))
    return t
