"""The dashboard's `n` in the flow view: host and service names instead of addresses and ports.

A mixin for the App. Names come from a lwtui.core.resolve.NameCache: reverse
DNS on its own threads (cached, with a timeout), service names from
/etc/services; the flow table asks it per visible row and redraws when a name
arrives. Only the screen changes: exports and JSON keep addresses.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Callable

from lwtui.core.resolve import NameCache, reverse_dns
from lwtui.ui.appbase import AppMixin

if TYPE_CHECKING:
    from lwtui.ui.flowtable import FlowTable


class NamesMixin(AppMixin):
    """The `n` toggle; needs the App's flow table."""

    names: NameCache | None = None       # on: the cache the table reads; off: None
    name_lookup: Callable[[str], str] = staticmethod(reverse_dns)   # tests give their own resolver

    if TYPE_CHECKING:
        @property
        @abstractmethod
        def flow_table(self) -> FlowTable: ...

    def action_toggle_names(self) -> None:
        """n: names on (reverse DNS, /etc/services) or off (addresses, port numbers)."""
        if self.names is None:
            self.names = NameCache(self.name_lookup, on_resolved=self._names_arrived)
            self.notify("names on: host names by reverse DNS (looked up in the background), service names "
                        "from /etc/services; n again shows addresses", title="names", timeout=4)
        else:
            self.names.close()
            self.names = None
            self.notify("names off: addresses and port numbers", title="names", timeout=3)
        self.flow_table.set_names(self.names)

    def _names_arrived(self) -> None:
        """A lookup thread found a name: redraw the table on the UI thread."""
        names = self.names
        if names is not None and self.is_running:
            self.call_from_thread(self._redraw_names, names)

    def _redraw_names(self, names: NameCache) -> None:
        if self.names is names:     # not toggled off meanwhile
            self.flow_table.set_names(names)

    def close_names(self) -> None:
        if self.names is not None:
            self.names.close()
            self.names = None
