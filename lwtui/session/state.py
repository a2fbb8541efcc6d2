"""A session's state file: /run/lwtui/<session>.json (directory 0700, file 0600)
with its pid and every original route attribute, so `lwtui detach --all` can
restore routes after SIGKILL. It goes away when the session ends, unless the
session ends with --keep-blocks and active rules: then it is marked `kept` and
stays, with the pins, until `lwtui detach`.

A running session also holds an flock on /run/lwtui/<session>.lock (its pid
inside): the name is its own while it lives, whatever the state file says
(or if it cannot be read), and the lock goes with the process, even on SIGKILL.

The directory must be root's own (lwtui.core.paths); files in it are opened
through its fd without following symlinks.

LWTUI_RUN_DIR moves the directory (tests).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from lwtui.core.paths import PinError, open_private_dir, valid_name
from lwtui.core.procs import pid_alive, proc_start_time

RUN_DIR = Path(os.environ.get("LWTUI_RUN_DIR", "/run/lwtui"))
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


@contextmanager
def run_dir(create: bool = True) -> Iterator[int | None]:
    """The run directory's fd (None when it does not exist and not `create`)."""
    fd = open_private_dir(RUN_DIR, create=create)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _write_error(what: str, e: OSError) -> PinError:
    fix = "remount it read-write" if e.errno == errno.EROFS else "make it writable for root"
    return PinError(f"cannot write {RUN_DIR / what} ({e.strerror}): {fix}")


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
        final = f"{valid_name(self.name)}.json"
        tmp = f"{self.name}.tmp{os.getpid()}"
        with run_dir() as d:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _FILE_FLAGS, 0o600, dir_fd=d)
                with os.fdopen(fd, "w") as f:
                    json.dump(self.__dict__, f, indent=1, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final, src_dir_fd=d, dst_dir_fd=d)
            except OSError as e:
                raise _write_error(final, e) from None

    def remove(self) -> None:
        with run_dir(create=False) as d:
            if d is not None:
                try:
                    os.unlink(f"{self.name}.json", dir_fd=d)
                except FileNotFoundError:
                    pass

    @classmethod
    def load(cls, path: Path, dir_fd: int | None = None) -> "SessionState":
        """Read a state file (never through a symlink); OSError or ValueError when it cannot be."""
        fd = os.open(path, os.O_RDONLY | _FILE_FLAGS, dir_fd=dir_fd)
        with os.fdopen(fd) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ValueError(f"{path} is not a regular file")
            d = json.load(f)
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def list_states() -> list[SessionState]:
    """Every session state file, alive or stale, oldest first."""
    out = []
    with run_dir(create=False) as d:
        if d is None:
            return []
        for name in sorted(os.listdir(d)):
            if not name.endswith(".json"):
                continue
            try:
                out.append(SessionState.load(Path(name), dir_fd=d))
            except (OSError, ValueError, TypeError):    # named by unreadable_states(), for detach/sessions/doctor
                continue
    return sorted(out, key=lambda s: s.started)


def unreadable_states() -> list[tuple[Path, str]]:
    """State files that cannot be loaded (damaged, half-written by hand, wrong owner), with why.

    list_states() leaves them out; `lwtui detach --all`, `sessions` and
    `doctor` name them, and the routes they described are found by their dumps.
    """
    bad: list[tuple[Path, str]] = []
    with run_dir(create=False) as d:
        if d is None:
            return bad
        for name in sorted(os.listdir(d)):
            if not name.endswith(".json"):
                continue
            try:
                SessionState.load(Path(name), dir_fd=d)
            except (OSError, ValueError, TypeError) as e:
                bad.append((RUN_DIR / name, f"{type(e).__name__}: {e}"))
    return bad


def remove_stale_tmp() -> list[Path]:
    """Delete half-written state files (`NAME.tmpPID`) whose writer is gone; returns them."""
    gone: list[Path] = []
    with run_dir(create=False) as d:
        if d is None:
            return gone
        for name in os.listdir(d):
            pid = name.rpartition(".tmp")[2] if ".tmp" in name else ""
            if pid.isdigit() and proc_start_time(int(pid)) is None:
                try:
                    os.unlink(name, dir_fd=d)
                    gone.append(RUN_DIR / name)
                except (FileNotFoundError, IsADirectoryError):
                    pass
    return gone


def new_session_name() -> str:
    return f"lwtui-{os.getpid()}-{int(time.time()) % 100000}"


