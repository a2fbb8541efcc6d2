"""Pilot tests: the rules view's t (a rule's TTL) and D (its own dry-run), and its hits,
dropped and would-drop columns, checked against the packets of the recording."""

from __future__ import annotations

from rich.text import Text

from lwtui.core.units import fmt_count
from lwtui.ui.dialogs import TtlScreen
from lwtui.ui.rulesview import RulesTable

from .conftest import SIZE, make_app, next_tick, screen_text, started, wait_until

RULE = "port 5353/udp"


def matched_packets(recording, rule_text: str, first: int, last: int) -> int:
    """Packets the recording's flows matching the rule sent from frame `first` to frame
    `last` (a flow that first shows up in between: from its first frame)."""
    from lwtui.core.grammar import parse_rule
    rule = parse_rule(rule_text)
    before = {r.id: r.packets for r in recording[first].flows}
    total = 0
    for r in recording[last].flows:
        if rule.matches(r.id):
            start = before.get(r.id)
            if start is None:       # its first frame after `first`
                start = next(f.packets for s in recording[first + 1:last + 1] for f in s.flows if f.id == r.id)
            total += r.packets - start
    return total


def cells(table: RulesTable, text: str) -> dict[str, str]:
    row = table.get_row(text)
    keys = [c.key.value for c in table.ordered_columns]
    return {k: str(v.plain if isinstance(v, Text) else v).strip() for k, v in zip(keys, row)}


async def test_t_and_D_change_the_selected_rule_and_its_counts_add_up(replay, recording):
    app = make_app(replay)
    at: dict[str, int] = {}      # the last frame served when the rule came and when it switched

    def marking(name, call):
        def wrapper(*args, **kw):
            at[name] = replay.frame - 1
            return call(*args, **kw)
        return wrapper
    replay.block = marking("block", replay.block)
    replay.set_rule_dry_run = marking("dry", replay.set_rule_dry_run)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("r", "n", *RULE, "enter")
        await next_tick(pilot, app)
        table = app.query_one(RulesTable)
        assert table.selected_text == RULE and cells(table, RULE)["mode"] == "drop"

        # t: the TTL dialog names the rule; Esc changes nothing, a number sets it from now.
        await pilot.press("t")
        assert isinstance(app.screen, TtlScreen) and RULE in str(app.screen.query_one("#ttl-title").content)
        await pilot.press("escape")
        assert not [c for c in replay.calls if c[0] == "set_ttl"]
        await pilot.press("t", *"120", "enter")
        assert replay.calls[-1] == ("set_ttl", RULE, 120.0)
        assert app.notes[-1][2] == f"{RULE} lifts itself in 2m00s" and app.next_ttl is None
        await wait_until(pilot, lambda: cells(table, RULE)["ttl"] in ("2m00s", "1m59s"), "the new TTL")

        for _ in range(3):
            await next_tick(pilot, app)
        dropped = matched_packets(recording, RULE, at["block"], replay.frame - 1)
        assert dropped > 0
        # D: this rule alone counts would-drops; the session stays in MONITOR.
        await pilot.press("D")
        assert replay.calls[-1] == ("set_rule_dry_run", RULE, True) and not replay.dry_run
        assert app.notes[-1][1:] == ("", f"{RULE}: dry-run, it counts would-drops and drops nothing (D again: it drops)")
        for _ in range(3):
            await next_tick(pilot, app)
        dropped = matched_packets(recording, RULE, at["block"], at["dry"])
        would = matched_packets(recording, RULE, at["dry"], replay.frame - 1)
        assert would > 0 and "MONITOR" in screen_text(app)
        row = cells(table, RULE)
        assert row["mode"] == "dry-run"
        assert (row["hits"], row["drops"], row["would"]) == (fmt_count(dropped + would), fmt_count(dropped),
                                                             fmt_count(would))
        await pilot.press("D")
        assert replay.calls[-1] == ("set_rule_dry_run", RULE, False)
        await wait_until(pilot, lambda: cells(table, RULE)["mode"] == "drop", "the rule dropping again")
        assert app.notes[-1][2] == f"{RULE} drops packets again"

        # A flow rule cannot be in dry-run: a warning says why, nothing changes.
        await pilot.press("n", *"flow tcp 10.0.0.2:1 10.0.0.3:2", "enter")
        await next_tick(pilot, app)
        table.move_cursor(row=[r.text for r in replay.rules()].index("flow tcp 10.0.0.2:1 10.0.0.3:2"))
        await pilot.press("D")
        assert app.notes[-1][0] == "warning" and "not single flows" in app.notes[-1][2]

        # In the flow view t is the next block's TTL and D the session's dry-run, as before.
        await pilot.press("escape", "t", *"30", "enter")
        assert app.next_ttl == 30.0
        await pilot.press("D")
        assert replay.calls[-1] == ("set_dry_run", True)
