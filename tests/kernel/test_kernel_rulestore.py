"""RuleStore on the real maps: add, list, expire, remove, and the generation bump."""

from __future__ import annotations

import time

from lwtui.kernel.pins import PINNED_MAPS
from lwtui.core.grammar import parse_rule
from lwtui.kernel.verdicts import RuleStore


def store_of(probe) -> RuleStore:
    return RuleStore({n: probe.map_fd(n) for n in PINNED_MAPS})


def test_sweep_lists_active_rules_in_kernel_order_and_deletes_expired(probe):
    s = store_of(probe)
    gens = [s.config().rules_gen]
    for rule, ttl in (("port 8080/tcp", None), ("host 10.0.0.3", 30), ("flow udp 10.0.0.2:5000 10.0.0.3:53", 0.5)):
        s.add(rule, ttl=ttl)
        gens.append(s.config().rules_gen)
    assert all(a != b for a, b in zip(gens, gens[1:])), "every change writes a new generation"
    gen3 = gens[-1]
    active, expired = s.sweep(time.monotonic_ns())
    assert [e.text for e, _ in active] == ["flow udp 10.0.0.2:5000 10.0.0.3:53", "host 10.0.0.3",
                                           "port 8080/tcp"]
    assert [r for _, r in active] == [parse_rule(e.text) for e, _ in active]
    assert expired == [] and s.config().rules_gen == gen3

    later = time.monotonic_ns() + int(5e9)          # the flow rule's TTL ran out, the host rule's not
    active, expired = s.sweep(later)
    assert [r.text for r in expired] == ["flow udp 10.0.0.2:5000 10.0.0.3:53"]
    assert [e.text for e, _ in active] == ["host 10.0.0.3", "port 8080/tcp"]
    assert s.config().rules_gen != gen3            # the deletion re-evaluates cached verdicts
    assert [e.text for e in s.entries(later)] == ["host 10.0.0.3", "port 8080/tcp"]
    assert 25 < s.entries()[0].expires_in <= 30

    assert s.remove("port 8080/tcp") and not s.remove("port 8080/tcp")
    assert [e.text for e in s.entries()] == ["host 10.0.0.3"]


def test_config_writers_touch_only_their_own_slots(probe):
    s = store_of(probe)
    probe.set_config(dry_run=True, drop_event_interval_ns=123)
    gen = s.bump_generation()
    assert (s.config().dry_run, s.config().drop_event_interval_ns, s.config().rules_gen) == (1, 123, gen)
    s.set_dry_run(False)
    assert (s.config().dry_run, s.config().rules_gen) == (0, gen)   # dry-run leaves the generation alone
