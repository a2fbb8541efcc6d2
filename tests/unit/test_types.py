"""The package type-checks and keeps its layers: mypy and import-linter, run by `make test`.

mypy reads [tool.mypy] in pyproject.toml (the lwtui package, Python 3.11) and
must report no error at all; lint-imports reads the [tool.importlinter]
contracts (rooms in layers, library boundaries, no cycles, the front ends on
the session Protocol) and must keep every one. A missing tool fails the test
with the command that installs it: these checks are never skipped.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "install the test tools: .venv/bin/pip install -e '.[test]' (mypy>=1.10, import-linter>=2.1)"


def test_mypy_finds_no_error():
    if importlib.util.find_spec("mypy") is None:
        pytest.fail(f"mypy is missing from {sys.executable}: {INSTALL}")
    r = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and r.stdout.startswith("Success: no issues found"), r.stdout + r.stderr


def test_import_linter_keeps_every_contract():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.is_file():
        pytest.fail(f"{lint} is missing: {INSTALL}")
    r = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 broken" in r.stdout, r.stdout
