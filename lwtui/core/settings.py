"""What the dashboard remembers between runs: theme, sort order, refresh interval.

One small JSON file, $XDG_CONFIG_HOME/lwtui/settings.json (default
~/.config/lwtui/settings.json). A file that cannot be read or holds
nonsense gives the defaults and a warning, never an error: remembering is
a convenience, and a broken file must not keep lwtui from starting.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

INTERVAL_RANGE = (0.05, 3600.0)      # seconds, as --interval takes them


@dataclass(frozen=True)
class Settings:
    """Remembered choices; None: not chosen yet (the program's default applies)."""
    theme: str | None = None
    sort: str | None = None
    interval: float | None = None


def settings_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lwtui" / "settings.json"


def _valid(data: dict) -> tuple[Settings, list[str]]:
    """The fields that make sense, and what was wrong with the others."""
    problems: list[str] = []
    values: dict = {}
    for key in ("theme", "sort"):
        v = data.get(key)
        if v is not None and not (isinstance(v, str) and v):
            problems.append(f"{key} must be a name, got {v!r}")
        else:
            values[key] = v
    v = data.get("interval")
    low, high = INTERVAL_RANGE
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high):
        problems.append(f"interval must be {low:g}..{high:g} seconds, got {v!r}")
    else:
        values["interval"] = None if v is None else float(v)
    unknown = sorted(set(data) - {"theme", "sort", "interval"})
    if unknown:
        problems.append("unknown keys " + ", ".join(unknown))
    return Settings(**values), problems


def load_settings(path: Path | None = None) -> tuple[Settings, str | None]:
    """The remembered settings, and a warning naming the file and its problem (None if fine)."""
    path = path or settings_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Settings(), None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return Settings(), f"{path}: {e}; using the defaults (the file is rewritten on exit)"
    if not isinstance(data, dict):
        return Settings(), f"{path}: not a JSON object; using the defaults (the file is rewritten on exit)"
    settings, problems = _valid(data)
    if problems:
        return settings, f"{path}: " + "; ".join(problems) + " (ignored)"
    return settings, None


def save_settings(settings: Settings, path: Path | None = None) -> str | None:
    """Write the settings (atomically); a warning when that fails, None when it worked."""
    path = path or settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({k: v for k, v in asdict(settings).items() if v is not None}, indent=1) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        return f"could not remember the settings in {path}: {e}"
    return None
