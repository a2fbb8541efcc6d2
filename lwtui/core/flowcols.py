"""Flows as columns: the identity and counter layouts of a whole tick, and the
immutable view of a flow table that a Snapshot hands out.

A tick of the kernel's flow map is two numpy structured arrays (KEY_DTYPE,
COUNTER_DTYPE), not a Python object per flow; lwtui.kernel.codec fills them from
a batch read. FlowView is what a snapshot carries: the table's columns at that
tick (copies), a Sequence of FlowRecord whose records are built only when read
(a terminal shows a few dozen of 100,000 flows), and the columns themselves for
vectorized sorting and filtering (lwtui.ui.selection, lwtui.core.filters).

Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one
prefix comparison serves both families. Pure Python and numpy.
"""

from __future__ import annotations

import ipaddress
from typing import Iterator, Optional, Sequence, overload

import numpy as np

from lwtui.core.compound import CompoundRule, Term
from lwtui.core.model import FlowId, FlowRecord
from lwtui.core.names import HOOKS, ICMP_PROTOS, PORT_PROTOS
from lwtui.core.rules import FlowRule, HostRule, PortRule, icmp_pair

# One flow's identity (FlowId) as a row; 40 bytes, no padding.
KEY_DTYPE = np.dtype([("src", "u1", (16,)), ("dst", "u1", (16,)), ("sport", "<u2"), ("dport", "<u2"),
                      ("proto", "u1"), ("family", "u1"), ("hook", "u1"), ("fragment", "u1")])
# One flow's counters as read (flows.Counters as a row): times are wall-clock seconds,
# verdict a VERDICTS index, rule an index into the table's rule texts (0: none).
COUNTER_DTYPE = np.dtype([("packets", "<i8"), ("bytes", "<i8"), ("drops", "<i8"), ("first_seen", "<f8"),
                          ("last_seen", "<f8"), ("tcp_flags", "u1"), ("verdict", "i1"), ("rule", "<i4")])
VERDICTS = ("allow", "drop", "would-drop")
VERDICT_CODE = {v: i for i, v in enumerate(VERDICTS)}
ALLOW, DROP, WOULD_DROP = 0, 1, 2
_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"
_HOOK_CODE = {h: i for i, h in enumerate(HOOKS)}


def addr_bytes(addr) -> bytes:
    """An address as the columns hold it (IPv4-mapped for IPv4)."""
    return _V4_MAPPED + addr.packed if addr.version == 4 else addr.packed


def encode_ids(ids: Sequence[FlowId]) -> np.ndarray:
    """FlowIds as KEY_DTYPE rows (flows given as objects: tests, events, replays)."""
    return np.array([(tuple(addr_bytes(f.src)), tuple(addr_bytes(f.dst)), f.sport, f.dport, f.proto,
                      f.src.version, _HOOK_CODE[f.hook] if f.hook in _HOOK_CODE else int(f.hook), int(f.fragment))
                     for f in ids], dtype=KEY_DTYPE)


def decode_id(row) -> FlowId:
    """A KEY_DTYPE row as a FlowId."""
    src, dst = bytes(row["src"]), bytes(row["dst"])
    hook = int(row["hook"])
    if int(row["family"]) == 4:
        s: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(src[12:])
        d: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(dst[12:])
    else:
        s, d = ipaddress.IPv6Address(src), ipaddress.IPv6Address(dst)
    return FlowId(HOOKS[hook] if hook < len(HOOKS) else str(hook), int(row["proto"]), s, int(row["sport"]),
                  d, int(row["dport"]), bool(row["fragment"]))


