"""Two network namespaces joined by a veth pair: the tests' and the demo lab's topology.

The veth pair is created directly inside the two namespaces (`ip -n A link add
... peer ... netns B`), so no link ever exists in the host namespace, and
deleting the namespaces removes everything. Plain `ip` commands keep this small
and independent of the route code it is used to test.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass


class TopologyError(RuntimeError):
    """The topology could not be built; the message carries the failing command."""


@dataclass(frozen=True)
class Topology:
    """Names and addresses of a client/server namespace pair."""
    prefix: str
    client_ns: str
    server_ns: str
    dev: str = "lwtui0"
    client_v4: str = "10.0.0.2"
    server_v4: str = "10.0.0.3"
    client_v6: str = "fd00:6c77::2"
    server_v6: str = "fd00:6c77::3"


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["ip"] + (["-n", ns] if ns else []) + list(args)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise TopologyError(f"`{' '.join(argv)}` failed: {res.stderr.strip()}")
    return res


def _names(prefix: str) -> tuple[str, str]:
    return f"{prefix}-cli", f"{prefix}-srv"


def topology_exists(prefix: str) -> bool:
    """True when either namespace of the topology exists."""
    out = _ip("-j", "netns", "list", check=False).stdout.strip()
    have = {n.get("name") for n in json.loads(out)} if out else set()
    return any(n in have for n in _names(prefix))


def destroy_topology(prefix: str) -> None:
    """Delete both namespaces (and with them the veth pair); idempotent."""
    out = _ip("-j", "netns", "list", check=False).stdout.strip()
    have = {n.get("name") for n in json.loads(out)} if out else set()
    for ns in _names(prefix):
        if ns in have:
            _ip("netns", "del", ns, check=False)


def _configure(ns: str, dev: str, me4: str, peer4: str, me6: str, peer6: str) -> None:
    # no DAD on the link-local address either: usable at once instead of after ~2 s
    res = ns_run(ns, ["sysctl", "-qw", f"net.ipv6.conf.{dev}.accept_dad=0"])
    if res.returncode != 0:
        raise TopologyError(f"sysctl accept_dad in {ns} failed: {res.stderr.strip()}")
    _ip("link", "set", "lo", "up", ns=ns)
    _ip("addr", "add", f"{me4}/24", "dev", dev, ns=ns)
    _ip("-6", "addr", "add", f"{me6}/64", "dev", dev, "nodad", ns=ns)
    _ip("link", "set", dev, "up", ns=ns)
    _ip("route", "add", f"{peer4}/32", "dev", dev, ns=ns)
    _ip("-6", "route", "add", f"{peer6}/128", "dev", dev, ns=ns)


def _ready(ns: str, dev: str) -> bool:
    """Link up with carrier and no tentative IPv6 address."""
    out = _ip("-j", "addr", "show", "dev", dev, ns=ns, check=False).stdout.strip()
    if not out:
        return False
    link = json.loads(out)[0]
    if link.get("operstate") != "UP":
        return False
    return not any(a.get("tentative") or a.get("dadfailed") for a in link.get("addr_info", []))


def create_topology(prefix: str, timeout: float = 10.0) -> Topology:
    """Build the two namespaces, the veth pair, addresses and host routes.

    Raises TopologyError (after removing whatever was made) when any step fails
    or the links are not usable within `timeout` seconds.
    """
    cli, srv = _names(prefix)
    topo = Topology(prefix=prefix, client_ns=cli, server_ns=srv)
    if topology_exists(prefix):
        raise TopologyError(f"namespaces of {prefix!r} already exist: run `ip netns del {cli}; ip netns del {srv}`")
    try:
        _ip("netns", "add", cli)
        _ip("netns", "add", srv)
        _ip("link", "add", topo.dev, "type", "veth", "peer", "name", topo.dev, "netns", srv, ns=cli)
        _configure(cli, topo.dev, topo.client_v4, topo.server_v4, topo.client_v6, topo.server_v6)
        _configure(srv, topo.dev, topo.server_v4, topo.client_v4, topo.server_v6, topo.client_v6)
        deadline = time.monotonic() + timeout
        while not (_ready(cli, topo.dev) and _ready(srv, topo.dev)):
            if time.monotonic() > deadline:
                raise TopologyError(f"{topo.dev} in {cli}/{srv} not up after {timeout:.0f} s")
            time.sleep(0.02)
    except BaseException:
        destroy_topology(prefix)
        raise
    return topo


def ns_exec(ns: str, argv: list[str], **popen_kwargs) -> subprocess.Popen:
    """Start `argv` inside namespace `ns` (`ip netns exec`); the caller waits or kills it."""
    return subprocess.Popen(["ip", "netns", "exec", ns] + list(argv), **popen_kwargs)


def ns_run(ns: str, argv: list[str], timeout: float = 30.0, **run_kwargs) -> subprocess.CompletedProcess:
    """Run `argv` inside namespace `ns` to completion (bounded by `timeout`), capturing text output."""
    run_kwargs.setdefault("capture_output", True)
    run_kwargs.setdefault("text", True)
    return subprocess.run(["ip", "netns", "exec", ns] + list(argv), timeout=timeout, **run_kwargs)
