"""The demo lab: two namespaces, servers in one, bounded traffic from the other.

`Lab.up()` builds the topology of lwtui.net.netns, starts `python -m lwtui.lab.traffic serve` in the
server namespace (HTTP on 10.0.0.3:8080 and [fd00:6c77::3]:8081, a UDP sink on
port 5353 of both) and, with traffic on, its `client` in the client
namespace. Both run detached, so `lwtui lab up` returns while they keep going,
and both stop by themselves after `lifetime` seconds. Their pids, logs, stats and
the served files live in /run/lwtui/lab-<prefix>/, which lets `lab status` and
`lab down` work from any later process. Traffic only ever goes between the two
namespaces: the client namespace has routes to the server's addresses alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lwtui.lab import traffic as labtraffic
from lwtui.net.netns import Topology, create_topology, destroy_topology, ns_exec, topology_exists
from lwtui.session.state import RUN_DIR
from lwtui.core.names import endpoint
from lwtui.core.procs import proc_start_time

DEFAULT_LIFETIME = 3600.0
BULK_SIZE = 2 * 1024 * 1024
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 3.0
_PREFIX_RE = re.compile(r"^lwtui[A-Za-z0-9_.-]{0,20}$")
INDEX_HTML = """<!doctype html>
<html><head><title>lwtui lab</title></head>
<body><h1>lwtui lab</h1><p>Served from the lab's server namespace.</p></body></html>
"""


class LabError(RuntimeError):
    """The lab could not be built or taken down; the message names the fix."""


def _alive(pid: int, start_time: int | None) -> bool:
    """The process runs (not a zombie) and is the one we started (same start time)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:         # no such process
        return False
    return fields[0] != "Z" and (start_time is None or int(fields[19]) == start_time)


def netns_pids(ns: str) -> list[int]:
    """Pids of every process inside namespace `ns` (`ip netns pids`)."""
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10)
    return [int(x) for x in r.stdout.split()] if r.returncode == 0 else []


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return {n["name"] for n in json.loads(out)} if out.strip() else set()


