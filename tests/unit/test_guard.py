"""The lock-out guard and the privilege check, on fake environments (no kernel)."""

from __future__ import annotations

import pytest

from lwtui.session import guard
from lwtui.core.grammar import parse_rule

SSH4 = {"SSH_CONNECTION": "192.0.2.10 51234 192.0.2.1 22"}
SSH6 = {"SSH_CONNECTION": "2001:db8::10 51234 2001:db8::1 22"}


@pytest.mark.parametrize("rule", [
    "port 22", "port 22/tcp", "port 51234", "host 192.0.2.10", "host 192.0.2.1", "host 192.0.2.0/24",
    "host 0.0.0.0/0", "flow tcp 192.0.2.10:51234 192.0.2.1:22", "flow tcp 192.0.2.1:22 192.0.2.10:51234",
])
def test_rules_that_cut_the_ssh_connection(rule):
    assert guard.ssh_flow_blocked_by(parse_rule(rule), SSH4) == "ssh 192.0.2.10:51234 -> 192.0.2.1:22"


@pytest.mark.parametrize("rule", [
    "port 22/udp", "port 80", "host 192.0.2.99", "host 198.51.100.0/24", "host 2001:db8::10",
    "flow tcp 192.0.2.10:51235 192.0.2.1:22", "flow udp 192.0.2.10:51234 192.0.2.1:22",
])
def test_rules_that_leave_it_alone(rule):
    assert guard.ssh_flow_blocked_by(parse_rule(rule), SSH4) is None


def test_ipv6_connection():
    assert guard.ssh_flow_blocked_by(parse_rule("host 2001:db8::/64"), SSH6) == \
        "ssh [2001:db8::10]:51234 -> [2001:db8::1]:22"
    assert guard.ssh_flow_blocked_by(parse_rule("host 192.0.2.10"), SSH6) is None


@pytest.mark.parametrize("env", [{}, {"SSH_CONNECTION": ""}, {"SSH_CONNECTION": "garbage"},
                                 {"SSH_CONNECTION": "192.0.2.10 x 192.0.2.1 22"},
                                 {"SSH_CONNECTION": "192.0.2.10 51234 2001:db8::1 22"},
                                 {"SSH_CONNECTION": "192.0.2.10 99999 192.0.2.1 22"}])
def test_no_or_broken_ssh_connection_blocks_nothing(env):
    assert guard.ssh_flow(env) is None
    assert guard.ssh_flow_blocked_by(parse_rule("port 22"), env) is None


ALL = (1 << 41) - 1


@pytest.mark.parametrize("caps,missing", [
    (ALL, []),
    (1 << 12 | 1 << 21, []),                              # NET_ADMIN + SYS_ADMIN (older kernels)
    (1 << 12 | 1 << 38 | 1 << 39, []),                    # NET_ADMIN + PERFMON + BPF
    (1 << 38 | 1 << 39, ["CAP_NET_ADMIN"]),
    (1 << 12 | 1 << 39, ["CAP_PERFMON"]),
    (0, ["CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON"]),
])
def test_missing_caps(caps, missing):
    assert guard.missing_caps(caps) == missing


def test_require_privileges_names_the_fix():
    guard.require_privileges(ALL)
    with pytest.raises(guard.PrivilegeError, match=r"lwtui needs root: .* without CAP_NET_ADMIN.*run it with sudo"):
        guard.require_privileges(0)


def test_effective_caps_reads_capeff():
    assert guard.effective_caps("Name:\tx\nCapInh:\t0\nCapEff:\t000001ffffffffff\n") == (1 << 41) - 1
    assert guard.effective_caps("Name:\tx\n") == 0
