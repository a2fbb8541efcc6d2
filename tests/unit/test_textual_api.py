"""lwtui.ui uses only Textual's public API: no class of it defines a method or
property whose underscore name Textual (or rich) already uses in a base class.

Such a name is Textual's private machinery (`App._handle_exception`,
`Widget._on_click`): overriding it ties lwtui to internals that change between
Textual releases. Message handlers go by their public names (`on_click`), which
Textual calls along the MRO just as it calls its own `_on_click`.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import lwtui.ui

FOREIGN = ("textual", "rich")


def _own_members(cls: type) -> dict[str, object]:
    """Methods and properties a class defines itself (not what a metaclass adds)."""
    return {n: v for n, v in vars(cls).items()
            if inspect.isfunction(v) or isinstance(v, (property, staticmethod, classmethod))}


def private_overrides(module) -> list[str]:
    """`module.Class._name (textual.Base)` for each underscore name shadowing a foreign base's."""
    found = []
    for cname, cls in vars(module).items():
        if not inspect.isclass(cls) or cls.__module__ != module.__name__:
            continue
        for name in _own_members(cls):
            if not name.startswith("_") or name.startswith("__"):
                continue
            base = next((b for b in cls.__mro__[1:]
                         if b.__module__.split(".")[0] in FOREIGN and name in vars(b)), None)
            if base is not None:
                found.append(f"{module.__name__}.{cname}.{name} ({base.__module__}.{base.__name__})")
    return found


def test_no_ui_class_overrides_a_private_textual_name():
    found = []
    for info in pkgutil.iter_modules(lwtui.ui.__path__):
        found += private_overrides(importlib.import_module(f"lwtui.ui.{info.name}"))
    assert found == []


def test_the_check_sees_a_private_override():
    from textual.widget import Widget

    class Clicky(Widget):
        async def _on_click(self, event) -> None:
            pass

        def on_mount(self) -> None:
            pass

    module = type(importlib)("lwtui.ui.probe_module")
    Clicky.__module__ = module.__name__
    module.Clicky = Clicky
    assert private_overrides(module) == ["lwtui.ui.probe_module.Clicky._on_click (textual.widget.Widget)"]
