"""Processes by pid, with their start time so a reused pid is not mistaken
for the process that was there before (fields of /proc/PID/stat)."""

from __future__ import annotations


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def proc_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks (field 22 of /proc/PID/stat), None if gone."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def pid_alive(pid: int, start_time: int | None) -> bool:
    """True when `pid` runs and is the same process (start time guards against reuse).

    A zombie is not alive: it has exited, whatever it left behind is stale.
    """
    fields = _proc_stat(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time
