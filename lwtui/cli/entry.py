"""The `lwtui` command line (a contract: README.md).

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
from lwtui.core.rules import TTL_MAX, TTL_MIN
from lwtui.session.signals import Terminated, exiting as signals_exiting, install as install_signals

EXAMPLES = """examples:
  lwtui 10.0.0.3/32 --netns lwtui-cli          dashboard on the route's egress (out) hook
  lwtui watch 10.0.0.3/32 --netns lwtui-cli --json --duration 10
  lwtui watch 10.0.0.3/32 --hook in --netns lwtui-srv   (the local route of a local address)
  lwtui block port 8080/tcp                    from another shell, on the running session
  lwtui block 'flow tcp 10.0.0.2:40000 10.0.0.3:8080' --ttl 30
  lwtui allow port 8080/tcp
  lwtui detach --all                           restore routes left by a killed session
  lwtui demo                                   build the lab in namespaces and open the dashboard

rules: flow PROTO SRC:SPORT DST:DPORT | [src|dst] host ADDR[/LEN] | [src|dst] port PORT[/PROTO]
  | proto NAME, joined by and, or, not, ( ): 'src host 10.0.0.3 and dst port 8080/tcp'
  at most 4096 rules of each kind (flow, host, port) per session, and 8 compound entries
  (one per `or` after normalising) of at most 8 terms each
"""

_LIMITS = ("  at most 4096 rules of each kind (flow, host, port) per session, and 8 compound entries\n"
           "  (one per `or` after normalising) of at most 8 terms each\n")
_RULES = ("\nrules: flow PROTO SRC:SPORT DST:DPORT | [src|dst] host ADDR[/LEN] | [src|dst] port PORT[/PROTO]\n"
          "  | proto NAME, joined by and, or, not, ( ): 'src host 10.0.0.3 and dst port 8080/tcp'\n" + _LIMITS)
SUB_EXAMPLES = {
    "watch": """examples:
  lwtui watch 10.0.0.3/32 --netns lwtui-cli                 a table of the busiest flows, refreshed
  lwtui watch 10.0.0.3/32 --netns lwtui-cli --json --duration 10 > flows.jsonl
  lwtui watch 10.0.0.3/32 --hook in --netns lwtui-srv       (the local route of a local address)
  lwtui watch 10.0.0.3/32 --hook out,xmit --dry-run          rules count would-drops, drop nothing
  lwtui watch 10.0.0.3/32 --rules today.rules               those rules in force from the first packet
""" + _RULES,
    "block": """examples:
  lwtui block port 8080/tcp                                  on the only running session
  lwtui block host 10.0.0.9 --ttl 300 --session lab          lifted by itself after 5 minutes
  lwtui block 'flow tcp 10.0.0.2:40000 10.0.0.3:8080'
  lwtui block 'src host 10.0.0.3 and dst port 8080/tcp'      one compound rule
  lwtui block 'port 22 and not src host 10.0.0.0/8' --dry-run   try it: counts would-drops only
""" + _RULES,
    "allow": """examples:
  lwtui allow port 8080/tcp                                  lift the rule of that text
  lwtui allow host 10.0.0.9 --session lab
  lwtui rules                                                (the rules there are, to allow)
""" + _RULES,
    "rules": """examples:
  lwtui rules                                                the only running session's rules
  lwtui rules --session lab --json                           JSON lines: rule, kind, hits, expires_in, created
  lwtui rules --save today.rules                             a rules file: lwtui watch ... --rules today.rules
""",
    "sessions": """examples:
  lwtui sessions                                             running, kept (--keep-blocks) and stale sessions
  lwtui sessions --json | jq -r .name
""",
    "detach": """examples:
  lwtui detach --all                                         restore routes left by killed sessions
  lwtui detach --session lab                                 lift a session kept with --keep-blocks
""",
    "doctor": """examples:
  lwtui doctor                                               what this machine has for lwtui, and what it lacks
  lwtui doctor --json                                        JSON lines: checks, then kernel features
  LWTUI_HIDE_FEATURES=all lwtui doctor                       the paths an old kernel takes (names: see the table)
""",
    "demo": """examples:
  lwtui demo                                                 the lab in namespaces, the dashboard on it
  lwtui demo --prefix lwtui-b                                a second demo beside another lab
  lwtui demo --keep-lab                                      leave the lab up after quitting
""",
    "lab": """examples:
  lwtui lab up                                               two namespaces, servers and traffic
  lwtui lab status --json
  lwtui lab up --prefix lwtui-b && lwtui lab down --prefix lwtui-b