class Lab:
    """One lab, named by its prefix; every method works from a fresh process too."""

    PROCS = ("server", "client")

    def __init__(self, prefix: str = "lwtui", traffic: bool = True, lifetime: float = DEFAULT_LIFETIME):
        if not _PREFIX_RE.match(prefix):
            raise LabError(f"lab prefix {prefix!r} must start with 'lwtui' and be at most 25 letters, "
                           "digits, '.', '_' or '-'")
        self.prefix = prefix
        self.traffic = traffic
        self.lifetime = lifetime
        self.topology = Topology(prefix=prefix, client_ns=f"{prefix}-cli", server_ns=f"{prefix}-srv")
        self.state_dir = RUN_DIR / f"lab-{prefix}"
        self._procs: dict[str, subprocess.Popen] = {}   # ours to reap, when this process started them

    # -- up ------------------------------------------------------------------

    def up(self) -> Topology:
        """Build the lab and start its servers (and traffic); on any failure remove all of it."""
        t = self.topology
        if topology_exists(self.prefix):
            raise LabError(f"lab {self.prefix!r} is already up ({t.client_ns}, {t.server_ns}): "
                           f"use it, or run `lwtui lab down --prefix {self.prefix}` first")
        try:
            self._write_files()
            create_topology(self.prefix)
            self._start("server", t.server_ns, ["--www", str(self.state_dir / "www")])
            self._wait_ready("server")
            if self.traffic:
                self._start("client", t.client_ns, [])
        except BaseException:
            self.down()
            raise
        return t

    def _write_files(self) -> None:
        """State dir (0700) with the served files and the lab's settings."""
        if self.state_dir.exists():  # left by a lab whose namespaces are gone
            shutil.rmtree(self.state_dir)
        www = self.state_dir / "www"
        www.mkdir(mode=0o700, parents=True)
        os.chmod(self.state_dir, 0o700)
        (www / "index.html").write_text(INDEX_HTML)
        chunk = bytes(range(256)) * 4096
        with open(www / labtraffic.BULK_NAME, "wb") as f:
            for _ in range(BULK_SIZE // len(chunk)):
                f.write(chunk)
        labtraffic.write_json(self.state_dir / "lab.json", {
            "prefix": self.prefix, "started": time.time(), "lifetime": self.lifetime,
            "traffic": self.traffic})

    def _start(self, name: str, ns: str, extra: list[str]) -> None:
        """Start `labtraffic NAME` in `ns`, detached, logging to NAME.log, pid in NAME.pid."""
        t = self.topology
        cmd = "serve" if name == "server" else "client"
        argv = [sys.executable, "-m", "lwtui.lab.traffic", cmd, "--v4", t.server_v4, "--v6", t.server_v6,
                "--stats", str(self.state_dir / f"{name}.json"), "--lifetime", str(self.lifetime), *extra]
        pkg_root = str(Path(__file__).resolve().parents[2])  # the directory holding lwtui/
        env = dict(os.environ, PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [pkg_root, os.environ.get("PYTHONPATH")])))
        with open(self.state_dir / f"{name}.log", "wb") as log:
            p = ns_exec(ns, argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        env=env, start_new_session=True)
        self._procs[name] = p
        # `ip netns exec` execs in place, so this pid is labtraffic's own.
        (self.state_dir / f"{name}.pid").write_text(f"{p.pid} {proc_start_time(p.pid)}\n")

    def _wait_ready(self, name: str) -> None:
        """Poll the stats file until the process says its sockets are bound."""
        p, stats = self._procs[name], self.state_dir / f"{name}.json"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._read_json(stats).get("ready"):
                return
            if p.poll() is not None:
                raise LabError(f"lab {name} exited with {p.returncode}: {self._log_tail(name)}")
            time.sleep(0.02)
        raise LabError(f"lab {name} not ready after {READY_TIMEOUT:.0f} s: {self._log_tail(name)}")

    def _log_tail(self, name: str) -> str:
        try:
            lines = (self.state_dir / f"{name}.log").read_text(errors="replace").strip().splitlines()
        except OSError:     # the log only adds detail to an error already being raised
            return "no log"
        return " | ".join(lines[-5:]) or "empty log"

    @staticmethod
    def _read_json(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):   # no (or a half-written) lab state: status says the lab is not up
            return {}

    # -- down ----------------------------------------------------------------

    def down(self) -> None:
        """Stop every process of the lab, delete the namespaces and the state dir; idempotent."""
        found = [self._pidfile(n) for n in self.PROCS]
        pids = [p for p in found if p is not None]
        for pid, start in pids:
            if _alive(pid, start):
                self._kill(pid, signal.SIGTERM)
        self._await_exit(pids)
        t = self.topology
        present = _netns_names()
        for ns in (t.client_ns, t.server_ns):
            if ns in present:
                stray = [(pid, proc_start_time(pid)) for pid in netns_pids(ns)]
                for pid, _ in stray:
                    self._kill(pid, signal.SIGKILL)
                self._await_exit(stray)
        self._procs.clear()
        destroy_topology(self.prefix)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        left = [ns for ns in (t.client_ns, t.server_ns) if ns in _netns_names()]
        if left:
            raise LabError(f"could not delete namespace(s) {', '.join(left)}: run `ip netns del NAME`")

    def _pidfile(self, name: str) -> tuple[int, int | None] | None:
        try:
            pid, start = (self.state_dir / f"{name}.pid").read_text().split()
            return int(pid), None if start == "None" else int(start)
        except (OSError, ValueError):   # no pid file: that process was never started or is cleaned up
            return None

    @staticmethod
    def _kill(pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:      # gone already: what the kill wanted
            pass

    def _await_exit(self, pids: list[tuple[int, int | None]]) -> None:
        """Wait (bounded) for `pids` to end, reaping the ones we started; SIGKILL the rest."""
        deadline = time.monotonic() + STOP_TIMEOUT
        for p in self._procs.values():
            if any(p.pid == pid for pid, _ in pids):
                try:
                    p.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        while any(_alive(pid, st) for pid, st in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid, st in pids:
            if _alive(pid, st):
                self._kill(pid, signal.SIGKILL)

    # -- status --------------------------------------------------------------

    def status(self) -> dict:
        """What is there: namespaces, processes and their counters, addresses, services.

        "up" means both namespaces exist and the server runs; "traffic" that the
        client runs too.
        """
        t = self.topology
        present = _netns_names()
        procs = {}
        for name in self.PROCS:
            pf = self._pidfile(name)
            if pf is not None:
                procs[name] = {"pid": pf[0], "alive": _alive(*pf),
                               "stats": self._read_json(self.state_dir / f"{name}.json")}
        namespaces = {ns: ns in present for ns in (t.client_ns, t.server_ns)}
        alive = {n: procs.get(n, {}).get("alive", False) for n in self.PROCS}
        return {
            "prefix": self.prefix,
            "up": all(namespaces.values()) and alive["server"],
            "traffic": alive["client"],
            "namespaces": namespaces,
            "processes": procs,
            "addresses": {t.client_ns: [t.client_v4, t.client_v6], t.server_ns: [t.server_v4, t.server_v6]},
            "services": [f"http://{endpoint(t.server_v4, labtraffic.HTTP4_PORT)}/",
                         f"http://{endpoint(t.server_v6, labtraffic.HTTP6_PORT)}/",
                         f"udp {endpoint(t.server_v4, labtraffic.UDP_PORT)}", f"udp {endpoint(t.server_v6, labtraffic.UDP_PORT)}"],
            "settings": self._read_json(self.state_dir / "lab.json"),
            "state_dir": str(self.state_dir),
        }
