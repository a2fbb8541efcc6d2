"""Every way out of the dashboard gives the routes back: the real `lwtui` in a real terminal.

Each case starts `python -m lwtui 10.0.0.3/32 --netns <client>` in tmux (the
helpers of test_tmux.py), waits until the header says the route is watched,
ends the dashboard one way, and judges by iproute2's dump of every route and
rule of the namespace (`route_dump`), which must equal the dump taken before,
byte for byte. The ways out: `q`; Ctrl-C (a key, since the terminal is in raw
mode); SIGTERM and SIGINT to the process (no traceback, however the signal
lands in Textual's loop); a terminal that goes away (the tmux server is
killed), with SIGHUP and without it; an exception inside a message handler of
the UI (LWTUI_FAULT=ui); and a failing refresh in the snapshot worker
(LWTUI_FAULT=snapshot), which the dashboard survives and reports. And a
route deleted under the dashboard: it says so, and `q` still ends cleanly.

Every wait has a deadline, and the tmux fixture kills whatever is left.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lwtui.kernel.pins import PIN_ROOT
from lwtui.session.state import RUN_DIR
from tests.e2e.cli import LWTUI, ROOT, lwtui_env  # noqa: F401 (lwtui_env is a fixture)
from tests.e2e.test_tmux import Tmux, _wait_gone, _zombie, all_of, tmux  # noqa: F401 (tmux is a fixture)

START_TIMEOUT = 30.0     # compile + attach + first snapshot
EXIT_TIMEOUT = 15.0      # from the key or signal to the process being gone
GONE_WITHIN = 5.0        # from the terminal going away to the routes restored and lwtui gone


def _command(topo, name: str, fault: str | None = None) -> str:
    env = f"env LWTUI_FAULT={fault} " if fault else ""
    return (f"exec {env}{sys.executable} -m lwtui {topo.server_v4}/32 --netns {topo.client_ns} "
            f"--interval 0.5 --session {name}")


def _started(tmux: Tmux, topo) -> str:
    return tmux.wait(all_of(f"routes {topo.server_v4}/32 out", "MONITOR", "q quit"),
                     "the dashboard watching the route", timeout=START_TIMEOUT)


def _exit_status(tmux: Tmux) -> str:
    """The pane's "exit N" / "signal N", failing (with the screen) past EXIT_TIMEOUT."""
    deadline = time.monotonic() + EXIT_TIMEOUT
    while (status := tmux.exit_status()) is None:
        assert time.monotonic() < deadline, f"lwtui still running after {EXIT_TIMEOUT:.0f}s:\n{tmux.screen()}"
        time.sleep(0.05)
    return status


def quit_lifting(tmux: Tmux, question: str) -> None:
    """q with active rules: the question (`question` on screen), Enter, and lwtui exits 0."""
    tmux.keys("q")
    tmux.wait(all_of(question), "the quit question")
    tmux.keys("Enter")
    assert _exit_status(tmux) == "exit 0", tmux.screen()


def _assert_restored(topo, route_dump, before: str, name: str) -> None:
    assert route_dump(topo.client_ns) == before, "the routes are not as they were before lwtui"
    assert not (RUN_DIR / f"{name}.json").exists(), "the session's state file is left behind"
    assert not (PIN_ROOT / name).exists(), "the session's pinned maps are left behind"


def _history(tmux: Tmux) -> str:
    """Everything the pane printed, not only the last screen (a traceback can be longer)."""
    return tmux._tmux("capture-pane", "-p", "-S", "-", "-t", tmux.name)


def _restored_line(topo) -> str:
    return f"on exit: {topo.server_v4}/32 (out): restored"


# -- the ways out ----------------------------------------------------------------------

def _quit_key(tmux: Tmux, topo) -> str:
    tmux.wait(all_of("No traffic yet", "Other routes in this namespace lwtui could watch",
                     "10.0.0.0/24  dev lwtui0  table main  hooks out,xmit"), "the other routes on the empty screen")
    tmux.keys("q")
    return _exit_status(tmux)


def _ctrl_c(tmux: Tmux, topo) -> str:
    tmux.keys("C-c")
    return _exit_status(tmux)


