"""Names and private directories for a session's places on the host.

Shared by lwtui.kernel.pins (bpffs) and lwtui.session.state (state files).
Both places may sit in a world-writable parent (bpffs is mounted 1777), so a
directory is used only when it is root's own (0700), it is opened without
following symlinks, and everything inside is reached through its fd
(`dir_fd=`), never by a path another user could swap.
"""

from __future__ import annotations

import errno
import os
import pwd
import re
import stat
from pathlib import Path

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PinError(RuntimeError):
    """A problem with bpffs, pins or state files; the message names the fix."""


def valid_name(name: str) -> str:
    """`name` when it is a safe session name (one path component), else PinError."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name.startswith("."):
        raise PinError(f"invalid session name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-' "
                       "(not starting with '.')")
    return name


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _is_link(name: str | Path, dir_fd: int | None = None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _refusal(path: Path, e: OSError, link: bool = False) -> PinError:
    """One line for an OSError on lwtui's private directory `path`, naming the fix."""
    if e.errno == errno.ELOOP or link:
        fix = f"is a symlink: remove it (`rm {path}`) and run lwtui again"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST):
        fix = f"is not a directory: remove what is there (`rm {path}`) and run lwtui again"
    elif e.errno == errno.EROFS:
        fix = "is on a read-only file system: remount it read-write"
    elif e.errno in (errno.EACCES, errno.EPERM):
        fix = f"cannot be used ({e.strerror}): run lwtui as root"
    else:
        fix = f"cannot be used ({e.strerror})"
    return PinError(f"{path} {fix}")


def open_private_dir(path: Path, create: bool = True) -> int | None:
    """An fd of directory `path`, root's own with mode 0700; None when missing and not `create`.

    Created 0700 when missing (parents too). An existing directory of root's
    is made 0700; a symlink, a non-directory, or a directory another user owns
    is refused (PinError naming the owner and the fix): its contents cannot be
    trusted and lwtui deletes files there.
    """
    if create:
        try:
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise _refusal(path, e) from None
    try:
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        if create:
            raise PinError(f"{path} vanished while lwtui created it: run lwtui again") from None
        return None
    except OSError as e:
        raise _refusal(path, e, _is_link(path)) from None
    try:
        _make_private(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private_subdir(dir_fd: int, name: str, where: Path, create: bool = True) -> int | None:
    """Like open_private_dir for entry `name` of the directory open as `dir_fd` (shown as `where`)."""
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            pass
        except OSError as e:
            raise _refusal(where / name, e) from None
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if create:
            raise PinError(f"{where / name} vanished while lwtui created it: run lwtui again") from None
        return None
    except OSError as e:
        raise _refusal(where / name, e, _is_link(name, dir_fd)) from None
    try:
        _make_private(fd, where / name)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make_private(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if st.st_uid not in (0, os.geteuid()):
        raise PinError(f"{path} is owned by {_owner(st.st_uid)}, not root: another user may have put "
                       f"files there; remove it as root (`rm -r {path}`) and run lwtui again")
    if stat.S_IMODE(st.st_mode) != 0o700:
        try:
            os.fchmod(fd, 0o700)
        except OSError as e:
            raise _refusal(path, e) from None
