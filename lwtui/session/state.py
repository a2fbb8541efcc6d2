"""A session's state file: /run/lwtui/<session>.json (directory 0700, file 0600)
with its pid and every original route attribute, so `lwtui detach --all` can
restore routes after SIGKILL. It goes away when the session ends, unless the
session ends with --keep-blocks and active rules: then it is marked `kept` and
stays, with the pins, until `lwtui detach`.

LWTUI_RUN_DIR moves the directory (tests).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from lwtui.core.paths import private_dir
from lwtui.core.procs import pid_alive, proc_start_time
from lwtui.kernel.pins import PIN_ROOT

RUN_DIR = Path(os.environ.get("LWTUI_RUN_DIR", "/run/lwtui"))


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
        private_dir(RUN_DIR)
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


def list_states() -> list[SessionState]:
    """Every session state file, alive or stale, oldest first."""
    if not RUN_DIR.is_dir():
        return []
    out = []
    for p in sorted(RUN_DIR.glob("*.json")):
        try:
            out.append(SessionState.load(p))
        except (OSError, ValueError, TypeError):    # named by unreadable_states(), for detach/sessions/doctor
            continue
    return sorted(out, key=lambda s: s.started)


def unreadable_states() -> list[tuple[Path, str]]:
    """State files that cannot be loaded (damaged, half-written by hand, wrong owner), with why.

    list_states() leaves them out; `lwtui detach --all`, `sessions` and
    `doctor` name them, and the routes they described are found by their dumps.
    """
    if not RUN_DIR.is_dir():
        return []
    bad = []
    for p in sorted(RUN_DIR.glob("*.json")):
        try:
            SessionState.load(p)
        except (OSError, ValueError, TypeError) as e:
            bad.append((p, f"{type(e).__name__}: {e}"))
    return bad


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
