"""Command-line words to objects: hooks and routes to Targets; bad input is UsageError."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lwtui.core.names import HOOKS

if TYPE_CHECKING:
    from lwtui.net.routes import Target


class UsageError(Exception):
    """Bad input: exit code 2."""


def hooks(text: str) -> list[str]:
    """`out,xmit` -> ["out", "xmit"]; UsageError naming the hooks there are."""
    names = [h.strip() for h in text.split(",") if h.strip()]
    bad = [h for h in names if h not in HOOKS]
    if bad or not names:
        raise UsageError(f"unknown hook {','.join(bad) or text!r}: use in, out or xmit (comma-separated)")
    return names


def targets(args: argparse.Namespace) -> list[Target]:
    """One Target per route and hook the arguments name."""
    from lwtui.net.routes import Target, parse_prefix  # pyroute2 is imported only when routes are needed
    hook_names = hooks(args.hook)
    out = []
    for r in args.routes:
        parse_prefix(r)
        for h in hook_names:
            out.append(Target(prefix=r, hook=h, netns=args.netns, dev=args.dev))
    return out
