"""The choice of a path per kernel feature (lwtui.kernel.features.decide) and the
switch that hides features (LWTUI_HIDE_FEATURES): pure logic, no kernel."""

from __future__ import annotations

import pytest

from lwtui.kernel import features as F

ALL = {name: True for name in F.PROBES}


def test_a_kernel_with_everything_takes_no_fallback():
    p = F.decide(ALL)
    assert p.cflags == ("-DLWTUI_COARSE_CLOCK",)
    assert (p.events, p.batch, p.run_stats, p.fallbacks, p.missing) == ("perf", True, True, (), ())


def test_ringbuf_is_used_when_asked_and_there():
    assert F.decide(ALL, events="ringbuf").events == "ringbuf"
    assert F.decide(ALL, events="ringbuf").fallbacks == ()


@pytest.mark.parametrize("name,cflags,attrs", [
    ("coarse_clock", (), {}),
    ("gso_segs", ("-DLWTUI_COARSE_CLOCK", "-DLWTUI_NO_GSO_SEGS"), {}),
    ("bounded_loops", ("-DLWTUI_COARSE_CLOCK", "-DLWTUI_NO_BOUNDED_LOOPS", f"-DIPV6_EXT_MAX={F.IPV6_EXT_UNROLLED}"), {}),
    ("batch", ("-DLWTUI_COARSE_CLOCK",), {"batch": False}),
    ("run_stats", ("-DLWTUI_COARSE_CLOCK",), {"run_stats": False}),
])
def test_each_missing_feature_takes_its_fallback_and_names_it(name, cflags, attrs):
    p = F.decide({**ALL, name: False})
    assert p.cflags == cflags
    assert p.fallback_names == [name] and p.fallbacks[0][1] == F.BY_NAME[name].fallback
    for attr, value in attrs.items():
        assert getattr(p, attr) is value
    assert p.missing == ()


def test_ringbuf_missing_falls_back_to_perf_only_when_asked():
    p = F.decide({**ALL, "ringbuf": False}, events="ringbuf")
    assert (p.events, p.fallback_names) == ("perf", ["ringbuf"])
    assert F.decide({**ALL, "ringbuf": False}).fallback_names == []    # perf asked: nothing falls back


def test_hidden_is_missing_though_the_kernel_has_it():
    p = F.decide(ALL, F.parse_hidden("all"), events="ringbuf")
    assert p.fallback_names == [f.name for f in F.FALLBACKS]
    assert p.cflags == ("-DLWTUI_NO_GSO_SEGS", "-DLWTUI_NO_BOUNDED_LOOPS", f"-DIPV6_EXT_MAX={F.IPV6_EXT_UNROLLED}")
    assert (p.events, p.batch, p.run_stats) == ("perf", False, False)
    rows = {r["feature"]: r for r in F.rows(p)}
    assert rows["batch"]["available"] and rows["batch"]["hidden"] and not rows["batch"]["used"]
    assert rows["batch"]["fallback"] == F.BY_NAME["batch"].fallback


def test_required_features_are_never_hidden_but_reported_missing():
    p = F.decide({**ALL, "lpm_trie": False, "lwt": False})
    assert p.missing == ("lwt", "lpm_trie")
    rows = {r["feature"]: r for r in F.rows(p)}
    assert rows["lpm_trie"]["required"] and rows["lpm_trie"]["fallback"].startswith("none")


def test_parse_hidden():
    assert F.parse_hidden(None) == frozenset() and F.parse_hidden("") == frozenset()
    assert F.parse_hidden(" batch, ringbuf ,") == {"batch", "ringbuf"}
    assert F.parse_hidden("batch,all") == {f.name for f in F.FALLBACKS}


@pytest.mark.parametrize("text", ["batches", "lpm_trie", "batch,nope"])
def test_parse_hidden_refuses_what_has_no_fallback(text):
    with pytest.raises(F.FeatureError, match=F.HIDE_ENV + " names unknown feature") as e:
        F.parse_hidden(text)
    assert "coarse_clock" in str(e.value)       # the message lists the names there are


def test_plan_reads_the_environment(monkeypatch):
    monkeypatch.setattr(F, "probe_kernel", lambda: dict(ALL))
    assert F.plan(environ={F.HIDE_ENV: "gso_segs"}).fallback_names == ["gso_segs"]
    assert F.plan(environ={}).fallback_names == []


def test_every_feature_has_a_probe_and_a_release():
    assert set(F.PROBES) == set(F.BY_NAME)
    for f in F.FALLBACKS + F.REQUIRED:
        major, minor = map(int, f.since.split("."))
        assert (4, 1) <= (major, minor) <= (5, 11)


def test_notes_say_why_and_what_instead():
    p = F.decide({**ALL, "batch": False}, frozenset({"gso_segs"}))
    assert F.notes(p) == [
        "batch map reads (BPF_MAP_LOOKUP_BATCH): not in this kernel, so the flow map read one key at a time",
        f"__sk_buff gso_segs: hidden by {F.HIDE_ENV}, so a GSO packet counts as 1 packet, "
        "not its segments on the wire"]
    assert F.refusal(p) is None


def test_a_kernel_before_5_2_is_refused_by_name():
    """Programs past 4,096 instructions: no fallback, so named, not failed on in the verifier."""
    p = F.decide({**ALL, "large_programs": False})
    assert p.missing == ("large_programs",) and F.BY_NAME["large_programs"].since == "5.2"
    assert F.refusal(p) == ("this kernel lacks programs past 4,096 instructions (a verifier budget of 1M): "
                            "lwtui cannot run here (see `lwtui doctor`)")


def test_refusal_names_what_is_missing():
    p = F.decide({**ALL, "lpm_trie": False})
    assert F.refusal(p) == "this kernel lacks LPM trie maps: lwtui cannot run here (see `lwtui doctor`)"
