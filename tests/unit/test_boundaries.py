"""The core/UI boundary, checked on the import statements themselves.

Only the probe talks to BCC (doctor only checks that it imports), only the
route and namespace code talks netlink, only lwtui/ui uses textual, and the
flow model and rule grammar import none of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "lwtui"
ALLOWED = {
    "bcc": {"probe.py", "doctor.py"},
    "pyroute2": {"routes.py", "routes_nl.py", "routes_policy.py", "netns.py", "lab.py"},
    "textual": {"ui/"},
}
PURE = ["model.py", "flows.py", "rules.py", "filters.py", "units.py", "kstructs.py", "replay.py", "routes_attrs.py"]


def imports(path: Path) -> set[str]:
    """Top-level package names a module imports (anywhere in it, also inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def allowed(rel: str, lib: str) -> bool:
    return any(rel == a or (a.endswith("/") and rel.startswith(a)) for a in ALLOWED[lib])


@pytest.mark.parametrize("lib", sorted(ALLOWED))
def test_only_its_own_modules_import_each_library(lib):
    offenders = [str(p.relative_to(PKG)) for p in modules()
                 if lib in imports(p) and not allowed(str(p.relative_to(PKG)), lib)]
    assert offenders == []


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_no_kernel_or_ui_library(name):
    assert imports(PKG / name) & set(ALLOWED) == set()


def test_the_checker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from bcc import BPF\n    import textual.app\n")
    assert imports(f) == {"bcc", "textual"}
