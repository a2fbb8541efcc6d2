"""The pure parts of lwtui.net.routes: prefix parsing and route attribute round trips.

The route messages below were recorded from pyroute2 0.9.7 dumps on the
target kernel (as dicts of the same shape: header fields plus an `attrs` list
of (name, value) pairs), so no namespace or root is needed.
"""

from __future__ import annotations

import ipaddress
import json
import struct

import pytest

from lwtui.net import attrs, routes
from lwtui.net.routes import Attachment, RouteError, Target

CACHE0 = {"rta_clntref": 0, "rta_lastuse": 0, "rta_expires": 0, "rta_error": 0, "rta_used": 0, "rta_id": 0,
          "rta_ts": 0, "rta_tsage": 0}

# ip route add 10.0.0.9/32 via 10.0.0.3 dev lwtui0 mtu 1400 advmss 1300 src 10.0.0.2 metric 7 realm 5
V4_GATEWAY = {"family": 2, "dst_len": 32, "src_len": 0, "tos": 0, "table": 254, "proto": 3, "scope": 0,
              "type": 1, "flags": 0, "event": "RTM_NEWROUTE", "header": {"length": 92, "type": 24},
              "attrs": [("RTA_TABLE", 254), ("RTA_DST", "10.0.0.9"), ("RTA_PRIORITY", 7),
                        ("RTA_METRICS", {"attrs": [("RTAX_MTU", 1400), ("RTAX_ADVMSS", 1300)]}),
                        ("RTA_PREFSRC", "10.0.0.2"), ("RTA_GATEWAY", "10.0.0.3"), ("RTA_OIF", 2),
                        ("RTA_FLOW", 5)]}

# the kernel's local route of 10.0.0.3 (table local)
V4_LOCAL = {"family": 2, "dst_len": 32, "src_len": 0, "tos": 0, "table": 255, "proto": 2, "scope": 254,
            "type": 2, "flags": 0,
            "attrs": [("RTA_TABLE", 255), ("RTA_DST", "10.0.0.3"), ("RTA_PREFSRC", "10.0.0.3"), ("RTA_OIF", 2)]}

# ip -6 route add fd00:6c77::9/128 via fd00:6c77::3 dev lwtui0 mtu 1380 pref high metric 77 expires 300
V6_EXPIRING = {"family": 10, "dst_len": 128, "src_len": 0, "tos": 0, "table": 254, "proto": 3, "scope": 0,
               "type": 1, "flags": 0,
               "attrs": [("RTA_TABLE", 254), ("RTA_DST", "fd00:6c77::9"),
                         ("RTA_METRICS", {"attrs": [("RTAX_MTU", 1380)]}), ("RTA_PRIORITY", 77),
                         ("RTA_GATEWAY", "fd00:6c77::3"), ("RTA_OIF", 2),
                         ("RTA_CACHEINFO", dict(CACHE0, rta_expires=29982)), ("RTA_PREF", 1)]}

# 10.0.0.3 with `encap bpf out lwt_out_x xmit lwt_x` (xmit listed first, as the kernel may)
V4_BPF = {"family": 2, "dst_len": 32, "src_len": 0, "tos": 0, "table": 254, "proto": 3, "scope": 253,
          "type": 1, "flags": 0,
          "attrs": [("RTA_TABLE", 254), ("RTA_DST", "10.0.0.3"), ("RTA_OIF", 2),
                    ("RTA_ENCAP", {"attrs": [("LWT_BPF_XMIT", {"attrs": [("LWT_BPF_PROG_NAME", "lwt_x")]}),
                                             ("LWT_BPF_OUT", {"attrs": [("LWT_BPF_PROG_NAME", "lwt_out_x")]})]}),
                    ("RTA_ENCAP_TYPE", 6)]}

# a default route through a nexthop object (pyroute2 0.9.7 does not know RTA_NH_ID = 30)
V4_NHID = {"family": 2, "dst_len": 0, "src_len": 0, "tos": 0, "table": 254, "proto": 3, "scope": 0,
           "type": 1, "flags": 0,
           "attrs": [("RTA_TABLE", 254), ("UNKNOWN", {"header": {"length": 8, "type": 30}})]}

