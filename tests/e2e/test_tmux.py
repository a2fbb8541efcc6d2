"""The real `lwtui` dashboard in a real terminal, used as a person would use it.

tmux gives the process a terminal of 140x40; the test types keys into it
(`send-keys`) and reads the screen back (`capture-pane`), asserting on what a
person would see: the flow rows and their counters, the filter note, the
notifications, the verdict markers, and after `q` the "restored" line. The
kernel is the judge of the keys: curl fails while `p` holds and works after
`a`, and `ip -j -d route` is the same after exit as before.

Each test runs its own tmux server (`tmux -L lwtui-test-...`), killed in a
finalizer together with the lwtui process, so nothing is left behind even
when an assertion fails half-way.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lwtui.session.state import RUN_DIR
from tests.e2e.traffic import http_server
from tests.ui.test_live import HTTP_AFTER, HTTP_BLOCKED, HTTP_FIRST, UDP_PORT, UDP_SPORT, curl_from, udp_from

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 140, 40
_counter = itertools.count(1)


class Tmux:
    """One tmux server with one session running one command; panes stay after the command exits."""

    def __init__(self, name: str, conf: Path):
        self.name = name
        self.base = ["tmux", "-L", name, "-f", str(conf)]
        self.pid: int | None = None
        self.server_pid: int | None = None
        self.socket: str | None = None

    def _tmux(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(self.base + list(args), capture_output=True, text=True, timeout=10, env=_stale_env())
        if check and r.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def start(self, command: str) -> None:
        self._tmux("new-session", "-d", "-s", self.name, "-x", str(WIDTH), "-y", str(HEIGHT),
                   "-c", str(ROOT), command)
        info = self._tmux("display-message", "-p", "-t", self.name, "#{pane_pid} #{pid} #{socket_path}").split()
        self.pid, self.server_pid, self.socket = int(info[0]), int(info[1]), info[2]

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def type(self, text: str) -> None:
        self.keys(text, literal=True)

    def exit_status(self) -> str | None:
        """None while the command runs; then "exit N" or "signal N".

        Debian's tmux is built with libutempter, whose own SIGCHLD handler can
        swallow the signal for a pane's exit (tmux issues #311, #4559): the
        process stays a zombie and the pane never gets its status. A zombie
        pane process means it has exited, so nudge the server with SIGCHLD.
        """
        dead, status, sig = self._tmux("display-message", "-p", "-t", self.name,
                                       "#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}").strip().split(":")
        if dead == "1" and (status or sig):
            return f"exit {status}" if status else f"signal {sig}"
        if _zombie(self.pid):
            os.kill(self.server_pid, signal.SIGCHLD)
        return None

    def wait(self, condition, what: str, timeout: float = 20.0) -> str:
        """Poll the screen until condition(screen) holds; fail showing the last screen."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if condition(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:.0f}s; the screen:\n{text}")
            time.sleep(0.1)

    def kill(self) -> None:
        """Kill the server (the command gets SIGHUP and restores its routes), then make sure it is gone."""
        self._tmux("kill-server", check=False)
        if self.pid is not None:
            _wait_gone(self.pid, 15.0)
        if self.socket:
            Path(self.socket).unlink(missing_ok=True)