def _signal(sig: int):
    def send(tmux: Tmux, topo) -> str:
        assert b"lwtui" in Path(f"/proc/{tmux.pid}/cmdline").read_bytes()   # the pane runs lwtui itself (exec)
        os.kill(tmux.pid, sig)
        return _exit_status(tmux)
    return send


@pytest.mark.parametrize("how,status", [(_quit_key, "exit 0"), (_ctrl_c, "exit 130"),
                                        (_signal(signal.SIGTERM), "exit 143"), (_signal(signal.SIGINT), "exit 130")],
                         ids=["q", "ctrl-c", "sigterm", "sigint"])
def test_leaving_restores_the_routes(topo, tmux, route_dump, how, status):
    before = route_dump(topo.client_ns)
    tmux.start(_command(topo, tmux.name))
    _started(tmux, topo)
    assert route_dump(topo.client_ns) != before, "the dashboard runs but did not attach"
    assert how(tmux, topo) == status, _history(tmux)
    printed = _history(tmux)
    assert _restored_line(topo) in printed and "Traceback" not in printed and "Task was" not in printed, printed
    _assert_restored(topo, route_dump, before, tmux.name)


def test_terminal_going_away_restores_the_routes(topo, tmux, route_dump):
    """SIGHUP: lwtui runs as the pane's process (the terminal's session leader); the tmux server dies."""
    before = route_dump(topo.client_ns)
    tmux.start(_command(topo, tmux.name))
    _started(tmux, topo)
    pid = tmux.pid
    gone = time.monotonic()
    tmux.kill()                 # waits for the process, SIGKILLing it after 15 s
    took = time.monotonic() - gone
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    _assert_restored(topo, route_dump, before, tmux.name)    # SIGKILL would have left the state file
    print(f"terminal gone (SIGHUP): lwtui restored and ended in {took:.2f} s")
    assert took < GONE_WITHIN, f"lwtui took {took:.1f} s to end after its terminal went away"


def test_hangup_without_sighup_restores_the_routes(topo, tmux, route_dump, tmp_path):
    """The terminal goes away but no SIGHUP reaches lwtui: a shell that ignores HUP runs it and waits.

    The kernel signals only the session leader (that shell); lwtui must notice the
    hung-up terminal itself, end as SIGHUP would (129), and restore.
    """
    before = route_dump(topo.client_ns)
    status = tmp_path / "status"
    tmux.start(f"trap '' HUP; {_command(topo, tmux.name)[len('exec '):]}; echo $? > {status}")
    _started(tmux, topo)
    children = Path(f"/proc/{tmux.pid}/task/{tmux.pid}/children").read_text().split()
    assert len(children) == 1, children
    lwtui_pid = int(children[0])
    try:
        gone = time.monotonic()
        tmux.kill()             # the shell outlives the server and waits for lwtui
        deadline = gone + EXIT_TIMEOUT
        while not status.exists() or not status.read_text().strip():
            assert time.monotonic() < deadline, "lwtui did not end after its terminal went away"
            time.sleep(0.05)
        took = time.monotonic() - gone
    finally:
        if Path(f"/proc/{lwtui_pid}").exists() and not _zombie(lwtui_pid):
            os.kill(lwtui_pid, signal.SIGKILL)      # hung: the tmux fixture restores from the state file
            _wait_gone(lwtui_pid, 5.0)
    assert status.read_text().strip() == str(128 + signal.SIGHUP)
    _assert_restored(topo, route_dump, before, tmux.name)
    print(f"terminal gone (no SIGHUP): lwtui restored and ended in {took:.2f} s")
    assert took < GONE_WITHIN, f"lwtui took {took:.1f} s to notice its terminal went away"


def test_an_exception_in_the_ui_restores_and_says_one_line(topo, tmux, route_dump):
    before = route_dump(topo.client_ns)
    tmux.start(_command(topo, tmux.name, fault="ui"))     # the first snapshot's handler raises
    assert _exit_status(tmux) == "exit 1", tmux.screen()
    lines = [x for x in _history(tmux).splitlines() if x.strip() and not x.startswith("Pane is dead")]
    assert lines[-1] == "lwtui: injected fault at ui #1 (LWTUI_FAULT=ui)", "\n".join(lines)
    assert not any("Traceback" in x for x in lines), "\n".join(lines)
    _assert_restored(topo, route_dump, before, tmux.name)


