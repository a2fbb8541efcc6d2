"""Bad input and an unready host: one line naming the fix, exit code 2, nothing changed.

Each case runs the real `lwtui` command (as root, as an unprivileged user, or
with a Python that cannot import bcc) against a fresh topology, and checks
iproute2's dump of both namespaces before and after.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.e2e.cli import lwtui_env, run, which, world_readable_copy  # noqa: F401 (fixtures)

NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"]
NO_BCC = [sys.executable, "-c",
          "import sys; sys.modules['bcc'] = None; from lwtui.cli.entry import main; sys.exit(main())"]

# (id, argv with {cli}/{srv} for the namespaces, expected stderr start after "lwtui: ", how, extra env)
CASES = [
    ("invalid-prefix", ["watch", "10.0.0.300/32", "--netns", "{cli}"],
     "'10.0.0.300/32' is not an IP prefix: write e.g. 10.0.0.3/32", "root", {}),
    ("host-bits", ["watch", "10.0.0.3/24", "--netns", "{cli}"],
     "10.0.0.3/24 has host bits set: use 10.0.0.0/24", "root", {}),
    ("no-route", ["watch", "10.0.0.9/32", "--netns", "{cli}"],
     "no route 10.0.0.9/32 in namespace {cli} (closest: 10.0.0.0/24, 10.0.0.3/32)", "root", {}),
    ("no-device", ["watch", "10.0.0.9/32", "--dev", "lwtui9", "--netns", "{cli}"],
     "no device lwtui9 in namespace {cli}: see `ip link`", "root", {}),
    ("no-namespace", ["watch", "10.0.0.3/32", "--netns", "lwtui-no-such-ns"],
     "no namespace lwtui-no-such-ns: see `ip netns list`", "root", {}),
    ("in-not-local", ["watch", "10.0.0.3/32", "--hook", "in", "--netns", "{cli}"],
     "10.0.0.3/32 is not a local address in namespace {cli} (local: ", "root", {}),
    ("unknown-hook", ["watch", "10.0.0.3/32", "--hook", "sideways", "--netns", "{cli}"],
     "unknown hook 'sideways': use in, out or xmit", "root", {}),
    ("max-flows", ["watch", "10.0.0.3/32", "--max-flows", "0", "--netns", "{cli}"],
     "argument --max-flows: --max-flows must be 16..16777216, got 0", "root", {}),
    ("interval", ["watch", "10.0.0.3/32", "--interval", "-1", "--netns", "{cli}"],
     "argument --interval: --interval must be 0.05..3600, got -1", "root", {}),
    ("pcap-unwritable", ["watch", "10.0.0.3/32", "--netns", "{cli}", "--pcap", "/nonexistent-lwtui-dir/drops.pcap"],
     "cannot write the --pcap file /nonexistent-lwtui-dir/drops.pcap (No such file or directory): give a path in "
     "a directory you can write to", "root", {}),
    ("snaplen", ["watch", "10.0.0.3/32", "--snaplen", "8", "--netns", "{cli}"],
     "argument --snaplen: --snaplen must be 16..65535, got 8", "root", {}),
    ("not-root-watch", ["watch", "10.0.0.3/32", "--netns", "{cli}"],
     "lwtui needs root: running as uid 65534 without CAP_NET_ADMIN, CAP_BPF, CAP_PERFMON; run it with sudo",
     "nobody", {}),
    ("not-root-block", ["block", "port", "80"],
     "lwtui needs root: running as uid 65534 without CAP_NET_ADMIN", "nobody", {}),
    ("not-root-detach", ["detach", "--all"], "lwtui needs root", "nobody", {}),
    ("bcc-missing", ["watch", "10.0.0.3/32", "--netns", "{cli}"],
     "BCC's Python bindings are missing (", "nobcc", {}),
    ("headers-missing", ["watch", "10.0.0.3/32", "--netns", "{cli}"],
     "no kernel headers for BCC: run `apt-get install -y linux-headers-amd64`", "root",
     {"LWTUI_HEADERS_SEARCH_ROOT": "/nonexistent-lwtui-root", "BCC_KERNEL_SOURCE": ""}),
    ("bpffs-unmountable", ["watch", "10.0.0.3/32", "--netns", "{cli}"],
     "cannot mount bpffs at /nonexistent-lwtui-bpffs (", "root", {"LWTUI_BPFFS": "/nonexistent-lwtui-bpffs"}),
    ("rule-unparsable", ["block", "flow", "tcp", "10.0.0.2", "10.0.0.3:80"], "", "root", {}),
    ("rule-port-range", ["block", "port", "70000"], "port must be a number 0..65535", "root", {}),
    ("rule-ipv6-brackets", ["block", "flow", "tcp", "fd00::2:40000", "[fd00::3]:80"], "", "root", {}),
    ("block-no-session", ["block", "port", "80"],
     "no lwtui session is running: start one with `lwtui ROUTE` or `lwtui watch ROUTE`", "root", {}),
    ("block-unknown-session", ["block", "port", "80", "--session", "nope"],
     "no running session named 'nope' (none running): see `lwtui sessions`", "root", {}),
    ("rules-unknown-session", ["rules", "--session", "nope"], "no running session named 'nope'", "root", {}),
    ("detach-unknown-session", ["detach", "--session", "nope"],
     "no session named 'nope': see `lwtui sessions`", "root", {}),
    ("ttl", ["block", "port", "80", "--ttl", "0"], "argument --ttl: --ttl must be 1..604800, got 0", "root", {}),
    ("netns-name", ["watch", "10.0.0.3/32", "--netns", "x" * 300],
     "argument --netns: invalid namespace name 'xxxxx", "root", {}),
    ("dev-name", ["watch", "10.0.0.9/32", "--netns", "{cli}", "--dev", "x" * 100_000],
     "argument --dev: invalid device name 'xxxxx", "root", {}),
]

RULE_CASES = {"rule-unparsable", "rule-port-range", "rule-ipv6-brackets"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(topo, route_dump, lwtui_env, world_readable_copy, case):
    name, argv, expected, how, extra = case
    names = {"cli": topo.client_ns, "srv": topo.server_ns}
    argv = [a.format(**names) for a in argv]
    before = route_dump(topo.client_ns), route_dump(topo.server_ns)
    env = dict(lwtui_env, **extra)
    if how == "nobody":
        os.chmod(lwtui_env.run_dir.parent, 0o755)   # the private dirs stay root-only; lwtui must say why
        top = world_readable_copy
        env["PYTHONPATH"] = f"{top / 'src'}:{top / 'site'}"
        r = run(env, *argv, cwd=top, python=[which("setpriv"), *NOBODY, os.path.realpath(sys.executable),
                                             "-m", "lwtui"])
    else:
        r = run(env, *argv, python=NO_BCC if how == "nobcc" else None)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.startswith("lwtui: " + expected.format(**names)), r.stderr
    lines = r.stderr.rstrip("\n").split("\n")
    if name in RULE_CASES:      # the message, the rule, a caret line under the offending token
        assert len(lines) == 3 and set(lines[2].strip()) == {"^"}, r.stderr
    else:
        assert len(lines) == 1, r.stderr
    assert (route_dump(topo.client_ns), route_dump(topo.server_ns)) == before
    assert lwtui_env.states() == [] and lwtui_env.pin_dirs() == []


@pytest.mark.parametrize("rule,token,says", [
    ("flow tcp 10.0.0.2 10.0.0.3:80", "10.0.0.2", "ADDR:PORT"),
    ("flow tcp fd00::2:40000 [fd00::3]:80", "fd00::2:40000", "bracket"),
    ("port 70000", "70000", "0..65535"),
    ("port 80/sctp", "sctp", "tcp"),
    ("hots 10.0.0.2", "hots", "flow, host or port"),
])
def test_rule_errors_point_at_the_token(lwtui_env, rule, token, says):
    r = run(lwtui_env, "block", *rule.split())
    assert r.returncode == 2 and "Traceback" not in r.stderr
    message, text, caret = r.stderr.rstrip("\n").split("\n")
    assert message.startswith("lwtui: ") and says in message, message
    assert text[caret.index("^"):caret.rindex("^") + 1] == token, r.stderr


HUGE = "x" * 100_000
ESC = "\x1b[31mred\x1b[0m"


@pytest.mark.parametrize("argv", [
    ["watch", "10.0.0.3/32", "--session", HUGE], ["watch", "10.0.0.3/32", "--netns", HUGE],
    ["watch", f"10.0.0.{HUGE}/32"], ["watch", "10.0.0.3/32", "--hook", HUGE],
    ["watch", "10.0.0.3/32", "--pcap", f"/nonexistent-lwtui-dir/{HUGE}"], ["watch", "10.0.0.3/32", "--metrics", HUGE],
    ["block", f"port 8{'0' * 100_000}"], ["watch", "10.0.0.3/32", "--hook", ESC], ["block", "host", ESC],
    ["watch", "10.0.0.3/32", "--session", ESC],
], ids=["session", "netns", "prefix", "hook", "pcap", "metrics", "rule", "hook-esc", "rule-esc", "session-esc"])
def test_what_the_user_typed_is_echoed_short_and_escaped(lwtui_env, argv):
    """A 100 KB argument is not echoed whole (it was: 100 KB on stderr), nor a terminal escape sequence."""
    r = run(lwtui_env, *argv)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("lwtui: "), r.stderr[:500]
    assert len(r.stderr) < 1000 and "\x1b" not in r.stderr, (len(r.stderr), r.stderr[:500])
    assert ("\\x1b[31m" in r.stderr) == (ESC in " ".join(argv)), r.stderr
