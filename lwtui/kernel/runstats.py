"""lwtui's own cost: the kernel's run-time statistics of BPF programs, on only while lwtui runs.

The kernel can time every run of every BPF program (struct bpf_prog_info's
run_time_ns and run_cnt), at a small cost of its own, so it does not by
default. BPF_ENABLE_STATS with BPF_STATS_RUN_TIME turns the timing on for as
long as the returned fd stays open: closing it (or the process ending)
switches it off again, and the `kernel.bpf_stats_enabled` sysctl is never
touched. A program's figures grow only while some holder keeps stats on.

The calls go through lwtui.kernel.bpfsys (libbpf).
"""

from __future__ import annotations

import os

from lwtui.kernel import bpfsys


class RunStatsError(OSError):
    """The kernel would not keep run-time statistics (too old, or not allowed)."""


def enable() -> int:
    """Turn run-time statistics on; they stay on while the returned fd is open (the caller closes it).

    RunStatsError when the kernel lacks BPF_ENABLE_STATS (before 5.8) or the
    caller lacks CAP_SYS_ADMIN.
    """
    try:
        return bpfsys.enable_stats()
    except bpfsys.BpfError as e:
        raise RunStatsError(e.errno, str(e)) from None


def prog_run_stats(prog_fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a program: its total time in the kernel and its runs."""
    info = bpfsys.prog_info(prog_fd)
    return info["run_time_ns"], info["run_cnt"]


class RunStats:
    """Run-time statistics held on for one session: open() on start, close() on exit."""

    def __init__(self):
        self._fd: int | None = None

    @property
    def on(self) -> bool:
        return self._fd is not None

    def open(self) -> None:
        if self._fd is None:
            self._fd = enable()

    def close(self) -> None:
        """Let go of the statistics (off again unless another holder keeps them); idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
