"""The detail pane tells a dropped local sender's EPERM from a permissions problem.

The oracle is the sender itself: a UDP socket in the client namespace whose
send() fails with errno 1 while the session drops its flow at `out`.
"""

from __future__ import annotations

import ipaddress
import sys

from lwtui.core.model import FlowId, FlowRecord
from lwtui.ui.detail import detail_text, sender_note
from tests.e2e.traffic import nsrun
from tests.ui.test_live import start_session  # noqa: F401 (a fixture)

A, B = ipaddress.ip_address("10.0.0.2"), ipaddress.ip_address("10.0.0.3")
SEND_ONCE = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40111))
try:
    s.sendto(b"x", ("10.0.0.3", 5353))
    print("sent")
except OSError as e:
    print(e.errno, e.strerror)
"""


def _rec(hook: str, proto: int, verdict: str) -> FlowRecord:
    return FlowRecord(FlowId(hook, proto, A, 40111, B, 5353), packets=1, drops=1, verdict=verdict)


def test_only_a_real_drop_at_out_or_xmit_gets_the_note():
    for hook in ("out", "xmit"):
        assert "EPERM" in sender_note(_rec(hook, 17, "drop"))
        assert "retransmits" in sender_note(_rec(hook, 6, "drop"))
    assert sender_note(_rec("in", 17, "drop")) == ""             # a drop at in is silent
    assert sender_note(_rec("out", 17, "would-drop")) == ""      # dry-run: nothing was dropped
    assert sender_note(_rec("out", 17, "allow")) == ""


def test_a_dropped_udp_sender_sees_eperm_and_the_pane_says_why(topo, start_session):
    session = start_session()
    session.block("port 5353/udp")
    r = nsrun(topo.client_ns, [sys.executable, "-c", SEND_ONCE], check=True)
    assert r.stdout.strip() == "1 Operation not permitted"
    snap = session.snapshot()
    rec = next(r for r in snap.flows if r.id.proto == 17 and r.id.sport == 40111)
    assert rec.verdict == "drop" and rec.drops == 1
    text = detail_text(rec, snap.time).plain
    assert "local senders get EPERM: this block" in text
