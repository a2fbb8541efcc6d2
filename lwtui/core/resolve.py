"""Names for addresses and ports, for display only (the dashboard's `n`).

Host names come from reverse DNS (socket.gethostbyaddr: /etc/hosts, then DNS,
as nsswitch.conf says), looked up on a small pool of threads, never on the
caller's: host() answers at once from the cache, or None while a lookup is
under way. A lookup that takes longer than `timeout` counts as "no name" (its
late answer is ignored), as does a failed one; both are cached, so an address
is asked about once. Service names come from the services database
(/etc/services, socket.getservbyport): a local file read, cached too.

JSON output never uses these: it keeps addresses and port numbers.
Pure Python: the standard library only.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

LOOKUP_TIMEOUT = 2.0    # seconds a reverse lookup may take before the address counts as nameless
WORKERS = 4             # lookups at once (one stuck on a slow resolver holds one thread)
MAX_PENDING = 64        # addresses waiting at most: the rest are asked about on a later call
MAX_CACHED = 4096       # names kept; past it the cache starts again


def reverse_dns(addr: str) -> str:
    """The host name of an address (socket.gethostbyaddr), OSError when it has none."""
    return socket.gethostbyaddr(addr)[0]


class NameCache:
    """Reverse DNS and service names with a cache; host lookups off the caller's thread.

    lookup: address text -> name, OSError when it has none (default: reverse_dns);
    on_resolved: called (on a pool thread) when a new name arrives, e.g. to redraw.
    """

    def __init__(self, lookup: Callable[[str], str] = reverse_dns, timeout: float = LOOKUP_TIMEOUT,
                 on_resolved: Callable[[], None] | None = None):
        self._lookup = lookup
        self._timeout = timeout
        self.on_resolved = on_resolved
        self._hosts: dict[str, str] = {}        # address -> name, "" for none (failed or timed out)
        self._pending: dict[str, float] = {}    # address -> when its lookup began (monotonic)
        self._services: dict[tuple[int, str], str] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="lwtui-names")

    def host(self, addr: str) -> str | None:
        """The address's name if known; None when it has none or its lookup is under way."""
        with self._lock:
            name = self._hosts.get(addr)
            if name is not None:
                return name or None
            began = self._pending.get(addr)
            if began is not None:
                if time.monotonic() - began > self._timeout:    # too slow: nameless from now on
                    del self._pending[addr]
                    self._remember(addr, "")
                return None
            if len(self._pending) >= MAX_PENDING:
                return None
            self._pending[addr] = time.monotonic()
        self._pool.submit(self._resolve, addr)
        return None

    def service(self, port: int, proto: str) -> str | None:
        """The service name of a TCP or UDP port (/etc/services), None when it has none."""
        key = (port, proto)
        name = self._services.get(key)
        if name is None:
            try:
                name = socket.getservbyport(port, proto) if proto in ("tcp", "udp") and 0 < port < 65536 else ""
            except OSError:     # /etc/services names no such port: nameless, as the docstring says
                name = ""
            self._services[key] = name
        return name or None

    def close(self) -> None:
        """Stop taking lookups; one under way ends on its own (its thread is not waited for)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _remember(self, addr: str, name: str) -> None:
        if len(self._hosts) >= MAX_CACHED:
            self._hosts.clear()
        self._hosts[addr] = name

    def _resolve(self, addr: str) -> None:
        try:
            name = self._lookup(addr)
        except (OSError, UnicodeError):     # no PTR record, no resolver, a name that is not text: nameless
            name = ""
        with self._lock:
            if addr not in self._pending:   # timed out meanwhile: the answer came too late
                return
            del self._pending[addr]
            self._remember(addr, name)
        if name and self.on_resolved is not None:
            self.on_resolved()
