"""What the apps need from the terminal: its real size at start, and whether it is still there."""

from __future__ import annotations

import os
import sys

STALE_SIZE_VARS = ("COLUMNS", "LINES")
HANGUP_CHECK_SECONDS = 0.5


def size_from_terminal() -> None:
    """Let Textual measure the terminal instead of trusting COLUMNS/LINES.

    Textual sizes its screen with shutil.get_terminal_size(), which prefers
    these variables over the terminal itself, at start and after every
    resize. They are a snapshot someone else took (GNU readline in the parent
    process sets them at the C level, and some shells export them), so a
    dashboard started under them would stay at that size whatever the window
    does. Children of lwtui do not need them either.
    """
    for name in STALE_SIZE_VARS:
        os.environ.pop(name, None)


def terminal_alive(fd: int) -> bool:
    """False once the terminal behind `fd` hung up (its window closed, the SSH connection dropped).

    A hung-up terminal answers every ioctl with EIO, so it is no longer a tty.
    On a hangup the kernel signals only the session leader (the shell); its
    jobs get SIGHUP from the shell, or when it exits. Under a leader that
    ignores HUP and waits (a wrapper script, say), none comes: this is how
    lwtui learns it then.
    """
    return os.isatty(fd)


def has_terminal() -> bool:
    """True when stdin and stdout are both a terminal: the dashboard reads keys from one and
    draws on the other. Without it (`lwtui ROUTE | head`, stdin at EOF) it could neither be seen
    nor be quit by a key, so it is refused before anything is attached."""
    return all(f is not None and os.isatty(f.fileno()) for f in (sys.__stdin__, sys.__stdout__))