""",
}

REMEMBERED_INTERVAL = ("refresh interval in seconds (default: the last one given, else 1); the dashboard "
                       "remembers it, its theme and sort in $XDG_CONFIG_HOME/lwtui/settings.json")

SUBCOMMANDS = ("watch", "block", "allow", "rules", "sessions", "detach", "doctor", "demo", "lab")


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other lwtui error."""

    def error(self, message: str):
        print(f"lwtui: {_clipped(message)} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def _clipped(msg: str) -> str:
    """An error as printed: what the user typed shortened and escaped (a 100 KB argument is not
    echoed whole, nor a terminal escape sequence); a rule error's caret lines are clipped already."""
    from lwtui.core.ruleerror import clip_message
    return msg if "\n" in msg else clip_message(msg)


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


def _listen(text: str) -> tuple[str, int]:
    """An argparse type for --metrics: [ADDR:]PORT (lwtui.session.metrics.parse_listen)."""
    from lwtui.session.metrics import parse_listen
    try:
        return parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _session_name(text: str) -> str:
    """An argparse type: a session name (one safe path component), refused with the rule for names."""
    from lwtui.core.paths import PinError, valid_name
    try:
        return valid_name(text)
    except PinError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _netns_name(text: str) -> str:
    """An argparse type: a name `ip netns` can have (a file in /run/netns: 1..255 bytes, no '/')."""
    if not 0 < len(text.encode(errors="surrogateescape")) < 256 or "/" in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"invalid namespace name {text!r}: see `ip netns list`")
    return text


def _dev_name(text: str) -> str:
    """An argparse type: a name the kernel allows for a device (1..15 bytes, no '/', ':' or space)."""
    if not 0 < len(text.encode(errors="surrogateescape")) < 16 or any(c in text for c in "/:") or \
            any(c.isspace() for c in text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"invalid device name {text!r}: at most 15 characters, see `ip link`")
    return text


def _route_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("routes", nargs="+" if required else "*", metavar="ROUTE",
                   help="prefix of an existing route, e.g. 10.0.0.3/32 (the local route for --hook in)")
    p.add_argument("--hook", default="out", help="in, out, xmit or a comma list (default: out)")
    p.add_argument("--netns", type=_netns_name, help="network namespace of the routes (default: this one)")
    p.add_argument("--dev", type=_dev_name, help="create a missing route on this device (removed again on exit)")
    p.add_argument("--dry-run", action="store_true", help="rules count would-drops but drop nothing")
    p.add_argument("--session", type=_session_name, help="session name (default: lwtui-PID-N)")
    p.add_argument("--max-flows", type=_ranged(int, 16, 1 << 24, "--max-flows"), default=65536,
                   help="kernel flow map entries (default 65536; the oldest flows are evicted past it). "
                        "Counters are kept per CPU: each entry costs about 112 + 64 x CPUs bytes of kernel "
                        "memory, taken at start (240 with 2 CPUs), and 40 + 64 x CPUs bytes of lwtui's memory "
                        "once read: with 2 CPUs the maximum, 16777216, takes about 4 GB of kernel memory and "
                        "2.8 GB resident")
    if required:        # watch: nothing remembered
        p.add_argument("--interval", type=_ranged(float, 0.05, 3600, "--interval"), default=1.0,
                       help="refresh interval in seconds (default 1)")
    else:
        p.add_argument("--interval", type=_ranged(float, 0.05, 3600, "--interval"), default=None,
                       help=REMEMBERED_INTERVAL)
    p.add_argument("--expire", type=_ranged(float, 1, 1e7, "--expire"), default=60.0,
                   help="hide flows idle this many seconds (default 60; they fade after 5)")
    p.add_argument("--keep-blocks", action="store_true",
                   help="on exit with active rules, leave the programs and rules in place "
                        "(restore later with `lwtui detach --session NAME`); default: everything ends with lwtui")
    p.add_argument("--events", choices=("perf", "ringbuf"), default="perf",
                   help="event transport: perf buffer (default) or BPF ring buffer (kernel 5.8+, "
                        "cheaper per event in the kernel)")
    p.add_argument("--metrics", type=_listen, metavar="[ADDR:]PORT",
                   help="serve Prometheus metrics at http://ADDR:PORT/metrics (ADDR default 127.0.0.1)")
    p.add_argument("--metrics-flows", type=_ranged(int, 1, 1000, "--metrics-flows"), default=0, metavar="K",
                   help="with --metrics: also export the K busiest flows by bytes (off by default)")
    p.add_argument("--pcap", metavar="FILE",
                   help="record dropped and would-drop packets (their first --snaplen bytes, kernel timestamps) "
                        "to FILE as pcap (raw IP), for tcpdump -r or Wireshark; at most 64 MiB, at most 1000 "
                        "packets a second per CPU, the rest counted as lost")
    p.add_argument("--snaplen", type=_ranged(int, 16, 65535, "--snaplen"), default=128, metavar="N",
                   help="bytes of each packet recorded by --pcap (and the dashboard's w), from the IP header on "
                        "(default 128)")
    p.add_argument("--rules", metavar="FILE",
                   help="block the rules of FILE from the first packet on (one rule a line, # comments, "
                        "an optional ttl=SECONDS at the end of a line; `lwtui rules --save FILE` writes one)")
    p.add_argument("--ebpf", action="store_true", help="print the BPF C source and cflags, then exit")


