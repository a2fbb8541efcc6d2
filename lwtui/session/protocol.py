"""The session interface: what the dashboard and `watch` may ask of a session.

Two classes implement it: `lwtui.session.live.Session` (the kernel: programs,
maps, routes) and `lwtui.session.replay.ReplaySession` (recorded snapshots, for
screenshots, snapshot tests and demos). The front ends (lwtui.ui,
lwtui.cli.watch) name only `SessionLike`, so either one drives them; the type
checker holds both classes to it, and tests/unit/test_session_protocol.py
checks it at run time too.

Threads: snapshot() runs on a worker thread once per tick, poll_events() on a
reader thread in a loop; block/allow/set_dry_run are quick and safe from any
thread. The caller owns the session: it starts it before handing it over and
closes it afterwards.

Pure Python: no BCC, no netlink, no textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

from lwtui.core.model import FlowId, RuleEntry, Snapshot
from lwtui.core.pcap import PcapWriter
from lwtui.core.rules import Rule

if TYPE_CHECKING:
    from lwtui.net.routes import Target


class SessionError(RuntimeError):
    """The session cannot start or act; the message names the fix."""


class RestoreFailed(SessionError):
    """The session ended, but something it made is left (a route not restored, pins it would not
    follow a link to remove): a failure at run time (exit 1), the message names the fix."""


class RoutesGone(RuntimeError):
    """Every route the session watched went away (deleted, device or namespace removed)."""


@runtime_checkable
class SessionLike(Protocol):
    """A running session as the front ends see it (see the module docstring)."""

    @property
    def name(self) -> str:
        """The session's name (state file, pins, `--session NAME`)."""
        ...

    @property
    def dry_run(self) -> bool:
        """True while rules only count would-drops; set_dry_run() changes it."""
        ...

    @property
    def keep_blocks(self) -> bool:
        """True when close() leaves active rules in force (--keep-blocks): quitting lifts none."""
        ...

    @property
    def closed(self) -> bool:
        """True once close() ran: the reader loop stops."""
        ...

    @property
    def lost(self) -> Sequence[tuple[Target, str]]:
        """The routes that went away while watched, and why."""
        ...

    def snapshot(self) -> Snapshot:
        """Counters, rules and events as of now (a copy: safe to hand to another thread)."""
        ...

    def poll_events(self, timeout_ms: int = 100) -> None:
        """Block up to timeout_ms for kernel events; they come out with the next snapshot."""
        ...

    def block(self, rule: Rule | str, ttl: float | None = None) -> Rule:
        """Drop what `rule` matches, for `ttl` seconds (None: until allowed)."""
        ...

    def allow(self, rule: Rule | str) -> bool:
        """Lift a rule; False when it was not there."""
        ...

    def block_flow(self, flow: FlowId, kind: str = "flow", ttl: float | None = None) -> Rule:
        """Block this flow, its remote host ("host") or its service port ("port")."""
        ...

    def allow_flow(self, flow: FlowId) -> list[Rule]:
        """Lift every rule that blocks this flow; returns them."""
        ...

    def would_cut_ssh(self, rule: Rule | str) -> str | None:
        """The user's own SSH connection when `rule` would block it, else None."""
        ...

    def rules(self) -> list[RuleEntry]:
        """The active rules."""
        ...

    def set_ttl(self, rule: Rule | str, ttl: float | None) -> bool:
        """A new TTL for an active rule, counted from now (None: none); False when it is not there."""
        ...

    def set_rule_dry_run(self, rule: Rule | str, on: bool) -> bool:
        """This rule alone counts would-drops (on) or drops again (off); False when it is not there."""
        ...

    def set_dry_run(self, on: bool) -> None:
        """Count would-drops instead of dropping (on), or drop again (off)."""
        ...

    def record(self, writer: PcapWriter, flow: FlowId | None = None) -> None:
        """Write dropped and would-drop packets (only `flow`'s, if given) to a pcap file;
        SessionError where there are no packets to record (a replay)."""
        ...

    def stop_recording(self, writer: PcapWriter) -> None:
        """Stop writing to that file and close it."""
        ...

    def close(self) -> list[str]:
        """End the session (idempotent); one status line per route restored."""
        ...
