"""The Python floor in pyproject.toml is the one lwtui runs and is tested on.

3.9 was stated once, but `ModalScreen[float | None]` (and other unions
evaluated at import) need 3.10, and nothing ran on it. The floor is now the
interpreter this suite runs on: Debian 12's python3 (3.11), the one its BCC
bindings (python3-bpfcc) are built for. Every module must parse with the
floor's grammar, and the suite must not run below it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _floor() -> tuple[int, int]:
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'^requires-python = ">=(\d+)\.(\d+)"', text, re.M)
    assert m, "pyproject.toml states no requires-python floor"
    return int(m.group(1)), int(m.group(2))


def test_the_floor_is_the_interpreter_the_tests_run_on():
    assert _floor() == (3, 11)
    assert sys.version_info[:2] >= _floor()


def test_every_module_parses_with_the_floors_grammar():
    bad = []
    for path in sorted((ROOT / "lwtui").rglob("*.py")):
        try:
            ast.parse(path.read_text(), str(path), feature_version=_floor())
        except SyntaxError as e:
            bad.append(f"{path.relative_to(ROOT)}:{e.lineno}: {e.msg}")
    assert bad == []