V6_MULTIPATH = {"family": 10, "dst_len": 64, "src_len": 0, "tos": 0, "table": 254, "proto": 3, "scope": 0,
                "type": 1, "flags": 0,
                "attrs": [("RTA_TABLE", 254), ("RTA_DST", "fd00:1::"), ("RTA_PRIORITY", 1024),
                          ("RTA_MULTIPATH", [{"attrs": [("RTA_GATEWAY", "fd00:6c77::3")]},
                                             {"attrs": [("RTA_GATEWAY", "fd00:6c77::4")]}])]}


# -- prefixes ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("10.0.0.3/32", "10.0.0.3/32"), ("10.0.0.3", "10.0.0.3/32"), (" 10.0.0.0/24 ", "10.0.0.0/24"),
    ("0.0.0.0/0", "0.0.0.0/0"), ("fd00:6c77::3/128", "fd00:6c77::3/128"), ("FD00:6C77::3", "fd00:6c77::3/128"),
    ("::/0", "::/0"), ("fd00:6c77:0::/64", "fd00:6c77::/64"),
])
def test_parse_prefix_accepts(text, expected):
    assert routes.parse_prefix(text) == ipaddress.ip_network(expected)


@pytest.mark.parametrize("text,fix", [("10.0.0.3/24", "use 10.0.0.0/24"), ("fd00:6c77::3/64", "use fd00:6c77::/64"),
                                      ("10.0.0.1/0", "use 0.0.0.0/0")])
def test_parse_prefix_names_the_fix_for_host_bits(text, fix):
    with pytest.raises(RouteError, match=f"host bits set: {fix}"):
        routes.parse_prefix(text)


@pytest.mark.parametrize("text", ["", "10.0.0.3/33", "10.0.0.256/32", "host.example", "fd00::g/128", "10.0.0.0/-1"])
def test_parse_prefix_rejects(text):
    with pytest.raises(RouteError, match="not an IP prefix"):
        routes.parse_prefix(text)


@pytest.mark.parametrize("target,match", [
    (Target("10.0.0.3/32", "sideways"), "unknown hook 'sideways'"),
    (Target("10.0.0.3/32", "out", headroom=14), "xmit hook only"),
    (Target("10.0.0.3/32", "xmit", headroom=300), "headroom must be 0..256"),
    (Target("10.0.0.3/24", "out"), "host bits"),
])
def test_targets_are_checked_before_any_netlink(target, match):
    with pytest.raises(RouteError, match=match):
        routes.resolve(target)


# -- route attribute round trips --------------------------------------------------------

def test_gateway_route_keeps_every_attribute():
    d = routes.route_to_dict(V4_GATEWAY)
    assert d == {"family": 2, "dst_len": 32, "src_len": 0, "tos": 0, "table": 254, "proto": 3, "scope": 0,
                 "type": 1, "flags": 0, "progs": {},
                 "attrs": {"RTA_TABLE": 254, "RTA_DST": "10.0.0.9", "RTA_PRIORITY": 7,
                           "RTA_METRICS": {"RTAX_MTU": 1400, "RTAX_ADVMSS": 1300}, "RTA_PREFSRC": "10.0.0.2",
                           "RTA_GATEWAY": "10.0.0.3", "RTA_OIF": 2, "RTA_FLOW": 5}}
    assert routes.route_kwargs(d) == {
        "family": 2, "dst_len": 32, "src_len": 0, "tos": 0, "table": 254, "proto": 3, "scope": 0, "type": 1,
        "flags": 0, "dst": "10.0.0.9", "oif": 2, "gateway": "10.0.0.3", "priority": 7, "prefsrc": "10.0.0.2",
        "flow": 5, "metrics": {"RTAX_MTU": 1400, "RTAX_ADVMSS": 1300}}


def test_local_route_keeps_the_kernels_own_attributes():
    kw = routes.route_kwargs(routes.route_to_dict(V4_LOCAL))
    assert (kw["table"], kw["type"], kw["proto"], kw["scope"], kw["prefsrc"], kw["oif"]) == \
        (255, 2, 2, 254, "10.0.0.3", 2)
    assert "priority" not in kw and "metrics" not in kw


def test_state_files_round_trip_through_json():
    for rec in (V4_GATEWAY, V4_LOCAL, V6_EXPIRING, V4_BPF):
        d = dict(routes.route_to_dict(rec), saved_at=1000.0)
        back = json.loads(json.dumps(d))
        assert back == d
        assert routes.route_kwargs(back, now=1010.0) == routes.route_kwargs(d, now=1010.0)


