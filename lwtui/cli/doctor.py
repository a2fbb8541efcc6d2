"""`lwtui doctor`: is this host ready? Each check on its own line, with the fix."""

from __future__ import annotations

import json
import os
from typing import Callable

from lwtui.cli.console import console
from lwtui.core.units import plural

CheckResult = tuple[bool, str, str]  # ok, what was found, the fix


def check_root() -> CheckResult:
    if os.geteuid() == 0:
        return True, "running as root", ""
    return False, "not root (needs CAP_BPF and CAP_NET_ADMIN)", "run lwtui with sudo"


def check_bcc() -> CheckResult:
    try:
        from lwtui.kernel.loader import ProbeError, bcc_location
    except ImportError as e:  # pragma: no cover - the loader imports bcc lazily
        return False, f"lwtui.kernel.loader not importable ({e})", "reinstall lwtui"
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
    if os.geteuid() != 0:
        return False, "cannot load BPF programs without root", "run lwtui doctor as root"
    try:
        from lwtui.kernel.loader import selftest
        results = selftest(kernel_plan().cflags)
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
    return True, f"pyroute2 talks netlink ({plural(n, 'route')} in this namespace)", ""


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


def kernel_plan():
    """The probe of the running kernel's features, the path lwtui takes for each
    (lwtui.kernel.features); FeatureError for a bad LWTUI_HIDE_FEATURES."""
    from lwtui.kernel import features
    return features.plan()


def check_kernel() -> CheckResult:
    """Every feature lwtui cannot do without, found by asking the kernel; fallbacks named."""
    from lwtui.kernel import bpfsys, features
    if os.geteuid() != 0:
        return False, "cannot probe kernel features without root", "run lwtui doctor as root"
    try:
        plan = kernel_plan()
    except features.FeatureError as e:
        return False, str(e), f"unset {features.HIDE_ENV} or fix its names"
    except bpfsys.LibbpfMissing as e:
        return False, str(e), bpfsys.INSTALL_HINT
    release = os.uname().release
    if plan.missing:
        return False, f"kernel {release} lacks " + ", ".join(features.BY_NAME[n].what for n in plan.missing), \
            "lwtui needs Linux 5.2 or later with CONFIG_LWTUNNEL_BPF=y (see README, Kernels)"
    if plan.fallbacks:
        return True, f"kernel {release}: runs, with fallbacks for " + ", ".join(plan.fallback_names), ""
    return True, f"kernel {release}: every feature lwtui uses", ""


CHECKS: list[tuple[str, Callable[[], CheckResult]]] = [
    ("privileges", check_root),
    ("bcc", check_bcc),
    ("libbpf", check_libbpf),
    ("headers", check_headers),
    ("kernel", check_kernel),
    ("programs", check_programs),
    ("bpffs", check_bpffs),
    ("netlink", check_netlink),
    ("leftovers", check_leftovers),
]


def feature_rows() -> list[dict]:
    """The kernel feature table (lwtui.kernel.features.rows); empty when the kernel cannot be probed."""
    from lwtui.kernel import bpfsys, features
    if os.geteuid() != 0:
        return []
    try:
        return features.rows(kernel_plan())
    except (features.FeatureError, bpfsys.LibbpfMissing):   # check_kernel says why
        return []


def feature_table(rows: list[dict]):
    """A rich Table: each feature, the kernel that brought it, whether this kernel has it, and the path taken."""
    from rich.table import Table
    table = Table(title="kernel features", title_justify="left")
    for col in ("feature", "what", "since", "available", "used", "fallback"):
        table.add_column(col, no_wrap=col in ("feature", "since", "available", "used"))
    for r in rows:
        avail = "yes" if r["available"] else "no"
        if r["hidden"]:
            avail += " (hidden)"
        fallback = r["fallback"] or r.get("note", "") or ("-" if r["required"] else "")
        table.add_row(r["feature"], r["what"], r["since"], avail, "yes" if r["used"] else "no", fallback)
    return table


def run_doctor(console, as_json: bool = False) -> int:
    """Print every check, then the kernel feature table; exit 0 only when all checks pass.
    as_json: JSON lines instead, `check` records then `feature` records."""
    from rich.markup import escape
    failed = 0
    for name, check in CHECKS:
        ok, found, fix = check()
        failed += not ok
        if as_json:
            print(json.dumps({"type": "check", "name": name, "ok": ok, "found": found, "fix": fix or None}))
            continue
        mark = "[green]ok[/]  " if ok else "[red]FAIL[/]"
        fix_line = "" if ok else f"\n           fix: [bold]{escape(fix)}[/]"
        console.print(f"{mark} {name:<10} {escape(found)}{fix_line}")
    rows = feature_rows()
    if as_json:
        for r in rows:
            print(json.dumps({"type": "feature", **r}))
        return 0 if not failed else 1
    if rows:
        console.print(feature_table(rows))
    console.print("ready" if not failed else f"{failed} check(s) failed")
    return 0 if not failed else 1


def cmd_doctor(args) -> int:
    return run_doctor(console(), as_json=getattr(args, "json", False))
