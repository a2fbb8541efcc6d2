"""Lock-out guard: would a rule cut the user's own SSH connection?"""

from __future__ import annotations

import ipaddress
import os

from .model import FlowId


def ssh_flow(environ=None) -> FlowId | None:
    """The SSH connection this process runs under (SSH_CONNECTION), as a flow."""
    env = os.environ if environ is None else environ
    parts = env.get("SSH_CONNECTION", "").split()
    if len(parts) != 4:
        return None
    try:
        client, server = ipaddress.ip_address(parts[0]), ipaddress.ip_address(parts[2])
        cport, sport = int(parts[1]), int(parts[3])
    except ValueError:
        return None
    if client.version != server.version:
        return None
    return FlowId(hook="in", proto=6, src=client, sport=cport, dst=server, dport=sport)


def ssh_flow_blocked_by(rule, environ=None) -> str | None:
    """A description of the SSH connection when `rule` matches it, else None."""
    f = ssh_flow(environ)
    if f is None or not rule.matches(f):
        return None
    return f"{f.src}:{f.sport} -> {f.dst}:{f.dport}"
