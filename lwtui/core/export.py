"""Files a person keeps: where they go, and records written as CSV or JSON.

The place is $XDG_STATE_HOME/lwtui (default ~/.local/state/lwtui), created
when missing; if it cannot be made, the current directory. Root usually has
no ~/Downloads, the folder Textual saves screenshots to by default.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Iterable

FORMATS = ("csv", "json")


def export_dir() -> Path:
    """The directory exports and screenshots are written to; it exists on return."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "lwtui"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:     # the README's fallback: the current directory, named in the notification
        return Path.cwd()
    return path


def export_path(directory: Path, what: str, fmt: str, when: float | None = None) -> Path:
    """directory/lwtui-flows-20260101-120000.csv: sortable; -2, -3... when taken (same second)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    path = directory / f"lwtui-{what}-{stamp}.{fmt}"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"lwtui-{what}-{stamp}-{n}.{fmt}"
    return path


def write_records(path: Path, records: Iterable[dict], fmt: str) -> int:
    """Write records (dicts) as a JSON array or CSV with a header; returns how many.

    CSV columns are the union of the records' keys in first-seen order (an
    ICMP flow has icmp_type where a TCP flow has sport); a missing value is empty.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use csv or json")
    rows = [{k: v for k, v in r.items() if k != "type"} for r in records]
    if fmt == "json":
        path.write_text(json.dumps(rows, indent=1) + "\n")
        return len(rows)
    columns: dict[str, None] = {}
    for r in rows:
        columns.update(dict.fromkeys(r))
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(columns), restval="")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
