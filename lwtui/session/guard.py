"""Guards lwtui checks before it acts: privileges, and the user's own SSH connection.

- `require_privileges()`: attaching programs, pinning maps and changing
  routes need CAP_NET_ADMIN plus CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN,
  which covers both on older kernels). Checked up front from the effective
  capability set, so an unprivileged user gets one line naming the fix, not
  a failure half-way through.
- `ssh_flow_blocked_by(rule)`: would a rule cut the SSH connection this
  process runs under (SSH_CONNECTION)? `lwtui block` refuses such a rule
  without --force; the dashboard asks first (Session.would_cut_ssh).
"""

from __future__ import annotations

import ipaddress
import os

from lwtui.core.model import FlowId
from lwtui.core.names import endpoint

CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 12, 21, 38, 39
_CAP_NAMES = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
              CAP_PERFMON: "CAP_PERFMON", CAP_BPF: "CAP_BPF"}


class PrivilegeError(RuntimeError):
    """lwtui runs without the capabilities it needs; the message names the fix."""


def effective_caps(status_text: str | None = None) -> int:
    """The CapEff bit mask of this process (from /proc/self/status, or the given text)."""
    if status_text is None:
        try:
            with open("/proc/self/status") as f:
                status_text = f.read()
        except OSError:     # cannot tell: no capabilities, so the privilege check refuses with its fix
            return 0
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def missing_caps(caps: int) -> list[str]:
    """Names of the capabilities lwtui needs and `caps` lacks."""
    def has(c: int) -> bool:
        return bool(caps >> c & 1)
    missing = [] if has(CAP_NET_ADMIN) else [CAP_NET_ADMIN]
    if not has(CAP_SYS_ADMIN):
        missing += [c for c in (CAP_BPF, CAP_PERFMON) if not has(c)]
    return [_CAP_NAMES[c] for c in missing]


def require_privileges(caps: int | None = None) -> None:
    """Raise PrivilegeError unless this process may load programs and change routes."""
    missing = missing_caps(effective_caps() if caps is None else caps)
    if missing:
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
        raise PrivilegeError(f"lwtui needs root: running as {who} without {', '.join(missing)}; "
                             "run it with sudo")


def ssh_flow(environ=None) -> FlowId | None:
    """The SSH connection this process runs under (SSH_CONNECTION), as a flow."""
    env = os.environ if environ is None else environ
    parts = env.get("SSH_CONNECTION", "").split()
    if len(parts) != 4:
        return None
    try:
        client, server = ipaddress.ip_address(parts[0]), ipaddress.ip_address(parts[2])
        cport, sport = int(parts[1]), int(parts[3])
    except ValueError:      # not the form sshd sets: no SSH connection lwtui could recognise
        return None
    if client.version != server.version or not (0 <= cport <= 65535 and 0 <= sport <= 65535):
        return None
    return FlowId(hook="in", proto=6, src=client, sport=cport, dst=server, dport=sport)


def ssh_flow_blocked_by(rule, environ=None) -> str | None:
    """A description of the SSH connection when `rule` matches it, else None."""
    f = ssh_flow(environ)
    if f is None or not rule.matches(f):
        return None
    return f"ssh {endpoint(f.src, f.sport)} -> {endpoint(f.dst, f.dport)}"
