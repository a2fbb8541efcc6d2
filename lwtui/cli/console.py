"""The rich Console every command prints with: no automatic highlighting, and lines
left whole for the terminal to wrap."""

from __future__ import annotations


def console(stderr: bool = False):
    from rich.console import Console
    return Console(stderr=stderr, highlight=False, soft_wrap=True)
