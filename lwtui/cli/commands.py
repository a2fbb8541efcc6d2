"""One function per `lwtui` subcommand; entry.py parses and dispatches here."""

from __future__ import annotations

import json
import os
import sys
import time

from lwtui.core.records import rfc3339
from lwtui.kernel import pins
from lwtui.session import state


def error_code(e: BaseException) -> int | None:
    """Exit code for an error lwtui knows (its message names the fix), else None.

    2: bad input or an environment that is not ready (nothing was changed);
    1: a failure at run time (the routes were restored on the way out, or what could not be
       is named with its fix: RestoreFailed).
    """
    from lwtui.session.faults import InjectedFault
    from lwtui.session.guard import PrivilegeError
    from lwtui.kernel.headers import HeadersMissing
    from lwtui.lab.lab import LabError
    from lwtui.net.netns import TopologyError
    from lwtui.core.rules import RuleError
    from lwtui.net.routes import RouteError
    from lwtui.session.live import RoutesGone, SessionError
    from lwtui.kernel.verdicts import VerdictError
    from lwtui.kernel.bpfsys import LibbpfMissing
    from lwtui.cli.watch import ReaderFailed
    from lwtui.kernel.features import FeatureError
    from lwtui.session.metrics import MetricsError
    known: tuple[type[Exception], ...] = (HeadersMissing, RuleError, RouteError, SessionError, VerdictError,
                                          pins.PinError, PrivilegeError, LabError, TopologyError, MetricsError,
                                          LibbpfMissing, FeatureError)
    try:
        from lwtui.kernel.probe import ProbeError
        known += (ProbeError,)
    except ImportError:  # BCC missing: the probe cannot even be imported
        pass
    from lwtui.session.protocol import RestoreFailed
    if isinstance(e, (RoutesGone, ReaderFailed, InjectedFault, RestoreFailed)):
        return 1
    return 2 if isinstance(e, known) else None


def _console(stderr: bool = False):
    from rich.console import Console
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _rules_file(args) -> list:
    """The rules of --rules FILE, read before anything is compiled or attached."""
    if not getattr(args, "rules", None):
        return []
    from lwtui.core.rulesfile import read_rules
    return read_rules(args.rules)


def _session(args, targets, rules=()):
    from lwtui.session.live import Session
    status = _console(stderr=True)
    return Session(targets, name=args.session, dry_run=args.dry_run, max_flows=args.max_flows,
                   idle_timeout=getattr(args, "expire", 60.0), keep_blocks=getattr(args, "keep_blocks", False), events=getattr(args, "events", "perf"),
                   on_status=lambda m: status.print(f"[dim]{m}…[/]") if sys.stderr.isatty() else None,
                   rules=rules)


def _print_ebpf(args) -> int:
    from lwtui.kernel import features
    from lwtui.kernel.probe import SOURCE_NAME, bpf_dir, build_cflags, events_cflags
    events = getattr(args, "events", "perf")
    if os.geteuid() == 0:
        chosen, whose = features.plan(events), "this kernel's"
    else:       # the probes need root: say so rather than show every fallback
        chosen, whose = features.decide(dict.fromkeys(features.PROBES, True), events=events), \
            "a kernel with every feature's (run as root for this kernel's)"
    extra = [*chosen.cflags, *events_cflags(chosen.events)]
    print(f"// cflags, {whose}: {' '.join(build_cflags(args.max_flows, 4096, extra))}")
    print((bpf_dir() / SOURCE_NAME).read_text())
    return 0


def _finish(session) -> None:
    """Close the session (restore, or keep with --keep-blocks) and say what happened.

    Printing never gets in the way of the restore: it comes after, and a
    terminal that went away (SIGHUP, EIO) or a closed pipe is ignored.
    """
    from rich.markup import escape
    statuses = session.close()
    try:
        if session.kept:
            print(statuses[0], file=sys.stderr, flush=True)
        elif statuses and sys.stderr.isatty():
            _console(stderr=True).print("[dim]on exit: " + escape("; ".join(statuses)) + "[/]")
    except OSError:     # the terminal or pipe is gone: nothing to say it on (the routes are restored)
        pass


# -- the dashboard and watch ---------------------------------------------

