"""Pilot test: `n` in the flow view shows host and service names, and n again addresses.

Host names come from a resolver the test controls (an /etc/hosts-style file in
the test's directory, never the machine's file nor the network); service names
from /etc/services (53/udp is "domain").
"""

from __future__ import annotations

import ipaddress
import socket

from lwtui.core.model import FlowId
from lwtui.ui.dialogs import RuleScreen

from .conftest import SIZE, make_app, started, wait_until

DNS = FlowId("out", 17, ipaddress.ip_address("10.0.0.2"), 39211, ipaddress.ip_address("10.0.0.3"), 53)


async def test_n_toggles_names_in_the_flow_view_and_adds_a_rule_in_the_rules_view(replay, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.3 lwtui-srv\n10.0.0.2 lwtui-cli\n")

    def lookup(addr: str) -> str:
        for line in hosts.read_text().splitlines():
            if line.split()[0] == addr:
                return line.split()[1]
        raise OSError("no name")

    app = make_app(replay)
    app.name_lookup = lookup
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        cells = lambda: app.flow_table.cells_of(DNS)  # noqa: E731
        assert (cells()["src"].plain, cells()["dst"].plain) == ("10.0.0.2:39211", "10.0.0.3:53")
        await pilot.press("n")
        assert not isinstance(app.screen, RuleScreen)
        await wait_until(pilot, lambda: cells()["dst"].plain == f"lwtui-srv:{socket.getservbyport(53, 'udp')}",
                         "the server's name and the DNS service")
        assert cells()["dst"].plain == "lwtui-srv:domain"
        await wait_until(pilot, lambda: cells()["src"].plain == "lwtui-cli:39211", "the client's name")
        assert app.export_records("flows")[0]["src"] in ("10.0.0.2", "10.0.0.3")   # exports keep addresses
        await pilot.press("n")
        assert (cells()["src"].plain, cells()["dst"].plain) == ("10.0.0.2:39211", "10.0.0.3:53")
        await pilot.press("r", "n")                        # the rules view: n types a rule
        assert isinstance(app.screen, RuleScreen)
        await pilot.press("escape")
        assert app.names is None


async def test_the_palette_new_rule_opens_the_rule_dialog_from_the_flow_view(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app._palette_new_rule()
        await pilot.pause()
        assert app.view == "rules" and isinstance(app.screen, RuleScreen)


def test_the_process_cell_says_unknown_rather_than_guess():
    from lwtui.core.model import Owner
    from lwtui.ui.cells import process_cell
    other = FlowId("out", 17, ipaddress.ip_address("10.0.0.2"), 40000, ipaddress.ip_address("10.0.0.3"), 53)
    owners = {DNS: Owner(pid=4242, comm="dig", user="root")}
    assert process_cell(owners, DNS, "").plain == "dig 4242"
    assert process_cell(owners, other, "").plain == "unknown"
    assert process_cell(None, DNS, "").plain == ""      # no attribution in this session: no column
