"""The base class of the dashboard App's mixins (actions.py, feed.py, exits.py).

The mixins are parts of DashboardApp: they call textual's App API (notify,
push_screen, query_one, exit, post_message ...). For the type checker their
base is `App[int]`, which gives those calls their real signatures; at run
time it is `object`, so DashboardApp's bases and method order stay as they
are. What a mixin uses of DashboardApp itself, it declares in its own class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.app import App

    AppMixin = App[int]
else:
    AppMixin = object

__all__ = ["AppMixin"]
