"""Attribution: the pid and command of the process behind a flow, in the route's namespace.

The oracle is the process itself: it names itself (prctl PR_SET_NAME) and
reports its pid before it sends or receives. A sender that exited before
lwtui looked stays unknown.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.e2e.cli import lwtui_env, watch  # noqa: F401 (fixtures)
from tests.e2e.traffic import udp_send

# Names itself, binds a UDP socket, reports its pid, sends N datagrams (N=0: only listens),
# then stays until killed (at most 60 s).
PROC = """
import ctypes, os, signal, socket, sys
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)   # PR_SET_NAME
signal.alarm(60)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', int(sys.argv[2])))
print(os.getpid(), flush=True)
for _ in range(int(sys.argv[5])):
    s.sendto(b'x' * 100, (sys.argv[3], int(sys.argv[4])))
print('sent', flush=True)
sys.stdin.read()
"""


def start_proc(ns: str, name: str, port: int, dst: str = "0.0.0.0", dport: int = 0, n: int = 0):
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PROC, name, str(port), dst, str(dport),
                          str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid = int(p.stdout.readline())
    assert p.stdout.readline().strip() == "sent"
    return p, pid


def stop_proc(p) -> None:
    p.kill()
    p.wait(timeout=10)


@pytest.mark.parametrize("hook", ["out", "in"])
def test_pid_and_comm_of_the_local_socket(topo, watch, hook):
    ns, other = (topo.client_ns, topo.server_ns) if hook == "out" else (topo.server_ns, topo.client_ns)
    port = 40100 if hook == "out" else 5353
    # A decoy on the same port in the other namespace: only the route's namespace counts.
    decoy, _ = start_proc(other, "lwtui-decoy", port)
    w = watch(f"{topo.server_v4}/32", "--hook", hook, "--netns", ns, "--interval", "0.2", "--duration", "120")
    if hook == "out":   # the sender is local to the client's route
        p, pid = start_proc(topo.client_ns, "lwtui-sender", port, topo.server_v4, 5353, 5)
        match = dict(sport=port, dport=5353, packets=5)
    else:               # the receiver is local to the server's local route
        p, pid = start_proc(topo.server_ns, "lwtui-recv", port)
        sport, sent = udp_send(topo.client_ns, topo.server_v4, port, 5, 100)
        assert sent == 5
        match = dict(sport=sport, dport=port, packets=5)
    try:
        f = w.wait_for(lambda d: d["type"] == "flow" and d["hook"] == hook and "pid" in d
                       and all(d.get(k) == v for k, v in match.items()), what=f"a {hook} flow with its process")
        assert (f["pid"], f["comm"]) == (pid, "lwtui-sender" if hook == "out" else "lwtui-recv")
    finally:
        stop_proc(p)
        stop_proc(decoy)
    assert w.stop() == 128 + signal.SIGTERM


def test_a_sender_gone_before_the_lookup_stays_unknown(topo, watch):
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", "0.2", "--duration", "120")
    sport, sent = udp_send(topo.client_ns, topo.server_v4, 5353, 3, 100)   # exits before lwtui looks
    assert sent == 3
    p, pid = start_proc(topo.client_ns, "lwtui-sender", 40101, topo.server_v4, 5353, 2)
    try:
        w.wait_for(lambda d: d["type"] == "flow" and d["sport"] == 40101 and d.get("pid") == pid,
                   what="the live sender's flow with its pid")
        # The gone sender's flow may be printed after the live one in the same tick: await it too.
        w.wait_for(lambda d: d["type"] == "flow" and d["sport"] == sport, what="the gone sender's flow")
    finally:
        stop_proc(p)
    gone = [d for d in w.seen if d["type"] == "flow" and d.get("sport") == sport]
    assert gone and all("pid" not in d and "comm" not in d for d in gone)
    assert w.stop() == 128 + signal.SIGTERM
