"""Sockets in a named namespace without a fork (lwtui.net.nssocket), as route checks and
process attribution open them every second or two. The oracle is `ip -n NS` and the
namespace of the thread that asked."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from lwtui.net.netlink import NamespaceGone, rtnl
from lwtui.net.nssocket import ns_socket
from lwtui.net.sockets import list_sockets

FORKS: list[int] = []
os.register_at_fork(before=lambda: FORKS.append(os.getpid()))


def _my_netns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def test_route_and_diag_sockets_are_made_in_the_namespace_without_a_fork(topo):
    links = json.loads(subprocess.run(["ip", "-n", topo.client_ns, "-j", "link", "show"], check=True,
                                      capture_output=True, text=True).stdout)
    here, forks = _my_netns(), len(FORKS)
    with rtnl(topo.client_ns) as ipr:
        names = sorted(link.get_attr("IFLA_IFNAME") for link in ipr.get_links())
    listener = subprocess.Popen(["ip", "netns", "exec", topo.client_ns, "python3", "-c",
                                 "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                                 "s.bind(('0.0.0.0', 40999)); print('up', flush=True); sys.stdin.read()"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "up"
        ports = {s.lport for s in list_sockets(topo.client_ns) if s.proto == socket.IPPROTO_UDP}
    finally:
        listener.kill()
        listener.wait(timeout=10)
    assert names == sorted(link["ifname"] for link in links) and topo.dev in names
    assert 40999 in ports
    assert 40999 not in {s.lport for s in list_sockets(None) if s.proto == socket.IPPROTO_UDP}
    assert len(FORKS) == forks, "a namespace socket forked the process"
    assert _my_netns() == here


def test_a_missing_namespace_is_named_and_never_made():
    here = _my_netns()
    with pytest.raises(FileNotFoundError):
        ns_socket("lwtui-no-such-ns", socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(NamespaceGone, match="no namespace lwtui-no-such-ns"):
        with rtnl("lwtui-no-such-ns"):
            pass
    with pytest.raises(NamespaceGone):
        list_sockets("lwtui-no-such-ns")
    assert not os.path.exists("/var/run/netns/lwtui-no-such-ns")
    assert _my_netns() == here