def _metrics_server(args):
    """The --metrics server, bound before anything is attached (a bad address or a busy
    port is bad input and changes nothing); None without --metrics."""
    if getattr(args, "metrics_flows", 0) and not getattr(args, "metrics", None):
        from lwtui.cli.targets import UsageError
        raise UsageError("--metrics-flows needs --metrics [ADDR:]PORT")
    if not getattr(args, "metrics", None):
        return None
    from lwtui.session.metrics import MetricsServer
    return MetricsServer(*args.metrics)


def _pcap_path(args) -> str | None:
    """The --pcap file, checked before anything is attached (an unwritable path is bad
    input and changes nothing: the file is made once the session runs); None without --pcap."""
    path = getattr(args, "pcap", None)
    if not path:
        return None
    from lwtui.cli.targets import UsageError
    from lwtui.core.pcap import check_writable
    try:
        check_writable(path)
    except OSError as e:
        raise UsageError(f"cannot write the --pcap file {path} ({e.strerror or e}): "
                         "give a path in a directory you can write to") from None
    return path


def _start(session, server, args, pcap: str | None):
    """Start the session, then serve its metrics and record its drops to the --pcap file
    (as asked); the file's writer, or None."""
    session.start()
    if server is not None:
        server.attach(session, args.metrics_flows)
    if pcap is None:
        return None
    from lwtui.core.pcap import PcapWriter
    from lwtui.session.protocol import SessionError
    try:
        writer = PcapWriter(pcap, args.snaplen)
    except OSError as e:    # it could be written a moment ago: something changed meanwhile
        raise SessionError(f"cannot write the --pcap file {pcap} ({e.strerror or e})") from None
    session.record(writer)
    return writer


def _pcap_done(writer) -> None:
    """Say what the --pcap file holds."""
    if writer is None:
        return
    writer.close()
    try:
        print(f"lwtui: {writer.packets} packet(s) recorded in {writer.path}" +
              (f", {writer.skipped} not written (the file reached its cap)" if writer.skipped else ""),
              file=sys.stderr, flush=True)
    except OSError:     # the terminal or pipe is gone
        pass


def _stop_metrics(server) -> None:
    """Stop serving before the session closes its maps."""
    if server is not None:
        server.close()


def _need_terminal() -> None:
    """The dashboard without a terminal on stdin and stdout: refused before anything is attached."""
    from lwtui.cli.targets import UsageError
    from lwtui.ui.terminal import has_terminal
    if not has_terminal():
        raise UsageError("the dashboard needs a terminal on stdin and stdout; in pipes and scripts use "
                         "`lwtui watch ROUTE` (add --json for JSON lines)")


def cmd_dashboard(args) -> int:
    from lwtui.cli.targets import targets as _targets
    if args.ebpf:
        return _print_ebpf(args)
    _need_terminal()
    rules = _rules_file(args)
    from lwtui.net.routes import list_routes as lr
    from lwtui.ui.app import run_dashboard
    list_routes = lambda: lr(args.netns)  # noqa: E731  (the picker's, and the no-traffic screen's other routes)
    targets = _targets(args) if args.routes else None
    server = _metrics_server(args)
    pcap = _pcap_path(args)
    writer = None
    try:
        targets = targets or _pick_routes(args, list_routes)
        if not targets:
            return 0
        session = _session(args, targets, rules)
        try:
            writer = _start(session, server, args, pcap)
            return run_dashboard(session, interval=args.interval, list_routes=list_routes,
                                 snaplen=args.snaplen) or 0
        finally:
            _stop_metrics(server)
            _finish(session)
    finally:
        _stop_metrics(server)
        _pcap_done(writer)


def _pick_routes(args, list_routes):
    from lwtui.ui.app import pick_routes
    from lwtui.net.routes import Target
    chosen = pick_routes(list_routes)
    return [Target(prefix=c["prefix"], hook=c["hook"], netns=args.netns, dev=None) for c in chosen or []]


def _session_line(session, server=None, writer=None) -> None:
    """First JSON line of `watch --json`: the session is attached and counting."""
    line = {"type": "session", "name": session.name, "pid": os.getpid(), "dry_run": session.dry_run,
            "routes": [{"prefix": a.target.prefix, "hook": a.target.hook, "netns": a.target.netns}
                       for a in session.attachments],
            "events": session.transport, "fallbacks": list(session.fallbacks)}
    if server is not None:
        line["metrics"] = server.url
    if writer is not None:
        line["pcap"] = writer.path
    print(json.dumps(line, separators=(",", ":")), flush=True)


