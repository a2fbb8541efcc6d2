"""Find kernel headers for BCC without writing to /lib/modules.

BCC compiles C at run time and looks for headers at /lib/modules/$(uname
-r)/build, or extracts /sys/kernel/kheaders.tar.xz itself. Many VM kernels have
neither. LWT programs use only UAPI structures, so the headers of any installed
kernel serve; Debian splits them into `linux-headers-V-ARCH` (generated files,
config) and `linux-headers-V-common` (the rest), a layout BCC_KERNEL_SOURCE
cannot take as is. We build a private tree of symlinks that merges the pair and
point BCC_KERNEL_SOURCE at it.

Order: the running kernel's own headers; kheaders.tar.xz; a merged tree from
any installed pair; else HeadersMissing with the install command.

`python -m lwtui.kernel.headers --check` answers the same question for
scripts/bootstrap.sh (exit 0 and the place, or exit 1 and the fix), so the
search is written once; it needs only the standard library, so the system
Python can run it from the source tree before any venv exists.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import platform
import re
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(os.environ.get("LWTUI_CACHE_DIR", "/var/cache/lwtui"))
# Where header discovery looks (/lib/modules, /sys/kernel, /usr/src below it): tests point it at an empty tree.
SEARCH_ROOT = Path(os.environ.get("LWTUI_HEADERS_SEARCH_ROOT", "/"))

_ARCH_DIR = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86")
_DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "amd64")


class HeadersMissing(RuntimeError):
    """No kernel headers usable by BCC; the message carries the fix."""


@dataclass(frozen=True)
class Headers:
    how: str              # "running kernel", "kheaders", "merged <dir>", "BCC_KERNEL_SOURCE"
    source: str | None    # value for BCC_KERNEL_SOURCE, None when BCC finds them itself


def install_hint() -> str:
    if os.path.exists("/etc/debian_version"):
        return f"apt-get install -y linux-headers-{_DEB_ARCH}"
    if os.path.exists("/etc/fedora-release") or os.path.exists("/etc/redhat-release"):
        return "dnf install -y kernel-devel-$(uname -r)"
    if os.path.exists("/etc/arch-release"):
        return "pacman -S linux-headers"
    return "install your distribution's kernel headers package"


def _usable(tree: Path) -> bool:
    return (tree / "include" / "linux").is_dir() and (tree / "include" / "generated").exists()


def _pairs(src_root: Path = SEARCH_ROOT / "usr/src") -> list[tuple[Path, Path]]:
    """Installed (arch, common) header directory pairs, newest version first."""
    pairs: list[tuple[Path, Path]] = []
    for arch_name in glob.glob(str(src_root / f"linux-headers-*-{_DEB_ARCH}")):
        arch_dir = Path(arch_name)
        common = Path(re.sub(rf"-{_DEB_ARCH}$", "-common", str(arch_dir)))
        if (arch_dir / "include" / "generated").is_dir() and (common / "include" / "linux").is_dir():
            pairs.append((arch_dir, common))

    def version(p: tuple[Path, Path]) -> list[int]:
        return [int(x) for x in re.findall(r"\d+", p[0].name)]

    return sorted(pairs, key=version, reverse=True)


def _link_entries(dst: Path, *sources: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for src in sources:
        if not src.is_dir():
            continue
        for entry in src.iterdir():
            link = dst / entry.name
            if not link.exists() and not link.is_symlink():
                link.symlink_to(entry)


def merged_tree(arch_dir: Path, common: Path, cache: Path = CACHE_DIR) -> Path:
    """A non-split source tree of symlinks for one Debian header pair."""
    root = cache / "kheaders" / arch_dir.name
    if _usable(root):
        return root
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    inc = tmp / "include"
    _link_entries(inc, common / "include", arch_dir / "include")
    arch_inc = tmp / "arch" / _ARCH_DIR / "include"
    _link_entries(arch_inc, common / "arch" / _ARCH_DIR / "include", arch_dir / "arch" / _ARCH_DIR / "include")
    for name in ("Makefile", ".config", "Module.symvers", "scripts"):
        src = arch_dir / name if (arch_dir / name).exists() else common / name
        if src.exists():
            (tmp / name).symlink_to(src)
    (tmp / "arch" / _ARCH_DIR / "Makefile").symlink_to(common / "arch" / _ARCH_DIR / "Makefile") \
        if (common / "arch" / _ARCH_DIR / "Makefile").exists() else None
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, root)
    except OSError:  # another process won the race
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def find_headers(release: str | None = None, build: bool = True) -> Headers:
    """Decide where BCC gets headers; raise HeadersMissing with the fix.
    With build=False a Debian pair is only found, not merged (nothing is written)."""
    release = release or os.uname().release
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env and Path(env).is_dir():
        return Headers("BCC_KERNEL_SOURCE", env)
    own = SEARCH_ROOT / "lib/modules" / release / "build"
    if (own / "include").is_dir():
        return Headers("running kernel", None)
    if (SEARCH_ROOT / "sys/kernel/kheaders.tar.xz").exists():
        return Headers("kheaders", None)
    pairs = _pairs()
    if pairs:
        arch_dir, common = pairs[0]
        return Headers(f"merged {arch_dir.name}", str(merged_tree(arch_dir, common)) if build else None)
    raise HeadersMissing(f"no kernel headers for BCC: run `{install_hint()}` (or `lwtui doctor`)")


def use_headers(release: str | None = None) -> Headers:
    """find_headers() and export BCC_KERNEL_SOURCE for BCC when needed."""
    h = find_headers(release)
    if h.source:
        os.environ["BCC_KERNEL_SOURCE"] = h.source
    return h


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lwtui.kernel.headers",
                                description="Does BCC have kernel headers here? (writes nothing)")
    p.add_argument("--check", action="store_true", required=True, help="exit 0 when it does, 1 with the fix")
    p.parse_args(argv)
    try:
        h = find_headers(build=False)
    except HeadersMissing as e:
        print(e, file=sys.stderr)
        return 1
    print(f"kernel headers: {h.how}" + (f" ({h.source})" if h.source else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
