"""End to end: the real `lwtui` command on real routes in namespaces.

`watch --json` counts exactly what the test sends; `block`/`allow` from another
process act on the running session; after exit the routes are as before
(`ip -j -d route`, the independent oracle).
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.e2e.cli import Watch, lwtui_env, ok, run, watch  # noqa: F401 (fixtures)
from tests.e2e.traffic import curl, http_server, ping, udp_send


def flow_with(w: Watch, timeout=20, **match) -> dict:
    return w.wait_for(lambda d: d["type"] == "flow" and all(d.get(k) == v for k, v in match.items()),
                      timeout=timeout, what=f"flow {match}")


@pytest.mark.parametrize("family", [4, 6])
def test_watch_out_counts_exactly_what_was_sent(topo, route_dump, watch, family):
    cli, srv = (topo.client_v4, topo.server_v4) if family == 4 else (topo.client_v6, topo.server_v6)
    prefix = f"{srv}/32" if family == 4 else f"{srv}/128"
    before = route_dump(topo.client_ns)
    w = watch(prefix, "--netns", topo.client_ns, "--interval", "0.3",
                      "--duration", "120", "--session", f"t{os.getpid()}")
    n, size = 25, 300
    sport, sent = udp_send(topo.client_ns, srv, 5353, n, size)
    assert sent == n
    hdr = 28 if family == 4 else 48
    f = flow_with(w, proto="udp", src=cli, dst=srv, sport=sport, dport=5353, packets=n)
    assert f["bytes"] == n * (size + hdr)
    assert f["hook"] == "out" and f["verdict"] == "allow" and f["drops"] == 0

    replies = ping(topo.client_ns, srv, 5, size=56)
    assert replies == 5
    proto = "icmp" if family == 4 else "icmpv6"
    echo = 8 if family == 4 else 128
    f = flow_with(w, proto=proto, icmp_type=echo, icmp_code=0, packets=5)
    assert f["bytes"] == 5 * (56 + 8 + (20 if family == 4 else 40))
    assert f["src"] == cli and f["dst"] == srv
    assert w.wait_for(lambda d: d["type"] == "new" and d.get("proto") == "udp" and d.get("sport") == sport,
                      what="the new-flow event")
    assert w.stop() == 128 + signal.SIGTERM
    assert route_dump(topo.client_ns) == before


def test_block_and_allow_from_another_process(topo, route_dump, watch, lwtui_env, tmp_path):
    before = route_dump(topo.client_ns)
    (tmp_path / "index.html").write_text("hello\n")
    name = f"t{os.getpid()}b"
    with http_server(topo.server_ns, topo.server_v4, 8080, str(tmp_path)):
        url = f"http://{topo.server_v4}:8080/index.html"
        w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns,
                          "--interval", "0.3", "--duration", "120", "--session", name)
        assert curl(topo.client_ns, url)
        flow_with(w, proto="tcp", dport=8080, dst=topo.server_v4)

        r = ok(lwtui_env, "block", "port", "8080/tcp", "--session", name)
        assert "8080/tcp" in r.stdout
        rules = [json.loads(x) for x in ok(lwtui_env, "rules", "--session", name, "--json").stdout.splitlines()]
        assert [(x["rule"], x["kind"]) for x in rules] == [("port 8080/tcp", "port")]

        assert not curl(topo.client_ns, url, timeout=1.5)
        # UDP keeps flowing while TCP 8080 is blocked
        sport, sent = udp_send(topo.client_ns, topo.server_v4, 5353, 10, 100)
        assert sent == 10
        flow_with(w, proto="udp", sport=sport, packets=10)
        dropped = w.wait_for(lambda d: d["type"] == "flow" and d["dport"] == 8080 and d["drops"] >= 1,
                             what="a dropped 8080 flow")
        assert dropped["verdict"] == "drop" and dropped["rule"] == "port 8080/tcp"
        hits = [json.loads(x) for x in ok(lwtui_env, "rules", "--session", name, "--json").stdout.splitlines()]
        assert hits[0]["hits"] >= 1

        ok(lwtui_env, "allow", "port", "8080/tcp", "--session", name)
        assert curl(topo.client_ns, url)
        assert ok(lwtui_env, "rules", "--session", name, "--json").stdout == ""
        assert w.stop() == 128 + signal.SIGTERM
    assert route_dump(topo.client_ns) == before


@pytest.mark.parametrize("family", [4, 6])
def test_in_hook_on_local_route_blocks_and_restores(topo, route_dump, watch, lwtui_env, tmp_path, family):
    srv = topo.server_v4 if family == 4 else topo.server_v6
    prefix = f"{srv}/32" if family == 4 else f"{srv}/128"
    before = route_dump(topo.server_ns)
    (tmp_path / "index.html").write_text("hello\n")
    name = f"t{os.getpid()}i{family}"
    host = srv if family == 4 else f"[{srv}]"
    with http_server(topo.server_ns, srv, 8080, str(tmp_path)):
        w = watch(prefix, "--hook", "in", "--netns", topo.server_ns,
                          "--interval", "0.3", "--duration", "120", "--session", name)
        url = f"http://{host}:8080/index.html"
        assert curl(topo.client_ns, url)
        f = flow_with(w, proto="tcp", dport=8080, dst=srv, hook="in")
        assert f["packets"] >= 3  # SYN, ACK, request at least
        n, size = 12, 200
        sport, _ = udp_send(topo.client_ns, srv, 5353, n, size)
        f = flow_with(w, proto="udp", sport=sport, packets=n, hook="in")
        assert f["bytes"] == n * (size + (28 if family == 4 else 48))

        client = topo.client_v4 if family == 4 else topo.client_v6
        ok(lwtui_env, "block", "host", client, "--session", name)
        assert not curl(topo.client_ns, url, timeout=1.5)
        ok(lwtui_env, "allow", "host", client, "--session", name)
        assert curl(topo.client_ns, url)
        assert w.stop() == 128 + signal.SIGTERM
    assert route_dump(topo.server_ns) == before


def test_block_without_session_is_a_clear_error(lwtui_env):
    r = run(lwtui_env, "block", "port", "8080", "--session", "lwtui-no-such-session")
    assert r.returncode == 2
    assert r.stderr.startswith("lwtui: no running session named 'lwtui-no-such-session'")
    assert "Traceback" not in r.stderr


def test_bad_rule_is_a_one_line_error(lwtui_env):
    r = run(lwtui_env, "block", "port", "70000")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    error, text, caret = r.stderr.rstrip("\n").splitlines()
    assert error.startswith("lwtui: port must be a number 0..65535")
    # the pointer line sits under the offending token
    assert text[caret.index("^"):caret.rindex("^") + 1] == "70000"


def test_idle_flows_expire_after_the_configured_time(topo, watch):
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", "0.2", "--expire", "1",
              "--duration", "60")
    sport, _ = udp_send(topo.client_ns, topo.server_v4, 5353, 3, 50)
    flow_with(w, proto="udp", sport=sport, packets=3)
    active = w.wait_for(lambda d: d["type"] == "stats" and d["active_flows"] >= 1, what="an active flow")
    gone = w.wait_for(lambda d: d["type"] == "stats" and d["active_flows"] == 0, timeout=10,
                      what="the idle flow expired")
    assert active["time"] < gone["time"]