# -- who runs a session: its lock ----------------------------------------------

def _lock_name(name: str) -> str:
    return f"{valid_name(name)}.lock"


def _holder_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


CLAIM_PATIENCE = 1.0     # seconds to wait for a lock holder that has not written its pid yet


def claim(name: str) -> int:
    """Take session name `name` for this process: its lock's fd, held until release().

    Refused (PinError, exit 2) when a live session holds the name, or when a
    session of that name ended without restoring (killed, or kept with
    --keep-blocks): its state file must not be overwritten. A holder that has
    not written its pid (a session that just took the lock, or `detach --all`
    looking whether it is taken) is waited for, briefly.
    """
    lock = _lock_name(name)
    deadline = time.monotonic() + CLAIM_PATIENCE
    with run_dir() as d:
        assert d is not None        # created when missing
        while True:
            fd, pid = _lock_at(d, lock)
            if fd is not None:
                break
            if pid is not None or time.monotonic() > deadline:
                raise PinError(f"session name {name!r} is in use by a running session (pid {pid or 'unknown'}): "
                               "pick another --session NAME, or stop that session first")
            time.sleep(0.02)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {proc_start_time(os.getpid())}\n".encode(), 0)
            _refuse_leftover(name, d)
        except BaseException:
            release(name, fd)
            raise
    return fd


def _lock_at(d: int, lock: str) -> tuple[int | None, int | None]:
    """(the locked fd, None), or (None, the holder's pid if it wrote one) when another holds it."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _FILE_FLAGS, 0o600, dir_fd=d)
        except OSError as e:
            raise _write_error(lock, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            return None, pid
        try:    # the lock file may have been removed by its last holder meanwhile: lock the one in place
            same = os.stat(lock, dir_fd=d, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, None
        os.close(fd)


def _refuse_leftover(name: str, d: int) -> None:
    try:
        st = SessionState.load(Path(f"{name}.json"), dir_fd=d)
    except FileNotFoundError:
        return
    except (OSError, ValueError, TypeError) as e:
        raise PinError(f"session name {name!r} has a state file that cannot be read ({e}): pick another "
                       f"--session NAME, or restore and remove it with `lwtui detach --all`") from None
    if st.status == "running":
        raise PinError(f"session name {name!r} is in use by a running session (pid {st.pid}): "
                       "pick another --session NAME, or stop that session first")
    what = "ended with its blocks kept" if st.status == "kept" else f"was killed (pid {st.pid} is gone)"
    raise PinError(f"session {name!r} {what} and still holds its routes: run `lwtui detach --session {name}` "
                   "first, or pick another --session NAME")


def release(name: str, fd: int) -> None:
    """Give the name up: remove the lock file, then drop the lock."""
    with run_dir(create=False) as d:
        if d is not None:
            try:
                if os.stat(_lock_name(name), dir_fd=d, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    os.unlink(_lock_name(name), dir_fd=d)
            except OSError:
                pass
    os.close(fd)


def holder(name: str) -> int | None:
    """The pid of the live session holding name `name`, else None (read without the state file)."""
    with run_dir(create=False) as d:
        if d is None:
            return None
        try:
            fd = os.open(_lock_name(name), os.O_RDONLY | _FILE_FLAGS, dir_fd=d)
        except OSError:
            return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_pid(fd) or -1
    finally:
        os.close(fd)
    return None


@contextmanager
def attach_lock() -> Iterator[None]:
    """Held while a session attaches a route, so two sessions never attach to one route at once:
    the second sees the first's program on the route (and its state file) and is refused.
    An flock on the run directory itself: no file to leave behind."""
    with run_dir() as d:
        assert d is not None        # created when missing
        fcntl.flock(d, fcntl.LOCK_EX)
        yield


def remove_stale_locks() -> int:
    """Delete the lock files no live session holds (left by SIGKILL); returns how many."""
    gone = 0
    with run_dir(create=False) as d:
        if d is None:
            return 0
        for name in os.listdir(d):
            if not name.endswith(".lock") or name.startswith("."):
                continue
            try:
                fd = os.open(name, os.O_RDONLY | _FILE_FLAGS, dir_fd=d)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(name, dir_fd=d)      # a claimer that opened it meanwhile sees another inode and retries
                gone += 1
            except OSError:
                pass
            finally:
                os.close(fd)
    return gone
