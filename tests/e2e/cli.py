"""Running the real `lwtui` command in tests: one-shot runs and long-running watches.

Each test gets private state and pin directories (LWTUI_RUN_DIR,
LWTUI_PIN_ROOT) through the `lwtui_env` fixture, so `detach --all` in a test
never touches another test's (or a user's) sessions.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LWTUI = [sys.executable, "-m", "lwtui"]
_serial = itertools.count(1)


class LwtuiEnv(dict):
    """Environment for lwtui subprocesses, with the private directories it names."""

    @property
    def run_dir(self) -> Path:
        return Path(self["LWTUI_RUN_DIR"])

    @property
    def pin_root(self) -> Path:
        return Path(self["LWTUI_PIN_ROOT"])

    def states(self) -> list[Path]:
        return sorted(self.run_dir.glob("*.json")) if self.run_dir.is_dir() else []

    def pin_dirs(self) -> list[Path]:
        return sorted(self.pin_root.iterdir()) if self.pin_root.is_dir() else []


def _remove_pins(root: Path) -> None:
    """Remove a test's pin root; links are removed, never followed."""
    if root.is_dir() and not root.is_symlink():
        for d in root.iterdir():
            is_dir = d.is_dir() and not d.is_symlink()
            for p in d.iterdir() if is_dir else ():
                p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
            d.rmdir() if is_dir else d.unlink()
        root.rmdir()


@pytest.fixture
def lwtui_env(tmp_path) -> LwtuiEnv:
    env = LwtuiEnv(os.environ)
    env.pop("SSH_CONNECTION", None)
    env["PYTHONPATH"] = str(ROOT)
    env["LWTUI_RUN_DIR"] = str(tmp_path / "run")
    env["LWTUI_PIN_ROOT"] = f"/sys/fs/bpf/lwtui-test-{os.getpid()}-{next(_serial)}"
    yield env
    _remove_pins(env.pin_root)


def run(env: dict, *argv: str, timeout: float = 60, python: list[str] | None = None,
        cwd: Path = ROOT, **kw) -> subprocess.CompletedProcess:
    """`lwtui ARGV` to completion (bounded by `timeout`)."""
    return subprocess.run((python or LWTUI) + list(argv), capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd, **kw)


@pytest.fixture(scope="session")
def world_readable_copy():
    """lwtui and its environment's packages where an unprivileged user can read them.

    The checkout may sit under a private home (/root is 0700): an unprivileged
    lwtui must get as far as its own privilege check to be tested.
    """
    import sysconfig
    import tempfile
    top = Path(tempfile.mkdtemp(prefix="lwtui-world-"))
    try:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(ROOT / "lwtui", top / "src" / "lwtui", ignore=ignore)
        shutil.copytree(ROOT / "bpf", top / "src" / "bpf", ignore=ignore)
        shutil.copytree(sysconfig.get_paths()["purelib"], top / "site", ignore=ignore)
        for p in [top, *top.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def ok(env: dict, *argv: str, **kw) -> subprocess.CompletedProcess:
    r = run(env, *argv, **kw)
    assert r.returncode == 0, f"lwtui {' '.join(argv)} -> {r.returncode}: {r.stderr}"
    return r


class Watch:
    """A running `lwtui watch --json` whose JSON lines are collected by a thread."""

    def __init__(self, env: dict, argv: list[str], prefix: list[str] = (), **popen):
        """`prefix`: a command that runs lwtui (e.g. nsenter into a network namespace)."""
        self.proc = subprocess.Popen([*prefix, *LWTUI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, cwd=ROOT, **popen)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self._stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True).start()

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"type": "text", "text": line})
        self.lines.put(None)

    def drain(self) -> None:
        """Move every line received so far into `seen`."""
        while True:
            try:
                d = self.lines.get_nowait()
            except queue.Empty:
                return
            if d is not None:
                self.seen.append(d)

    def wait_for(self, pred, timeout: float = 20.0, what: str = "a line") -> dict:
        """The first line (already seen, or from now on) for which pred holds."""
        for d in self.seen:
            if pred(d):
                return d
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                d = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if d is None:
                self.proc.wait(timeout=10)
                raise AssertionError(f"watch exited ({self.proc.returncode}) before {what}: {self.stderr}")
            self.seen.append(d)
            if pred(d):
                return d
        raise AssertionError(f"no {what} within {timeout}s; last lines: {self.seen[-4:]}")

    def session(self, timeout: float = 20.0) -> dict:
        return self.wait_for(lambda d: d["type"] == "session", timeout=timeout, what="the session line")

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        time.sleep(0)   # let the reader threads see EOF
        return code

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.send(sig)
        return self.wait()


@pytest.fixture
def watch(lwtui_env):
    """watch(*argv, env=None, prefix=()) -> a started Watch whose session line has arrived; stopped after the test."""
    started = []

    def start(*argv: str, env: dict | None = None, ready: bool = True, prefix: list[str] = ()) -> Watch:
        w = Watch(env or lwtui_env, ["watch", *argv, "--json"], prefix=prefix)
        started.append(w)
        if ready:
            w.session()
        return w

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
            try:
                w.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.proc.kill()


def which(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is needed for this test: apt-get install -y util-linux"
    return path
