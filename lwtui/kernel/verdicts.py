"""Rules in the kernel: write, remove and list verdicts in a session's maps.

Works on plain map fds (the session's own, or the pinned ones opened from
another shell), through bpf(2) directly, so `lwtui block` needs no compiler.
Compound rules take one entry of the `compound` array per conjunction, all
with the same group number; MAX_COMPOUND entries in all, MAX_TERMS terms each.
Every change writes a new rules generation (config slot CFG_RULES_GEN): the
programs cache each flow's verdict and look at the rule maps again only when
that number changes.
"""

from __future__ import annotations

import ctypes as ct
import os
import secrets
import time

from lwtui.kernel import bpfsys, kstructs
from lwtui.core.model import RuleEntry
from lwtui.core.grammar import parse_rule
from lwtui.core.rules import FLOW_DRY_RUN, HostRule, PortRule, Rule
from lwtui.core.compound import MAX_TERMS, CompoundRule, Term
from lwtui.core.units import noun
from lwtui.kernel.codec import decode, decode_compound, encode, encode_compound

_KEY_TYPES = {
    "verdicts": kstructs.FlowKey,
    "host_rules": kstructs.HostKey,
    "port_rules": kstructs.PortKey,
}
_VALUE_SIZE = ct.sizeof(kstructs.RuleVal)


def _as_compound(rule: Rule) -> CompoundRule:
    """A rule as compound entries: host and port rules as one term; flow rules cannot."""
    if isinstance(rule, CompoundRule):
        return rule
    if isinstance(rule, HostRule):
        return CompoundRule(((Term("host", rule.network),),))
    if isinstance(rule, PortRule):
        return CompoundRule(((Term("port", rule.port, rule.proto),),))
    raise VerdictError(FLOW_DRY_RUN)


def _expiry(ttl: float | None) -> int:
    """expires_ns of a rule given `ttl` seconds from now (0: never), on the programs' clock."""
    return time.monotonic_ns() + int(ttl * 1e9) if ttl else 0


def read_config(fd: int) -> kstructs.LwtuiConfig:
    """The `config` slots of a map fd (the session's own or a pinned one)."""
    vals = []
    for slot in (kstructs.CFG_DRY_RUN, kstructs.CFG_RULES_GEN, kstructs.CFG_DROP_EVENT_INTERVAL_NS,
                 kstructs.CFG_CAPTURE, kstructs.CFG_CAPTURE_RATE, kstructs.CFG_CAPTURE_FLOW):
        v = ct.c_uint64(0)
        bpfsys.map_lookup(fd, ct.c_uint32(slot), v)
        vals.append(v.value)
    return kstructs.LwtuiConfig(dry_run=vals[0], rules_gen=vals[1] & 0xFFFFFFFF, drop_event_interval_ns=vals[2],
                                capture=vals[3], capture_rate=vals[4], capture_flow=vals[5])


def write_config_slot(fd: int, slot: int, value: int) -> None:
    """One slot, one update: the kernel copies the 8-byte value whole, and no
    other slot is read or written, so writers of other slots never undo it."""
    bpfsys.map_update(fd, ct.c_uint32(slot), ct.c_uint64(value & 0xFFFFFFFFFFFFFFFF))


def unreadable_message(entries: int, hits: int) -> str:
    """What RuleStore.unreadable means, in one line."""
    return (f"{entries} compound rule {noun(entries, 'entry', 'entries')} that this lwtui cannot read "
            f"({hits:,} hits) {noun(entries, 'is', 'are')} in force in the kernel but in no rule listed: "
            "not written by this lwtui; they go when the session ends")


class VerdictError(RuntimeError):
    """A rule could not be written or removed; the message names the fix."""


