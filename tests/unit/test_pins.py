"""State files: modes, round trip, status, listing and cleanup (a temporary run dir, no bpffs)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

from lwtui.core import paths, procs


@pytest.fixture
def pins(tmp_path, monkeypatch):
    monkeypatch.setenv("LWTUI_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("LWTUI_PIN_ROOT", str(tmp_path / "pins"))
    import lwtui.kernel.pins
    mod = importlib.reload(lwtui.kernel.pins)
    yield mod
    monkeypatch.undo()
    importlib.reload(lwtui.kernel.pins)


@pytest.fixture
def state(pins):
    """lwtui.session.state reloaded over the temporary places of `pins`."""
    import lwtui.session.state
    yield importlib.reload(lwtui.session.state)
    importlib.reload(lwtui.session.state)


def _mode(p) -> int:
    return os.stat(p).st_mode & 0o777


def test_state_file_is_root_only_and_round_trips(pins, state):
    st = state.SessionState(name="s1", pid=os.getpid(), start_time=procs.proc_start_time(os.getpid()),
                           started=1.5, attachments=[{"target": {"prefix": "10.0.0.3/32"}}], keep_blocks=True)
    st.save()
    assert _mode(state.RUN_DIR) == 0o700 and _mode(st.path) == 0o600
    back = state.SessionState.load(st.path)
    assert back == st and back.status == "running"
    assert json.loads(st.path.read_text())["keep_blocks"] is True
    st.remove()
    st.remove()
    assert not st.path.exists()


def test_an_existing_run_dir_is_made_private(pins, state):
    state.RUN_DIR.mkdir(mode=0o755)
    os.chmod(state.RUN_DIR, 0o755)
    state.SessionState(name="s2", pid=1, start_time=None, started=0).save()
    assert _mode(state.RUN_DIR) == 0o700


def test_status_running_stale_kept(pins, state):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = procs.proc_start_time(os.getpid())
    assert state.SessionState("a", os.getpid(), mine, 0).status == "running"
    assert state.SessionState("b", os.getpid(), (mine or 0) + 1, 0).status == "stale", "pid reused by another process"
    assert state.SessionState("c", dead.pid, 123, 0).status == "stale"
    assert state.SessionState("d", dead.pid, 123, 0, kept=True).status == "kept"


def test_list_states_skips_garbage_and_orders_by_start(pins, state):
    for name, started in (("late", 20.0), ("early", 10.0)):
        state.SessionState(name, 1, None, started).save()
    (state.RUN_DIR / "broken.json").write_text("{not json")
    (state.RUN_DIR / "partial.tmp1").write_text("{")
    assert [s.name for s in state.list_states()] == ["early", "late"]


def test_remove_stale_tmp_keeps_live_writers(pins, state):
    state.RUN_DIR.mkdir(mode=0o700)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (state.RUN_DIR / f"x.tmp{dead.pid}").write_text("{")
    (state.RUN_DIR / f"y.tmp{os.getpid()}").write_text("{")
    assert [p.name for p in state.remove_stale_tmp()] == [f"x.tmp{dead.pid}"]
    assert [p.name for p in state.RUN_DIR.iterdir()] == [f"y.tmp{os.getpid()}"]


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "x" * 65, "sp ace", "../up"])
def test_invalid_session_names(pins, name):
    with pytest.raises(pins.PinError, match="invalid session name"):
        paths.valid_name(name)


def test_bpffs_that_cannot_be_mounted_names_the_fix(pins, tmp_path):
    with pytest.raises(pins.PinError, match=r"cannot mount bpffs at .*nowhere.*: run `mount -t bpf bpf "):
        pins.ensure_bpffs(tmp_path / "nowhere")


def test_a_zombie_is_not_alive(pins):
    import subprocess
    import time
    child = subprocess.Popen(["true"])
    start = procs.proc_start_time(child.pid)
    deadline = time.monotonic() + 5
    while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)
    try:
        assert start is not None and not procs.pid_alive(child.pid, start)
    finally:
        child.wait()
    assert not procs.pid_alive(child.pid, start)
