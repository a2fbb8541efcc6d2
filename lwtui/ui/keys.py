"""The dashboard's keys, in one list: the app's bindings and the help screen both read it."""

from __future__ import annotations

from textual.binding import Binding, BindingType

# (keys, action, footer label, help text, shown in footer)
KEYS = [
    ("j,down", "cursor_down", "down", "move down (also in the rules view)", False),
    ("k,up", "cursor_up", "up", "move up", False),
    ("home,g", "first", "first", "first row (click a column header to sort by it, again to reverse)", False),
    ("end,G", "last", "last", "last row", False),
    ("F", "toggle_follow", "follow", "follow the selected flow as it moves (off: the view stays put)", False),
    ("enter", "toggle_detail", "detail", "show or hide the detail pane of the selected flow", True),
    ("d", "block('flow')", "drop", "drop the selected flow (exact 5-tuple, both directions)", True),
    ("h", "block('host')", "host", "block the selected flow's remote host", True),
    ("p", "block('port')", "port", "block the selected flow's service port", True),
    ("b", "block_filter", "block filter", "block exactly what the filter (/) shows: asks first, naming the "
     "rule and how many flows it matches now", False),
    ("a", "allow", "allow", "allow the selected flow again: lifts whichever rule blocks it (undo)", True),
    ("y", "copy_flow", "copy", "copy the selected flow as a rule (flow tcp SRC:PORT DST:PORT) to the clipboard", False),
    ("Y", "copy_endpoints", "copy endpoints", "copy the selected flow's endpoints (SRC:PORT DST:PORT)", False),
    ("w", "record", "record", "record the selected flow's dropped and would-drop packets to a pcap file, "
     "named on screen (w again stops)", False),
    ("t", "ttl", "ttl", "set a TTL (seconds) for the next block; in the rules view: a new TTL for the selected rule",
     True),
    ("slash", "filter", "filter", "filter with the rule grammar: host 10.0.0.3 and port 8080, not proto udp", True),
    ("s", "cycle_sort", "sort", "cycle the sort column (rate, pkts/s, bytes, packets, drops, age)", True),
    ("space", "pause", "pause", "pause the display (the kernel keeps counting)", True),
    ("r", "view('rules')", "rules", "rules view: active verdicts; x or delete removes one", True),
    ("n", "toggle_names", "names", "in the flow view: host names (reverse DNS, in the background) and service "
     "names (/etc/services) instead of addresses and ports; n again: addresses", False),
    ("n", "new_rule", "new rule", "in the rules view: type a rule to block (host 10.0.0.9, port 53/udp, flow ...)",
     True),
    ("e", "view('events')", "events", "event log: new flows, drops, blocks, allows, losses", True),
    ("v", "cycle_groups", "group", "the flows grouped by remote host, by port, by process (v again: the next; "
     "then the flows): flows, packets, bytes, drops, bits/s now and over 2 s, 10 s, 40 s", True),
    ("D", "toggle_dry_run", "dry-run", "toggle dry-run: rules count would-drops instead of dropping; in the rules "
     "view: the selected rule alone", True),
    ("escape", "back", "back", "back to the flow table; closes the detail pane, the filter bar, dialogs", False),
    ("question_mark", "help", "help", "this help", True),
    ("ctrl+p", "command_palette", "palette", "command palette: every action by name", False),
    ("q", "quit", "quit", "quit: routes restored, rules lifted (asks first when rules are active)", True),
    ("ctrl+c", "interrupt", "copy/quit", "copy the selected text; with nothing selected, quit at once, from anywhere",
     False),
]

# The footer of a narrow terminal (under 100 columns) shows only these (lwtui.ui.footer); `?` lists all.
NARROW_FOOTER = {"toggle_detail", "block('flow')", "allow", "filter", "view('rules')", "cycle_groups", "help",
                 "quit", "remove", "edit_ttl", "rule_dry_run", "new_rule"}

# Keys the flow table (or the rules view) handles itself, not the App.
TABLE_ACTIONS = ("cursor_down", "cursor_up", "first", "last", "toggle_follow")

# Ctrl-C copies what is selected (text dragged with the mouse, or in an input
# line) and otherwise ends lwtui wherever the focus is (a modal, the filter
# line): Textual 8 only tells the user which key quits. Priority, so nothing
# else takes it first; exit code 130, as for SIGINT.
INTERRUPT = Binding("ctrl+c", "interrupt", "copy/quit", show=False, priority=True)


def bindings() -> list[BindingType]:
    """Bindings for the App, built from KEYS."""
    out: list[BindingType] = [Binding(keys, action, label, show=show) for keys, action, label, _, show in KEYS
                              if action not in (*TABLE_ACTIONS, "command_palette", "interrupt")]
    return out + [INTERRUPT]


def display(keys: str) -> str:
    """How a person types it: 'slash' -> '/', 'question_mark' -> '?'."""
    names = {"slash": "/", "question_mark": "?", "space": "space", "escape": "esc", "down": "↓", "up": "↑",
             "home": "Home", "end": "End"}
    return " ".join(names.get(k, k) for k in keys.split(","))
