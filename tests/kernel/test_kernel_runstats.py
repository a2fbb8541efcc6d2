"""lwtui.kernel.runstats against the kernel: run time and run count of a program, timed only
while the BPF_ENABLE_STATS fd is open, the global sysctl untouched."""

from __future__ import annotations

import os
import subprocess

import pytest

import packets as P
from lwtui.kernel import bpfsys, runstats


def _sysctl() -> str:
    return subprocess.run(["sysctl", "-n", "kernel.bpf_stats_enabled"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.alone     # run-time statistics are host-wide: see tests/conftest.py
def test_runs_are_counted_exactly_while_the_fd_is_open(probe):
    assert _sysctl() == "0", "kernel.bpf_stats_enabled is on globally: this test needs it off"
    fd = probe.prog_fd("out")
    pkt = P.frame(P.ipv4("10.0.0.2", "10.0.0.3", 17, P.udp(4000, 5353, b"x" * 64)))
    base = runstats.prog_run_stats(fd)
    bpfsys.prog_test_run(fd, pkt, repeat=50)
    assert runstats.prog_run_stats(fd) == base            # off: nothing timed
    stats = runstats.RunStats()
    stats.open()
    try:
        assert stats.on and _sysctl() == "0"
        bpfsys.prog_test_run(fd, pkt, repeat=200)
        ns, runs = runstats.prog_run_stats(fd)
        assert runs - base[1] == 200 and ns > base[0]
    finally:
        stats.close()
        stats.close()                                       # idempotent
    assert not stats.on and _sysctl() == "0"
    bpfsys.prog_test_run(fd, pkt, repeat=50)
    assert runstats.prog_run_stats(fd) == (ns, runs)      # off again


def test_enable_gives_an_fd_the_caller_owns():
    fd = runstats.enable()
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-stats"
    finally:
        os.close(fd)
