"""The dashboard's remembered choices (lwtui.core.settings): applied at start, saved on change.

Only an app made with remember=True reads or writes the file (run_dashboard
does; tests and screenshots do not). A bad file, an unknown theme or sort
name: a warning notification and the default, never a crash.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import replace
from typing import TYPE_CHECKING

from lwtui.core.settings import Settings, load_settings, save_settings
from lwtui.ui.appbase import AppMixin
from lwtui.ui.selection import SORTS

if TYPE_CHECKING:
    from lwtui.ui.flowtable import FlowTable

DEFAULT_INTERVAL = 1.0


class RememberMixin(AppMixin):
    """For the App: needs `interval`, `sort_index`, `theme`, `flow_table` and notify()."""

    # What it uses of DashboardApp, and what it keeps itself:
    interval: float
    sort_index: int
    remember: bool
    settings: Settings
    _settings_warnings: list[str]
    _keep_interval: bool

    if TYPE_CHECKING:
        @property
        @abstractmethod
        def flow_table(self) -> FlowTable: ...

    def init_remember(self, remember: bool, interval: float | None) -> float:
        """Load the settings (when remembering); returns the interval to use: the one given, else
        the remembered one, else DEFAULT_INTERVAL."""
        self.remember = remember
        self.settings, self._settings_warnings = Settings(), []
        if remember:
            self.settings, warning = load_settings()
            self._settings_warnings += [warning] if warning else []
        self._keep_interval = interval is not None or self.settings.interval is not None
        return interval if interval is not None else (self.settings.interval or DEFAULT_INTERVAL)

    def apply_settings(self) -> None:
        """From on_mount: the remembered theme and sort, then save whenever they change."""
        s = self.settings
        if s.theme is not None:
            if s.theme in self.available_themes:
                self.theme = s.theme
            else:
                self._settings_warnings.append(f"unknown theme {s.theme!r} in the settings (ignored)")
        if s.sort is not None:
            names = [o.name for o in SORTS]
            if s.sort in names:
                self.sort_index = names.index(s.sort)
                self.flow_table.set_sort_column(SORTS[self.sort_index].column)
            else:
                self._settings_warnings.append(f"unknown sort {s.sort!r} in the settings (ignored); "
                                               f"known: {', '.join(names)}")
        for warning in self._settings_warnings:
            self.notify(warning, title="settings", severity="warning", timeout=10)
        if self.remember:
            # What is on screen now counts as remembered, except an interval given on the command
            # line that differs from the file's: that one is saved at once.
            self.settings = replace(self.current_settings(), interval=self.settings.interval)
            self.theme_changed_signal.subscribe(self, lambda _theme: self.save_settings())
            self.save_settings()

    def current_settings(self) -> Settings:
        """What to remember now; the interval only once one was given or remembered."""
        return Settings(theme=self.theme, sort=SORTS[self.sort_index].name,
                        interval=self.interval if self._keep_interval else None)

    def save_settings(self) -> None:
        """Write the settings when remembering and they changed; a failure is a warning."""
        now = self.current_settings()
        if not self.remember or now == self.settings:
            return
        self.settings = now
        warning = save_settings(now)
        if warning:
            self.notify(warning, title="settings", severity="warning", timeout=10)
