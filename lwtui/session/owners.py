"""Who sent it: the process behind a flow's local socket, found in user space.

For a flow with a local end in the route's namespace (out and xmit: its
source; in: its destination), the namespace's sockets are listed through
sock_diag (lwtui.net.sockets) and matched on the flow's addresses and ports:
a connected socket on all four, else a listener or unconnected UDP socket
bound to the local port (its address, or a wildcard). The socket's inode is
then found among /proc/PID/fd links (lwtui.core.procs). Nothing here runs on
the packet path: the snapshot worker asks once per tick, lookups happen at
most every RESOLVE_INTERVAL seconds and only for flows not in the cache.
A flow without a matching socket (forwarded traffic, a socket closed since,
a process that exited) stays unknown: nothing is guessed.
"""

from __future__ import annotations

import functools
import math
import pwd
import time
from typing import Callable, Hashable, Iterable, Sequence

from lwtui.core import procs
from lwtui.core.flowcols import FlowView, raw_keys
from lwtui.core.model import FlowId, FlowRecord, Owner
from lwtui.core.names import PORT_PROTOS
from lwtui.net.netlink import NamespaceGone
from lwtui.net.sockets import SockEntry, list_sockets
from lwtui.session.routeindex import RouteIndex

RESOLVE_INTERVAL = 1.0   # seconds between two lookup rounds
KNOWN_TTL = 30.0         # a known owner is looked up again after this long (sockets change hands)
UNKNOWN_RETRY = 2.0      # an unknown flow is tried again after this long...
UNKNOWN_TRIES = 3        # ...this many times, then left unknown for KNOWN_TTL
OWNED_FLOWS = 4096       # of a large table, the flows seen last have their owners looked up


def local_end(fid: FlowId) -> tuple:
    """(local addr, local port, remote addr, remote port): `in` sees packets to a local address."""
    if fid.hook == "in":
        return fid.dst, fid.dport, fid.src, fid.sport
    return fid.src, fid.sport, fid.dst, fid.dport


class SocketIndex:
    """One namespace's sockets, by four-tuple and by bound port."""

    def __init__(self, socks: Iterable[SockEntry]):
        self.exact: dict[tuple, int] = {}
        self.bound: dict[tuple, list] = {}
        for s in socks:
            if not s.inode:
                continue
            if s.rport:
                self.exact.setdefault((s.proto, s.local, s.lport, s.remote, s.rport), s.inode)
            else:
                self.bound.setdefault((s.proto, s.lport), []).append((s.local, s.inode))

    def match(self, fid: FlowId) -> int | None:
        """The inode of the socket that sent or receives this flow, or None."""
        local, lport, remote, rport = local_end(fid)
        inode = self.exact.get((fid.proto, local, lport, remote, rport))
        if inode:
            return inode
        candidates = self.bound.get((fid.proto, lport), ())
        # the bound address itself, then a wildcard of the flow's family, then any wildcard (dual stack)
        for ok in (lambda a: a == local, lambda a: a.is_unspecified and a.version == local.version,
                   lambda a: a.is_unspecified):
            for addr, inode in candidates:
                if ok(addr):
                    return inode
        return None


@functools.lru_cache(maxsize=256)      # one passwd lookup per uid, not per flow of every round
def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class OwnerResolver:
    """Owners of a session's flows, cached; resolve() is called from the snapshot worker."""

    def __init__(self, targets: Iterable, list_socks: Callable[[str | None], list] = list_sockets,
                 clock: Callable[[], float] = time.monotonic):
        self.routes = RouteIndex(targets)
        self._list = list_socks
        self._clock = clock
        # by a flow's key (its 40 key bytes in a flow table's view, else its FlowId):
        # flow id, owner, expires, tries
        self._cache: dict[Hashable, tuple[FlowId, Owner | None, float, int]] = {}
        self._known: dict[FlowId, Owner] = {}    # the cache's known owners, kept as the cache changes
        self._next = 0.0

    def resolve(self, records: Sequence[FlowRecord]) -> dict[FlowId, Owner]:
        """The known owners of these flows (and of flows seen lately, until the cache lets them
        go); looks up the ones not cached (at most every RESOLVE_INTERVAL). Of a flow table's
        view, the OWNED_FLOWS flows seen last (a socket dump per namespace serves any number).
        Those are keyed by their key bytes: a FlowId is decoded only for a flow not cached or
        due again, not for every flow of every tick; the answer is a copy of a dict kept up to
        date, not one built per flow."""
        if isinstance(records, FlowView):
            rows = records.recent_rows(OWNED_FLOWS)
            keys: list = raw_keys(records.keys[rows]).tolist()
            flow_id: Callable[[int], FlowId] = lambda j: records.flow_id(int(rows[j]))
        else:
            keys = [r.id for r in records]
            flow_id = keys.__getitem__
        now, cache = self._clock(), self._cache
        if now >= self._next:
            todo = []
            for j, k in enumerate(keys):
                e = cache.get(k)
                if e is None:
                    fid = flow_id(j)
                    if fid.proto not in PORT_PROTOS or fid.fragment:
                        cache[k] = (fid, None, math.inf, 0)    # no socket to look for, ever
                        continue
                elif now < e[2]:
                    continue
                else:
                    fid = e[0]
                todo.append((k, fid))
            if todo:
                self._next = now + RESOLVE_INTERVAL
                self._lookup(todo, now)
        if len(cache) > 2 * len(keys) + 1024:   # flows gone from the table leave the cache
            live = set(keys)
            self._cache = {k: v for k, v in cache.items() if k in live}
            self._known = {e[0]: e[1] for e in self._cache.values() if e[1] is not None}
        return dict(self._known)

    def _lookup(self, todo: list[tuple[Hashable, FlowId]], now: float) -> None:
        """One round: one socket dump per namespace, one /proc scan for every inode found."""
        by_ns: dict = {}
        for k, fid in todo:
            ref = self.routes.route_of(fid.hook, fid.dst)
            if ref is not None:
                by_ns.setdefault(ref.netns, []).append((k, fid))
        inodes: dict[Hashable, int] = {}
        for netns, flows in by_ns.items():
            try:
                index = SocketIndex(self._list(netns))
            except (NamespaceGone, OSError):
                continue   # the namespace went away, or netlink failed: unknown this round
            for k, fid in flows:
                inode = index.match(fid)
                if inode:
                    inodes[k] = inode
        # one Owner per socket: the flows of one socket share it
        found = {inode: Owner(pid, comm, _user(uid))
                 for inode, (pid, comm, uid) in procs.socket_owners(set(inodes.values())).items()}
        for k, fid in todo:
            owner = found.get(inodes.get(k, 0))
            if owner is not None:
                self._cache[k], self._known[fid] = (fid, owner, now + KNOWN_TTL, 0), owner
                continue
            self._known.pop(fid, None)
            old = self._cache.get(k)
            tries = (old[3] if old is not None else 0) + 1
            wait = UNKNOWN_RETRY if tries < UNKNOWN_TRIES else KNOWN_TTL
            self._cache[k] = (fid, None, now + wait, tries if tries < UNKNOWN_TRIES else 0)
