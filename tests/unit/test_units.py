"""Human units and sparklines (lwtui/core/units.py)."""

from __future__ import annotations

import pytest

from lwtui.core.units import BLOCKS, fmt_bits, fmt_bytes, fmt_count, fmt_duration, sparkline


@pytest.mark.parametrize("bps, text", [
    (0, "0 b/s"), (1, "1 b/s"), (2.5, "2.5 b/s"), (999, "999 b/s"),
    (999.96, "1.0 kb/s"),            # rounding carries into the next prefix
    (1000, "1.0 kb/s"), (1234, "1.2 kb/s"), (12_345, "12.3 kb/s"), (123_456, "123 kb/s"),
    (99_960, "100 kb/s"), (1.2e6, "1.2 Mb/s"), (10e9, "10.0 Gb/s"), (4e12, "4.0 Tb/s"),
])
def test_fmt_bits_is_si(bps, text):
    assert fmt_bits(bps) == text


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (512, "512 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (1000 * 1024, "1000 KiB"), (1024 * 1024 - 0.1, "1.0 MiB"), (1.5 * 2**20, "1.5 MiB"),
    (3 * 2**30, "3.0 GiB"), (200 * 2**40, "200 TiB"),
])
def test_fmt_bytes_is_binary(n, text):
    assert fmt_bytes(n) == text


@pytest.mark.parametrize("n, text", [
    (0, "0"), (7, "7"), (2.5, "2.5"), (0.33, "0.3"), (999, "999"), (1000, "1.0k"),
    (12_300, "12.3k"), (123_400, "123k"), (999_999, "1.0M"), (2_500_000, "2.5M"), (-1500, "-1.5k"),
])
def test_fmt_count(n, text):
    assert fmt_count(n) == text


@pytest.mark.parametrize("fn", [fmt_bits, fmt_bytes, fmt_count, fmt_duration])
def test_not_finite_is_a_dash(fn):
    assert fn(float("nan")) == "-"
    assert fn(float("inf")) == "-"


@pytest.mark.parametrize("s, text", [
    (0, "0s"), (3, "3s"), (3.9, "3s"), (59.99, "59s"), (60, "1m00s"), (125, "2m05s"),
    (3599, "59m59s"), (3600, "1h00m"), (3720, "1h02m"), (86399, "23h59m"),
    (86400 * 3 + 3600 * 4 + 59, "3d04h"), (-5, "0s"),
])
def test_fmt_duration(s, text):
    assert fmt_duration(s) == text


def test_sparkline_scales_to_the_max():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8], 8) == BLOCKS
    assert sparkline([50, 100], 2) == "▄█"


def test_sparkline_zero_is_blank_and_small_is_visible():
    assert sparkline([0, 1, 1000], 3) == " ▁█"


def test_sparkline_keeps_the_newest_and_pads_left():
    assert sparkline([8, 1, 2, 4, 8], 3) == "▂▄█"   # the first 8 fell off, the scale follows
    assert sparkline([8], 4) == "   █"
    assert len(sparkline(range(100), 10)) == 10


def test_sparkline_empty_and_degenerate():
    assert sparkline([], 5) == "     "
    assert sparkline([0, 0, 0], 3) == "   "
    assert sparkline([1, 2], 0) == ""
    assert sparkline([float("nan"), -3, 4], 3) == "  █"


def test_sparkline_fixed_top_compares_rows():
    assert sparkline([50], 1, top=100) == "▄"
    assert sparkline([500], 1, top=100) == "█"   # clipped, never out of range


def test_plural_and_noun_are_singular_for_exactly_one():
    from lwtui.core.units import noun, plural
    assert [plural(n, "flow") for n in (0, 1, 2, 1500)] == ["0 flows", "1 flow", "2 flows", "1.5k flows"]
    assert (noun(1, "pkt"), noun(2, "pkt"), noun(1.0, "entry", "entries"), noun(3, "entry", "entries")) == \
        ("pkt", "pkts", "entry", "entries")
