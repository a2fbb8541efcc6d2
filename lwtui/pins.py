"""Where a session lives on the host: pinned maps and the state file.

A running session pins its verdict maps under /sys/fs/bpf/lwtui/<session>/
(directories 0700, pins 0600) so `lwtui block/allow/rules` from another shell
act on it, and keeps /run/lwtui/<session>.json (directory 0700, file 0600)
with its pid and every original route attribute, so `lwtui detach --all` can
restore routes after SIGKILL. Both go away when the session ends, unless it
ends with --keep-blocks and active rules: then the state is marked `kept` and
stays, with the pins, until `lwtui detach`.

LWTUI_BPFFS, LWTUI_PIN_ROOT and LWTUI_RUN_DIR move these places (tests).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import bpfsys

BPFFS = Path(os.environ.get("LWTUI_BPFFS", "/sys/fs/bpf"))
PIN_ROOT = Path(os.environ.get("LWTUI_PIN_ROOT", str(BPFFS / "lwtui")))
RUN_DIR = Path(os.environ.get("LWTUI_RUN_DIR", "/run/lwtui"))

PINNED_MAPS = ("verdicts", "host_rules", "port_rules", "config")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PinError(RuntimeError):
    """A problem with bpffs, pins or state files; the message names the fix."""


def valid_name(name: str) -> str:
    if not _NAME_RE.match(name) or name.startswith("."):
        raise PinError(f"invalid session name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def bpffs_mounted(path: Path = BPFFS) -> bool:
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split()[1] == str(path) and line.split()[2] == "bpf" for line in f)
    except OSError:
        return False


def ensure_bpffs(path: Path = BPFFS) -> None:
    """Mount bpffs at /sys/fs/bpf when it is not (KERNEL-NOTES: often it is not)."""
    if bpffs_mounted(path):
        return
    r = subprocess.run(["mount", "-t", "bpf", "bpf", str(path)], capture_output=True, text=True)
    if r.returncode != 0 or not bpffs_mounted(path):
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise PinError(f"cannot mount bpffs at {path} ({msg[-1] if msg else 'unknown error'}): "
                       f"run `mount -t bpf bpf {path}` as root")


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


@dataclass
class SessionState:
    """The JSON state file of one session."""
    name: str
    pid: int
    start_time: int | None
    started: float
    attachments: list[dict] = field(default_factory=list)
    dry_run: bool = False
    keep_blocks: bool = False   # started with --keep-blocks
    kept: bool = False          # ended with active rules and --keep-blocks: programs stay attached

    @property
    def path(self) -> Path:
        return RUN_DIR / f"{self.name}.json"

    @property
    def pin_dir(self) -> Path:
        return PIN_ROOT / self.name

    @property
    def alive(self) -> bool:
        return pid_alive(self.pid, self.start_time)

    @property
    def status(self) -> str:
        """"running", "kept" (ended with --keep-blocks and active rules) or "stale" (killed)."""
        if self.kept:
            return "kept"
        return "running" if self.alive else "stale"

    def save(self) -> None:
        """Write atomically with mode 0600 (the directory is 0700)."""
        _private_dir(RUN_DIR)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.__dict__, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    @classmethod
    def load(cls, path: Path) -> "SessionState":
        with open(path) as f:
            d = json.load(f)
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it root-only (0700) even if it existed."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def list_states() -> list[SessionState]:
    """Every session state file, alive or stale, oldest first."""
    if not RUN_DIR.is_dir():
        return []
    out = []
    for p in sorted(RUN_DIR.glob("*.json")):
        try:
            out.append(SessionState.load(p))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(out, key=lambda s: s.started)


def pin_maps(session: str, fds: dict[str, int]) -> Path:
    """Pin the session's verdict maps; returns the directory (0700)."""
    ensure_bpffs()
    _private_dir(PIN_ROOT)
    d = PIN_ROOT / valid_name(session)
    _private_dir(d)
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


def remove_stale_tmp() -> list[Path]:
    """Delete half-written state files (`NAME.tmpPID`) whose writer is gone; returns them."""
    gone = []
    if not RUN_DIR.is_dir():
        return gone
    for p in RUN_DIR.glob("*.tmp*"):
        pid = p.suffix[len(".tmp"):]
        if pid.isdigit() and proc_start_time(int(pid)) is None:
            try:
                p.unlink()
                gone.append(p)
            except FileNotFoundError:
                pass
    return gone


def new_session_name() -> str:
    return f"lwtui-{os.getpid()}-{int(time.time()) % 100000}"
