"""Building the kernel side: compile bpf/lwtui.bpf.c with BCC (its cflags: include
path, map sizes, the event transport, the features lwtui.kernel.features chose) and
load one program per LWT hook; selftest() does both for `lwtui doctor`.

BCC is imported here, lazily (ProbeError naming the install when it is missing).
"""

from __future__ import annotations

import os
from pathlib import Path

from lwtui.core.names import HOOKS
from lwtui.kernel import headers

_FUNC = {h: f"lwtui_{h}" for h in HOOKS}
SOURCE_NAME = "lwtui.bpf.c"
EVENT_TRANSPORTS = ("perf", "ringbuf")
RINGBUF_PAGES = 64  # 256 KiB with 4 KiB pages, shared by all CPUs


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


def hook_cflags(hooks) -> list[str]:
    """The -D flags that compile only these hooks' entry points (see bpf/lwtui.bpf.c)."""
    return [f"-DLWTUI_WITH_{h.upper()}" for h in hooks]


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
