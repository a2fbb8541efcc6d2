"""The `lwtui` command line (contract: DESIGN.md and README).

Errors reach the user as one line starting with "lwtui: " and naming the fix,
with exit code 2 for bad input (nothing was changed) and 1 for failures at run
time (routes restored on the way out); never a traceback for a known problem
(LWTUI_DEBUG=1 shows it). Ctrl-C exits 130, SIGTERM 143, SIGHUP 129, a closed
output pipe 141: each after the session restored its routes (lwtui.session.signals).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys

from lwtui.cli.targets import UsageError
from lwtui.session.signals import Terminated, install as install_signals

EXAMPLES = """examples:
  lwtui 10.0.0.3/32 --netns lwtui-cli          dashboard on the route's egress (out) hook
  lwtui watch 10.0.0.3/32 --netns lwtui-cli --json --duration 10
  lwtui watch 10.0.0.3/32 --hook in --netns lwtui-srv   (the local route of a local address)
  lwtui block port 8080/tcp                    from another shell, on the running session
  lwtui block 'flow tcp 10.0.0.2:40000 10.0.0.3:8080' --ttl 30
  lwtui allow port 8080/tcp
  lwtui detach --all                           restore routes left by a killed session
  lwtui demo                                   build the lab in namespaces and open the dashboard

rules: flow PROTO SRC:SPORT DST:DPORT | host ADDR[/LEN] | port PORT[/PROTO]
"""

SUBCOMMANDS = ("watch", "block", "allow", "rules", "sessions", "detach", "doctor", "demo", "lab")


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other lwtui error."""

    def error(self, message: str):
        print(f"lwtui: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def _ranged(kind, low, high, what: str):
    """An argparse type: `kind` within [low, high], with an error naming the range."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"{what} must be {low}..{high}, got {text}")
        return v
    return parse


def _route_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("routes", nargs="+" if required else "*", metavar="ROUTE",
                   help="prefix of an existing route, e.g. 10.0.0.3/32 (the local route for --hook in)")
    p.add_argument("--hook", default="out", help="in, out, xmit or a comma list (default: out)")
    p.add_argument("--netns", help="network namespace of the routes (default: this one)")
    p.add_argument("--dev", help="create a missing route on this device (removed again on exit)")
    p.add_argument("--dry-run", action="store_true", help="rules count would-drops but drop nothing")
    p.add_argument("--session", help="session name (default: lwtui-PID-N)")
    p.add_argument("--max-flows", type=_ranged(int, 16, 1 << 24, "--max-flows"), default=65536,
                   help="kernel flow map entries (default 65536; the oldest flows are evicted past it)")
    p.add_argument("--interval", type=_ranged(float, 0.05, 3600, "--interval"), default=1.0,
                   help="refresh interval in seconds (default 1)")
    p.add_argument("--expire", type=_ranged(float, 1, 1e7, "--expire"), default=60.0,
                   help="hide flows idle this many seconds (default 60; they fade after 5)")
    p.add_argument("--keep-blocks", action="store_true",
                   help="on exit with active rules, leave the programs and rules in place "
                        "(restore later with `lwtui detach --session NAME`); default: everything ends with lwtui")
    p.add_argument("--events", choices=("perf", "ringbuf"), default="perf",
                   help="event transport: perf buffer (default) or BPF ring buffer (kernel 5.8+, "
                        "cheaper per event in the kernel)")
    p.add_argument("--ebpf", action="store_true", help="print the BPF C source and cflags, then exit")


def build_parser(sub: str | None) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    if sub is None:
        p = Parser(prog="lwtui", formatter_class=fmt, epilog=EXAMPLES,
                                    description="Live traffic inspector for Linux Lightweight Tunnel "
                                                "(LWT) BPF hooks. Commands: " + ", ".join(SUBCOMMANDS))
        _route_args(p, required=False)
        return p
    p = Parser(prog=f"lwtui {sub}", formatter_class=fmt, epilog=EXAMPLES)
    if sub == "watch":
        _route_args(p, required=True)
        p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
        p.add_argument("--duration", type=_ranged(float, 0.01, 1e9, "--duration"), help="stop after this many seconds")
    elif sub in ("block", "allow"):
        p.add_argument("rule", nargs="+", help="flow PROTO SRC:SPORT DST:DPORT | host ADDR[/LEN] | port PORT[/PROTO]")
        p.add_argument("--session", help="the session to act on (default: the only one running)")
        if sub == "block":
            p.add_argument("--ttl", type=_ranged(float, 0.001, 10_000_000, "--ttl"),
                           help="lift the rule after this many seconds")
            p.add_argument("--force", action="store_true",
                           help="block even when the rule matches your own SSH connection")
    elif sub == "rules":
        p.add_argument("--session")
        p.add_argument("--json", action="store_true")
    elif sub == "sessions":
        p.add_argument("--json", action="store_true")
    elif sub == "detach":
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--all", action="store_true", help="every session whose process is gone")
        g.add_argument("--session", help="one session by name")
    elif sub == "demo":
        p.add_argument("--interval", type=_ranged(float, 0.05, 3600, "--interval"), default=1.0)
        p.add_argument("--keep-lab", action="store_true", help="leave the lab up on exit")
    elif sub == "lab":
        p.add_argument("action", choices=("up", "down", "status"))
        p.add_argument("--prefix", default="lwtui", help="name prefix of the lab's namespaces")
        p.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sub = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(sub).parse_args(argv[1:] if sub else argv)
    from lwtui.cli import commands
    install_signals()
    try:
        handler = getattr(commands, f"cmd_{sub or 'dashboard'}")
        return handler(args) or 0
    except UsageError as e:
        return _fail(str(e), 2)
    except KeyboardInterrupt:
        return 130
    except Terminated as e:
        return e.code
    except BrokenPipeError:     # `lwtui watch --json | head`: the reader left; routes are restored
        _quiet_stdout()
        return 141
    except Exception as e:  # known errors carry their fix; others are bugs worth a traceback
        if isinstance(e, OSError) and e.errno in (errno.EIO, errno.ENXIO):
            return 128 + signal.SIGHUP  # the terminal went away (a write saw it before SIGHUP did)
        code = commands.error_code(e)
        if code is None:
            raise
        if os.environ.get("LWTUI_DEBUG"):
            import traceback
            traceback.print_exc()
        return _fail(str(e), code)


def _fail(msg: str, code: int) -> int:
    try:
        print(f"lwtui: {msg}", file=sys.stderr)
    except OSError:     # the terminal is gone
        pass
    return code


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):   # stdout is closed already: the final flush has nothing to fail on
        pass


if __name__ == "__main__":
    sys.exit(main())
