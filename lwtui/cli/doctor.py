"""`lwtui doctor`: is this host ready? Each check on its own line, with the fix."""

from __future__ import annotations

import os
from typing import Callable

CheckResult = tuple[bool, str, str]  # ok, what was found, the fix


def check_root() -> CheckResult:
    if os.geteuid() == 0:
        return True, "running as root", ""
    return False, "not root (needs CAP_BPF and CAP_NET_ADMIN)", "run lwtui with sudo"


def check_bcc() -> CheckResult:
    try:
        from lwtui.kernel.probe import ProbeError, bcc_location
    except ImportError as e:  # pragma: no cover - the probe imports bcc lazily
        return False, f"lwtui.kernel.probe not importable ({e})", "reinstall lwtui"
    try:
        where = bcc_location()
    except ProbeError as e:
        return False, f"BCC Python bindings not importable ({e.__cause__})", \
            "apt-get install -y python3-bpfcc (Fedora: dnf install python3-bcc; Arch: pacman -S python-bcc)"
    return True, f"BCC importable ({where})", ""


def check_libbpf() -> CheckResult:
    from lwtui.kernel import bpfsys
    try:
        bpfsys.load()
    except bpfsys.LibbpfMissing:
        return False, f"{bpfsys.LIBBPF} cannot be loaded", bpfsys.INSTALL_HINT
    return True, f"{bpfsys.LIBBPF} loads (pinned maps and test runs go through it)", ""


def check_headers() -> CheckResult:
    from lwtui.kernel.headers import HeadersMissing, find_headers, install_hint
    try:
        h = find_headers()
    except HeadersMissing:
        return False, "no kernel headers for BCC", install_hint()
    return True, f"kernel headers: {h.how}" + (f" ({h.source})" if h.source else ""), ""


def check_programs() -> CheckResult:
    try:
        from lwtui.kernel.probe import selftest
        results = selftest()
    except Exception as e:  # noqa: BLE001 - doctor reports, never raises
        return False, f"cannot compile the BPF programs: {e}", "fix the checks above first"
    bad = [f"{hook}: {err}" for hook, ok, err in results if not ok]
    if bad:
        return False, "BPF programs do not load: " + "; ".join(bad), \
            "needs a kernel with CONFIG_LWTUNNEL_BPF=y and CONFIG_BPF_SYSCALL=y"
    return True, "BPF programs compile and load as " + ", ".join(f"LWT_{h.upper()}" for h, _, _ in results), ""


def check_bpffs() -> CheckResult:
    from lwtui.kernel.pins import BPFFS, PinError, bpffs_mounted, ensure_bpffs
    if bpffs_mounted():
        return True, f"bpffs mounted at {BPFFS}", ""
    try:
        ensure_bpffs()
    except PinError as e:
        return False, str(e), f"mount -t bpf bpf {BPFFS}"
    return True, f"bpffs was not mounted: mounted it at {BPFFS}", ""


def check_netlink() -> CheckResult:
    try:
        from lwtui.net.routes import list_routes
        n = len(list_routes(None))
    except Exception as e:  # noqa: BLE001 - doctor reports, never raises
        return False, f"pyroute2 cannot talk netlink: {e}", "pip install 'pyroute2>=0.9.7' in lwtui's environment"
    return True, f"pyroute2 talks netlink ({n} routes in this namespace)", ""


def check_leftovers() -> CheckResult:
    """Routes still carrying programs of no live session, and state files lwtui cannot read."""
    if os.geteuid() != 0:
        return False, "cannot look for routes left by killed sessions without root", "run lwtui doctor as root"
    from lwtui.session.recovery import scan
    found = scan()
    gone = [f for f in found.found if not f.kept]     # kept sessions' blocks stay on purpose
    if not gone and not found.unreadable and not found.unreachable:
        return True, "no route carries programs of a session that is gone", ""
    what = [f.leftover.describe() for f in gone] + \
        [f"{path}: unreadable state file ({err})" for path, err in found.unreadable] + \
        [f"could not look in {ns or 'this namespace'} ({err})" for ns, err in found.unreachable]
    return False, "left behind: " + "; ".join(what), "lwtui detach --all"


CHECKS: list[tuple[str, Callable[[], CheckResult]]] = [
    ("privileges", check_root),
    ("bcc", check_bcc),
    ("libbpf", check_libbpf),
    ("headers", check_headers),
    ("programs", check_programs),
    ("bpffs", check_bpffs),
    ("netlink", check_netlink),
    ("leftovers", check_leftovers),
]


def run_doctor(console) -> int:
    """Print every check; exit 0 only when all pass."""
    from rich.markup import escape
    failed = 0
    for name, check in CHECKS:
        ok, found, fix = check()
        mark = "[green]ok[/]  " if ok else "[red]FAIL[/]"
        fix_line = "" if ok else f"\n           fix: [bold]{escape(fix)}[/]"
        console.print(f"{mark} {name:<10} {escape(found)}{fix_line}")
        failed += not ok
    console.print("ready" if not failed else f"{failed} check(s) failed")
    return 0 if not failed else 1
