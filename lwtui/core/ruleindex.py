"""Which active rule blocks a flow, answered without trying every rule.

The dashboard and `watch` name the rule behind each blocked flow. The kernel
caches a flow's verdict with the rules generation it was computed for; after
any rule change every idle flow's cache is stale until its next packet, so
user space must answer for it. Trying each rule on each such flow cost
flows x rules per tick (20,000 idle flows and 4,094 rules: 8-10 s a tick).

RuleIndex keeps the rules as the kernel's maps do: exact flows in a dict
(both directions), host rules by prefix length (a dict per length, looked up
with the address masked), port rules by (protocol, port). A change costs
O(changed rules); a lookup costs a few dict probes per prefix length in use,
whatever the number of rules; answers are cached per flow until the next
change. Compound rules (at most the kernel's 8 entries) are tried one by one. The rule it names is the first by (kind, text), as the sorted rule
list of rules_blocking gives: flow before host before port before compound
("rule"), the kernel's order of precedence.
"""

from __future__ import annotations

from typing import Iterable

from lwtui.core.model import FlowId
from lwtui.core.names import ICMP_PROTOS, PORT_PROTOS as _PORT_PROTOS
from lwtui.core.rules import FlowRule, HostRule, PortRule, Rule, icmp_pair


def _order(rule: Rule) -> tuple[str, str]:
    return rule.kind, rule.text


class RuleIndex:
    """The active rules, indexed; `update` to the current set, `blocking(flow)` per flow."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}
        self._flows: dict[tuple, dict[str, Rule]] = {}
        self._hosts: dict[tuple[int, int], dict[int, Rule]] = {}     # (version, prefixlen) -> {network: rule}
        self._ports: dict[tuple, dict[str, Rule]] = {}
        self._answers: dict[FlowId, Rule | None] = {}
        self._addr_hits: dict = {}      # address -> host rules holding it
        self._compound: dict[str, Rule] = {}     # compound rules: few (the kernel holds 8 entries), tried one by one
        self.changes = 0     # rule changes applied (for tests and diagnostics)

    def __len__(self) -> int:
        return len(self._rules)

    def update(self, rules: Iterable[Rule]) -> bool:
        """Make the index hold exactly `rules` (by text); True when something changed."""
        new = {r.text: r for r in rules}
        if new.keys() == self._rules.keys():
            return False
        for text in self._rules.keys() - new.keys():
            self._remove(self._rules.pop(text))
        for text in new.keys() - self._rules.keys():
            self._rules[text] = new[text]
            self._add(new[text])
        self._answers.clear()
        self._addr_hits.clear()
        return True

    def blocking(self, flow: FlowId) -> Rule | None:
        """The first active rule (flow, then host, then port; then by text) matching `flow`, or None."""
        try:
            return self._answers[flow]
        except KeyError:
            pass
        hits = self._lookup(flow) if self._rules else []
        answer = min(hits, key=_order) if hits else None
        if len(self._answers) > 4 * max(1024, len(self._rules)) + 262144:
            self._answers.clear()       # flows come and go: bound the cache
        self._answers[flow] = answer
        return answer

    def holds(self, rule: Rule) -> bool:
        """Whether `rule` is among the active rules (by text)."""
        return rule.text in self._rules

    def matching(self, flow: FlowId) -> list[Rule]:
        """Every active rule that matches `flow` (found through the index, not by trying each)."""
        return self._lookup(flow) if self._rules else []

    # -- the maps -----------------------------------------------------------------
    def _keys(self, rule: Rule) -> list[tuple[dict, tuple]]:
        if isinstance(rule, FlowRule):
            if rule.proto in ICMP_PROTOS:   # the reverse of a query is its reply, same code
                back = (rule.proto, rule.dst, icmp_pair(rule.proto, rule.sport), rule.src, rule.dport)
            else:
                back = (rule.proto, rule.dst, rule.dport, rule.src, rule.sport)
            return [(self._flows, (rule.proto, rule.src, rule.sport, rule.dst, rule.dport)), (self._flows, back)]
        if isinstance(rule, PortRule):
            return [(self._ports, (rule.proto, rule.port))]
        return []

    def _add(self, rule: Rule) -> None:
        self.changes += 1
        if rule.kind == "rule":
            self._compound[rule.text] = rule
            return
        if isinstance(rule, HostRule):
            net = rule.network
            self._hosts.setdefault((net.version, net.prefixlen), {})[int(net.network_address)] = rule
            return
        for table, key in self._keys(rule):
            table.setdefault(key, {})[rule.text] = rule

    def _remove(self, rule: Rule) -> None:
        self.changes += 1
        if rule.kind == "rule":
            self._compound.pop(rule.text, None)
            return
        if isinstance(rule, HostRule):
            net = rule.network
            slot = self._hosts.get((net.version, net.prefixlen), {})
            slot.pop(int(net.network_address), None)
            if not slot:
                self._hosts.pop((net.version, net.prefixlen), None)
            return
        for table, key in self._keys(rule):
            slot = table.get(key, {})
            slot.pop(rule.text, None)
            if not slot:
                table.pop(key, None)

    def _lookup(self, f: FlowId) -> list[Rule]:
        hits: list[Rule] = []
        if self._flows:
            hits += self._flows.get((f.proto, f.src, f.sport, f.dst, f.dport), {}).values()
        if self._hosts:
            hits += self._host_hits(f)
        if self._ports and not f.fragment and f.proto in _PORT_PROTOS:
            for key in ((f.proto, f.sport), (f.proto, f.dport), (None, f.sport), (None, f.dport)):
                hits += self._ports.get(key, {}).values()
        if self._compound:
            hits += [r for r in self._compound.values() if r.matches(f)]
        return hits

    def _host_hits(self, f: FlowId) -> list[Rule]:
        """Host rules containing the source or destination; per address, cached until the next
        change (thousands of flows share a few addresses)."""
        hits = self._addr_hits.get(f.src)
        if hits is None:
            hits = self._addr_hits[f.src] = self._containing(f.src)
        if f.dst != f.src:
            more = self._addr_hits.get(f.dst)
            if more is None:
                more = self._addr_hits[f.dst] = self._containing(f.dst)
            hits = hits + more
        return hits

    def _containing(self, addr) -> list[Rule]:
        """Host rules whose network holds `addr` (an IPv4-mapped IPv6 address also as IPv4)."""
        if len(self._addr_hits) > 65536:
            self._addr_hits.clear()
        addrs = [(addr.version, int(addr))]
        mapped = getattr(addr, "ipv4_mapped", None)
        if mapped is not None:
            addrs.append((4, int(mapped)))
        hits = []
        for (version, plen), nets in self._hosts.items():
            bits = 32 if version == 4 else 128
            mask = ((1 << plen) - 1) << (bits - plen)
            hits += [nets[n & mask] for v, n in addrs if v == version and (n & mask) in nets]
        return hits
