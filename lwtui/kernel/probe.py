"""The kernel side, loaded: compile bpf/lwtui.bpf.c with BCC, load one program
per LWT hook, and give typed access to its maps and events.

Events travel through a perf buffer (the default, any kernel lwtui runs on)
or, with events="ringbuf", a BPF ring buffer (kernel 5.8+), which costs about
half as much per event in the program (BENCHMARKS.md, new-flow storm).

The only module that imports bcc. Everything read from the kernel leaves here
as lwtui.kernel.kstructs types (copies, never views of BCC buffers), so the rest of
lwtui does not depend on BCC's generated ctypes classes.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from lwtui.core.names import HOOKS
from lwtui.kernel import bpfsys, headers, kstructs
from lwtui.kernel.verdicts import read_config, write_config_slot

MAP_NAMES = ("flows", "verdicts", "host_rules", "port_rules", "compound", "config", "stats", "frags",
             "capture_stats", "capture_flow")
_FUNC = {h: f"lwtui_{h}" for h in HOOKS}
SOURCE_NAME = "lwtui.bpf.c"
EVENT_TRANSPORTS = ("perf", "ringbuf")
RINGBUF_PAGES = 64  # 256 KiB with 4 KiB pages, shared by all CPUs


def _release_compiler_heap(fixed_mmap: bool) -> None:
    """Hand the heap the compiler freed back to the system (glibc's malloc_trim: LLVM leaves
    ~30 MiB free but resident after a compile). With `fixed_mmap`, keep large blocks out of
    the heap from now on (a fixed M_MMAP_THRESHOLD): a tick's column arrays, hundreds of KiB
    each at 100,000 flows, then come from and go back to the system instead of fragmenting
    the heap, which glibc's sliding threshold lets grow tick after tick (~10% less resident
    memory there). Past a few hundred thousand flows the page faults of those fresh
    mappings cost more time than the memory is worth (a tick at 1,000,000 flows twice as
    long), so a larger map keeps glibc's default. Elsewhere than glibc, nothing."""
    try:
        libc = ct.CDLL(None)
        if fixed_mmap:
            libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
        libc.malloc_trim(0)
    except (AttributeError, OSError):
        pass


_M_MMAP_THRESHOLD = -3      # glibc's mallopt parameter
_FIXED_MMAP_MAX_FLOWS = 1 << 18     # flow maps up to this size get the fixed threshold


class ProbeError(RuntimeError):
    """The BPF programs could not be built or loaded; the message names the fix."""


def bpf_dir() -> Path:
    """Directory holding lwtui.bpf.c and lwtui.h: the source tree's top-level
    bpf/, else the copy inside an installed package."""
    pkg = Path(__file__).resolve().parent.parent      # lwtui/
    for d in (pkg.parent / "bpf", pkg / "bpf"):
        if (d / SOURCE_NAME).is_file():
            return d
    raise ProbeError(f"{SOURCE_NAME} not found next to {pkg}: reinstall lwtui")


def bcc_location() -> str:
    """Where BCC's Python bindings are; ProbeError naming the install when they are not."""
    return os.path.dirname(_import_bcc().__file__)


def _import_bcc():
    try:
        import bcc
    except ImportError as e:
        raise ProbeError(f"BCC's Python bindings are missing ({e}): apt-get install -y python3-bpfcc "
                         "and use a Python that sees them (python3 -m venv --system-site-packages)") from e
    return bcc


def _prog_type(bcc, hook: str) -> int:
    return {"in": bcc.BPF.LWT_IN, "out": bcc.BPF.LWT_OUT, "xmit": bcc.BPF.LWT_XMIT}[hook]


def build_cflags(max_flows: int, max_rules: int, extra=()) -> list[str]:
    """Compiler flags: include path for lwtui.h, map sizes, anything extra."""
    return [f"-I{bpf_dir()}", f"-DMAX_FLOWS={int(max_flows)}", f"-DMAX_RULES={int(max_rules)}", *extra]


def events_cflags(events: str = "perf", ringbuf_pages: int = RINGBUF_PAGES) -> list[str]:
    """The -D flags that select the event transport (see bpf/lwtui.bpf.c)."""
    if events not in EVENT_TRANSPORTS:
        raise ProbeError(f"unknown event transport {events!r}: use perf or ringbuf")
    if events == "perf":
        return []
    pages = int(ringbuf_pages)
    if pages < 1 or pages & (pages - 1):
        raise ProbeError(f"the ring buffer needs a power-of-two page count, got {ringbuf_pages}")
    return ["-DLWTUI_RINGBUF", f"-DLWTUI_RINGBUF_PAGES={pages}"]


