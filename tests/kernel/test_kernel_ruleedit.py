"""RuleStore on the real maps: a rule's TTL and its own dry-run changed in place (the
rules view's t and D), judged by the programs through BPF_PROG_TEST_RUN."""

from __future__ import annotations

import time

import pytest

from kutil import BPF_DROP, BPF_OK
from lwtui.kernel.verdicts import VerdictError
from tests.kernel.test_kernel_compound import TCP, store_of, verdict


def by_text(store) -> dict:
    return {e.text: e for e in store.entries()}


@pytest.mark.parametrize("text", ["port 8080/tcp", "host 10.0.0.4", "src host 10.0.0.4 and dst port 8080/tcp"])
def test_dry_run_of_one_rule_on_and_off_keeps_its_hits_ttl_and_age(probe, text):
    s = store_of(probe)
    s.add(text, ttl=300)
    s.add("port 9090/tcp")                               # another rule: enforces throughout
    created = by_text(s)[text].created
    for sport in (40000, 40001):
        assert verdict(probe, TCP, "10.0.0.4", "10.0.0.1", sport, 8080) == BPF_DROP
    assert by_text(s)[text].hits == 2 and not by_text(s)[text].dry_run

    assert s.set_rule_dry_run(text, True)
    e = by_text(s)[text]
    assert e.dry_run and e.hits == 2 and e.created == created and 290 < e.expires_in <= 300
    base = probe.read_stats()
    for sport in (40002, 40003, 40004):                  # matched, counted, passed
        assert verdict(probe, TCP, "10.0.0.4", "10.0.0.1", sport, 8080) == BPF_OK
    assert verdict(probe, TCP, "10.0.0.4", "10.0.0.1", 40005, 9090) == BPF_DROP   # the other still drops
    got = probe.read_stats()
    assert (got["would_drops"] - base["would_drops"], got["drops"] - base["drops"]) == (3, 1)
    assert by_text(s)[text].hits == 5 and not by_text(s)["port 9090/tcp"].dry_run

    assert s.set_rule_dry_run(text, True)                 # already: nothing changes
    assert s.set_rule_dry_run(text, False)
    e = by_text(s)[text]
    assert not e.dry_run and e.hits == 5 and e.created == created and 290 < e.expires_in <= 300
    assert verdict(probe, TCP, "10.0.0.4", "10.0.0.1", 40006, 8080) == BPF_DROP
    assert by_text(s)[text].hits == 6
    assert sorted(by_text(s)) == sorted([text, "port 9090/tcp"])      # moved, never doubled


def test_a_new_ttl_counts_from_now_and_none_keeps_the_rule(probe):
    s = store_of(probe)
    s.add("port 8080/tcp", ttl=5)
    s.add("port 8081/tcp", dry_run=True)
    assert verdict(probe, TCP, "10.0.0.4", "10.0.0.1", 40000, 8080) == BPF_DROP
    gen = s.config().rules_gen
    assert s.set_ttl("port 8080/tcp", 600) and s.config().rules_gen != gen
    e = by_text(s)["port 8080/tcp"]
    assert 590 < e.expires_in <= 600 and e.hits == 1
    active, expired = s.sweep(time.monotonic_ns() + int(10e9))     # past the old TTL: still there
    assert expired == [] and "port 8080/tcp" in [a.text for a, _ in active]

    assert s.set_ttl("port 8081/tcp", 2)                  # a dry-run rule stays one
    assert by_text(s)["port 8081/tcp"].dry_run and by_text(s)["port 8081/tcp"].expires_in <= 2
    active, expired = s.sweep(time.monotonic_ns() + int(3e9))
    assert [r.text for r in expired] == ["port 8081/tcp"]

    assert s.set_ttl("port 8080/tcp", None)
    assert by_text(s)["port 8080/tcp"].expires_in is None
    assert not s.set_ttl("host 10.9.9.9", 10) and not s.set_rule_dry_run("host 10.9.9.9", True)
    with pytest.raises(VerdictError, match="positive"):
        s.set_ttl("port 8080/tcp", 0)
    s.add("flow tcp 10.0.0.4:1 10.0.0.1:2")
    with pytest.raises(VerdictError, match="not single flows"):
        s.set_rule_dry_run("flow tcp 10.0.0.4:1 10.0.0.1:2", True)
