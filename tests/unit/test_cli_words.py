"""The command line's words: each subcommand's own examples, help for every option, one TTL range,
RFC 3339 times in JSON, plurals."""

from __future__ import annotations

import datetime as dt

import pytest

from lwtui.cli.labstatus import with_rfc3339_times
from lwtui.cli.entry import EXAMPLES, SUB_EXAMPLES, SUBCOMMANDS, build_parser
from lwtui.core.rules import TTL_MAX, TTL_MIN
from lwtui.core.units import plural


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_each_subcommand_has_its_own_examples_and_every_option_a_help(sub):
    p = build_parser(sub)
    assert p.epilog == SUB_EXAMPLES[sub] != EXAMPLES
    examples = [x.strip() for x in p.epilog.splitlines() if x.startswith("  lwtui")]
    assert any(x.startswith(f"lwtui {sub}") for x in examples)
    for action in p._actions:
        assert action.help, f"lwtui {sub} {'/'.join(action.option_strings) or action.dest} has no help text"


def test_ttl_range_is_the_dashboards(capsys):
    p = build_parser("block")
    assert p.parse_args(["port", "80", "--ttl", str(TTL_MAX)]).ttl == TTL_MAX
    assert p.parse_args(["port", "80", "--ttl", str(TTL_MIN)]).ttl == TTL_MIN
    for bad in (str(TTL_MIN / 2), str(TTL_MAX + 1)):
        with pytest.raises(SystemExit) as e:
            p.parse_args(["port", "80", "--ttl", bad])
        assert e.value.code == 2
        assert f"--ttl must be {TTL_MIN}..{TTL_MAX}" in capsys.readouterr().err


def test_started_times_become_rfc3339_wherever_they_are():
    when = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc).timestamp()
    status = {"up": True, "settings": {"started": when, "lifetime": 600.0},
              "processes": {"server": {"pid": 7, "stats": {"started": when, "udp4": 3}}}, "list": [{"started": 0}]}
    out = with_rfc3339_times(status)
    assert out["settings"] == {"started": "2026-01-01T12:00:00.000Z", "lifetime": 600.0}
    assert out["processes"]["server"]["stats"] == {"started": "2026-01-01T12:00:00.000Z", "udp4": 3}
    assert out["list"] == [{"started": "1970-01-01T00:00:00.000Z"}] and out["up"] is True


def test_plural_says_one_flow():
    assert [plural(n, "flow") for n in (0, 1, 2)] == ["0 flows", "1 flow", "2 flows"]
