"""A session's verdict maps pinned in bpffs.

A running session pins its verdict maps under /sys/fs/bpf/lwtui/<session>/
(directories 0700, pins 0600) so `lwtui block/allow/rules` from another shell
act on it. The pins go away when the session ends, unless it ends with
--keep-blocks and active rules (see lwtui.session.state).

LWTUI_BPFFS and LWTUI_PIN_ROOT move these places (tests).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lwtui.core.paths import PinError, private_dir, valid_name
from lwtui.kernel import bpfsys

BPFFS = Path(os.environ.get("LWTUI_BPFFS", "/sys/fs/bpf"))
PIN_ROOT = Path(os.environ.get("LWTUI_PIN_ROOT", str(BPFFS / "lwtui")))

PINNED_MAPS = ("verdicts", "host_rules", "port_rules", "config")


def bpffs_mounted(path: Path = BPFFS) -> bool:
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split()[1] == str(path) and line.split()[2] == "bpf" for line in f)
    except OSError:
        return False


def ensure_bpffs(path: Path = BPFFS) -> None:
    """Mount bpffs at /sys/fs/bpf when it is not (on many machines, VMs above all, it is not)."""
    if bpffs_mounted(path):
        return
    r = subprocess.run(["mount", "-t", "bpf", "bpf", str(path)], capture_output=True, text=True)
    if r.returncode != 0 or not bpffs_mounted(path):
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise PinError(f"cannot mount bpffs at {path} ({msg[-1] if msg else 'unknown error'}): "
                       f"run `mount -t bpf bpf {path}` as root")


def pin_maps(session: str, fds: dict[str, int]) -> Path:
    """Pin the session's verdict maps; returns the directory (0700)."""
    ensure_bpffs()
    private_dir(PIN_ROOT)
    d = PIN_ROOT / valid_name(session)
    private_dir(d)
    for name in PINNED_MAPS:
        path = d / name
        if path.exists():
            path.unlink()
        bpfsys.obj_pin(fds[name], str(path))
        os.chmod(path, 0o600)
    return d


def open_pinned(session: str) -> dict[str, int]:
    """Open a session's pinned maps (fds the caller closes)."""
    d = PIN_ROOT / valid_name(session)
    fds = {}
    try:
        for name in PINNED_MAPS:
            fds[name] = bpfsys.obj_get(str(d / name))
    except OSError as e:
        for fd in fds.values():
            os.close(fd)
        raise PinError(f"session {session!r} has no pinned maps at {d} ({e.strerror}): "
                       "is it running? see `lwtui sessions`") from None
    return fds


def unpin(session: str) -> None:
    """Remove a session's pins; idempotent."""
    d = PIN_ROOT / valid_name(session)
    if not d.is_dir():
        return
    for p in d.iterdir():
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    try:
        d.rmdir()
    except OSError:
        pass


def pinned_sessions() -> list[str]:
    if not PIN_ROOT.is_dir():
        return []
    return sorted(p.name for p in PIN_ROOT.iterdir() if p.is_dir())


