"""Rules in the kernel: write, remove and list verdicts in a session's maps.

Works on plain map fds (the session's own, or the pinned ones opened from
another shell), through bpf(2) directly, so `lwtui block` needs no compiler.
Every change bumps config.rules_gen: the programs cache each flow's verdict
and look at the rule maps again only when that number moves.
"""

from __future__ import annotations

import ctypes as ct
import os
import time

from lwtui.kernel import bpfsys, kstructs
from lwtui.core.model import RuleEntry
from lwtui.core.grammar import parse_rule
from lwtui.core.rules import Rule
from lwtui.kernel.codec import decode, encode

_KEY_TYPES = {
    "verdicts": kstructs.FlowKey,
    "host_rules": kstructs.HostKey,
    "port_rules": kstructs.PortKey,
}
_VALUE_SIZE = ct.sizeof(kstructs.RuleVal)


class VerdictError(RuntimeError):
    """A rule could not be written or removed; the message names the fix."""


class RuleStore:
    """The verdict maps of one session, by fd."""

    def __init__(self, fds: dict[str, int], owns_fds: bool = False):
        self.fds = fds
        self._owns = owns_fds
        self._decoded: dict[tuple[str, bytes], Rule] = {}    # rule keys already decoded, by their bytes
        self._check_layout()

    def _check_layout(self) -> None:
        """Pinned maps are opened by path: make sure they are ours (sizes match)."""
        for name, ktype in _KEY_TYPES.items():
            info = bpfsys.map_info(self.fds[name])
            if info["key_size"] != ct.sizeof(ktype) or info["value_size"] != _VALUE_SIZE:
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
        cfg = kstructs.LwtuiConfig()
        bpfsys.map_lookup(self.fds["config"], ct.c_uint32(0), cfg)
        return cfg

    def _write_config(self, cfg: kstructs.LwtuiConfig) -> None:
        bpfsys.map_update(self.fds["config"], ct.c_uint32(0), cfg)

    def bump_generation(self) -> int:
        cfg = self.config()
        cfg.rules_gen = (cfg.rules_gen + 1) & 0xFFFFFFFF
        self._write_config(cfg)
        return cfg.rules_gen

    def set_dry_run(self, on: bool) -> None:
        cfg = self.config()
        cfg.dry_run = 1 if on else 0
        cfg.rules_gen = (cfg.rules_gen + 1) & 0xFFFFFFFF  # cached verdicts re-evaluate
        self._write_config(cfg)

    # -- rules -----------------------------------------------------------
    def add(self, rule: Rule | str, ttl: float | None = None) -> Rule:
        """Install a drop rule (replacing its TTL if present); effective from the next packet."""
        rule = parse_rule(rule) if isinstance(rule, str) else rule
        if ttl is not None and ttl <= 0:
            raise VerdictError(f"--ttl must be positive seconds, got {ttl}")
        map_name, key = encode(rule)
        val = kstructs.RuleVal()
        old = kstructs.RuleVal()
        if bpfsys.map_lookup(self.fds[map_name], key, old):
            val.hits, val.created_ns = old.hits, old.created_ns
        else:
            val.created_ns = time.time_ns()
        val.expires_ns = time.monotonic_ns() + int(ttl * 1e9) if ttl else 0
        try:
            bpfsys.map_update(self.fds[map_name], key, val)
        except bpfsys.BpfError as e:
            raise VerdictError(f"cannot add rule {rule.text!r}: {e.strerror} "
                               "(rule map full? remove rules with `lwtui allow`)") from None
        self.bump_generation()
        return rule

    def remove(self, rule: Rule | str) -> bool:
        """Remove a rule; False when it was not installed."""
        rule = parse_rule(rule) if isinstance(rule, str) else rule
        map_name, key = encode(rule)
        gone = bpfsys.map_delete(self.fds[map_name], key)
        if gone:
            self.bump_generation()
        return gone

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
        return out

    def entries(self, now_mono_ns: int | None = None) -> list[RuleEntry]:
        """Active rules for display, expired ones left out."""
        return [e for e, _ in self._split(self.items(), now_mono_ns)[0]]

    def expire(self, now_mono_ns: int | None = None) -> list[Rule]:
        """Delete rules whose TTL ran out (the kernel already ignores them)."""
        return self.sweep(now_mono_ns)[1]

    def sweep(self, now_mono_ns: int | None = None) -> tuple[list[tuple[RuleEntry, Rule]], list[Rule]]:
        """One read of the rule maps for a refresh tick: the active rules (for
        display, with their parsed Rule) and the expired ones, which it deletes."""
        active, expired = self._split(self.items(), now_mono_ns)
        gone = [r for r in expired if bpfsys.map_delete(self.fds[encode(r)[0]], encode(r)[1])]
        if gone:
            self.bump_generation()
        return active, gone

    @staticmethod
    def _split(items, now_mono_ns: int | None) -> tuple[list[tuple[RuleEntry, Rule]], list[Rule]]:
        now = time.monotonic_ns() if now_mono_ns is None else now_mono_ns
        active, expired = [], []
        for rule, val in items:
            left = None
            if val.expires_ns:
                left = (val.expires_ns - now) / 1e9
                if left <= 0:
                    expired.append(rule)
                    continue
            active.append((RuleEntry(text=rule.text, kind=rule.kind, hits=val.hits,
                                     expires_in=left, created=val.created_ns / 1e9), rule))
        active.sort(key=lambda er: (er[0].kind, er[0].text))
        return active, expired

    def clear(self) -> int:
        n = 0
        for rule, _ in self.items():
            map_name, key = encode(rule)
            n += bpfsys.map_delete(self.fds[map_name], key)
        if n:
            self.bump_generation()
        return n
