"""The kernel side, loaded: one Probe holds a session's compiled programs (one per
LWT hook), their maps and event buffers, and frees them all at once.

Compiling and loading is lwtui.kernel.loader; reading and writing the maps,
lwtui.kernel.maps; the event and capture buffers, lwtui.kernel.events (Probe
mixes in both). bcc is imported by loader (the compiler) and maps (batch
lookups) alone. Everything read from the kernel leaves as lwtui.kernel.kstructs
types (copies, never views of BCC buffers), so the rest of lwtui does not depend
on BCC's generated ctypes classes.
"""

from __future__ import annotations

import ctypes as ct
import threading

from lwtui.core.names import HOOKS
from lwtui.kernel import bpfsys
from lwtui.kernel.events import EventBuffers
from lwtui.kernel.loader import (RINGBUF_PAGES, SOURCE_NAME, ProbeError, bpf_dir, build_cflags, compile_source,
                                 events_cflags, hook_cflags, load_hook)
from lwtui.kernel.maps import MAP_NAMES, MapAccess


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


def _release_compiler_code(names=("libLLVM", "libclang")) -> int:
    """Unmap the compiler's code pages from this process; the bytes released. A compile
    leaves ~70 MiB of LLVM's and clang's code and constants resident that a session never
    uses again. madvise(MADV_DONTNEED) on a read-only private file mapping drops its pages
    from the process only (they stay in the page cache): a later call into the compiler
    faults them back in, unchanged. A mapping holding any page of its own (Anonymous: a
    page written since it was mapped, as relocated data is) is left alone, as is all
    writable data."""
    try:
        libc = ct.CDLL(None, use_errno=True)
        with open("/proc/self/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    libc.madvise.argtypes = (ct.c_void_p, ct.c_size_t, ct.c_int)
    released, span, fields = 0, None, {}
    for line in lines + ["0-0 ---p 0 0 0"]:
        key, _, value = line.partition(":")
        if " " not in key:                      # "Rss:       1234 kB", "VmFlags: rd ex ..."
            fields[key] = value.split()[0] if value.split() else ""
            continue
        if span is not None and fields.get("Anonymous") == "0" and fields.get("Rss", "0") != "0":
            if libc.madvise(span[0], span[1] - span[0], _MADV_DONTNEED) == 0:
                released += int(fields["Rss"]) * 1024
        head = line.split()                     # "lo-hi perms offset dev inode [path]"
        lib = head[5].rsplit("/", 1)[-1] if len(head) > 5 else ""
        span = (tuple(int(x, 16) for x in head[0].split("-")) if head[1] in ("r-xp", "r--p") and lib.startswith(names)
                else None)
        fields = {}
    return released


_MADV_DONTNEED = 4
_M_MMAP_THRESHOLD = -3      # glibc's mallopt parameter
_FIXED_MMAP_MAX_FLOWS = 1 << 18     # flow maps up to this size get the fixed threshold


class Probe(MapAccess, EventBuffers):
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
        self.cflags = build_cflags(max_flows, max_rules, [*extra_cflags, *events_cflags(events, ringbuf_pages),
                                                          *hook_cflags(self.hooks)])
        self._bpf = None
        self._funcs = {}
        self._prog_ids = {}
        self._tables = {}
        self._events_open = False
        self._captures_open = False
        self._callback_error = None
        self._batch = None  # reused key/value arrays for read_flows
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
        _release_compiler_code()

    # -- programs ---------------------------------------------------------
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
