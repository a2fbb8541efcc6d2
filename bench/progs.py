"""The baseline programs the benchmarks compare lwtui against.

- noop: `r0 = BPF_OK; exit`, loaded straight through bpf(2) (bpfsys): the
  floor of the harness and of the hook itself.
- minimal: bench/baselines/minimal.c, the seed article's parse-and-compare
  program, compiled with BCC in the same run as everything else.
- naive: bench/baselines/naive.c, one perf event per packet.
- events: bench/baselines/events.c, perf buffer or (-DUSE_RINGBUF) ring buffer.
"""

from __future__ import annotations

import os

from lwtui.core.names import HOOKS
from lwtui.kernel import bpfsys, headers

from .common import BASELINES, BenchError

HOOK_TYPES = {"in": bpfsys.PROG_TYPE_LWT_IN, "out": bpfsys.PROG_TYPE_LWT_OUT,
              "xmit": bpfsys.PROG_TYPE_LWT_XMIT}


def compile_c(name: str, cflags: list[str] | None = None):
    """BCC-compile bench/baselines/NAME.c; returns the bcc.BPF object."""
    return compile_file(BASELINES / f"{name}.c", cflags)


def compile_file(path, cflags: list[str] | None = None):
    """BCC-compile a C file (its directory is on the include path)."""
    try:
        headers.use_headers()
        from bcc import BPF
    except headers.HeadersMissing as e:
        raise BenchError(str(e)) from None
    except ImportError:
        raise BenchError("BCC's Python bindings are missing: apt-get install -y python3-bpfcc, "
                         "and run the benchmarks with the project's .venv") from None
    return BPF(src_file=str(path), cflags=list(cflags or []))


def load_type(bpf, func: str, hook: str) -> int:
    """Load one function of a compiled object as the LWT type of `hook`; returns its fd."""
    from bcc import BPF
    prog_type = {"in": BPF.LWT_IN, "out": BPF.LWT_OUT, "xmit": BPF.LWT_XMIT}[hook]
    return bpf.load_func(func, prog_type).fd


def lwtui_cflags() -> tuple[str, ...]:
    """The extra -D flags a Session compiles lwtui's program with: the benchmarks
    measure what users run."""
    from lwtui.session import live as session
    return tuple(getattr(session, "EXTRA_CFLAGS", ()))


class Noop:
    """One no-op program per hook type, closed with close()."""

    def __init__(self, hooks=HOOKS):
        self.fds = {h: bpfsys.prog_load_trivial(HOOK_TYPES[h], 0, f"bench_noop_{h}") for h in hooks}

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}


class Minimal:
    """The seed-like program, one fd per hook."""

    def __init__(self, hooks=HOOKS):
        self.bpf = compile_c("minimal")
        self.fds = {h: load_type(self.bpf, f"minimal_{h}", h) for h in hooks}

    def name(self, hook: str) -> str:
        return f"minimal_{hook}"

    def close(self) -> None:
        self.bpf.cleanup()
