"""lwtui.kernel.bpfsys on real maps and programs, through libbpf: lookups,
updates, deletes, key walks, errors with errno, and BPF_PROG_TEST_RUN results."""

from __future__ import annotations

import ctypes as ct
import errno
import os

import pytest

import packets as P
from lwtui.kernel import bpfsys, kstructs

BPF_OK, BPF_DROP = 0, 2


def _port_key(port: int) -> kstructs.PortKey:
    return kstructs.PortKey(port=port, proto=6)


def test_update_lookup_walk_delete_on_a_real_map(probe):
    fd = probe.map_fd("port_rules")
    for port in (80, 443):
        bpfsys.map_update(fd, _port_key(port), kstructs.RuleVal(hits=port))
    got = kstructs.RuleVal()
    assert bpfsys.map_lookup(fd, _port_key(443), got) and got.hits == 443
    assert not bpfsys.map_lookup(fd, _port_key(22), kstructs.RuleVal())
    assert sorted(k.port for k in bpfsys.map_keys(fd, kstructs.PortKey)) == [80, 443]
    assert sorted(v.hits for _, v in bpfsys.map_items(fd, kstructs.PortKey, kstructs.RuleVal)) == [80, 443]
    assert bpfsys.map_delete(fd, _port_key(80)) and not bpfsys.map_delete(fd, _port_key(80))
    with pytest.raises(bpfsys.BpfError) as e:
        bpfsys.map_update(fd, _port_key(443), kstructs.RuleVal(), bpfsys.BPF_NOEXIST)
    assert e.value.errno == errno.EEXIST and "map update" in str(e.value)


def test_a_bad_fd_is_an_error_with_its_errno():
    with pytest.raises(bpfsys.BpfError) as e:
        bpfsys.map_lookup(10_000, ct.c_uint32(0), ct.c_uint32())
    assert e.value.errno == errno.EBADF


@pytest.mark.parametrize("retval", [BPF_OK, BPF_DROP])
def test_a_trivial_program_loads_with_its_name_and_runs(retval):
    fd = bpfsys.prog_load_trivial(bpfsys.PROG_TYPE_LWT_OUT, retval, "lwtui_t_bpfsys")
    try:
        info = bpfsys.prog_info(fd)
        assert (info["type"], info["name"]) == (bpfsys.PROG_TYPE_LWT_OUT, "lwtui_t_bpfsys")
        ret, ns = bpfsys.prog_test_run(fd, P.packet(4, P.TCP, "10.0.0.2", "10.0.0.3", 40000, 80), repeat=50)
        assert ret == retval and 0 < ns < 1_000_000
    finally:
        os.close(fd)
