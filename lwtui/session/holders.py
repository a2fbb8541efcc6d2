"""Who holds a route: refusals that name the session and its pid.

One route, one session. A route is refused when a state file says a running,
kept or killed session holds it (the same route however it is spelled), or
when the route already carries an lwtui program that a state file names.
Messages say which session, its pid, and what to do.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from lwtui.net import routes
from lwtui.session import state


def canonical(prefix: str | None) -> str | None:
    """A prefix as one spelling (10.0.0.3 and 10.0.0.3/32 are one route)."""
    try:
        return str(ipaddress.ip_network(prefix or ""))
    except ValueError:
        return prefix


def route_kind(netns: str | None, prefix: str | None, hook: str | None) -> tuple:
    """Which route a hook uses: `in` the local route, out/xmit the main-table one (one encap each)."""
    return netns, canonical(prefix), "local" if hook == "in" else "main"


def busy_route(targets: Iterable[routes.Target]) -> str | None:
    """The refusal for the first target a running, kept or killed session holds, else None."""
    mine = {route_kind(t.netns, t.prefix, t.hook) for t in targets}
    for st in state.list_states():
        for a in st.attachments:
            t = a.get("target", {})
            if route_kind(t.get("netns"), t.get("prefix"), t.get("hook")) in mine:
                return _refusal(f"{t.get('prefix')} ({t.get('hook')})", st)
    return None


def holding(e: routes.LwtuiEncap) -> str | None:
    """The refusal naming the session whose state file names the route's programs, else None."""
    for st in state.list_states():
        if any(a.get("prog_name") in e.progs for a in st.attachments):
            return _refusal(e.route, st)
    return None


def _refusal(what: str, st: state.SessionState) -> str:
    status = st.status
    if status == "running":
        return f"{what} is already watched by session {st.name} (pid {st.pid}): stop it first"
    if status == "kept":
        return f"{what} still carries the kept blocks of session {st.name}: run `lwtui detach --session {st.name}` first"
    return f"{what} is held by stale session {st.name} (pid {st.pid} is gone): run `lwtui detach --all` first"