def build_parser(sub: str | None) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    if sub is None:
        p = Parser(prog="lwtui", formatter_class=fmt, epilog=EXAMPLES,
                                    description="Live traffic inspector for Linux Lightweight Tunnel "
                                                "(LWT) BPF hooks. Commands: " + ", ".join(SUBCOMMANDS))
        _route_args(p, required=False)
        return p
    p = Parser(prog=f"lwtui {sub}", formatter_class=fmt, epilog=SUB_EXAMPLES[sub])
    if sub == "watch":
        _route_args(p, required=True)
        p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
        p.add_argument("--duration", type=_ranged(float, 0.01, 1e9, "--duration"), help="stop after this many seconds")
    elif sub in ("block", "allow"):
        p.add_argument("rule", nargs="+", help="a rule of the grammar below, e.g. "
                                               "'src host 10.0.0.3 and dst port 8080/tcp'")
        p.add_argument("--session", type=_session_name, help="the session to act on (default: the only one running)")
        if sub == "block":
            p.add_argument("--ttl", type=_ranged(float, TTL_MIN, TTL_MAX, "--ttl"),
                           help=f"lift the rule after this many seconds ({TTL_MIN}..{TTL_MAX})")
            p.add_argument("--force", action="store_true",
                           help="block even when the rule matches your own SSH connection")
            p.add_argument("--dry-run", action="store_true",
                           help="this rule only counts would-drops while the others enforce (host, port and "
                                "compound rules; it takes a compound entry)")
    elif sub == "rules":
        p.add_argument("--session", type=_session_name,
                       help="the session whose rules to list (default: the only one running)")
        p.add_argument("--json", action="store_true", help="JSON lines, one rule each, times in RFC 3339")
        p.add_argument("--save", metavar="FILE",
                       help="write the rules to FILE as a rules file (for --rules), TTLs as what is left")
    elif sub == "sessions":
        p.add_argument("--json", action="store_true", help="JSON lines, one session each, times in RFC 3339")
    elif sub == "doctor":
        p.add_argument("--json", action="store_true",
                       help="JSON lines: one `check` record each, then one `feature` record per kernel feature")
    elif sub == "detach":
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--all", action="store_true", help="every session whose process is gone")
        g.add_argument("--session", type=_session_name, help="one session by name")
    elif sub == "demo":
        p.add_argument("--interval", type=_ranged(float, 0.05, 3600, "--interval"), default=None,
                       help=REMEMBERED_INTERVAL)
        p.add_argument("--prefix", default="lwtui",
                       help="name prefix of the lab's namespaces (default lwtui), to run beside another lab")
        p.add_argument("--keep-lab", action="store_true", help="leave the lab up on exit")
    elif sub == "lab":
        p.add_argument("action", choices=("up", "down", "status"),
                       help="up: build it (namespaces, servers, traffic); down: remove it; status: what is there")
        p.add_argument("--prefix", default="lwtui", help="name prefix of the lab's namespaces")
        p.add_argument("--json", action="store_true", help="status as one JSON object, times in RFC 3339")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sub = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(sub).parse_args(argv[1:] if sub else argv)
    from lwtui.cli import commands
    install_signals()
    try:
        return _run(sub, args, commands)
    finally:
        signals_exiting()   # every session has closed: signals from now on (a flood) are too late to matter


def _run(sub: str | None, args, commands) -> int:
    """Run the subcommand; known errors become one line and an exit code."""
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
        print(f"lwtui: {_clipped(msg)}", file=sys.stderr)
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
