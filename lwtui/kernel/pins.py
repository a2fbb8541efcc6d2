"""A session's verdict maps pinned in bpffs.

A running session pins its verdict maps under /sys/fs/bpf/lwtui/<session>/
(directories 0700, pins 0600) so `lwtui block/allow/rules` from another shell
act on it. The pins go away when the session ends, unless it ends with
--keep-blocks and active rules (see lwtui.session.state).

bpffs is mounted 1777, so another user may have made /sys/fs/bpf/lwtui or put
links in it: the pin root must be root's own 0700 directory on a bpffs
(lwtui.core.paths), every path below it is reached through directory fds
without following symlinks, and cleanup removes only the PINNED_MAPS names,
and only when they are pinned maps.

LWTUI_BPFFS and LWTUI_PIN_ROOT move these places (tests).
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
import stat
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from lwtui.core.ruleerror import clip_message
from lwtui.core.paths import PinError, open_private_dir, open_private_subdir, valid_name
from lwtui.kernel import bpfsys

BPFFS = Path(os.environ.get("LWTUI_BPFFS", "/sys/fs/bpf"))
PIN_ROOT = Path(os.environ.get("LWTUI_PIN_ROOT", str(BPFFS / "lwtui")))

PINNED_MAPS = ("verdicts", "host_rules", "port_rules", "compound", "config")
BPF_FS_MAGIC = 0xCAFE4A11

_libc = ct.CDLL(None, use_errno=True)


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


def _fs_type(fd: int) -> int:
    """f_type of fstatfs(2) (the first field of struct statfs on Linux)."""
    buf = ct.create_string_buffer(256)
    if _libc.fstatfs(fd, buf) != 0:
        err = ct.get_errno()
        raise OSError(err, os.strerror(err))
    return ct.c_ulong.from_buffer(buf).value & 0xFFFFFFFF


@contextmanager
def _root(create: bool) -> Iterator[int | None]:
    """The pin root's fd (None when it does not exist and not `create`), checked to be on a bpffs."""
    fd = open_private_dir(PIN_ROOT, create=create)
    if fd is None:
        yield None
        return
    try:
        if _fs_type(fd) != BPF_FS_MAGIC:
            raise PinError(f"{PIN_ROOT} is not on a bpffs, so maps cannot be pinned there: mount one "
                           f"(`mount -t bpf bpf {BPFFS}`)")
        yield fd
    finally:
        os.close(fd)


@contextmanager
def _session_dir(session: str, create: bool) -> Iterator[int | None]:
    """The fd of a session's pin directory (None when missing and not `create`)."""
    name = valid_name(session)
    with _root(create) as root:
        d = None if root is None else open_private_subdir(root, name, PIN_ROOT, create=create)
        try:
            yield d
        finally:
            if d is not None:
                os.close(d)


def check_root() -> None:
    """Create or verify the pin root (root's 0700 directory on a bpffs); PinError names the fix."""
    ensure_bpffs()
    with _root(create=True):
        pass


def _at(dir_fd: int, name: str) -> str:
    """A path the kernel resolves through `dir_fd` (bpf(2) takes paths, not dir fds)."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def _is_pinned_map(dir_fd: int, name: str) -> bool | None:
    """True when entry `name` is a pinned map, False when it is something else, None when absent.

    Checked with lstat first (a symlink is never followed), then by opening
    the object: its fd must be a BPF map.
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return False
    try:
        fd = bpfsys.obj_get(_at(dir_fd, name))
    except OSError:
        return False
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-map"
    finally:
        os.close(fd)


def _unpin_at(dir_fd: int, name: str, where: Path) -> None:
    kind = _is_pinned_map(dir_fd, name)
    if kind is False:
        raise PinError(f"{where / name} is not a map lwtui pinned: remove it by hand (`rm {where / name}`)")
    if kind:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass


def pin_maps(session: str, fds: dict[str, int]) -> Path:
    """Pin the session's verdict maps; returns the directory (0700)."""
    ensure_bpffs()
    d = PIN_ROOT / valid_name(session)
    with _session_dir(session, create=True) as dfd:
        assert dfd is not None      # created when missing
        try:
            for name in PINNED_MAPS:
                _unpin_at(dfd, name, d)
                bpfsys.obj_pin(fds[name], _at(dfd, name))
                os.chmod(_at(dfd, name), 0o600)
        except OSError as e:
            raise PinError(f"cannot pin the session's maps in {d} ({e.strerror})") from None
    return d


def open_pinned(session: str) -> dict[str, int]:
    """Open a session's pinned maps (fds the caller closes)."""
    d = PIN_ROOT / valid_name(session)
    fds: dict[str, int] = {}
    try:
        with _session_dir(session, create=False) as dfd:
            if dfd is None:
                raise FileNotFoundError(2, "No such file or directory")
            for name in PINNED_MAPS:
                if not _is_pinned_map(dfd, name):
                    raise FileNotFoundError(2, f"no pinned map {name}")
                fds[name] = bpfsys.obj_get(_at(dfd, name))
    except OSError as e:
        for fd in fds.values():
            os.close(fd)
        raise PinError(f"session {session!r} has no pinned maps at {d} ({e.strerror}): "
                       "is it running? see `lwtui sessions`") from None
    return fds


def unpin(session: str) -> list[str]:
    """Remove a session's pins (only the maps lwtui pinned there) and its directory; idempotent.

    Returns the names of what is left in the directory that lwtui did not put
    there (the directory then stays, and nothing in it is followed or removed):
    the caller says so."""
    d = PIN_ROOT / valid_name(session)
    with _session_dir(session, create=False) as dfd:
        if dfd is None:
            return []
        for name in PINNED_MAPS:
            _unpin_at(dfd, name, d)
        left = sorted(os.listdir(dfd))
    with _root(create=False) as root:
        if root is not None and not left:
            try:
                os.rmdir(session, dir_fd=root)
            except FileNotFoundError:   # removed meanwhile
                pass
            except OSError as e:
                if e.errno != errno.ENOTEMPTY:
                    raise PinError(f"cannot remove {d} ({e.strerror})") from None
                left = ["(an entry made meanwhile)"]
    return left


def left_message(session: str, left: list[str]) -> str:
    """One line for what unpin() left in a session's directory."""
    d = PIN_ROOT / valid_name(session)
    names = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    return clip_message(f"{d} still holds {names}, which lwtui did not put there: left alone; "
                        f"remove it by hand (`rm -r {d}`)")


def pinned_sessions() -> list[str]:
    """Names of the session directories under the pin root."""
    with _root(create=False) as root:
        if root is None:
            return []
        return sorted(n for n in os.listdir(root)
                      if stat.S_ISDIR(os.stat(n, dir_fd=root, follow_symlinks=False).st_mode))
