"""lwtui.kernel.bpfsys goes through libbpf.so.1, never a guessed syscall number:
the library is found here, and where it is not, the error is one line with the fix."""

from __future__ import annotations

import ctypes as ct

import pytest

from lwtui.kernel import bpfsys


def test_libbpf_loads_with_every_function_lwtui_calls():
    lib = bpfsys.load()
    for fn, argtypes in bpfsys._SIGNATURES.items():
        assert tuple(getattr(lib, fn).argtypes) == argtypes, fn


@pytest.mark.parametrize("name", ["libbpf-not-installed.so.1", "libc.so.6"])
def test_a_missing_or_foreign_library_is_one_line_naming_the_fix(name):
    """Absent, or present without libbpf's functions (libc.so.6 has none of them)."""
    with pytest.raises(bpfsys.LibbpfMissing) as e:
        bpfsys.load(name)
    msg = str(e.value)
    assert "\n" not in msg and name in msg and "apt-get install -y libbpf1" in msg


def test_no_fallback_when_libbpf_is_missing(monkeypatch):
    """Every command fails with LibbpfMissing; none reaches the kernel another way."""
    monkeypatch.setattr(bpfsys, "_lib", None)
    monkeypatch.setattr(bpfsys, "LIBBPF", "libbpf-not-installed.so.1")
    with pytest.raises(bpfsys.LibbpfMissing):
        bpfsys.map_lookup(-1, ct.c_uint32(0), ct.c_uint32())
    with pytest.raises(bpfsys.LibbpfMissing):
        bpfsys.obj_get("/sys/fs/bpf/nothing")
    assert bpfsys._lib is None


def test_the_cli_reports_a_missing_libbpf_as_an_environment_error():
    from lwtui.cli.commands import error_code
    assert error_code(bpfsys.LibbpfMissing("cannot use libbpf.so.1")) == 2


def test_test_run_opts_ends_where_libbpf_1_1_expects():
    """struct bpf_test_run_opts up to `cpu` (libbpf checks `sz` against what it knows)."""
    assert bpfsys.TestRunOpts.cpu.offset + 4 <= ct.sizeof(bpfsys.TestRunOpts)
    assert bpfsys.TestRunOpts.retval.offset == bpfsys.TestRunOpts.ctx_size_out.offset + 4
    assert bpfsys.TestRunOpts.data_in.offset == ct.sizeof(ct.c_size_t)
