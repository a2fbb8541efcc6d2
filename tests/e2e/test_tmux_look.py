"""The real `lwtui` in a real terminal: NO_COLOR, and `lwtui demo --prefix` beside another lab.

NO_COLOR (no-color.org) is honoured by Textual (the dashboard turns grey) and
by rich (the CLI's tables lose their colours): judged from the escape
sequences tmux holds for the screen, with the same screen in colour as the
control.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lwtui.lab.lab import Lab
from lwtui.net.netns import topology_exists
from tests.e2e.test_dashboard_exits import START_TIMEOUT, _exit_status
from tests.e2e.test_tmux import ROOT, Tmux, all_of, tmux  # noqa: F401 (tmux is a fixture)

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_GREY_CUBE = {16 + 43 * i for i in range(6)}          # 16, 59, 102, 145, 188, 231: r = g = b


def colours(escaped: str) -> set[str]:
    """Every foreground/background colour the screen sets: "5;N" (256 colours), "2;R;G;B", or "N" (basic)."""
    found = set()
    for params in _SGR.findall(escaped):
        p = params.split(";")
        i = 0
        while i < len(p):
            if p[i] in ("38", "48") and i + 1 < len(p):
                width = 3 if p[i + 1] == "5" else 5
                found.add(";".join(p[i + 1:i + width]))
                i += width
                continue
            if p[i].isdigit() and (30 <= int(p[i]) <= 47 or 90 <= int(p[i]) <= 107) and int(p[i]) % 10 not in (8, 9):
                found.add(p[i])
            i += 1
    return found


def is_grey(colour: str) -> bool:
    p = [int(x) for x in colour.split(";")]
    if len(p) == 1:                                      # basic: black, white and their bright forms
        return p[0] % 10 in (0, 7)
    if p[0] == 5:
        return p[1] >= 232 or p[1] in _GREY_CUBE or p[1] in (0, 7, 8, 15)
    return p[1] == p[2] == p[3]


def _screen_colours(tmux: Tmux, topo, env: str) -> set[str]:
    tmux.start(f"{env} exec {sys.executable} -m lwtui {topo.server_v4}/32 --netns {topo.client_ns} "
               f"--interval 0.5 --session {tmux.name}")
    tmux.wait(all_of(f"routes {topo.server_v4}/32 out", "MONITOR", "q quit"), "the dashboard",
              timeout=START_TIMEOUT)
    escaped = tmux._tmux("capture-pane", "-p", "-e", "-t", tmux.name)
    tmux.keys("q")
    assert _exit_status(tmux) == "exit 0", tmux.screen()
    tmux._tmux("kill-session", "-t", tmux.name)
    return colours(escaped)


def test_no_color_turns_the_dashboard_grey(topo, tmux):
    in_colour = _screen_colours(tmux, topo, "")
    assert [c for c in in_colour if not is_grey(c)], "the control has no colour: the test proves nothing"
    grey = _screen_colours(tmux, topo, "NO_COLOR=1")
    assert grey and [c for c in grey if not is_grey(c)] == []


def test_no_color_takes_the_colours_out_of_the_cli_tables(tmp_path):
    prefix = f"lwtui-t{os.getpid()}nc"                  # a lab that is not up: red and green words
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FORCE_COLOR": "1", "COLUMNS": "120"}

    def status(**extra) -> str:
        r = subprocess.run([sys.executable, "-m", "lwtui", "lab", "status", "--prefix", prefix],
                           capture_output=True, text=True, timeout=60, env={**env, **extra})
        assert r.returncode == 1 and "missing" in r.stdout, r.stderr
        return r.stdout
    assert [c for c in colours(status()) if not is_grey(c)], "the control has no colour"
    assert colours(status(NO_COLOR="1")) == set()


@pytest.fixture
def labs(request):
    """Lab names for this test; every one is taken down at the end, whatever happened."""
    made = []

    def make(suffix: str) -> Lab:
        lab = Lab(prefix=f"lwtui-t{os.getpid()}{suffix}", traffic=False)
        made.append(lab)
        return lab
    yield make
    for lab in made:
        lab.down()


def test_demo_runs_beside_another_lab(labs, tmp_path):
    other, mine = labs("a"), labs("b")
    other.up()
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\nset -g status off\n")
    term = Tmux(f"lwtui-test-{os.getpid()}-demo", conf)
    try:
        term.start(f"exec {sys.executable} -m lwtui demo --prefix {mine.prefix} --interval 0.5")
        term.wait(all_of(f"session {mine.prefix}-demo", f"netns {mine.prefix}-cli", "q quit"),
                  "the demo on its own lab", timeout=START_TIMEOUT + 30)
        assert topology_exists(other.prefix) and topology_exists(mine.prefix)
        term.keys("q")
        assert _exit_status(term) == "exit 0", term.screen()
    finally:
        term.kill()
    assert not topology_exists(mine.prefix), "the demo's lab is left behind"
    assert topology_exists(other.prefix), "the demo took the other lab down"
    assert not Path(f"/run/netns/{mine.prefix}-srv").exists()
