"""The session's event log: bounded between two snapshots, its overflow counted.

New flows, drops, blocks, lost events and route errors are appended by any
thread (the reader, a snapshot worker, the UI) and drained once per snapshot.
A flow storm can produce far more entries per tick than anyone can read: past
`limit` the oldest entries go, and the next drain starts with one "lost" entry
that says how many.
"""

from __future__ import annotations

import collections
import threading
import time

from lwtui.core.model import EventEntry, FlowId
from lwtui.core.names import addr_text, endpoint

EVENT_LOG_MAX = 2000          # entries between two snapshots; more are counted, not kept

# How much an event asks for attention, by kind: errors (a route went away,
# events lost), warnings (packets dropped, a rule added), the rest is info.
LEVELS = ("info", "warning", "error")
KIND_LEVELS = {"error": "error", "lost": "error", "drop": "warning", "block": "warning",
               "new": "info", "allow": "info", "info": "info"}


def level_of(kind: str) -> str:
    """The level of an event kind ("info" for a kind not listed)."""
    return KIND_LEVELS.get(kind, "info")


class EventQueue:
    """A bounded queue of EventEntry with a count of what it had to drop (the dashboard's
    widget that shows them is lwtui.ui.eventlog.EventLog)."""

    def __init__(self, limit: int = EVENT_LOG_MAX):
        self.limit = limit
        self._entries: collections.deque[EventEntry] = collections.deque(maxlen=limit)
        self._dropped = 0
        self._lock = threading.Lock()

    def add(self, kind: str, text: str, flow: FlowId | None = None, when: float | None = None) -> None:
        entry = EventEntry(time=when or time.time(), kind=kind, text=text, flow=flow)
        with self._lock:
            if len(self._entries) >= self.limit:
                self._dropped += 1
            self._entries.append(entry)

    def drain(self) -> list[EventEntry]:
        """Everything since the last drain, oldest first, after a "lost" entry if some were dropped."""
        with self._lock:
            events, dropped = list(self._entries), self._dropped
            self._entries.clear()
            self._dropped = 0
        if dropped:
            events.insert(0, EventEntry(time=time.time(), kind="lost",
                                        text=f"{dropped} log entries dropped (more than {self.limit} "
                                             "since the last refresh)"))
        return events


def flow_text(f: FlowId) -> str:
    """A flow as the event log says it: "out udp 10.0.0.2:40000 -> 10.0.0.3:53"."""
    def ep(addr, port):
        return addr_text(addr) if f.is_icmp or f.fragment else endpoint(addr, port)
    extra = f" type {f.sport} code {f.dport}" if f.is_icmp else ""
    frag = " (fragment)" if f.fragment else ""
    return f"{f.hook} {f.proto_name} {ep(f.src, f.sport)} -> {ep(f.dst, f.dport)}{extra}{frag}"
