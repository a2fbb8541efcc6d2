"""`lwtui sessions` and `lwtui detach`: the sessions on this host, and restoring the
routes of those that are gone (killed, or kept with --keep-blocks) from their state
files and from every namespace's route dump (lwtui.session.recovery)."""

from __future__ import annotations

import json
import os

from lwtui.cli.console import console
from lwtui.core.records import rfc3339
from lwtui.kernel import pins
from lwtui.session import state


_STATE_TEXT = {"running": "running", "kept": "[yellow]kept (blocks active)[/]",
               "stale": "[red]stale: run lwtui detach --all[/]"}


def cmd_sessions(args) -> int:
    from lwtui.session.guard import require_privileges
    require_privileges()            # the state files are root's: an empty list would be a lie
    states = state.list_states()
    found = _scan_if_root()
    if args.json:
        for s in states:
            print(json.dumps({"type": "session", "name": s.name, "pid": s.pid, "alive": s.alive,
                              "state": s.status, "started": rfc3339(s.started), "dry_run": s.dry_run,
                              "keep_blocks": s.keep_blocks,
                              "routes": [a.get("target") for a in s.attachments]}))
        for f in found.orphans if found else ():
            print(json.dumps(_leftover_json(f.leftover)))
        for path, err in found.unreadable if found else ():
            print(json.dumps({"type": "unreadable", "path": str(path), "error": err}))
        for ns, err in found.unreachable if found else ():
            print(json.dumps({"type": "unreachable", "netns": ns, "error": err}))
        return 0
    from rich.markup import escape
    from rich.table import Table
    t = Table(title="lwtui sessions", title_justify="left")
    for c in ("session", "pid", "state", "routes"):
        t.add_column(c)
    for s in states:
        routes = ", ".join(f"{a['target']['prefix']} {a['target']['hook']}"
                           + (f" ({a['target']['netns']})" if a['target'].get('netns') else "")
                           for a in s.attachments)
        t.add_row(s.name, str(s.pid), _STATE_TEXT[s.status], routes)
    if not states:
        t.caption = "none"
    con = console()
    con.print(t)
    for f in found.orphans if found else ():    # one line each: a table cell would wrap them
        con.print(f"[red]left behind by a session that is gone: {escape(f.leftover.describe())}: "
                  "run `lwtui detach --all`[/]")
    for ns, err in found.unreachable if found else ():
        con.print(f"[red]could not look for lwtui's programs in {escape(ns or 'this namespace')}: {escape(err)}[/]")
    for path, err in found.unreadable if found else ():
        con.print(f"[red]unreadable state file {escape(str(path))} ({escape(err)}): run `lwtui detach --all`[/]")
    return 0


def _scan_if_root():
    """Leftovers and unreadable state files (recovery.scan), or None when not root: the
    namespaces' routes and other processes' fds are root's to read."""
    if os.geteuid() != 0:
        return None
    from lwtui.session import recovery
    return recovery.scan()


def _leftover_json(lo) -> dict:
    from lwtui.net.routes import describe_encap, route_net, route_table
    return {"type": "leftover", "netns": lo.netns, "prefix": str(route_net(lo.route)),
            "table": route_table(lo.route), "encap": describe_encap(lo.route)}


