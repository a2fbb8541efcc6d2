"""lwtui.session.signals and lwtui.session.faults: signals held during a restore, faults on demand.

Each signal test runs in a fresh interpreter (handlers are process-wide).
"""

from __future__ import annotations

import os
import threading
import subprocess
import sys
from pathlib import Path

import pytest

from lwtui.session import faults

ROOT = Path(__file__).resolve().parents[2]


def _py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


HELD = """
import os, signal
from lwtui.session import signals
signals.install()
log = []
try:
    with signals.critical():
        os.kill(os.getpid(), signal.SIG{name})
        for _ in range(1000):
            pass                      # the handler has run by now: the signal is held
        log.append("restore finished")
        log.append(f"held {{signals.pending()}}")
    log.append("after the block")
except BaseException as e:
    log.append(f"raised {{type(e).__name__}} {{getattr(e, 'code', '')}}")
print("; ".join(log))
"""


@pytest.mark.parametrize("name,raised", [("INT", "KeyboardInterrupt"), ("TERM", "Terminated 143"),
                                         ("HUP", "Terminated 129")])
def test_a_signal_during_a_critical_block_is_delivered_after_it(name, raised):
    r = _py(HELD.format(name=name))
    assert r.returncode == 0, r.stderr
    num = {"INT": 2, "TERM": 15, "HUP": 1}[name]
    assert r.stdout.strip() == f"restore finished; held [{num}]; raised {raised}"


def test_without_critical_a_signal_raises_at_once():
    r = _py("import os, signal\nfrom lwtui.session import signals\nsignals.install()\n"
            "try:\n    os.kill(os.getpid(), signal.SIGTERM)\n    for _ in range(1000): pass\n    print('not raised')\n"
            "except SystemExit as e:\n    print('raised', e.code)\n")
    assert r.stdout.strip() == "raised 143"


def test_faults_fire_once_at_the_nth_pass(monkeypatch):
    monkeypatch.setenv(faults.ENV, "attach:3, reader")
    monkeypatch.setattr(faults, "_counts", {})
    faults.check("snapshot")
    faults.check("attach")
    faults.check("attach")
    with pytest.raises(faults.InjectedFault, match=r"injected fault at attach #3 \(LWTUI_FAULT=attach:3, reader\)"):
        faults.check("attach")
    faults.check("attach")
    with pytest.raises(faults.InjectedFault, match="reader #1"):
        faults.check("reader")


def test_no_faults_without_the_variable(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    for _ in range(5):
        faults.check("attach")


SWALLOWED = """
import os, signal, threading, time
from lwtui.session import signals
signals.install()
signals.guard()                     # a session is open
start = threading.Thread.start


def start_hit(self):                # the next signal of a flood lands while the hook starts its timer
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):
        pass
    start(self)


threading.Thread.start = start_hit


class Finaliser:
    def __del__(self):              # a signal that raises here is swallowed: unraisable
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass


try:
    Finaliser()
    threading.Thread.start = start
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        time.sleep(0.01)
    print("lost")
except KeyboardInterrupt:
    print("delivered")
"""


def test_a_signal_swallowed_in_a_finaliser_is_delivered_even_when_the_next_lands_in_the_hook():
    """A flood: the first Ctrl-C raises inside a finaliser (swallowed), the next one lands while
    the unraisable hook arranges its redelivery; one of them must still end the program."""
    r = _py(SWALLOWED)
    assert r.stdout.strip() == "delivered", r.stderr[-2000:]
    assert "Exception ignored in sys.unraisablehook" not in r.stderr, r.stderr[-2000:]


def test_close_restores_when_the_route_checker_never_started():
    """A signal in threading.Thread.start() (start()'s last steps) can leave the route checker
    created but never running: close() must still reach the restore, not fail on joining it."""
    from lwtui.net.routes import Target
    from lwtui.session.live import Session
    s = Session([Target("10.0.0.3/32", "out")], name="lwtui-unit-checker")
    s._checker = threading.Thread(target=lambda: None)     # created, never started
    assert s.close() == [] and s.closed
