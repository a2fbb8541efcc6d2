"""Processes by pid, with their start time so a reused pid is not mistaken
for the process that was there before (fields of /proc/PID/stat), and the
processes holding given sockets (/proc/PID/fd)."""

from __future__ import annotations

import os


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:         # no such process (any more)
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


def socket_owners(inodes: set[int]) -> dict[int, tuple[int, str, int]]:
    """{socket inode: (pid, comm, uid)} for the inodes some process holds open.

    Reads every /proc/PID/fd link (`socket:[INODE]`). Socket inodes are
    numbered once for the whole system, whatever the namespace, so an inode
    names one socket. A socket shared by several processes (inherited over
    fork) is given to the lowest pid. Processes that exit meanwhile, or
    whose fds cannot be read, are skipped: their sockets stay unknown.
    """
    found: dict[int, tuple[int, str, int]] = {}
    if not inodes:
        return found
    want = {f"socket:[{i}]": i for i in inodes}
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    for pid in pids:
        hits = [want[link] for link in _fd_links(pid) if link in want]
        if not hits:
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().rstrip("\n")
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        for inode in hits:
            found.setdefault(inode, (pid, comm, uid))
        if len(found) == len(inodes):
            break
    return found


def _fd_links(pid: int) -> list[str]:
    """Targets of /proc/PID/fd/* (an fd closed meanwhile is left out; a gone process gives none)."""
    links = []
    try:
        with os.scandir(f"/proc/{pid}/fd") as it:
            for e in it:
                try:
                    links.append(os.readlink(e.path))
                except OSError:
                    pass
    except OSError:
        pass
    return links


def held_bpf_ids(kind: str = "prog", exclude_pid: int | None = None) -> set[int]:
    """Ids of the BPF objects (kind "prog" or "map") that some process holds an fd to.

    A running lwtui session holds its programs' fds; a killed one holds
    nothing, and its programs live on only through the routes that carry
    them. So a program on a route that no process holds belongs to no live
    session. Reads /proc/*/fd and fdinfo (root sees every process).
    """
    link, field = f"anon_inode:bpf-{kind}", f"{kind}_id:"
    ids: set[int] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or (exclude_pid is not None and int(pid) == exclude_pid):
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:     # gone meanwhile, or not ours to read
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != link:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    ids.update(int(line.split()[1]) for line in f if line.startswith(field))
            except OSError:  # the fd closed meanwhile
                continue
    return ids