def compile_source(cflags: list[str]):
    """BCC BPF object for bpf/lwtui.bpf.c; ProbeError names the fix on failure."""
    if os.geteuid() != 0:
        raise ProbeError("loading BPF programs needs root: run lwtui as root")
    bcc = _import_bcc()
    try:
        headers.use_headers()
    except headers.HeadersMissing as e:
        raise ProbeError(str(e)) from e
    try:
        return bcc.BPF(src_file=str(bpf_dir() / SOURCE_NAME).encode(), cflags=list(cflags))
    except Exception as e:  # BCC raises bare Exception; clang's messages went to stderr
        raise ProbeError(f"compiling {SOURCE_NAME} failed ({e}): run `lwtui doctor`") from e


def load_hook(bpf, hook: str):
    """Load the entry function of `hook` as its LWT program type."""
    bcc = _import_bcc()
    try:
        return bpf.load_func(_FUNC[hook].encode(), _prog_type(bcc, hook))
    except Exception as e:  # the verifier log went to stderr
        raise ProbeError(f"loading the {hook} program failed ({e}): "
                         "run `lwtui doctor` (needs a kernel with CONFIG_LWTUNNEL_BPF)") from e


class Probe:
    """Compiled programs, their maps and the event buffer of one lwtui session.

    events: "perf" (a perf buffer, sized and batched in open_events) or
    "ringbuf" (a BPF ring buffer of ringbuf_pages pages, fixed at compile time).
    batch: read the flow map with batch lookups (False: one key at a time, the
    path of kernels before 5.6; lwtui.kernel.features decides).
    """

    def __init__(self, hooks=HOOKS, max_flows: int = 65536, max_rules: int = 4096, extra_cflags=(),
                 events: str = "perf", ringbuf_pages: int = RINGBUF_PAGES, batch: bool = True):
        unknown = [h for h in hooks if h not in HOOKS]
        if unknown or not hooks:
            raise ProbeError(f"unknown hook(s) {unknown or hooks}: use in, out, xmit")
        self.hooks = tuple(hooks)
        self.transport = events  # "perf" or "ringbuf"
        self.source_path = bpf_dir() / SOURCE_NAME
        self.cflags = build_cflags(max_flows, max_rules, [*extra_cflags, *events_cflags(events, ringbuf_pages)])
        self._bpf = None
        self._funcs = {}
        self._prog_ids = {}
        self._tables = {}
        self._events_open = False
        self._captures_open = False
        self._callback_error: BaseException | None = None
        # Reused key/value arrays for read_flows.
        self._batch: tuple[ct.Array[kstructs.FlowKey], ct.Array[ct.c_uint8]] | None = None
        self._ncpus = bpfsys.possible_cpus()  # per-CPU values of `flows`
        self._batch_ok = batch
        self._poll_lock = threading.Lock()  # close() waits for a poll in progress
        self._read_lock = threading.Lock()  # guards the reused batch arrays
        self._bpf = compile_source(self.cflags)
        try:
            for h in self.hooks:
                fn = load_hook(self._bpf, h)
                self._funcs[h] = fn
                self._prog_ids[h] = bpfsys.prog_info(fn.fd)["id"]
            for name in MAP_NAMES:
                self._tables[name] = self._bpf.get_table(name.encode())
        except BaseException:
            self.close()
            raise
        _release_compiler_heap(fixed_mmap=max_flows <= _FIXED_MMAP_MAX_FLOWS)

    # -- programs and maps -------------------------------------------------
    def _live(self):
        if self._bpf is None:
            raise ProbeError("probe is closed")
        return self._bpf

    def _func(self, hook: str):
        self._live()
        if hook not in self._funcs:
            raise ProbeError(f"no {hook} program in this probe (loaded: {', '.join(self._funcs)})")
        return self._funcs[hook]

    def prog_fd(self, hook: str) -> int:
        return self._func(hook).fd

    def prog_name(self, hook: str) -> str:
        """Unique per load (the kernel compares IPv4 route encaps by program name)."""
        self._func(hook)
        return f"lwtui_{hook}_{self._prog_ids[hook]}"

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

    def open_captures(self, on_capture: Callable[[kstructs.LwtuiCapture, bytes], None],
                      on_lost: Callable[[int], None], page_cnt: int = 64, wakeup_events: int = 16) -> None:
        """Open the `captures` perf buffer; callbacks run inside poll_events(), beside the
        events'. A record is 64 bytes plus the packet's snaplen, so 64 pages per CPU hold
        over a thousand of them at the default snaplen."""
        if self._captures_open:
            raise ProbeError("captures are already open")

        def raw(cpu, data, size):
            try:
                on_capture(*kstructs.decode_capture(ct.string_at(data, size)))
            except BaseException as e:  # raised again from poll_events, not lost in ctypes
                self._callback_error = self._callback_error or e

        def lost(count):
            try:
                on_lost(int(count))
            except BaseException as e:
                self._callback_error = self._callback_error or e

        # Under the poll lock: BCC's poll walks the dict of open perf buffers this adds to,
        # and the reader thread may be polling (a poll waits at most its timeout).
        with self._poll_lock:
            try:
                self._live()[b"captures"].open_perf_buffer(raw, page_cnt=page_cnt, lost_cb=lost,
                                                           wakeup_events=wakeup_events)
            except Exception as e:  # BCC raises bare Exception
                raise ProbeError(f"cannot open the capture buffer ({e}): raise `ulimit -l`") from e
            self._captures_open = True

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

    # -- events -------------------------------------------------------------
    def open_events(self, on_event: Callable[[kstructs.LwtuiEvent], None], on_lost: Callable[[int], None],
                    page_cnt: int = 64, wakeup_events: int = 128) -> None:
        """Open the event buffer; callbacks run inside poll_events().

        Perf buffer: page_cnt pages per CPU, the reader woken every
        wakeup_events events (a wakeup costs the program ~8 us; at 128 an event
        costs ~170 ns, at 16 ~600 ns); poll_events() drains the rest, so
        nothing waits longer than one poll. Ring buffer: page_cnt and
        wakeup_events do not apply and on_lost is never called; failed outputs
        are counted in stats["events_failed"].
        """
        if self._events_open:
            raise ProbeError("events are already open")

        def raw(data, size):
            try:
                on_event(kstructs.decode_event(ct.string_at(data, size)))
            except BaseException as e:  # raised again from poll_events, not lost in ctypes
                self._callback_error = self._callback_error or e
            return 0  # a ring buffer stops consuming on non-zero

        def lost(count):
            try:
                on_lost(int(count))
            except BaseException as e:
                self._callback_error = self._callback_error or e

        table = self._live()[b"events"]
        try:
            if self.transport == "ringbuf":
                table.open_ring_buffer(lambda ctx, data, size: raw(data, size))
            else:
                table.open_perf_buffer(lambda cpu, data, size: raw(data, size), page_cnt=page_cnt,
                                       lost_cb=lost, wakeup_events=wakeup_events)
        except Exception as e:  # BCC raises bare Exception (page_cnt not a power of two, no memory)
            raise ProbeError(f"cannot open the {self.transport} event buffer ({e}): use a power-of-two "
                             "page_cnt, or raise `ulimit -l`") from e
        self._events_open = True

    def poll_events(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms for events, then drain what batched wakeups left.

        Returns at once on a closed probe, so a reader thread may race close().
        An exception raised by a callback is raised here.
        """
        with self._poll_lock:
            bpf = self._bpf
            if bpf is None:
                return
            if not self._events_open:
                raise ProbeError("open_events() first")
            if self.transport == "ringbuf":
                bpf.ring_buffer_poll(timeout_ms)
                bpf.ring_buffer_consume()
                if self._captures_open:     # the captures' perf buffer, beside the ring buffer
                    bpf.perf_buffer_poll(0)
                    bpf.perf_buffer_consume()
            else:
                bpf.perf_buffer_poll(timeout_ms)
                bpf.perf_buffer_consume()
        if self._callback_error is not None:
            err, self._callback_error = self._callback_error, None
            raise err

    # -- lifecycle ----------------------------------------------------------
    def close(self) -> None:
        """Free programs, maps and event buffers; safe to call twice. Programs
        attached to routes stay alive until the routes drop them."""
        with self._poll_lock, self._read_lock:
            bpf, self._bpf = self._bpf, None
            self._tables, self._funcs, self._batch = {}, {}, None
            self._events_open = self._captures_open = False
        if bpf is not None:
            # Close the perf readers while the maps are still open: BCC's
            # PerfEventArray.__del__ would otherwise try it after cleanup()
            # and print a KeyError traceback at exit.
            for name in (b"events", b"captures"):
                table = bpf.tables.get(name)
                for cpu in list(getattr(table, "_open_key_fds", {})):
                    try:
                        del table[cpu]
                    except KeyError:    # that CPU's buffer is closed already
                        pass
            bpf.cleanup()  # also frees the ring buffer's reader

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def selftest(extra_cflags=()) -> list[tuple[str, bool, str]]:
    """Compile the real source (with the flags lwtui.kernel.features chose for this
    kernel) and load it at every hook: (hook, ok, error)."""
    try:
        bpf = compile_source(build_cflags(1024, 64, extra_cflags))
    except ProbeError as e:
        return [(h, False, str(e)) for h in HOOKS]
    out = []
    try:
        for h in HOOKS:
            try:
                load_hook(bpf, h)
                out.append((h, True, ""))
            except ProbeError as e:
                out.append((h, False, str(e)))
    finally:
        bpf.cleanup()
    return out