def cmd_watch(args) -> int:
    from lwtui.cli.targets import targets as _targets
    from lwtui.cli.watch import run_watch
    if args.ebpf:
        return _print_ebpf(args)
    targets = _targets(args)
    rules = _rules_file(args)
    server = _metrics_server(args)
    pcap = _pcap_path(args)
    writer = None
    try:
        session = _session(args, targets, rules)
        try:
            writer = _start(session, server, args, pcap)
            run_watch(session, interval=args.interval, duration=args.duration, as_json=args.json,
                      out=sys.stdout, on_ready=(lambda: _session_line(session, server, writer)) if args.json else None)
        finally:
            _stop_metrics(server)
            _finish(session)
    finally:
        _stop_metrics(server)
        _pcap_done(writer)
    return 0


# -- verdicts from another shell -----------------------------------------

def _running_session(name: str | None) -> state.SessionState:
    """The session `block`/`allow`/`rules` act on: a running one, or one kept with --keep-blocks."""
    from lwtui.session.live import SessionError
    states = [s for s in state.list_states() if s.status in ("running", "kept")]
    if name:
        for s in states:
            if s.name == name:
                return s
        names = ", ".join(s.name for s in states) or "none running"
        raise SessionError(f"no running session named {name!r} ({names}): see `lwtui sessions`")
    running = [s for s in states if s.status == "running"]
    if len(running) == 1 or (not running and len(states) == 1):
        return (running or states)[0]
    if not states:
        raise SessionError("no lwtui session is running: start one with `lwtui ROUTE` or `lwtui watch ROUTE`")
    raise SessionError("several sessions are running (" + ", ".join(s.name for s in states) +
                       "): pick one with --session NAME")


def _store(args):
    from lwtui.session.guard import require_privileges
    from lwtui.kernel.verdicts import RuleStore
    require_privileges()
    st = _running_session(args.session)
    return st, RuleStore(pins.open_pinned(st.name), owns_fds=True)


def _guard_ssh(rule, force: bool) -> None:
    """Refuse, headless, a rule that would cut the user's own SSH connection."""
    from lwtui.session.guard import ssh_flow_blocked_by
    hit = ssh_flow_blocked_by(rule)
    if hit and not force:
        from lwtui.session.live import SessionError
        raise SessionError(f"{rule.text!r} would block your own SSH connection ({hit}): add --force to do it anyway")


def cmd_block(args) -> int:
    from lwtui.core.grammar import parse_rule
    rule = parse_rule(" ".join(args.rule))
    dry = getattr(args, "dry_run", False)
    if not dry:         # a dry-run rule drops nothing: it cannot cut the connection
        _guard_ssh(rule, args.force)
    st, store = _store(args)
    try:
        store.add(rule, ttl=args.ttl, dry_run=dry)
    finally:
        store.close()
    ttl = f" for {args.ttl:g}s" if args.ttl else ""
    what = "dry-run (counts would-drops, drops nothing)" if dry else "blocked"
    _console().print(f"{what} [bold]{rule.text}[/]{ttl} in session {st.name}")
    return 0


def cmd_allow(args) -> int:
    from lwtui.core.grammar import parse_rule
    rule = parse_rule(" ".join(args.rule))
    st, store = _store(args)
    try:
        gone = store.remove(rule)
    finally:
        store.close()
    if not gone:
        from lwtui.kernel.verdicts import VerdictError
        raise VerdictError(f"no rule {rule.text!r} in session {st.name}: see `lwtui rules`")
    _console().print(f"allowed [bold]{rule.text}[/] in session {st.name}")
    return 0


def cmd_rules(args) -> int:
    from lwtui.cli.watch import rule_json
    st, store = _store(args)
    try:
        entries = store.entries()
    finally:
        store.close()
    if getattr(args, "save", None):
        return _save_rules(args.save, st.name, entries)
    if args.json:
        for e in entries:
            print(json.dumps(rule_json(e), separators=(",", ":")))
        return 0
    from rich.table import Table
    t = Table(title=f"rules of session {st.name}", title_justify="left")
    for c in ("rule", "kind", "hits", "ttl left"):
        t.add_column(c)
    for e in entries:
        t.add_row(e.text, e.kind, str(e.hits), "-" if e.expires_in is None else f"{e.expires_in:.0f}s")
    if not entries:
        t.caption = "no rules: block with `lwtui block RULE` or a key in the dashboard"
    _console().print(t)
    return 0