def _stale_env() -> dict:
    """The environment for the tmux server and so for lwtui, with a stale COLUMNS=80/LINES=24.

    Processes that load GNU readline (pytest does) put these in their children's
    environment; lwtui must draw on the terminal it has (140x40), not on them.
    """
    return {**os.environ, "COLUMNS": "80", "LINES": "24"}


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and not _zombie(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


@pytest.fixture
def tmux(topo, tmp_path):
    """A Tmux named lwtui-test-PID-N; torn down before the topology is."""
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\nset -g status off\n")
    t = Tmux(f"lwtui-test-{os.getpid()}-{next(_counter)}", conf)
    yield t
    t.kill()
    state = RUN_DIR / f"{t.name}.json"       # left only if lwtui was SIGKILLed: restore from it
    if state.exists():
        subprocess.run([sys.executable, "-m", "lwtui", "detach", "--session", t.name], timeout=30)


@pytest.fixture
def web(topo, tmp_path):
    (tmp_path / "index.html").write_text("hello\n")
    with http_server(topo.server_ns, topo.server_v4, 8080, str(tmp_path)):
        yield f"http://{topo.server_v4}:8080/index.html"


# -- reading the flow table off the screen ---------------------------------------------

def row(screen: str, src: str, dst: str) -> dict | None:
    """The flow row from src to dst as {marker, pkts, bytes, drops (the drop/s cell)}; None when
    not (fully) on screen.

    Numeric cells are right-aligned under their right-aligned labels, so a
    cell is the text that ends where its label ends. A capture can catch a
    frame half drawn: a header without all its labels counts as no row yet.
    """
    lines = screen.splitlines()
    head = next((x for x in lines if re.search(r"\bhook\s+proto\s+source", x)), "")
    line = next((x for x in lines if f" {src} " in x and f" {dst} " in x), None)
    ends = {}
    for label in ("pkts", "bytes", "drop/s"):
        found = re.search(rf"(?<!\S){label}(?!\S)", head)
        if found is None or line is None or len(line) < found.end():
            return None
        ends[label] = found.end()

    def cell(label: str, words: int = 1) -> str:
        return " ".join(line[:ends[label]].split()[-words:])
    return {"marker": line.split()[0], "pkts": cell("pkts"), "bytes": cell("bytes", 2), "drops": cell("drop/s")}


def has_row(src: str, dst: str, **want):
    """A screen condition: the row is there and its cells equal `want`."""
    def check(screen: str) -> bool:
        r = row(screen, src, dst)
        return r is not None and all(r[k] == v for k, v in want.items())
    return check


def all_of(*conditions):
    """A screen condition: every condition holds on the same capture (a str must appear in it)."""
    return lambda s: all(c in s if isinstance(c, str) else c(s) for c in conditions)


def test_dashboard_in_a_terminal_filter_block_allow_quit(topo, web, tmux, route_dump):
    cli, srv = topo.client_v4, topo.server_v4
    http, blocked, after = (f"{cli}:{p}" for p in (HTTP_FIRST, HTTP_BLOCKED, HTTP_AFTER))
    udp_src, udp_dst, web_dst = f"{cli}:{UDP_SPORT}", f"{srv}:{UDP_PORT}", f"{srv}:8080"
    before = route_dump(topo.client_ns)
    tmux.start(f"exec {sys.executable} -m lwtui {srv}/32 --netns {topo.client_ns} --interval 0.5 "
               f"--session {tmux.name}")

    tmux.wait(all_of(f"routes {srv}/32 out", "MONITOR", f"session {tmux.name}", "q quit",
                     lambda s: len(s.splitlines()) >= HEIGHT - 1 and max(map(len, s.splitlines())) > 120),
              # all of the 140x40 terminal, despite COLUMNS/LINES
              "the header, full size")
    assert "lwtui_out" in route_dump(topo.client_ns)

    # Traffic shows up as rows, counted exactly: 20 datagrams of 100 + 28 bytes.
    assert curl_from(topo.client_ns, web, HTTP_FIRST)
    assert udp_from(topo.client_ns, 20) == 20
    tmux.wait(all_of(has_row(udp_src, udp_dst, pkts="20", bytes="2.5 KiB", marker="●"),
                     has_row(http, web_dst, marker="●", drops="·"),
                     " 2 flows", "0 events lost", "0 parse errors"), "the UDP and HTTP rows")

    # `/port 8080` + Enter: only the HTTP flow is left.
    tmux.keys("/")
    tmux.wait(all_of("Enter applies"), "the filter bar")
    tmux.type("port 8080")
    tmux.keys("Enter")
    tmux.wait(all_of("filter: port 8080 → 1 match", has_row(http, web_dst),
                     lambda s: row(s, udp_src, udp_dst) is None and udp_src not in s), "the filtered table")

    # `p` blocks the service port: the kernel drops a new connection, the screen says so.
    tmux.keys("p")
    tmux.wait(all_of("blocked port 8080/tcp", "Rules (1)"), "the block notification")
    rules = subprocess.run([sys.executable, "-m", "lwtui", "rules", "--session", tmux.name, "--json"],
                           capture_output=True, text=True, timeout=30, check=True).stdout.splitlines()
    assert [json.loads(x)["rule"] for x in rules] == ["port 8080/tcp"]
    # Its SYNs show as drops/s while they come (curl retries for 6 s, the screen is read
    # meanwhile: a rate is seen only while its window holds drops); the first connection,
    # none of whose packets the kernel judged under the rule, stays allowed (the detail
    # pane of the selected flow says so).
    with ThreadPoolExecutor(1) as pool:
        refused = pool.submit(curl_from, topo.client_ns, web, HTTP_BLOCKED, 6.0)
        tmux.wait(all_of(lambda s: (r := row(s, blocked, web_dst)) is not None and r["marker"] == "×"
                         and r["drops"].endswith("/s"),
                         has_row(http, web_dst, marker="●", drops="·"), "● allowed"),
                  "the dropped connection")
        assert not refused.result(timeout=30)

    # Clear the filter: the UDP flow kept counting, exactly what was sent (35 x 128 bytes).
    tmux.keys("/")
    tmux.wait(all_of("Enter applies"), "the filter bar")
    tmux.keys("C-u", "Enter")
    assert udp_from(topo.client_ns, 15) == 15
    tmux.wait(all_of(has_row(udp_src, udp_dst, pkts="35", bytes="4.4 KiB", marker="●", drops="·"),
                     lambda s: "filter:" not in s), "the UDP row at 35 packets")

    # `a` on the (still selected) HTTP flow lifts the rule: connections work again.
    tmux.keys("a")
    tmux.wait(all_of("allowed again: lifted port 8080/tcp", lambda s: "Rules (1)" not in s), "the allow notification")
    assert curl_from(topo.client_ns, web, HTTP_AFTER)
    tmux.wait(has_row(after, web_dst, marker="●", drops="·"), "the connection after allow")

    # `q`: the process ends, says what it restored, and the routes are as before.
    tmux.keys("q")
    deadline = time.monotonic() + 15
    while (status := tmux.exit_status()) is None:
        assert time.monotonic() < deadline, f"lwtui still running 15s after q; the screen:\n{tmux.screen()}"
        time.sleep(0.05)
    assert status == "exit 0", tmux.screen()
    assert f"on exit: {srv}/32 (out): restored" in tmux.screen()
    assert route_dump(topo.client_ns) == before
    assert not (RUN_DIR / f"{tmux.name}.json").exists()


def test_dashboard_metrics_own_cost_and_process(topo, tmux, route_dump):
    """--metrics on the dashboard: scraped counts equal what was sent; the header shows lwtui's
    own cost per packet; the detail pane names the sending process."""
    from tests.e2e.test_metrics import PORT, in_netns, scrape, value
    from tests.e2e.test_owners import start_proc, stop_proc
    srv = topo.server_v4
    before = route_dump(topo.client_ns)
    stats_before = Path("/proc/sys/kernel/bpf_stats_enabled").read_text()
    tmux.start(f"exec {' '.join(in_netns(topo.server_ns))} {sys.executable} -m lwtui {srv}/32 "
               f"--netns {topo.client_ns} --interval 0.5 --session {tmux.name} --metrics {PORT}")
    tmux.wait(all_of(f"routes {srv}/32 out", "MONITOR"), "the header")
    p, pid = start_proc(topo.client_ns, "lwtui-sender", 40200, srv, 5353, 12)
    try:
        tmux.wait(all_of(has_row(f"{topo.client_v4}:40200", f"{srv}:5353", pkts="12"),
                         lambda s: re.search(r"out \d+ ns/pkt", s) is not None,
                         f"lwtui-sender   pid {pid}   user root"), "the cost and the process")
        m = scrape(topo.server_ns)
        assert value(m, "lwtui_packets_total", route=f"{srv}/32", hook="out", verdict="allow") == 12
        assert value(m, "lwtui_bpf_runs_total", hook="out") == 12
    finally:
        stop_proc(p)
    tmux.keys("q")
    deadline = time.monotonic() + 15
    while (status := tmux.exit_status()) is None:
        assert time.monotonic() < deadline, f"lwtui still running 15s after q; the screen:\n{tmux.screen()}"
        time.sleep(0.05)
    assert status == "exit 0", tmux.screen()
    assert route_dump(topo.client_ns) == before
    assert Path("/proc/sys/kernel/bpf_stats_enabled").read_text() == stats_before
