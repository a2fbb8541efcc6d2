"""No file of the host at risk, and every unready place refused in one line.

bpffs is mounted 1777: any user can make lwtui's pin root before root runs
lwtui, and put links in it. These tests play that user (`nobody`, through
setpriv) against the real command: lwtui refuses what it does not own, follows
no symlink, removes only the maps it pinned, and a victim directory elsewhere
keeps every file and its mode. Also: every command as `nobody` while a session
runs, a file in place of the run directory, a read-only run directory, and a
pin root that is not on a bpffs: one line, exit 2, nothing touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lwtui.kernel.pins import PINNED_MAPS

from tests.e2e.cli import lwtui_env, run, watch, which, world_readable_copy  # noqa: F401 (fixtures)

pytestmark = pytest.mark.host_wide     # see tests/conftest.py

NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"]
V4 = "10.0.0.3/32"


def as_nobody(*argv: str) -> None:
    r = subprocess.run([which("setpriv"), *NOBODY, *argv], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, f"{' '.join(argv)} as nobody: {r.stderr}"


def lwtui_as_nobody(env: dict, top: Path, *argv: str) -> subprocess.CompletedProcess:
    env = dict(env, PYTHONPATH=f"{top / 'src'}:{top / 'site'}")
    return run(env, *argv, cwd=top, timeout=60,
               python=[which("setpriv"), *NOBODY, os.path.realpath(sys.executable), "-m", "lwtui"])


@pytest.fixture
def victim(tmp_path) -> Path:
    """A directory of root's with files that nobody may touch (0755, files 0644)."""
    d = tmp_path / "victim"
    d.mkdir()
    for i in range(3):
        (d / f"precious{i}").write_text(f"keep me {i}\n")
    os.chmod(d, 0o755)
    os.chmod(tmp_path, 0o755)
    return d


def snapshot(d: Path) -> dict:
    return {"mode": stat.S_IMODE(os.lstat(d).st_mode),
            "files": {p.name: p.read_text() for p in sorted(d.iterdir())}}


