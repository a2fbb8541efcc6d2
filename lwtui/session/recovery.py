"""What killed sessions left on the routes, found without trusting state files alone.

State files (lwtui.session.state) restore routes exactly; when one is lost
or damaged, the route dumps still name lwtui's programs (lwtui.net.leftovers).
A program still belongs to a live session when a running session's state
file names it, or when some process holds an fd to it (a running lwtui
holds its programs; a killed one holds nothing, and its programs live on
only through the routes). Those are never touched; every other route
carrying lwtui's programs is a leftover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lwtui.core import procs
from lwtui.kernel import bpfsys
from lwtui.net import leftovers, routes
from lwtui.net.leftovers import Leftover, prog_id
from lwtui.session import state


@dataclass
class Found:
    """A leftover route, and the session whose readable state file names its program (if any)."""
    leftover: Leftover
    session: str | None = None
    kept: bool = False      # that session ended with --keep-blocks: left on purpose


@dataclass
class Scan:
    """Every namespace's leftovers, and the state files that could not be read."""
    found: list[Found] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    unreachable: list[tuple[str | None, str]] = field(default_factory=list)   # namespaces not looked in

    @property
    def orphans(self) -> list[Found]:
        """Leftovers no readable state file explains (a stale session's show under its name)."""
        return [f for f in self.found if f.session is None]


def scan() -> Scan:
    """Look through every namespace for routes carrying programs of no live session."""
    states = state.list_states()
    running = {a.get("prog_name") for s in states if s.status == "running" for a in s.attachments}
    owner = {a.get("prog_name"): s for s in states if s.status != "running" for a in s.attachments}
    held = procs.held_bpf_ids("prog")
    out = Scan(unreadable=state.unreadable_states())
    for ns in leftovers.namespaces():
        try:
            found = leftovers.find(ns)
        except (routes.RouteError, OSError) as e:  # gone, or "failed to open netns" while being deleted
            if ns is None or ns in leftovers.namespaces():
                out.unreachable.append((ns, str(e)))
            continue
        for lo in found:
            names = lo.progs.values()
            if any(n in running or prog_id(n) in held for n in names):
                continue
            st = next((owner[n] for n in names if n in owner), None)
            out.found.append(Found(lo, st.name if st else None, st is not None and st.status == "kept"))
    return out


def open_prog(name: str) -> int:
    """An fd of lwtui's program `name` (lwtui_HOOK_ID), opened by its id; the caller closes it."""
    pid = prog_id(name)
    if pid is None:
        raise OSError(0, f"{name} is not one of lwtui's programs")
    return bpfsys.prog_fd_by_id(pid)


def restore(lo: Leftover) -> str:
    """Take lwtui's encap off a leftover route as its dump says; the status (see routes.detach)."""
    return routes.detach(lo.attachment(), open_prog=open_prog)


def detach_state_route(att: routes.Attachment) -> str:
    """Restore one attachment of a session that is not running (from its state file)."""
    return routes.detach(att, open_prog=open_prog)