class RuleStore:
    """The verdict maps of one session, by fd."""

    def __init__(self, fds: dict[str, int], owns_fds: bool = False):
        self.fds = fds
        self._owns = owns_fds
        self._decoded: dict[tuple[str, bytes], Rule] = {}    # rule keys already decoded, by their bytes
        self.compound_slots: dict[int, Rule] = {}     # `compound` entry -> its rule, as of the last items()
        self.dry_texts: set[str] = set()               # rules in dry-run (block --dry-run), as of then
        self.unreadable: tuple[int, int] = (0, 0)     # compound entries no rule decodes from, their hits
        self._check_layout()

    def _check_layout(self) -> None:
        """Pinned maps are opened by path: make sure they are ours (sizes match)."""
        sizes = {name: (ct.sizeof(ktype), _VALUE_SIZE) for name, ktype in _KEY_TYPES.items()}
        sizes["config"] = (4, 8)
        sizes["compound"] = (4, ct.sizeof(kstructs.CompoundEntry))
        for name, (ksize, vsize) in sizes.items():
            info = bpfsys.map_info(self.fds[name])
            if (info["key_size"], info["value_size"]) != (ksize, vsize) or \
                    (name == "config" and info["max_entries"] < kstructs.CFG_MAX):
                raise VerdictError(f"map {name} has key/value sizes {info['key_size']}/{info['value_size']}, "
                                   "not lwtui's: the session was started by another lwtui version")

    def close(self) -> None:
        if self._owns:
            for fd in self.fds.values():
                try:
                    os.close(fd)
                except OSError:     # closed already: nothing is held any more
                    pass
            self.fds = {}

    # -- config ----------------------------------------------------------
    def config(self) -> kstructs.LwtuiConfig:
        return read_config(self.fds["config"])

    def bump_generation(self) -> int:
        """Write a new rules generation: a random value other than the current
        one, in its own slot. No read-modify-write, so concurrent writers (the
        session's sweep, `lwtui block` from another shell) cannot undo each
        other; the programs only compare generations for equality, and every
        writer changes its rules before it writes."""
        old = self.config().rules_gen
        gen = old
        while gen in (old, 0):
            gen = secrets.randbits(32)
        write_config_slot(self.fds["config"], kstructs.CFG_RULES_GEN, gen)
        return gen

    def set_dry_run(self, on: bool) -> None:
        """The dry-run slot alone: the programs read it on every match, so no
        cached verdict needs a new generation."""
        write_config_slot(self.fds["config"], kstructs.CFG_DRY_RUN, 1 if on else 0)

    # -- rules -----------------------------------------------------------
    def add(self, rule: Rule | str, ttl: float | None = None, dry_run: bool = False) -> Rule:
        """Install a drop rule (replacing its TTL if present); effective from the next packet.

        dry_run: the rule only counts would-drops while the others enforce. It
        takes a compound entry (the flag lives there), so a host or port rule
        in dry-run is written as a compound rule of one term."""
        rule = parse_rule(rule) if isinstance(rule, str) else rule
        if ttl is not None and ttl <= 0:
            raise VerdictError(f"--ttl must be positive seconds, got {ttl}")
        if dry_run or isinstance(rule, CompoundRule):
            self._add_compound(_as_compound(rule), _expiry(ttl), dry_run)
            self.bump_generation()
            return rule
        self._delete_compound(rule.text)     # a dry-run rule of this text now enforces
        map_name, key = encode(rule)
        val = kstructs.RuleVal()
        old = kstructs.RuleVal()
        if bpfsys.map_lookup(self.fds[map_name], key, old):
            val.hits, val.created_ns = old.hits, old.created_ns
        else:
            val.created_ns = time.time_ns()
        val.expires_ns = _expiry(ttl)
        try:
            bpfsys.map_update(self.fds[map_name], key, val)
        except bpfsys.BpfError as e:
            raise VerdictError(f"cannot add rule {rule.text!r}: {e.strerror} "
                               "(rule map full? remove rules with `lwtui allow`)") from None
        self.bump_generation()
        return rule

    def set_ttl(self, rule: Rule | str, ttl: float | None) -> bool:
        """Give an installed rule a new TTL counted from now (None: none); its hits, creation
        time and dry-run flag stay. False when the rule is not installed."""
        rule = parse_rule(rule) if isinstance(rule, str) else rule
        if ttl is not None and ttl <= 0:
            raise VerdictError(f"a TTL must be positive seconds, got {ttl}")
        expires = _expiry(ttl)
        slots = self._groups().get(rule.text)
        if slots:
            for i, e in slots:
                e.val.expires_ns = expires
                bpfsys.map_update(self.fds["compound"], ct.c_uint32(i), e)
        else:
            found = self._single(rule)
            if found is None:
                return False
            map_name, key, val = found
            val.expires_ns = expires
            bpfsys.map_update(self.fds[map_name], key, val)
        self.bump_generation()
        return True

    def set_rule_dry_run(self, rule: Rule | str, on: bool) -> bool:
        """Make one installed rule count would-drops only (on) or drop again (off), its TTL,
        hits and creation time kept. A host or port rule in dry-run lives in a compound entry
        (the flag is there), so it moves between its own map and the `compound` array; the new
        entry is written before the old one goes, so the rule is never absent. False when the
        rule is not installed; a flow rule cannot be in dry-run (VerdictError says how)."""
        rule = parse_rule(rule) if isinstance(rule, str) else rule
        slots = self._groups().get(rule.text)
        if slots:
            if any(e.flags & kstructs.COMPOUND_DRY_RUN for _, e in slots) == on:
                return True
            if on or isinstance(rule, CompoundRule):
                for i, e in slots:
                    e.flags = kstructs.COMPOUND_DRY_RUN if on else 0
                    bpfsys.map_update(self.fds["compound"], ct.c_uint32(i), e)
            else:
                map_name, key = encode(rule)
                bpfsys.map_update(self.fds[map_name], key, kstructs.RuleVal(
                    hits=sum(e.val.hits for _, e in slots), expires_ns=min(e.val.expires_ns for _, e in slots),
                    created_ns=min(e.val.created_ns for _, e in slots)))
                self._delete_compound(rule.text)
            self.bump_generation()
            return True
        found = self._single(rule)
        if found is None:
            return False
        if on:
            map_name, key, val = found
            self._add_compound(_as_compound(rule), val.expires_ns, dry_run=True, carry=val)
            bpfsys.map_delete(self.fds[map_name], key)
            self.bump_generation()
        return True

    def _single(self, rule: Rule) -> tuple[str, ct.Structure, kstructs.RuleVal] | None:
        """A flow, host or port rule's map, key and value; None when it is not in its map."""
        if isinstance(rule, CompoundRule):
            return None
        map_name, key = encode(rule)
        val = kstructs.RuleVal()
        return (map_name, key, val) if bpfsys.map_lookup(self.fds[map_name], key, val) else None

    def remove(self, rule: Rule | str) -> bool:
        """Remove a rule; False when it was not installed."""
        rule = parse_rule(rule) if isinstance(rule, str) else rule
        gone = self._delete(rule)
        if gone:
            self.bump_generation()
        return gone

    def _delete(self, rule: Rule) -> bool:
        if isinstance(rule, CompoundRule):
            return self._delete_compound(rule.text)
        map_name, key = encode(rule)
        return bpfsys.map_delete(self.fds[map_name], key) | self._delete_compound(rule.text)

    def _delete_compound(self, text: str) -> bool:
        slots = self._groups().get(text, [])
        for i, _ in slots:
            bpfsys.map_update(self.fds["compound"], ct.c_uint32(i), kstructs.CompoundEntry())
        return bool(slots)

    # -- compound rules: entries of the `compound` array ------------------
    def _compound_entries(self) -> list[tuple[int, kstructs.CompoundEntry]]:
        """(index, entry) of every entry of `compound`, free ones included."""
        fd = self.fds["compound"]
        out = []
        for i in range(bpfsys.map_info(fd)["max_entries"]):
            e = kstructs.CompoundEntry()
            bpfsys.map_lookup(fd, ct.c_uint32(i), e)
            out.append((i, e))
        return out

    def _groups(self, entries=None) -> dict[str, list[tuple[int, kstructs.CompoundEntry]]]:
        """Rule text -> its entries, from the live entries grouped by `group`."""
        by_group: dict[int, list[tuple[int, kstructs.CompoundEntry]]] = {}
        for i, e in self._compound_entries() if entries is None else entries:
            if e.group:
                by_group.setdefault(e.group, []).append((i, e))
        out, unreadable, hits = {}, 0, 0
        for slots in by_group.values():
            try:
                rule = decode_compound([e for _, e in slots])
            except ValueError:      # not an entry lwtui wrote: no rule to list, counted in `unreadable`
                unreadable += len(slots)
                hits += sum(e.val.hits for _, e in slots)
                continue
            out[rule.text] = slots
        self.unreadable = (unreadable, hits)
        return out

    def _add_compound(self, rule: CompoundRule, expires: int, dry_run: bool = False,
                      carry: kstructs.RuleVal | None = None) -> None:
        """Write the rule's conjunctions into free entries (or renew its expiry and dry-run flag).
        carry: the value of the rule's single-key entry it replaces (its hits and creation time)."""
        flags = kstructs.COMPOUND_DRY_RUN if dry_run else 0
        entries = self._compound_entries()
        old = self._groups(entries).get(rule.text)
        fd = self.fds["compound"]
        if old:
            for i, e in old:
                e.val.expires_ns, e.flags = expires, flags
                bpfsys.map_update(fd, ct.c_uint32(i), e)
            return
        free = [i for i, e in entries if not e.group]
        parts = encode_compound(rule)
        if len(parts) > len(free):
            raise VerdictError(f"cannot add rule {rule.text!r}: it takes {len(parts)} of the kernel's "
                               f"{len(entries)} compound entries (at most {MAX_TERMS} terms each) and "
                               f"{len(free)} are free: remove compound rules with `lwtui allow`")
        used = {e.group for _, e in entries}
        group = 0
        while group in used:
            group = secrets.randbits(32)
        now = carry.created_ns if carry is not None else time.time_ns()
        for n, (i, e) in enumerate(zip(free, parts)):
            e.group, e.val.created_ns, e.val.expires_ns, e.flags = group, now, expires, flags
            if carry is not None and n == 0:    # the rule's hits so far, counted once
                e.val.hits = carry.hits
            bpfsys.map_update(fd, ct.c_uint32(i), e)

    def _compound_items(self) -> list[tuple[Rule, kstructs.RuleVal]]:
        """Compound rules with their entries' values summed; `compound_slots` (entry index ->
        rule) is refreshed on the way, to name the rule a flow's cached word points at."""
        out: list[tuple[Rule, kstructs.RuleVal]] = []
        slots_now: dict[int, Rule] = {}
        dry: set[str] = set()
        for text, slots in self._groups().items():
            val = kstructs.RuleVal(hits=sum(e.val.hits for _, e in slots),
                                   expires_ns=min(e.val.expires_ns for _, e in slots),
                                   created_ns=min(e.val.created_ns for _, e in slots))
            rule = decode_compound([e for _, e in slots])
            slots_now.update((i, rule) for i, _ in slots)
            if any(e.flags & kstructs.COMPOUND_DRY_RUN for _, e in slots):
                dry.add(rule.text)
            out.append((rule, val))
        self.compound_slots, self.dry_texts = slots_now, dry
        return out

    def items(self) -> list[tuple[Rule, kstructs.RuleVal]]:
        """Every rule in the maps with its value; a key seen before is not decoded again."""
        out = []
        if len(self._decoded) > 4 * 4096:
            self._decoded.clear()
        for map_name, ktype in _KEY_TYPES.items():
            for key, val in bpfsys.map_items(self.fds[map_name], ktype, kstructs.RuleVal):
                raw = (map_name, bytes(key))
                rule = self._decoded.get(raw)
                if rule is None:
                    rule = self._decoded[raw] = decode(map_name, key)
                out.append((rule, val))
        return out + self._compound_items()

    def entries(self, now_mono_ns: int | None = None) -> list[RuleEntry]:
        """Active rules for display, expired ones left out."""
        return [e for e, _ in self._split(self.items(), now_mono_ns, self.dry_texts)[0]]

    def sweep(self, now_mono_ns: int | None = None) -> tuple[list[tuple[RuleEntry, Rule]], list[Rule]]:
        """One read of the rule maps for a refresh tick: the active rules (for
        display, with their parsed Rule) and the expired ones, which it deletes."""
        active, expired = self._split(self.items(), now_mono_ns, self.dry_texts)
        gone = [r for r in expired if self._delete(r)]
        if gone:
            self.bump_generation()
        return active, gone

    @staticmethod
    def _split(items, now_mono_ns: int | None, dry: set[str]) -> tuple[list[tuple[RuleEntry, Rule]], list[Rule]]:
        now = time.monotonic_ns() if now_mono_ns is None else now_mono_ns
        active, expired = [], []
        for rule, val in items:
            left = None
            if val.expires_ns:
                left = (val.expires_ns - now) / 1e9
                if left <= 0:
                    expired.append(rule)
                    continue
            active.append((RuleEntry(text=rule.text, kind=rule.kind, hits=val.hits, expires_in=left,
                                     created=val.created_ns / 1e9, dry_run=rule.text in dry), rule))
        active.sort(key=lambda er: (er[0].kind, er[0].text))
        return active, expired