def one_line(r: subprocess.CompletedProcess, says: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == "", r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("lwtui: "), r.stderr
    assert says in r.stderr, r.stderr


# -- 1. a pin root another user made --------------------------------------------------

def test_a_pin_root_made_by_another_user_is_refused_and_its_links_never_followed(
        topo, route_dump, lwtui_env, victim):
    root = lwtui_env.pin_root
    as_nobody("mkdir", str(root))
    as_nobody("ln", "-s", str(victim), str(root / "mine"))
    before, files = route_dump(topo.client_ns), snapshot(victim)
    try:
        r = run(lwtui_env, "watch", V4, "--netns", topo.client_ns, "--session", "mine", "--duration", "5")
        one_line(r, f"lwtui: {root} is owned by nobody (uid 65534), not root: another user may have put files "
                    f"there; remove it as root (`rm -r {root}`)")
        for argv in (["detach", "--all"], ["detach", "--session", "mine"], ["block", "port", "80"]):
            r = run(lwtui_env, *argv)
            assert r.returncode in (0, 2) and "Traceback" not in r.stderr, (argv, r.stderr)
        assert snapshot(victim) == files
        assert route_dump(topo.client_ns) == before
        assert os.path.islink(root / "mine"), "lwtui removed what it did not make"
    finally:
        os.unlink(root / "mine")


def test_a_link_in_place_of_a_session_dir_is_refused(topo, route_dump, lwtui_env, victim):
    """A root-owned pin root that was open to everyone (0777): lwtui makes it 0700,
    but refuses the link another user put there before."""
    root = lwtui_env.pin_root
    root.mkdir()
    os.chmod(root, 0o777)
    as_nobody("ln", "-s", str(victim), str(root / "mine"))
    before, files = route_dump(topo.client_ns), snapshot(victim)
    try:
        r = run(lwtui_env, "watch", V4, "--netns", topo.client_ns, "--session", "mine", "--duration", "5")
        one_line(r, f"lwtui: {root / 'mine'} is a symlink: remove it (`rm {root / 'mine'}`)")
        assert stat.S_IMODE(os.lstat(root).st_mode) == 0o700
        assert snapshot(victim) == files and route_dump(topo.client_ns) == before
    finally:
        os.unlink(root / "mine")


def test_cleanup_removes_only_the_maps_it_pinned(topo, route_dump, watch, lwtui_env, victim):
    before, files = route_dump(topo.client_ns), snapshot(victim)
    w = watch(V4, "--netns", topo.client_ns, "--session", "tidy", "--interval", "0.2")
    pin_dir = lwtui_env.pin_root / "tidy"
    assert sorted(p.name for p in pin_dir.iterdir()) == sorted(PINNED_MAPS)
    os.symlink(victim, pin_dir / "extra")
    assert w.stop() == 143 and "Traceback" not in w.stderr
    assert [p.name for p in pin_dir.iterdir()] == ["extra"], "only lwtui's own maps go"
    assert snapshot(victim) == files and route_dump(topo.client_ns) == before
    said = f"lwtui: {pin_dir} still holds extra, which lwtui did not put there: left alone; remove it by hand"
    assert said in w.stderr, w.stderr       # what is left is named, not passed over in silence
    r = run(lwtui_env, "detach", "--all")   # an orphaned directory: named again, nothing followed
    assert r.returncode == 1 and f"{pin_dir} still holds extra" in r.stdout, (r.returncode, r.stdout)
    assert "orphaned pin dir" not in r.stdout and os.path.islink(pin_dir / "extra")
    assert snapshot(victim) == files
    os.unlink(pin_dir / "extra")
    r = run(lwtui_env, "detach", "--all")
    assert r.returncode == 0 and "removed 1 orphaned pin dir(s)" in r.stdout, r.stdout
    assert not pin_dir.exists() and snapshot(victim) == files


def test_a_session_dir_swapped_for_a_link_while_running(topo, route_dump, watch, lwtui_env, victim):
    """The second way in: while a session runs, rename its pin directory and put a link in its
    place. As nobody it cannot be done (lwtui made the pin root root's 0700); done as root
    anyway, the exit restores the routes and follows no link."""
    before, files = route_dump(topo.client_ns), snapshot(victim)
    w = watch(V4, "--netns", topo.client_ns, "--session", "swap", "--interval", "0.2")
    root = lwtui_env.pin_root
    st = os.lstat(root)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)
    r = subprocess.run([which("setpriv"), *NOBODY, "mv", str(root / "swap"), str(root / "moved")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    os.rename(root / "swap", root / "moved")
    os.symlink(victim, root / "swap")
    try:
        code = w.stop(signal.SIGINT)
        assert snapshot(victim) == files, "lwtui followed the link"
        assert route_dump(topo.client_ns) == before and lwtui_env.states() == []
        assert "Traceback" not in w.stderr, w.stderr
        assert code == 1 and w.stderr.count("\n") == 1, (code, w.stderr)    # 1: at run time, not "nothing changed"
        assert w.stderr.startswith(f"lwtui: the routes are restored, but not the session's pins: {root / 'swap'} "
                                   "is a symlink"), w.stderr
        assert os.path.islink(root / "swap")
        assert sorted(p.name for p in (root / "moved").iterdir()) == sorted(PINNED_MAPS)
    finally:
        os.unlink(root / "swap")


# -- 7 and 9.15. every command as nobody while a session runs --------------------------

NOBODY_COMMANDS = [
    [V4, "--netns", "{cli}"],
    ["watch", V4, "--netns", "{cli}"],
    ["watch", V4, "--netns", "{cli}", "--session", "{name}"],
    ["block", "port", "80"], ["allow", "port", "80"], ["rules"], ["sessions"], ["sessions", "--json"],
    ["detach", "--all"], ["detach", "--session", "{name}"],
    ["lab", "up", "--prefix", "lwtui-nobody"], ["lab", "down", "--prefix", "lwtui-nobody"],
    ["lab", "status", "--prefix", "lwtui-nobody"], ["demo"],
]


def test_every_command_as_nobody_is_one_line_exit_2_and_touches_nothing(
        topo, route_dump, watch, lwtui_env, world_readable_copy):
    w = watch(V4, "--netns", topo.client_ns, "--interval", "0.2")
    name = w.session()["name"]
    os.chmod(lwtui_env.run_dir.parent, 0o755)   # the private dirs stay root-only; lwtui must say why
    places = lwtui_env.run_dir, lwtui_env.pin_root
    listing = lambda: {p: sorted(os.listdir(p)) for p in places}  # noqa: E731
    before = route_dump(topo.client_ns), route_dump(topo.server_ns), listing()
    for argv in NOBODY_COMMANDS:
        argv = [a.format(cli=topo.client_ns, name=name) for a in argv]
        r = lwtui_as_nobody(lwtui_env, world_readable_copy, *argv)
        assert r.returncode == 2, (argv, r.returncode, r.stderr, r.stdout)
        assert "Traceback" not in r.stderr and r.stdout == "", (argv, r.stderr, r.stdout)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("lwtui: "), (argv, r.stderr)
        assert "root" in r.stderr or "terminal" in r.stderr, (argv, r.stderr)
        assert (route_dump(topo.client_ns), route_dump(topo.server_ns), listing()) == before, argv
    # doctor is for finding out what is missing: every check, the fixes, exit 1 (not ready)
    r = lwtui_as_nobody(lwtui_env, world_readable_copy, "doctor")
    assert r.returncode == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    failed = [x for x in r.stdout.splitlines() if x.startswith("FAIL")]
    assert failed[0].split()[1:3] == ["privileges", "not"], r.stdout
    assert all("root" in x for x in failed), r.stdout      # every check that failed says why: root
    assert (route_dump(topo.client_ns), route_dump(topo.server_ns), listing()) == before, "doctor"
    assert "lwtui-nobody" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert w.stop() == 143


# -- 7. places that cannot be used, as root ---------------------------------------------

def test_a_file_in_place_of_the_run_directory(topo, route_dump, lwtui_env):
    lwtui_env.run_dir.write_text("not a directory\n")
    before = route_dump(topo.client_ns)
    r = run(lwtui_env, "watch", V4, "--netns", topo.client_ns, "--duration", "5")
    one_line(r, f"lwtui: {lwtui_env.run_dir} is not a directory: remove what is there")
    assert route_dump(topo.client_ns) == before and lwtui_env.pin_dirs() == []
    for argv in (["sessions"], ["detach", "--all"]):
        one_line(run(lwtui_env, *argv), "is not a directory")


@pytest.fixture
def read_only_run_dir(lwtui_env):
    d = lwtui_env.run_dir
    d.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,mode=0700", "lwtui-ro", str(d)], check=True, timeout=10)
    yield d
    subprocess.run(["umount", str(d)], check=True, timeout=10)


def test_a_read_only_run_directory(topo, route_dump, lwtui_env, read_only_run_dir):
    before = route_dump(topo.client_ns)
    r = run(lwtui_env, "watch", V4, "--netns", topo.client_ns, "--duration", "5")
    one_line(r, f"lwtui: cannot write {read_only_run_dir}/")
    assert "Read-only file system): remount it read-write" in r.stderr
    assert route_dump(topo.client_ns) == before and lwtui_env.pin_dirs() == []


def test_a_pin_root_that_is_not_bpffs(topo, route_dump, lwtui_env, tmp_path):
    env = dict(lwtui_env, LWTUI_PIN_ROOT=str(tmp_path / "pins"))
    before = route_dump(topo.client_ns)
    r = run(env, "watch", V4, "--netns", topo.client_ns, "--duration", "5")
    one_line(r, f"lwtui: {tmp_path / 'pins'} is not on a bpffs, so maps cannot be pinned there")
    assert route_dump(topo.client_ns) == before and lwtui_env.states() == []
    shutil.rmtree(tmp_path / "pins")
