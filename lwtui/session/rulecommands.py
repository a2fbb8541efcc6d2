"""The rule commands of a Session: block, allow, TTLs, dry-run; quick map writes, any thread.

A mixin, so lwtui.session.live stays about the session's lifecycle. Each
command is one or a few updates of the verdict maps through the RuleStore
(lwtui.kernel.verdicts), logged to the session's event log; the next
snapshot shows what the kernel does with it. A dry-run switch, of the
session or of one rule, first books the hits (and, for the session, the
flows' counts) gained so far under the mode that ends, under the Session's
_read_lock, since the kernel counts drops and would-drops as one.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Optional

from lwtui.core.flowcols import FlowView
from lwtui.core.rates import HitSplit
from lwtui.core.grammar import parse_rule
from lwtui.core.model import FlowId, RuleEntry
from lwtui.core.rules import Rule, rule_for, rules_blocking
from lwtui.kernel.verdicts import RuleStore
from lwtui.session import guard
from lwtui.session.protocol import SessionError

if TYPE_CHECKING:
    from lwtui.session.state import SessionState


class RuleCommands:
    """Needs the Session's store, state, dry_run, _closed, _read_lock, _hits, _log() and
    _read_flows() (lwtui.session.reading)."""

    # What the commands use of the Session (it sets them in __init__ and start()):
    store: Optional[RuleStore]
    state: Optional[SessionState]
    dry_run: bool
    _closed: bool
    _read_lock: threading.Lock         # one reading of the maps at a time: a snapshot, a dry-run switch
    _hits: HitSplit

    if TYPE_CHECKING:
        def _log(self, kind: str, text: str, flow: FlowId | None = None, when: float | None = None) -> None: ...

        def _read_flows(self, now: float, active_rules: list[Rule]) -> FlowView: ...

    def block(self, rule: Rule | str, ttl: float | None = None) -> Rule:
        """Drop what `rule` matches from the next packet on (ask would_cut_ssh first)."""
        r = self._store().add(rule, ttl=ttl)
        self._log("block", f"block {r.text}" + (f" for {ttl:g}s" if ttl else ""))
        return r

    def would_cut_ssh(self, rule: Rule | str) -> str | None:
        """The user's own SSH connection (SSH_CONNECTION) when `rule` would block it, else None."""
        return guard.ssh_flow_blocked_by(parse_rule(rule) if isinstance(rule, str) else rule)

    def allow(self, rule: Rule | str) -> bool:
        """Lift a rule; False when it was not there."""
        r = parse_rule(rule) if isinstance(rule, str) else rule
        gone = self._store().remove(r)
        if gone:
            self._log("allow", f"allow {r.text}")
        return gone

    def block_flow(self, flow: FlowId, kind: str = "flow", ttl: float | None = None) -> Rule:
        """The dashboard's d/h/p: block this flow, its remote host or its service port."""
        return self.block(rule_for(flow, kind), ttl=ttl)

    def allow_flow(self, flow: FlowId) -> list[Rule]:
        """Lift every rule that blocks this flow (the dashboard's `a`)."""
        active = [parse_rule(e.text) for e in self._store().entries()]
        lifted = [r for r in rules_blocking(flow, active) if self.allow(r)]
        return lifted

    def rules(self) -> list[RuleEntry]:
        """The active rules, their hits split into drops and would-drops."""
        return self._hits.view(self._store().entries(), self.dry_run)

    def set_ttl(self, rule: Rule | str, ttl: float | None) -> bool:
        """A new TTL for an active rule, from now (None: none); its hits and dry-run stay."""
        r = parse_rule(rule) if isinstance(rule, str) else rule
        done = self._store().set_ttl(r, ttl)
        if done:
            self._log("block", f"{r.text}: " + (f"lifts itself in {ttl:g}s" if ttl else "no TTL any more"))
        return done

    def set_rule_dry_run(self, rule: Rule | str, on: bool) -> bool:
        """This rule alone counts would-drops (on) or drops again (off); its hits until now are
        booked under the mode that ends, as set_dry_run does for all."""
        r = parse_rule(rule) if isinstance(rule, str) else rule
        store = self._store()
        with self._read_lock:
            try:
                self._hits.update(store.entries(), self.dry_run)
            except OSError as e:
                self._log("error", f"hits of {r.text} until now could not be booked to the mode that ends ({e})")
            done = store.set_rule_dry_run(r, on)
        if done:
            self._log("info", f"{r.text}: " + ("dry-run, counts would-drops, drops nothing" if on
                                               else "drops packets again"))
        return done

    def set_dry_run(self, on: bool) -> None:
        """Switch dry-run. The kernel counts a flow's drops and would-drops as one, so what
        the flows and rules gained until now is booked under the mode that ends, first."""
        store = self._store()
        with self._read_lock:
            if on != self.dry_run:
                try:
                    now = time.time()
                    active = store.entries()
                    self._hits.update(active, self.dry_run)
                    self._read_flows(now, [parse_rule(e.text) for e in active])
                except OSError as e:    # the switch itself must not fail for it: say what is lost
                    self._log("error", f"counts until the dry-run switch could not be booked to the mode "
                              f"that ends ({e}); the next refresh books them to the new one")
            store.set_dry_run(on)
            self.dry_run = on
        if self.state is not None:
            self.state.dry_run = on
            self.state.save()
        self._log("info", "dry-run on: rules count would-drops, nothing is dropped" if on
                  else "dry-run off: rules drop packets")

    def _store(self) -> RuleStore:
        if self.store is None or self._closed:
            raise SessionError("session is not running")
        return self.store
