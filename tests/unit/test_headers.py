"""`python -m lwtui.kernel.headers --check`, the question scripts/bootstrap.sh asks:
run by the system Python from the source tree, on made-up header trees."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lwtui.kernel import headers

ROOT = Path(__file__).resolve().parents[2]


def _check(search_root: Path, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), LWTUI_HEADERS_SEARCH_ROOT=str(search_root),
               LWTUI_CACHE_DIR=str(cache), BCC_KERNEL_SOURCE="")
    return subprocess.run(["/usr/bin/python3", "-m", "lwtui.kernel.headers", "--check"], env=env,
                          capture_output=True, text=True, timeout=30)


def test_no_headers_is_exit_1_with_the_fix(tmp_path):
    res = _check(tmp_path, tmp_path / "cache")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip() == f"no kernel headers for BCC: run `{headers.install_hint()}` (or `lwtui doctor`)"


def test_a_debian_pair_is_found_and_nothing_is_written(tmp_path):
    arch = headers._DEB_ARCH
    (tmp_path / f"usr/src/linux-headers-6.1.0-9-{arch}/include/generated").mkdir(parents=True)
    (tmp_path / "usr/src/linux-headers-6.1.0-9-common/include/linux").mkdir(parents=True)
    res = _check(tmp_path, tmp_path / "cache")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"kernel headers: merged linux-headers-6.1.0-9-{arch}"
    assert not (tmp_path / "cache").exists()


def test_the_running_kernels_own_headers_come_first(tmp_path):
    (tmp_path / f"lib/modules/{os.uname().release}/build/include").mkdir(parents=True)
    res = _check(tmp_path, tmp_path / "cache")
    assert (res.returncode, res.stdout.strip()) == (0, "kernel headers: running kernel")