def cmd_detach(args) -> int:
    """Restore the routes of sessions that are not running: killed ones (stale) and kept ones.

    From their state files first, then (with --all) from the route dumps of
    every namespace: routes carrying programs of no live session
    (lwtui.session.recovery). Then remove their state files and pins, pins
    without a state file, and half-written state files. Each route and each
    unreadable state file is reported; exit 1 when anything is left.
    A running session restores its own routes.
    """
    from lwtui.session.guard import require_privileges
    from lwtui.session.live import SessionError
    require_privileges()
    states = state.list_states()
    if args.session:
        states = [s for s in states if s.name == args.session]
        if not states:
            raise SessionError(f"no session named {args.session!r}: see `lwtui sessions`")
    live = [s for s in states if s.status == "running"]
    todo = [s for s in states if s.status != "running"]
    if args.session and live:
        raise SessionError(f"session {args.session} is running (pid {live[0].pid}): quit it (q or Ctrl-C) "
                           "and it restores its routes itself")
    con = console()
    done = [_detach_state(con, st) for st in todo]
    failed, pins_left = sum(f for f, _ in done), sum(p for _, p in done)
    found = left = 0
    unreadable: list = []
    if not args.session:
        found, left, unreadable = _detach_leftovers(con)
    running = {s.name for s in state.list_states() if s.status != "stale"} - {s.name for s in todo}
    orphans = [n for n in pins.pinned_sessions()   # a live session's pins are never orphans (its lock says so)
               if n not in running and state.holder(n) is None] if not args.session else []
    kept_dirs = sum(_unpin(con, name) for name in orphans)   # pins whose state file is gone
    pins_left += kept_dirs
    tmp = state.remove_stale_tmp()
    state.remove_stale_locks()
    cleaned = ([f"removed {len(orphans) - kept_dirs} orphaned pin dir(s)"] if len(orphans) > kept_dirs else []) + \
        ([f"removed {len(tmp)} half-written state file(s)"] if tmp else [])
    if not todo and not found and not unreadable:
        con.print("; ".join(["nothing to detach" + (f" ({len(live)} session(s) running)" if live else "")]
                            + cleaned))
    elif cleaned:
        con.print("; ".join(cleaned))
    if failed or left or unreadable:
        con.print(f"[red]left: {failed + left} route(s) not restored, {len(unreadable)} unreadable state "
                  "file(s)[/]")
        return 1
    return 1 if pins_left else 0


def _unpin(con, name: str) -> int:
    """Remove a session's pins; 1 (and a line saying what and why) when its directory holds
    what lwtui did not put there, 0 when it is gone."""
    from rich.markup import escape
    left = pins.unpin(name)
    if left:
        con.print(f"[yellow]{escape(pins.left_message(name, left))}[/]")
    return 1 if left else 0


def _detach_leftovers(con) -> tuple[int, int, list]:
    """Routes carrying programs of no live session, from every namespace's dump: restore each.

    Returns (how many found, how many are left, the unreadable state files).
    """
    from rich.markup import escape
    from lwtui.session import recovery
    scan = recovery.scan()
    left = 0
    for f in scan.found:
        what = escape(f"{f.leftover.describe()} (" + (f"session {f.session}" if f.session else
                                                     "no state file names it") + ")")
        try:
            con.print(f"{what}: {escape(recovery.restore(f.leftover))}")
        except Exception as e:  # noqa: BLE001 - report it and go on: every other route must be tried
            left += 1
            con.print(f"[red]{what}: not restored: {escape(str(e))}[/]")
    for ns, err in scan.unreachable:
        con.print(f"[red]could not look for lwtui's programs in {escape(ns or 'this namespace')}: "
                  f"{escape(err)}[/]")
    for path, err in scan.unreadable:
        con.print(f"[red]{escape(str(path))}: unreadable state file ({escape(err)}); its routes were looked "
                  "for in every namespace's route dump (above); once nothing is listed, remove it: "
                  f"rm {escape(str(path))}[/]")
    return len(scan.found), left + len(scan.unreachable), scan.unreadable


def _detach_state(con, st: state.SessionState) -> tuple[int, int]:
    """Restore one session's routes from its state file; returns how many failed, and 1 when
    its pin directory holds what lwtui did not put there (else 0)."""
    from rich.markup import escape
    from lwtui.net.routes import Attachment
    from lwtui.session.recovery import detach_state_route
    remaining = []
    for a in reversed(st.attachments):
        what = escape(f"{st.name}: {a.get('target', {}).get('prefix')} ({a.get('target', {}).get('hook')})"
                      if isinstance(a, dict) else f"{st.name}: {a!r}")
        try:
            con.print(f"{what}: {escape(detach_state_route(Attachment.from_dict(a)))}")
        except Exception as e:  # noqa: BLE001 - report it and go on: every other route must be tried
            remaining.append(a)
            con.print(f"[red]{what}: not restored: {escape(str(e))}[/]")
    pins_left = _unpin(con, st.name)
    if remaining:
        st.attachments = list(reversed(remaining))
        st.kept = False
        st.save()
    else:
        st.remove()
    return len(remaining), pins_left
