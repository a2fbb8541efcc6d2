"""Private places, session names and their locks, rule errors, limits said: the pure half.

Run dirs here are temporary directories; the kernel-facing half (bpffs, real
routes, another user) is tests/e2e/test_hostsafety.py and test_ownership.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lwtui.core import paths
from lwtui.core.grammar import parse_rule
from lwtui.core.rules import RuleError
from tests.unit.test_pins import pins, state  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["a\n", "a\nb", "\n", "", " a", "a/b", "x" * 65])
def test_names_match_whole(name):
    with pytest.raises(paths.PinError, match="invalid session name"):
        paths.valid_name(name)


def test_a_private_dir_of_another_owner_is_refused_naming_it(tmp_path):
    d = tmp_path / "theirs"
    d.mkdir(mode=0o755)
    os.chown(d, 65534, 65534)
    with pytest.raises(paths.PinError, match=rf"^{d} is owned by nobody \(uid 65534\), not root: .*`rm -r {d}`"):
        paths.open_private_dir(d)
    assert os.stat(d).st_mode & 0o777 == 0o755, "a refused directory keeps its mode"


def test_a_symlink_or_a_file_is_never_used_as_a_private_dir(tmp_path):
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "file").write_text("x")
    with pytest.raises(paths.PinError, match="link is a symlink: remove it"):
        paths.open_private_dir(tmp_path / "link")
    with pytest.raises(paths.PinError, match="file is not a directory: remove what is there"):
        paths.open_private_dir(tmp_path / "file")
    assert os.stat(target).st_mode & 0o777 == 0o755


def test_a_name_is_claimed_once(state):
    fd = state.claim("s1")
    try:
        with pytest.raises(paths.PinError, match=rf"session name 's1' is in use by a running session "
                                                 rf"\(pid {os.getpid()}\)"):
            state.claim("s1")
        assert state.holder("s1") == os.getpid()
        assert state.holder("s2") is None
    finally:
        state.release("s1", fd)
    assert state.holder("s1") is None
    state.release("s2", state.claim("s2"))
    assert sorted(os.listdir(state.RUN_DIR)) == []


def test_a_name_left_by_a_killed_session_is_refused_with_the_way_out(state):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state.SessionState("old", dead.pid, 123, 0.0, attachments=[{"target": {}}]).save()
    with pytest.raises(paths.PinError, match=rf"session 'old' was killed \(pid {dead.pid} is gone\) and still "
                                             r"holds its routes: run `lwtui detach --session old` first"):
        state.claim("old")
    state.SessionState("kept", dead.pid, 123, 0.0, kept=True).save()
    with pytest.raises(paths.PinError, match="ended with its blocks kept"):
        state.claim("kept")
    (state.RUN_DIR / "junk.json").write_text("{")
    with pytest.raises(paths.PinError, match="state file that cannot be read"):
        state.claim("junk")
    assert state.holder("old") is None


def test_state_files_are_never_read_or_written_through_a_link(state, tmp_path):
    state.SessionState("a", 1, None, 0.0).save()
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"name": "a", "pid": 1, "start_time": null, "started": 0}')
    (state.RUN_DIR / "b.json").symlink_to(elsewhere)
    assert [s.name for s in state.list_states()] == ["a"]
    state.SessionState("b", 1, None, 5.0).save()        # replaces the link, never writes through it
    assert not (state.RUN_DIR / "b.json").is_symlink()
    assert elsewhere.read_text().startswith('{"name": "a"')


def test_rule_errors_are_capped_and_escaped():
    for text in ("port 8" + "0" * 100_000, "hots " + "x" * 100_000, "host \x1b[31mred\x1b[0m",
                 "x" * 100_000 + " port 80"):
        with pytest.raises(RuleError) as e:
            parse_rule(text)
        shown = e.value.pretty()
        assert len(shown) < 1000 and "\x1b" not in shown, (len(shown), shown[:200])
        message, line, caret = shown.split("\n")
        assert caret.strip() and set(caret.strip()) == {"^"}


def test_an_error_echoes_the_offending_token_with_a_caret_under_it():
    with pytest.raises(RuleError) as e:
        parse_rule("host \x1b[31m")
    _, line, caret = e.value.pretty().split("\n")
    assert line[caret.index("^"):caret.rindex("^") + 1] == "\\x1b[31m"


def test_the_limits_are_said_in_help_and_readme():
    from lwtui.cli.entry import build_parser
    for sub in (None, "watch", "block"):
        assert "at most 4096 rules of each kind" in build_parser(sub).format_help()
    watch = " ".join(build_parser("watch").format_help().split())
    assert "112 + 64 x CPUs bytes of kernel memory" in watch and "16777216" in watch
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "at most 4,096 rules of each kind" in readme and "112 + 64 x (possible CPUs) bytes" in readme


FLOOD = """
import os, signal
from lwtui.session import signals
signals.install()
signals.guard()
log = []
try:
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    finally:                                  # unwinding towards the restore: a flood arrives
        for _ in range(2000):
            os.kill(os.getpid(), signal.SIGINT)
        with signals.critical():
            log.append("restored")
            signals.unguard()
        for _ in range(2000):                 # and more after it, on the way out
            os.kill(os.getpid(), signal.SIGTERM)
except KeyboardInterrupt:
    log.append("one KeyboardInterrupt")
signals.exiting()
os.kill(os.getpid(), signal.SIGINT)
print("; ".join(log))
"""


def test_a_flood_of_signals_cannot_skip_the_restore():
    r = subprocess.run([sys.executable, "-c", FLOOD], capture_output=True, text=True, timeout=60, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "restored; one KeyboardInterrupt"


SWALLOWED = """
import os, signal, time
from lwtui.session import signals
signals.install()
signals.guard()
def hook():                                   # a signal that lands in an at-fork hook is swallowed there
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):
        pass
os.register_at_fork(after_in_parent=hook)
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.01)
    print("lost")
except SystemExit as e:
    print("raised", e.code)
"""


def test_a_signal_swallowed_in_an_at_fork_hook_comes_again():
    r = subprocess.run([sys.executable, "-c", SWALLOWED], capture_output=True, text=True, timeout=60, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.stdout.strip() == "raised 143", (r.stdout, r.stderr)