def _save_rules(path: str, name: str, entries) -> int:
    """Write a session's rules as a rules file (lwtui.core.rulesfile) for --rules."""
    from lwtui.core.records import rfc3339
    from lwtui.core.rulesfile import format_rules
    from lwtui.cli.targets import UsageError
    text = format_rules(entries, header=f"rules of session {name}, saved {rfc3339(time.time())}\n"
                                        "use: lwtui watch ROUTE ... --rules FILE (or the dashboard's --rules)")
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}: choose a writable path") from None
    print(f"saved {len(entries)} rule{'s' if len(entries) != 1 else ''} of session {name} to {path}")
    return 0


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
    con = _console()
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
    con = _console()
    failed = sum(_detach_state(con, st) for st in todo)
    found = left = 0
    unreadable: list = []
    if not args.session:
        found, left, unreadable = _detach_leftovers(con)
    running = {s.name for s in state.list_states() if s.status != "stale"} - {s.name for s in todo}
    orphans = [n for n in pins.pinned_sessions()   # a live session's pins are never orphans (its lock says so)
               if n not in running and state.holder(n) is None] if not args.session else []
    for name in orphans:  # pins whose state file is gone
        pins.unpin(name)
    tmp = state.remove_stale_tmp()
    state.remove_stale_locks()
    cleaned = ([f"removed {len(orphans)} orphaned pin dir(s)"] if orphans else []) + \
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
    return 0


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


def _detach_state(con, st: state.SessionState) -> int:
    """Restore one session's routes from its state file; returns how many failed."""
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
    pins.unpin(st.name)
    if remaining:
        st.attachments = list(reversed(remaining))
        st.kept = False
        st.save()
    else:
        st.remove()
    return len(remaining)


# -- environment, lab, demo ----------------------------------------------

def cmd_doctor(args) -> int:
    from lwtui.cli.doctor import run_doctor
    return run_doctor(_console(), as_json=getattr(args, "json", False))


def cmd_lab(args) -> int:
    from lwtui.cli.labstatus import lab_table, with_rfc3339_times
    from lwtui.lab.lab import Lab
    from lwtui.session.guard import require_privileges
    require_privileges()        # status too: as another user the lab's files cannot be read, and it would say so wrongly
    lab = Lab(prefix=args.prefix)
    if args.action == "up":
        topo = lab.up()
        _console().print(f"lab up: {topo.client_ns} ({topo.client_v4}, {topo.client_v6}) <-> "
                         f"{topo.server_ns} ({topo.server_v4}, {topo.server_v6}); "
                         f"try: lwtui {topo.server_v4}/32 --netns {topo.client_ns}")
    elif args.action == "down":
        lab.down()
        _console().print("lab down")
    else:
        st = lab.status()
        if args.json:
            print(json.dumps(with_rfc3339_times(st), default=str))
        else:
            _console().print(lab_table(st))
        return 0 if st.get("up") else 1
    return 0


def cmd_demo(args) -> int:
    """Build the lab, watch out on the client and in on the server, tear all down on quit."""
    from lwtui.lab.lab import Lab
    from lwtui.net.routes import Target, list_routes
    from lwtui.session.live import Session
    from lwtui.ui.app import run_dashboard
    from lwtui.session.guard import require_privileges
    require_privileges()
    _need_terminal()
    lab = Lab(prefix=args.prefix)
    topo = lab.up()
    try:
        targets = [Target(prefix=f"{topo.server_v4}/32", hook="out", netns=topo.client_ns),
                   Target(prefix=f"{topo.server_v6}/128", hook="out", netns=topo.client_ns),
                   Target(prefix=f"{topo.server_v4}/32", hook="in", netns=topo.server_ns)]
        session = Session(targets, name=f"{args.prefix}-demo", keep_blocks=getattr(args, "keep_blocks", False))
        try:
            session.start()
            return run_dashboard(session, interval=args.interval,
                                 list_routes=lambda: list_routes(topo.client_ns)) or 0
        finally:
            _finish(session)
    finally:
        if not args.keep_lab:
            lab.down()
