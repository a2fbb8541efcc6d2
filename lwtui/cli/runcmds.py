"""The commands that run a session in this process until it ends: the dashboard
(`lwtui ROUTE`) and `lwtui watch`, with what they share (--rules, --metrics,
--pcap, --ebpf) and the way out (finish: restore, or keep with --keep-blocks)."""

from __future__ import annotations

import json
import os
import sys

from lwtui.cli.console import console


def _rules_file(args) -> list:
    """The rules of --rules FILE, read before anything is compiled or attached."""
    if not getattr(args, "rules", None):
        return []
    from lwtui.core.rulesfile import read_rules
    return read_rules(args.rules)


def _session(args, targets, rules=()):
    from lwtui.session.live import Session
    status = console(stderr=True)
    return Session(targets, name=args.session, dry_run=args.dry_run, max_flows=args.max_flows,
                   idle_timeout=getattr(args, "expire", 60.0), keep_blocks=getattr(args, "keep_blocks", False), events=getattr(args, "events", "perf"),
                   on_status=lambda m: status.print(f"[dim]{m}…[/]") if sys.stderr.isatty() else None,
                   rules=rules)


def _print_ebpf(args) -> int:
    from lwtui.kernel import features
    from lwtui.cli.targets import hooks
    from lwtui.kernel.loader import SOURCE_NAME, bpf_dir, build_cflags, events_cflags, hook_cflags
    events = getattr(args, "events", "perf")
    if os.geteuid() == 0:
        chosen, whose = features.plan(events), "this kernel's"
    else:       # the probes need root: say so rather than show every fallback
        chosen, whose = features.decide(dict.fromkeys(features.PROBES, True), events=events), \
            "a kernel with every feature's (run as root for this kernel's)"
    extra = [*chosen.cflags, *events_cflags(chosen.events), *hook_cflags(hooks(getattr(args, "hook", "out")))]
    print(f"// cflags, {whose}: {' '.join(build_cflags(args.max_flows, 4096, extra))}")
    print((bpf_dir() / SOURCE_NAME).read_text())
    return 0


def finish(session) -> None:
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
            console(stderr=True).print("[dim]on exit: " + escape("; ".join(statuses)) + "[/]")
        for warning in session.warnings:
            print(f"lwtui: {warning}", file=sys.stderr, flush=True)
    except OSError:     # the terminal or pipe is gone: nothing to say it on (the routes are restored)
        pass


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


def _run_session(args, targets, rules, server, pcap: str | None, front_end) -> int:
    """Start a session on `targets` (with its metrics and --pcap file), run `front_end(session,
    writer)` on it, and end it whatever happens: the metrics stop before the session closes
    its maps, then the routes are restored (finish), then the --pcap file is summed up."""
    writer = None
    try:
        session = _session(args, targets, rules)
        try:
            writer = _start(session, server, args, pcap)
            return front_end(session, writer)
        finally:
            _stop_metrics(server)
            finish(session)
    finally:
        _stop_metrics(server)
        _pcap_done(writer)


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


def need_terminal() -> None:
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
    need_terminal()
    rules = _rules_file(args)
    from lwtui.net.routes import list_routes as lr
    from lwtui.ui.app import run_dashboard
    list_routes = lambda: lr(args.netns)  # noqa: E731  (the picker's, and the no-traffic screen's other routes)
    targets = _targets(args) if args.routes else None
    server = _metrics_server(args)
    pcap = _pcap_path(args)

    def dashboard(session, _writer) -> int:
        return run_dashboard(session, interval=args.interval, list_routes=list_routes, snaplen=args.snaplen) or 0
    try:
        targets = targets or _pick_routes(args, list_routes)
        if not targets:
            return 0
        return _run_session(args, targets, rules, server, pcap, dashboard)
    finally:
        _stop_metrics(server)


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

    def watch(session, writer) -> int:
        run_watch(session, interval=args.interval, duration=args.duration, as_json=args.json,
                  out=sys.stdout, on_ready=(lambda: _session_line(session, server, writer)) if args.json else None)
        return 0
    return _run_session(args, targets, rules, server, pcap, watch)
