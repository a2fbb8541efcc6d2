"""What the apps need from the terminal before they start."""

from __future__ import annotations

import os

STALE_SIZE_VARS = ("COLUMNS", "LINES")


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
