"""The pure half of recovery from route dumps: lwtui's program names, what a leftover
route restores to, and telling lwtui's route from the kernel's twin (recorded messages)."""

from __future__ import annotations

import copy

from lwtui.net.attrs import kernel_twin, route_kwargs, route_to_dict, same_route
from lwtui.net.leftovers import Leftover, prog_id
from lwtui.net.policy import POLICY_TABLE_BASE
from tests.unit.test_routes_unit import V4_LOCAL


def _with_encap(msg: dict, hook: str, name: str, table: int | None = None) -> dict:
    m = copy.deepcopy(msg)
    m["attrs"] = m["attrs"] + [("RTA_ENCAP", {"attrs": [(f"LWT_BPF_{hook.upper()}",
                                                          {"attrs": [("LWT_BPF_PROG_NAME", name)]})]}),
                               ("RTA_ENCAP_TYPE", 6)]
    if table is not None:
        m["table"] = table if table < 256 else 252
        m["attrs"] = [("RTA_TABLE", table) if a[0] == "RTA_TABLE" else a for a in m["attrs"]]
    return m


def test_prog_id_reads_only_lwtuis_names():
    assert prog_id("lwtui_out_123") == 123 and prog_id("lwtui_xmit_7") == 7 and prog_id("lwtui_in_0") == 0
    for other in ("lwtui_out_", "lwtui_out_12x", "lwt_out_12", "lwtui_fwd_3", "lwtui_out_1\n", "?"):
        assert prog_id(other) is None


def test_a_leftover_local_route_restores_to_itself_without_the_encap():
    mine = route_to_dict(_with_encap(V4_LOCAL, "in", "lwtui_in_9"))
    att = Leftover("ns1", mine).attachment()
    assert (att.method, att.prog_name, att.target.hook, att.target.prefix, att.target.netns) == \
        ("replace", "lwtui_in_9", "in", "10.0.0.3/32", "ns1")
    assert route_kwargs(att.original) == route_kwargs(route_to_dict(V4_LOCAL))
    assert "encap_type" not in att.original and att.original["progs"] == {}


def test_an_ipv6_private_table_is_a_policy_leftover():
    v6 = {"family": 10, "dst_len": 128, "src_len": 0, "tos": 0, "table": 252, "proto": 2, "scope": 0,
          "type": 2, "flags": 0, "attrs": [("RTA_TABLE", POLICY_TABLE_BASE + 1), ("RTA_DST", "fd00::3"),
                                          ("RTA_PRIORITY", 1024), ("RTA_OIF", 2)]}
    lo = Leftover(None, route_to_dict(_with_encap(v6, "in", "lwtui_in_4")))
    assert lo.policy and lo.attachment().method == "policy"
    assert lo.attachment().extra["table"] == POLICY_TABLE_BASE + 1
    assert "table 27768" in lo.describe() and "the host namespace" in lo.describe()


def test_the_kernels_twin_is_told_from_lwtuis_route():
    plain, mine = route_to_dict(V4_LOCAL), route_to_dict(_with_encap(V4_LOCAL, "in", "lwtui_in_9"))
    for dump in ([plain, mine], [mine, plain]):
        assert same_route(dump, plain, "in", "lwtui_in_9") is mine
        assert kernel_twin(dump, mine) is plain
    assert kernel_twin([mine], mine) is None
    assert same_route([plain, mine], plain) is plain       # without a program: the first, as before
