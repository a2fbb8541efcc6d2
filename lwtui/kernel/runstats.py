"""lwtui's own cost: the kernel's run-time statistics of BPF programs, on only while lwtui runs.

The kernel can time every run of every BPF program (struct bpf_prog_info's
run_time_ns and run_cnt), at a small cost of its own, so it does not by
default. BPF_ENABLE_STATS with BPF_STATS_RUN_TIME turns the timing on for as
long as the returned fd stays open: closing it (or the process ending)
switches it off again, and the `kernel.bpf_stats_enabled` sysctl is never
touched. A program's figures grow only while some holder keeps stats on.

bpf(2) is called here directly through ctypes: lwtui.kernel.bpfsys exposes no
raw-syscall function, and its prog_info() returns only type, id and name.
"""

from __future__ import annotations

import ctypes as ct
import os
import platform
import struct

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280}.get(platform.machine(), 321)
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0

# struct bpf_prog_info (include/uapi/linux/bpf.h) up to run_cnt: the kernel
# fills what it knows of a shorter buffer, and run_time_ns/run_cnt sit at fixed
# offsets since Linux 5.1.
_INFO_LEN = 208
_RUN_TIME_NS_OFF, _RUN_CNT_OFF = 192, 200
_ATTR_SIZE = 144

_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


class RunStatsError(OSError):
    """The kernel would not keep run-time statistics (too old, or not allowed)."""


def _bpf(cmd: int, attr, what: str) -> int:
    ret = _libc.syscall(_SYS_BPF, cmd, ct.byref(attr), ct.sizeof(attr))
    if ret < 0:
        err = ct.get_errno()
        raise RunStatsError(err, f"{what}: {os.strerror(err)}")
    return ret


def enable() -> int:
    """Turn run-time statistics on; they stay on while the returned fd is open (the caller closes it).

    RunStatsError when the kernel lacks BPF_ENABLE_STATS (before 5.8) or the
    caller lacks CAP_SYS_ADMIN.
    """
    attr = ct.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=I", attr, 0, BPF_STATS_RUN_TIME)
    return _bpf(BPF_ENABLE_STATS, attr, "enable BPF run-time statistics")


def prog_run_stats(prog_fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a program: its total time in the kernel and its runs."""
    info = ct.create_string_buffer(_INFO_LEN)
    attr = ct.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=IIQ", attr, 0, prog_fd, _INFO_LEN, ct.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr, "prog info")
    run_ns, = struct.unpack_from("=Q", info, _RUN_TIME_NS_OFF)
    runs, = struct.unpack_from("=Q", info, _RUN_CNT_OFF)
    return run_ns, runs


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
