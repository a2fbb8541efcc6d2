"""The TCP and UDP sockets of a namespace, through sock_diag (pyroute2's DiagSocket).

Each socket comes with its inode, which /proc/PID/fd links name
(`socket:[INODE]`): lwtui.session.owners matches the two to find the process
behind a flow. Sockets are short-lived, as in lwtui.net.netlink: one is
opened in the namespace for a dump and closed at once, so lwtui never keeps
a deleted namespace alive.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import NamedTuple

from pyroute2.netlink.diag import NETLINK_SOCK_DIAG, DiagSocket, MarshalDiag
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nlsocket import NetlinkSocket

from lwtui.net.netlink import NamespaceGone
from lwtui.net.nssocket import netlink_fileno


class SockEntry(NamedTuple):
    """One socket as sock_diag lists it; IPv4-mapped IPv6 addresses are given as IPv4."""
    proto: int                 # IPPROTO_TCP or IPPROTO_UDP
    local: ipaddress.IPv4Address | ipaddress.IPv6Address
    lport: int
    remote: ipaddress.IPv4Address | ipaddress.IPv6Address
    rport: int                 # 0: not connected (a listener, or an unconnected UDP socket)
    inode: int                 # 0: no file any more (TIME_WAIT)
    uid: int


class _NsDiagSocket(DiagSocket):
    """DiagSocket opened in a named namespace (DiagSocket itself does not pass netns on)."""

    def __init__(self, netns: str | None):
        NetlinkSocket.__init__(self, NETLINK_SOCK_DIAG,
                               fileno=netlink_fileno(netns, NETLINK_SOCK_DIAG) if netns else None)
        self.set_marshal(MarshalDiag())


def _addr(text: str):
    a = ipaddress.ip_address(text)
    return a.ipv4_mapped if a.version == 6 and a.ipv4_mapped else a


def list_sockets(netns: str | None, protos=(socket.IPPROTO_TCP, socket.IPPROTO_UDP)) -> list[SockEntry]:
    """Every IPv4 and IPv6 socket of `protos` in `netns` (None: this namespace)."""
    try:
        ds = _NsDiagSocket(netns)
    except FileNotFoundError:
        raise NamespaceGone(f"no namespace {netns}: see `ip netns list`") from None
    out = []
    try:
        ds.bind()
        for family in (socket.AF_INET, socket.AF_INET6):
            for proto in protos:
                for m in ds.get_sock_stats(family=family, protocol=proto):
                    out.append(SockEntry(proto, _addr(m["idiag_src"]), m["idiag_sport"], _addr(m["idiag_dst"]),
                                         m["idiag_dport"], m["idiag_inode"], m["idiag_uid"]))
    except NetlinkError as e:   # callers know OSError; pyroute2's own error stays here
        raise OSError(e.code, f"sock_diag in {netns or 'this namespace'}: {e}") from None
    finally:
        ds.close()
    return out
