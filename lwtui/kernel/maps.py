"""The probe's maps, read and written: the flow map in batches (straight into numpy
arrays, or one key at a time on kernels without batch lookups), the stats and
capture counters, the config slots and the capture switch, and emptying them all.

A mixin for lwtui.kernel.probe.Probe, which compiles the programs, opens the maps
and sets what the mixin uses. Everything read leaves as lwtui.kernel.kstructs types
or numpy arrays (copies, never views of BCC buffers).
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
import threading
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from lwtui.kernel import bpfsys, kstructs
from lwtui.kernel.loader import ProbeError
from lwtui.kernel.verdicts import read_config, write_config_slot

MAP_NAMES = ("flows", "verdicts", "host_rules", "port_rules", "compound", "config", "stats", "frags",
             "capture_stats", "capture_flow")


class MapAccess:
    """Reads and writes of the maps of a loaded probe."""

    # What the reads use of Probe (it sets them when it loads the programs):
    _tables: dict[str, Any]                 # map name -> BCC table
    _batch: tuple[ct.Array[kstructs.FlowKey], ct.Array[ct.c_uint8]] | None     # reused by read_flows
    _ncpus: int                             # per-CPU values of `flows`
    _batch_ok: bool                         # the kernel has batch lookups
    _read_lock: threading.Lock              # guards the reused batch arrays

    if TYPE_CHECKING:
        @abstractmethod
        def _live(self) -> Any: ...

    def _table(self, name: str):
        self._live()
        if name not in self._tables:
            raise ProbeError(f"no map {name!r}: maps are {', '.join(MAP_NAMES)}")
        return self._tables[name]

    def map_fd(self, name: str) -> int:
        return self._table(name).map_fd

    def map_max_entries(self, name: str) -> int:
        return int(self._table(name).max_entries)

    def read_flows(self) -> list[tuple[kstructs.FlowKey, kstructs.FlowStats]]:
        """Every entry of `flows`, copied, its per-CPU values summed
        (kstructs.sum_percpu); one batch syscall where the kernel has it."""
        with self._read_lock:
            fd = self.map_fd("flows")
            if self._batch_ok:
                try:
                    return self._read_flows_batch(fd)
                except OSError as e:
                    if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, 524):  # 524: ENOTSUPP
                        raise
                    self._batch_ok = False  # an old kernel: iterate from now on
            return self.read_flows_by_iteration()

    def read_flows_by_iteration(self) -> list[tuple[kstructs.FlowKey, kstructs.FlowStats]]:
        """read_flows() one key at a time (kernels without batch lookups)."""
        value = ct.c_uint8 * kstructs.percpu_size(self._ncpus)
        return [(k, kstructs.sum_percpu(bytes(v), self._ncpus))
                for k, v in bpfsys.map_items(self.map_fd("flows"), kstructs.FlowKey, value)]

    def _read_flows_batch(self, fd: int) -> list:
        """BPF_MAP_LOOKUP_BATCH into arrays kept between calls. (BCC's own
        items_lookup_batch allocates max_entries-sized arrays per call and
        passes one variable as both out_batch and count.) Each value is one
        struct flow_stats per possible CPU, summed over CPUs with numpy (sum_percpu_many)."""
        total = self._lookup_batch(fd)
        assert self._batch is not None      # _lookup_batch made it
        keys, vals = self._batch
        ks = ct.sizeof(kstructs.FlowKey)
        stats = kstructs.sum_percpu_many(vals, total, self._ncpus)     # one vectorized step for the batch
        return [(kstructs.FlowKey.from_buffer_copy(keys, i * ks), st) for i, st in enumerate(stats)]

    def _lookup_batch(self, fd: int) -> int:
        """BPF_MAP_LOOKUP_BATCH of the whole map into self._batch; the number of entries."""
        from bcc.libbcc import lib
        cap = self.map_max_entries("flows")
        ks, vs = ct.sizeof(kstructs.FlowKey), kstructs.percpu_size(self._ncpus)
        if self._batch is None:
            self._batch = ((kstructs.FlowKey * cap)(), (ct.c_uint8 * (vs * cap))())
        keys, vals = self._batch
        in_batch, out_batch, count = ct.c_uint32(0), ct.c_uint32(0), ct.c_uint32(0)
        total, first = 0, True
        while total < cap:
            count.value = cap - total
            res = lib.bpf_lookup_batch(fd, None if first else ct.byref(in_batch), ct.byref(out_batch),
                                       ct.addressof(keys) + ks * total, ct.addressof(vals) + vs * total,
                                       ct.byref(count))
            err = ct.get_errno()
            total += count.value
            if res != 0:
                if err == errno.ENOENT:
                    break  # reached the end
                if err == errno.ENOSPC and total:
                    # The buffer (max_entries) is full before the end: entries the LRU made
                    # while this read went on, in buckets it had not reached, after it read
                    # entries evicted since. The next read takes them.
                    break
                raise OSError(err, f"flows batch lookup: {os.strerror(err)}")
            first = False
            in_batch.value = out_batch.value
        return total

    def read_flow_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """read_flows() as two arrays, no object per flow: keys (kstructs.FLOW_KEY_DTYPE)
        and values summed over CPUs (kstructs.FLOW_STATS_DTYPE)."""
        with self._read_lock:
            fd = self.map_fd("flows")
            if self._batch_ok:
                try:
                    total = self._lookup_batch(fd)
                    assert self._batch is not None      # _lookup_batch made it
                    keys, vals = self._batch
                    k = np.frombuffer(memoryview(keys).cast("B"), dtype=kstructs.FLOW_KEY_DTYPE, count=total).copy()
                    return k, kstructs.sum_percpu_array(vals, total, self._ncpus)
                except OSError as e:
                    if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, 524):  # 524: ENOTSUPP
                        raise
                    self._batch_ok = False  # an old kernel: iterate from now on
            rows = self.read_flows_by_iteration()
            k = np.frombuffer(b"".join(bytes(key) for key, _ in rows), dtype=kstructs.FLOW_KEY_DTYPE).copy()
            v = np.frombuffer(b"".join(bytes(st) for _, st in rows), dtype=kstructs.FLOW_STATS_DTYPE).copy()
            return k, v

    def read_stats(self) -> dict[str, int]:
        """The per-CPU `stats` counters summed over CPUs and hooks, keyed by
        kstructs.STAT_NAMES (a packet crossing two hooks counts twice here:
        see read_stats_by_hook)."""
        by_hook = self.read_stats_by_hook()
        return {name: sum(row[name] for row in by_hook.values()) for name in kstructs.STAT_NAMES}

    def read_stats_by_hook(self) -> dict[str, dict[str, int]]:
        """hook name -> that hook's row of `stats`, summed over CPUs."""
        table = self._table("stats")
        out = {}
        for h, hook in kstructs.HOOK_NAMES.items():
            rows = table[ct.c_int(h)]  # one struct hook_stats per possible CPU
            out[hook] = {name: int(sum(r.v[i] for r in rows)) for i, name in enumerate(kstructs.STAT_NAMES)}
        return out

    def get_config(self) -> kstructs.LwtuiConfig:
        return read_config(self.map_fd("config"))

    def set_config(self, dry_run: bool | None = None, rules_gen: int | None = None,
                   drop_event_interval_ns: int | None = None) -> kstructs.LwtuiConfig:
        """Write the given config slots, one whole slot each; None leaves a slot alone."""
        fd = self.map_fd("config")
        for slot, value in ((kstructs.CFG_DRY_RUN, None if dry_run is None else int(bool(dry_run))),
                            (kstructs.CFG_RULES_GEN, None if rules_gen is None else rules_gen & 0xFFFFFFFF),
                            (kstructs.CFG_DROP_EVENT_INTERVAL_NS, drop_event_interval_ns)):
            if value is not None:
                write_config_slot(fd, slot, int(value))
        return self.get_config()

    def set_capture(self, snaplen: int, rate: int = 0, flow: kstructs.FlowKey | None = None) -> None:
        """Capture dropped and would-drop packets (their first `snaplen` bytes, at most
        `rate` a second per CPU, 0: the programs' default; only `flow`'s, an exact key,
        if given) into `captures`; snaplen 0: off. Rate and flow are written first, so
        the programs never capture under old ones."""
        fd = self.map_fd("config")
        write_config_slot(fd, kstructs.CFG_CAPTURE_RATE, int(rate))
        if flow is not None:
            write_config_slot(fd, kstructs.CFG_CAPTURE_FLOW, 0)    # never the old flow with the new switch
            bpfsys.map_update(self.map_fd("capture_flow"), ct.c_uint32(0), flow)
        write_config_slot(fd, kstructs.CFG_CAPTURE_FLOW, int(flow is not None))
        write_config_slot(fd, kstructs.CFG_CAPTURE, int(snaplen))

    def read_capture_stats(self) -> dict[str, int]:
        """`capture_stats` summed over CPUs: sent, limited (over the rate), failed (buffer full)."""
        table = self._table("capture_stats")
        return {name: int(sum(table[ct.c_int(i)]))
                for i, name in ((kstructs.CAP_SENT, "sent"), (kstructs.CAP_LIMITED, "limited"),
                                (kstructs.CAP_FAILED, "failed"))}

    def reset_maps(self) -> None:
        """Empty flows, fragments and rule maps and zero the stats (config is kept)."""
        for name in ("flows", "verdicts", "host_rules", "port_rules", "frags"):
            fd = self.map_fd(name)
            ktype = {"flows": kstructs.FlowKey, "verdicts": kstructs.FlowKey, "frags": kstructs.FragKey,
                     "host_rules": kstructs.HostKey, "port_rules": kstructs.PortKey}[name]
            for k in bpfsys.map_keys(fd, ktype):
                bpfsys.map_delete(fd, k)
        fd = self.map_fd("compound")
        for i in range(bpfsys.map_info(fd)["max_entries"]):
            bpfsys.map_update(fd, ct.c_uint32(i), kstructs.CompoundEntry())
        stats = self._tables["stats"]
        for h in range(kstructs.HOOKS_N):
            stats.clearitem(ct.c_int(h))