def test_a_failed_refresh_is_reported_and_the_dashboard_carries_on(topo, tmux, route_dump):
    before = route_dump(topo.client_ns)
    tmux.start(_command(topo, tmux.name, fault="snapshot"))   # the first refresh fails, the next ones work
    tmux.wait(all_of("cannot read the session", "injected fault at", f"routes {topo.server_v4}/32 out"),
              "the refresh error and then the routes", timeout=START_TIMEOUT)
    tmux.keys("q")
    assert _exit_status(tmux) == "exit 0", tmux.screen()
    assert _restored_line(topo) in tmux.screen()
    _assert_restored(topo, route_dump, before, tmux.name)


def test_a_route_deleted_under_the_dashboard_is_shown_and_q_still_ends_cleanly(topo, tmux, route_dump):
    tmux.start(_command(topo, tmux.name))
    _started(tmux, topo)
    subprocess.run(["ip", "-n", topo.client_ns, "route", "del", f"{topo.server_v4}/32"], check=True, timeout=10)
    tmux.wait(all_of("no routes attached any more: press q", "Events (1 error)", "route gone"),
              "the header and the notification saying the route went away", timeout=START_TIMEOUT)
    assert "route gone (route gone)" not in tmux.screen()
    tmux.keys("q")
    assert _exit_status(tmux) == "exit 0", tmux.screen()
    after = json.loads(route_dump(topo.client_ns))
    assert not [r for r in after["route4"] + after["route6"] if "encap" in r], after
    assert not [r for r in after["route4"] if r.get("dst") == topo.server_v4], "the deleted route came back"
    assert not (RUN_DIR / f"{tmux.name}.json").exists() and not (PIN_ROOT / tmux.name).exists()


# -- no terminal -----------------------------------------------------------------------

NO_TTY = "lwtui: the dashboard needs a terminal on stdin and stdout; in pipes and scripts use `lwtui watch ROUTE`"


@pytest.mark.parametrize("argv", [["ROUTE"], [], ["demo"]], ids=["route", "picker", "demo"])
@pytest.mark.parametrize("stdin_tty,stdout_tty", [(True, False), (False, True), (False, False)],
                         ids=["stdout-piped", "stdin-at-eof", "neither"])
def test_no_terminal_is_refused_before_anything_changes(topo, route_dump, lwtui_env, argv, stdin_tty, stdout_tty):
    """`lwtui ROUTE | head -c 200` or `lwtui ROUTE < /dev/null`: exit 2 at once, one line, nothing attached."""
    argv = [f"{topo.server_v4}/32" if a == "ROUTE" else a for a in argv]
    if argv != ["demo"]:
        argv += ["--netns", topo.client_ns]
    before = route_dump(topo.client_ns), _namespaces()
    master, slave = pty.openpty()
    try:
        started = time.monotonic()
        proc = subprocess.run(LWTUI + argv, stdin=slave if stdin_tty else subprocess.DEVNULL,
                              stdout=slave if stdout_tty else subprocess.PIPE, stderr=subprocess.PIPE,
                              env=lwtui_env, cwd=ROOT, timeout=30)
        took = time.monotonic() - started
    finally:
        os.close(master)
        os.close(slave)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.splitlines() == [err.strip()] and err.startswith(NO_TTY), err
    assert took < 10, f"took {took:.1f} s"
    assert (route_dump(topo.client_ns), _namespaces()) == before, "a route changed or the demo built its lab"
    assert lwtui_env.states() == [] and lwtui_env.pin_dirs() == []


def _namespaces() -> set[str]:
    """The demo lab's namespaces that exist (other namespaces come and go with other tests)."""
    listed = json.loads(subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True,
                                       timeout=10).stdout or "[]")
    return {n["name"] for n in listed} & {"lwtui-cli", "lwtui-srv"}