def test_expiry_counts_down_from_when_it_was_saved():
    d = dict(routes.route_to_dict(V6_EXPIRING), saved_at=1000.0)
    assert d["expires"] == 300                          # 29982 centiseconds, rounded up
    assert routes.route_kwargs(d, now=1100.0)["expires"] == struct.pack("=I", 200)
    assert routes.route_kwargs(d, now=5000.0)["expires"] == struct.pack("=I", 1)   # never 0 (= forever)
    assert routes.route_kwargs(d)["pref"] == 1 and routes.route_kwargs(d)["priority"] == 77


def test_only_settable_flags_are_sent_back():
    d = routes.route_to_dict(dict(V4_GATEWAY, flags=routes.RTNH_F_ONLINK | 16 | 1))   # ONLINK | LINKDOWN | DEAD
    assert routes.route_kwargs(d)["flags"] == routes.RTNH_F_ONLINK


def test_tables_above_255_come_from_rta_table():
    d = routes.route_to_dict(dict(V4_GATEWAY, table=252, attrs=[("RTA_TABLE", 27767), ("RTA_DST", "10.0.0.9")]))
    assert routes.route_table(d) == 27767 and routes.route_kwargs(d)["table"] == 27767


def test_default_routes_have_no_dst():
    d = routes.route_to_dict(V4_NHID)
    assert routes.route_net(d) == ipaddress.ip_network("0.0.0.0/0")
    assert routes.route_net(dict(d, family=10)) == ipaddress.ip_network("::/0")
    assert "dst" not in routes.route_kwargs(d)


def test_bpf_encap_names_programs_in_hook_order():
    d = routes.route_to_dict(V4_BPF)
    assert d["progs"] == {"out": "lwt_out_x", "xmit": "lwt_x"}
    assert routes.describe_encap(d) == "bpf out lwt_out_x xmit lwt_x"
    assert "encap" not in routes.route_kwargs(d), "restoring never sends the encap back"
    assert routes.describe_encap(routes.route_to_dict(V4_GATEWAY)) is None


def test_other_encaps_are_named():
    ip_encap = dict(V4_GATEWAY, attrs=V4_GATEWAY["attrs"] + [("RTA_ENCAP_TYPE", 2), ("RTA_ENCAP", {"attrs": []})])
    assert routes.describe_encap(routes.route_to_dict(ip_encap)) == "ip"
    odd = dict(V4_GATEWAY, attrs=V4_GATEWAY["attrs"] + [("RTA_ENCAP_TYPE", 42)])
    assert routes.describe_encap(routes.route_to_dict(odd)) == "type 42"


def test_unusable_routes_are_marked():
    assert routes.route_to_dict(V6_MULTIPATH)["multipath"] == 2
    assert routes.route_to_dict(V4_NHID)["nh_id"] is True
    plain = routes.route_to_dict(V4_GATEWAY)
    assert "multipath" not in plain and "nh_id" not in plain


def test_closest_routes_cover_first_then_nearest():
    rs = [routes.route_to_dict(dict(V4_GATEWAY, dst_len=n, attrs=[("RTA_TABLE", 254), ("RTA_DST", a)]))
          for a, n in (("10.0.0.3", 32), ("10.0.0.0", 24), ("10.9.0.0", 16), ("10.0.0.8", 32), ("192.168.0.0", 16))]
    net = ipaddress.ip_network("10.0.0.9/32")
    assert attrs._closest(rs, net, 254, 1) == ["10.0.0.0/24", "10.0.0.8/32", "10.0.0.3/32"]


def test_attachment_round_trip():
    att = Attachment(Target("fd00:6c77::3/128", "in", "lwtui-cli", None, 0), "lwtui_in_7", "policy",
                     dict(routes.route_to_dict(V6_EXPIRING), saved_at=5.0),
                     {"table": 27767, "local_pref": 0, "local_proto": 2})
    back = Attachment.from_dict(json.loads(json.dumps(att.to_dict())))
    assert back == att
    assert back.to_dict()["target"] == {"prefix": "fd00:6c77::3/128", "hook": "in", "netns": "lwtui-cli",
                                        "dev": None, "headroom": 0}
