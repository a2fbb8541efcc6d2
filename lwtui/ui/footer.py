"""The footer: every shown key when they fit on one line; else the same keys
compact (no palette key); when even those do not fit (80 columns), a compact
line of the keys a person needs first (NARROW_FOOTER), so `? help` and `q quit`
are never cut off (the help screen lists them all)."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from lwtui.ui.keys import NARROW_FOOTER

PALETTE_WIDTH = 12      # "▏^p palette", on the right


class FitFooter(Footer):
    """Footer that goes compact, then to the NARROW_FOOTER keys, when all would not fit."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self._narrow: bool | None = None
        self._width = 0

    def _widths(self) -> tuple[int, int]:
        """Columns the footer takes with every shown action: (" k description " each and the
        palette key; compact, one column less each and no palette key)."""
        seen: dict[str, int] = {}
        for _, binding, _, _ in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen:
                seen[binding.action] = len(self.app.get_key_display(binding)) + len(binding.description) + 3
        return sum(seen.values()) + PALETTE_WIDTH, sum(seen.values()) - len(seen)

    def compose(self) -> ComposeResult:
        self._width = self.app.size.width
        full, compact = self._widths() if self._bindings_ready else (0, 0)
        narrow = compact > self._width             # only the first keys
        self._narrow = narrow
        self.set_reactive(Footer.compact, full > self._width)
        self.set_class(full > self._width, "-compact")
        self.set_reactive(Footer.show_command_palette, full <= self._width)
        kept = 0
        for widget in super().compose():
            if narrow and isinstance(widget, FooterKey) and widget.action not in NARROW_FOOTER:
                continue
            kept += 1
            yield widget
        if narrow:
            self.styles.grid_size_columns = kept

    def on_resize(self, event: events.Resize) -> None:
        if self._narrow is not None and self.app.size.width != self._width:
            self.call_after_refresh(self.recompose)
