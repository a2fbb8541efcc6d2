"""A socket in a named network namespace, made without forking the process.

pyroute2 makes a socket in another namespace in a forked child (setns there,
the socket sent back over a unix socket). A session opens such sockets every
second or two (route checks, process attribution), and forking a process of a
few hundred MiB copies its page tables and makes each page it writes afterwards
fault once more. Here a short-lived thread joins the namespace (setns(2) with
CLONE_NEWNET moves the calling thread only), makes the socket and ends: a socket
stays in the namespace it was made in, and no other code runs on that thread.
The namespace is never created: a name that does not exist is FileNotFoundError.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

from pyroute2 import netns as netns_mod

NETNS_RUN_DIR = "/var/run/netns"    # where `ip netns` (and pyroute2) keep the named namespaces
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(netns: str) -> str:
    """The file of a namespace: a bare name lives in NETNS_RUN_DIR, as with `ip netns`."""
    return netns if os.path.dirname(netns) else os.path.join(NETNS_RUN_DIR, netns)


def ns_socket(netns: str, family: int, type_: int, proto: int = 0) -> socket.socket:
    """A new socket(family, type_, proto) in the namespace `netns`. The thread owns the
    namespace's fd; a caller interrupted while it waits (a signal) leaves nothing open."""
    fd = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    lock = threading.Lock()
    made: list = []                     # the socket or the error, unless the caller gave up
    gave_up: list[bool] = []

    def make() -> None:
        try:
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"joining namespace {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result: object = socket.socket(family, type_, proto)
        except BaseException as e:      # handed to the caller's thread, raised there
            result = e
        with lock:
            if gave_up and isinstance(result, socket.socket):
                result.close()
            made.append(result)

    t = threading.Thread(target=make, name="lwtui-netns", daemon=True)
    try:
        t.start()
    except RuntimeError:                # no new threads (interpreter shutting down): pyroute2's fork
        os.close(fd)
        return netns_mod.create_socket(netns, family, type_, proto, flags=0)
    try:
        t.join()
    except BaseException:
        with lock:
            gave_up.append(True)
            for x in made:
                if isinstance(x, socket.socket):
                    x.close()
        raise
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


def netlink_fileno(netns: str, proto: int) -> int:
    """The fd of a new netlink socket of `proto` in `netns`, for pyroute2's `fileno=`
    (which takes the fd over and closes it with its socket)."""
    return ns_socket(netns, socket.AF_NETLINK, socket.SOCK_DGRAM, proto).detach()
