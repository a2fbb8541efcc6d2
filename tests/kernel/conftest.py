"""Fixtures for the kernel tests: the real programs, compiled once per session.

Without root, BCC or kernel headers these tests FAIL with the reason (they
are never skipped): a machine that cannot run them cannot ship lwtui.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

def _build(extra_cflags=(), **kw):
    if os.geteuid() != 0:
        pytest.fail("kernel tests need root (BPF program loading): run pytest as root")
    try:
        from lwtui.kernel.probe import Probe
        return Probe(extra_cflags=extra_cflags, **kw)
    except Exception as e:  # ProbeError, or anything BCC throws: report it, never skip
        pytest.fail(f"cannot compile and load bpf/lwtui.bpf.c: {e}")


def _reset(p) -> None:
    p.reset_maps()
    p.set_config(dry_run=False, rules_gen=1, drop_event_interval_ns=0)


@pytest.fixture(scope="session")
def probe_session():
    p = _build()
    yield p
    p.close()


@pytest.fixture(scope="session")
def probe_load_bytes_session():
    """The same programs reading headers with bpf_skb_load_bytes only."""
    p = _build(["-DLWTUI_NO_DIRECT_ACCESS"])
    yield p
    p.close()


@pytest.fixture
def probe(probe_session):
    """The session's probe with empty flows, rules and stats."""
    _reset(probe_session)
    return probe_session


@pytest.fixture(params=["direct", "load_bytes"])
def any_probe(request):
    """Both header-reading paths: direct packet access and bpf_skb_load_bytes."""
    p = request.getfixturevalue("probe_session" if request.param == "direct" else "probe_load_bytes_session")
    _reset(p)
    return p


@pytest.fixture(scope="module", params=["perf", "ringbuf"])
def event_probe(request):
    """A probe of its own with events open (perf buffer with lwtui's default
    batching, or the ring buffer build); events land in .events/.lost."""
    p = _build(events=request.param)
    p.events, p.lost = [], []
    p.open_events(p.events.append, p.lost.append, page_cnt=64)
    yield p
    p.close()


@pytest.fixture
def ev_probe(event_probe):
    _reset(event_probe)
    event_probe.poll_events(0)  # drain anything left by a previous test
    event_probe.events.clear()
    event_probe.lost.clear()
    return event_probe



@pytest.fixture
def on_route(topo):
    """on_route(probe, hook, family, ns="client") attaches the probe's program
    for `hook` to the host route towards the peer in the client (or server)
    namespace; `in` goes on the namespace's own local address. Every
    attachment is restored when the test ends, also when it fails."""
    from lwtui.net import routes
    done = []

    def attach(probe, hook: str, family: int = 4, ns: str = "client"):
        here = topo.client_ns if ns == "client" else topo.server_ns
        me = (topo.client_v4, topo.client_v6) if ns == "client" else (topo.server_v4, topo.server_v6)
        peer = (topo.server_v4, topo.server_v6) if ns == "client" else (topo.client_v4, topo.client_v6)
        addr = (me if hook == "in" else peer)[0 if family == 4 else 1]
        target = routes.Target(f"{addr}/{32 if family == 4 else 128}", hook, here,
                               headroom=14 if hook == "xmit" else 0)
        routes.attach(target, probe.prog_fd(hook), probe.prog_name(hook), done.append)
        return target

    yield attach
    for att in reversed(done):
        routes.detach(att)