def key_hashes(keys: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 64-bit hash of each KEY_DTYPE row (equal keys, equal hashes), to match rows
    between ticks with a sort instead of a dict. Another `seed`, another hash: the
    flow table re-seeds when two keys collide (see KeyIndex)."""
    words = keys.view(np.uint64).reshape(len(keys), KEY_DTYPE.itemsize // 8) if len(keys) else \
        np.zeros((0, KEY_DTYPE.itemsize // 8), np.uint64)
    h = np.full(len(keys), (0xCBF29CE484222325 + seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h ^= words[:, j]
            h *= np.uint64(0x100000001B3)
            h ^= h >> np.uint64(29)
    return h


def raw_keys(keys: np.ndarray) -> np.ndarray:
    """Each key row as one opaque value, for equality tests."""
    return keys.view(f"V{KEY_DTYPE.itemsize}")


def same_keys(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two KEY_DTYPE arrays hold the same keys in the same order."""
    return len(a) == len(b) and bool((a.view(np.uint64) == b.view(np.uint64)).all())


class KeyIndex:
    """Finds a table's rows by key: the table keeps each row's key_hashes() under `seed`
    (its `h` column); the index searches a sorted copy of that column (made again after
    forget()). Every hash match is checked against the whole key; two keys with one hash
    re-seed the hash, so one flow's counters never land on another's row."""

    def __init__(self) -> None:
        self.seed = 0
        self._sorted: Optional[tuple[np.ndarray, np.ndarray]] = None

    def hashes(self, keys: np.ndarray) -> np.ndarray:
        return key_hashes(keys, self.seed)

    def forget(self) -> None:
        """The table's rows or hashes changed."""
        self._sorted = None

    def rows_of(self, table_h: np.ndarray, h: np.ndarray) -> np.ndarray:
        """The row of each hash `h` in a table whose hash column is `table_h`; -1 where none."""
        n = len(table_h)
        if n == 0 or len(h) == 0:
            return np.full(len(h), -1, dtype=np.int64)
        if self._sorted is None:
            order = np.argsort(table_h, kind="stable")
            self._sorted = (order, table_h[order])
        order, sh = self._sorted
        pos = np.minimum(np.searchsorted(sh, h), n - 1)
        return np.where(sh[pos] == h, order[pos], -1)

    def match(self, table_keys: np.ndarray, table_h: np.ndarray,
              keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first, rows, table_h): the index in `keys` of each distinct key (its first
        occurrence, in order), its row in the table (-1: none), and the table's hash
        column (new when the hash was re-seeded)."""
        raw = raw_keys(keys)
        for _ in range(16):
            h = self.hashes(keys)
            _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
            dup_ok = bool((raw == raw[first[inverse.reshape(-1)]]).all())
            first.sort()
            rows = self.rows_of(table_h, h[first])
            hit = rows >= 0
            if dup_ok and bool((raw_keys(table_keys[rows[hit]]) == raw[first[hit]]).all()):
                return first, rows, table_h
            self.seed += 1
            table_h = self.hashes(table_keys)
            self._sorted = None
        raise RuntimeError("flow keys collide under 16 hash seeds")


class _Records(Sequence[FlowRecord]):
    """A Sequence of records whose i-th is row _row(i) of a FlowView, built when read."""

    def _row(self, i: int) -> int:
        raise NotImplementedError

    def _record(self, row: int) -> FlowRecord:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> FlowRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[FlowRecord]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._record(self._row(j)) for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self._record(self._row(i))

    def __iter__(self) -> Iterator[FlowRecord]:
        return (self._record(self._row(i)) for i in range(len(self)))


class FlowView(_Records):
    """A flow table's rows at one tick: columns (copies) and records built on demand.

    Records built once are kept (the same object for every read of this view).
    Histories are read from the table's ring buffers, which keep a few ticks of
    slack: a view read within those ticks gets every value; one read later (a
    paused screen scrolled to rows it never drew) gets the values still held.
    """

    def __init__(self, cols: dict[str, np.ndarray], keys: np.ndarray, ids: np.ndarray, records: np.ndarray,
                 rules: list[str], history, seq: int):
        self.cols = cols
        self.keys = keys
        self._ids = ids            # FlowId or None per row; shared with the table (same keys, same id)
        self._records = records    # FlowRecord or None per row (this view's own)
        self._rules = rules
        self._history = history    # callable(row, seq) -> (history, drop_history)
        self.seq = seq

    def __len__(self) -> int:
        return len(self.keys)

    def _row(self, i: int) -> int:
        return i

    def _record(self, row: int) -> FlowRecord:
        return self.record(row)

    def __repr__(self) -> str:
        return f"FlowView({len(self)} flows)"

    def flow_id(self, i: int) -> FlowId:
        fid = self._ids[i]
        if fid is None:
            fid = self._ids[i] = decode_id(self.keys[i])
        return fid

    def record(self, i: int) -> FlowRecord:
        r = self._records[i]
        if r is None:
            r = self._records[i] = self._build(int(i))
        return r

    def _build(self, i: int) -> FlowRecord:
        c = self.cols
        hist, dhist = self._history(i, self.seq)
        return FlowRecord(self.flow_id(i), int(c["packets"][i]), int(c["bytes"][i]), int(c["drops"][i]),
                          int(c["tcp_flags"][i]), VERDICTS[c["verdict"][i]], self._rules[c["rule"][i]],
                          float(c["first_seen"][i]), float(c["last_seen"][i]), float(c["pps"][i]),
                          float(c["bps"][i]), float(c["drops_ps"][i]), hist, int(c["would_drops"][i]),
                          float(c["would_drops_ps"][i]), dhist)

    def index_of(self, flow: FlowId) -> int | None:
        """The row of a flow, or None."""
        hit = np.flatnonzero(raw_keys(self.keys) == raw_keys(encode_ids([flow]))[0])
        return int(hit[0]) if len(hit) else None

    def recent_rows(self, limit: int) -> np.ndarray:
        """The rows of every flow, or of the `limit` flows seen last when there are more."""
        n = len(self)
        if n <= limit:
            return np.arange(n)
        return np.sort(np.argpartition(self.cols["last_seen"], n - limit)[n - limit:])

    def rows(self, order: np.ndarray) -> "FlowRows":
        return FlowRows(self, order)


class FlowRows(_Records):
    """Some rows of a FlowView in a given order (a sorted, filtered selection); a
    record is built only when read.

    The order is given whole (`order`), or as its first rows (`top`) with a way to
    make the rest (`rest`, called once, the first time a row past `top` is read) and
    a way to place one row without it (`rank`: its position, or None when it is not
    in the selection): a screen at the top of 1,000,000 flows sorts no more than it shows."""

    def __init__(self, view: FlowView, order: np.ndarray | None = None, *, top: np.ndarray | None = None,
                 rest=None, rank=None, length: int | None = None):
        self.view = view
        self._order = order
        self._top = top if top is not None else order
        self._rest, self._rank = rest, rank
        self._len = length if length is not None else len(order if order is not None else ())
        self._pos: np.ndarray | None = None

    @property
    def order(self) -> np.ndarray:
        """The whole order (made now if it was not)."""
        if self._order is None:
            self._order = self._rest()[:self._len]
        return self._order

    def __len__(self) -> int:
        return self._len

    def _row(self, i: int) -> int:
        top = self._top
        if top is not None and i < len(top):
            return int(top[i])
        return int(self.order[i])

    def _record(self, row: int) -> FlowRecord:
        return self.view.record(row)

    def flow_id(self, i: int) -> FlowId:
        return self.view.flow_id(self._row(i))

    def index_of(self, flow: FlowId) -> int | None:
        """The position of a flow in this order, or None."""
        row = self.view.index_of(flow)
        if row is None:
            return None
        if self._order is None and self._rank is not None:
            p = self._rank(row)
            return p if p is not None and p < self._len else None
        if self._pos is None:
            self._pos = np.full(len(self.view), -1, dtype=np.int64)
            self._pos[self.order] = np.arange(len(self.order))
        q = int(self._pos[row])
        return q if q >= 0 else None


# -- the rule grammar's conditions over columns ------------------------------------

def _net_mask(addrs: np.ndarray, family: np.ndarray, net) -> np.ndarray:
    """Which 16-byte addresses lie in `net`, as compound.member() sees it (an IPv4 network
    also holds IPv4-mapped IPv6 addresses: the same 16 bytes)."""
    if net.version == 4:
        prefix, bits = np.frombuffer(addr_bytes(net.network_address), "u1"), 96 + net.prefixlen
        m = np.ones(len(addrs), dtype=bool)
    else:
        prefix, bits = np.frombuffer(net.network_address.packed, "u1"), net.prefixlen
        m = family == 6
    full, rest = divmod(bits, 8)
    if full:
        m &= (addrs[:, :full] == prefix[:full]).all(axis=1)
    if rest:
        top = (0xFF << (8 - rest)) & 0xFF
        m &= (addrs[:, full] & top) == (prefix[full] & top)
    return m


def _addr_eq(addrs: np.ndarray, family: np.ndarray, addr) -> np.ndarray:
    return (family == addr.version) & (addrs == np.frombuffer(addr_bytes(addr), "u1")).all(axis=1)


def _ports(keys: np.ndarray, proto) -> np.ndarray:
    """Flows whose ports the kernel reads (TCP, UDP; no later fragment), of `proto` if given."""
    m = (keys["fragment"] == 0) & np.isin(keys["proto"], PORT_PROTOS)
    return m & (keys["proto"] == proto) if proto is not None else m


def rule_mask(keys: np.ndarray, cond) -> np.ndarray:
    """cond.matches (a rule) or cond.holds (a Term) of every KEY_DTYPE row, vectorized."""
    if isinstance(cond, Term):
        return _term_mask(keys, cond) != cond.negate
    if isinstance(cond, HostRule):
        return (_net_mask(keys["src"], keys["family"], cond.network)
                | _net_mask(keys["dst"], keys["family"], cond.network))
    if isinstance(cond, PortRule):
        return _ports(keys, cond.proto) & ((keys["sport"] == cond.port) | (keys["dport"] == cond.port))
    if isinstance(cond, FlowRule):
        fam, same = keys["family"], (keys["proto"] == cond.proto) & (keys["family"] == cond.src.version)
        fwd = (_addr_eq(keys["src"], fam, cond.src) & _addr_eq(keys["dst"], fam, cond.dst)
               & (keys["sport"] == cond.sport) & (keys["dport"] == cond.dport))
        back = _addr_eq(keys["src"], fam, cond.dst) & _addr_eq(keys["dst"], fam, cond.src)
        if cond.proto in ICMP_PROTOS:          # the reply to the rule's query, same code
            back &= (keys["sport"] == icmp_pair(cond.proto, cond.sport)) & (keys["dport"] == cond.dport)
        else:
            back &= (keys["sport"] == cond.dport) & (keys["dport"] == cond.sport)
        return same & (fwd | back)
    if isinstance(cond, CompoundRule):
        m = np.zeros(len(keys), dtype=bool)
        for conj in cond.dnf:
            part = np.ones(len(keys), dtype=bool)
            for t in conj:
                part &= rule_mask(keys, t)
            m |= part
        return m
    raise TypeError(f"not a condition: {cond!r}")


def _term_mask(keys: np.ndarray, t: Term) -> np.ndarray:
    field, v = t.field, t.value
    if field == "proto":
        return keys["proto"] == v
    if not isinstance(v, int):
        m = np.zeros(len(keys), dtype=bool)
        if field != "dst host":
            m |= _net_mask(keys["src"], keys["family"], v)
        if field != "src host":
            m |= _net_mask(keys["dst"], keys["family"], v)
        return m
    hit = np.zeros(len(keys), dtype=bool)
    if field != "dst port":
        hit |= keys["sport"] == v
    if field != "src port":
        hit |= keys["dport"] == v
    return _ports(keys, t.proto) & hit
