"""Names and private directories for a session's places on the host.

Shared by lwtui.kernel.pins (bpffs) and lwtui.session.state (state files).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PinError(RuntimeError):
    """A problem with bpffs, pins or state files; the message names the fix."""


def valid_name(name: str) -> str:
    if not _NAME_RE.match(name) or name.startswith("."):
        raise PinError(f"invalid session name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it root-only (0700) even if it existed."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
