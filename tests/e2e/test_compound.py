"""End to end: compound rules from `lwtui block` in another process, against
real servers in namespaces and real curl from two client addresses, at the
`in` hook of the server's local route and at `out` on the client's route.

The seed article's ingress program, as one rule, in the lab's addresses:
the client 10.0.0.2 (and a second address, 10.0.0.4, on the same veth) and
the server 10.0.0.3 with HTTP servers on 8080, 8081 and 22.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from tests.e2e.cli import lwtui_env, ok, run, watch  # noqa: F401 (fixtures)
from tests.e2e.traffic import http_server, nsrun

SECOND = "10.0.0.4"
PORTS = (8080, 8081, 22)


def get(ns: str, src: str, dst: str, port: int, timeout: float = 2) -> bool:
    """One GET from address `src`; True when it returned 200 within `timeout`."""
    r = nsrun(ns, ["curl", "-s", "-o", "/dev/null", "--interface", src, "--max-time", str(timeout),
                   "-w", "%{http_code}", f"http://{dst}:{port}/index.html"], timeout=timeout + 10)
    return r.returncode == 0 and r.stdout.strip() == "200"


# rule -> which (client address, server port) pairs it lets through
CASES = {
    "src host {a} and dst port 8080/tcp": {("a", 8080): False, ("a", 8081): True, ("b", 8080): True},
    "dst port 8081/tcp and not src host {b}": {("a", 8081): False, ("b", 8081): True, ("a", 8080): True},
    "host 10.0.0.0/24 and not port 22": {("a", 8080): False, ("b", 8081): False, ("a", 22): True,
                                         ("b", 22): True},
}


@pytest.mark.parametrize("hook", ["in", "out"])
def test_compound_rules_block_exactly_what_they_say(topo, route_dump, watch, lwtui_env, tmp_path, hook):
    subprocess.run(["ip", "-n", topo.client_ns, "addr", "add", f"{SECOND}/24", "dev", topo.dev], check=True,
                   timeout=10)
    ns = topo.server_ns if hook == "in" else topo.client_ns
    before = route_dump(ns)
    (tmp_path / "index.html").write_text("hello\n")
    name = f"t{os.getpid()}c{hook}"
    addrs = {"a": topo.client_v4, "b": SECOND}
    srv = topo.server_v4
    with http_server(topo.server_ns, srv, 8080, str(tmp_path)), \
            http_server(topo.server_ns, srv, 8081, str(tmp_path)), \
            http_server(topo.server_ns, srv, 22, str(tmp_path)):
        w = watch(f"{srv}/32", "--hook", hook, "--netns", ns, "--interval", "0.3", "--duration", "180",
                  "--session", name)
        for who, port in [("a", p) for p in PORTS] + [("b", p) for p in PORTS]:
            assert get(topo.client_ns, addrs[who], srv, port), (who, port)   # all open before
        for template, passes in CASES.items():
            rule = template.format(**addrs)
            out = ok(lwtui_env, "block", rule, "--session", name)
            assert rule in out.stdout
            listed = [json.loads(x) for x in ok(lwtui_env, "rules", "--session", name, "--json").stdout.splitlines()]
            assert [(x["rule"], x["kind"]) for x in listed] == [(rule, "rule")]
            assert listed[0]["terms"] and all(len(c) == 2 for c in listed[0]["terms"])
            for (who, port), through in passes.items():
                assert get(topo.client_ns, addrs[who], srv, port, timeout=2 if through else 1.2) == through, \
                    (rule, who, port)
            dropped = w.wait_for(lambda d: d["type"] == "flow" and d["drops"] >= 1 and d.get("rule") == rule,
                                 what=f"a flow dropped by {rule}")
            assert dropped["verdict"] == "drop" and dropped["proto"] == "tcp"
            hits = [json.loads(x) for x in ok(lwtui_env, "rules", "--session", name, "--json").stdout.splitlines()]
            assert hits[0]["hits"] >= 1
            ok(lwtui_env, "allow", rule, "--session", name)
            assert ok(lwtui_env, "rules", "--session", name, "--json").stdout == ""
            for (who, port) in passes:
                assert get(topo.client_ns, addrs[who], srv, port), ("lifted", rule, who, port)
        assert w.stop() == 128 + signal.SIGTERM
    assert route_dump(ns) == before


def test_a_rule_the_kernel_cannot_enforce_is_refused_with_a_caret(lwtui_env):
    from tests.e2e.cli import run
    r = run(lwtui_env, "block", "src host 10.0.0.2 and hook in")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    error, text, caret = r.stderr.rstrip("\n").splitlines()
    assert "cannot enforce 'hook'" in error
    assert caret.strip() == "^^^^" and text.index("hook") == caret.index("^")


def test_a_rules_file_is_in_force_from_the_first_packet(topo, route_dump, watch, lwtui_env, tmp_path):
    (tmp_path / "index.html").write_text("hello\n")
    rules = tmp_path / "today.rules"
    rules.write_text(f"# the seed's program\nsrc host {topo.client_v4} and dst port 8080/tcp   # tcp only\n"
                     "port 5999/udp ttl=600\n")
    before = route_dump(topo.client_ns)
    name = f"t{os.getpid()}f"
    srv = topo.server_v4
    with http_server(topo.server_ns, srv, 8080, str(tmp_path)), \
            http_server(topo.server_ns, srv, 8081, str(tmp_path)):
        w = watch(f"{srv}/32", "--netns", topo.client_ns, "--interval", "0.3", "--duration", "120",
                  "--session", name, "--rules", str(rules))
        assert not get(topo.client_ns, topo.client_v4, srv, 8080, timeout=1.2)    # the very first connection
        first = w.wait_for(lambda d: d["type"] == "flow" and d["dport"] == 8080, what="the 8080 flow")
        assert first["drops"] >= 1 and first["packets"] == first["drops"], first   # none of it passed
        assert get(topo.client_ns, topo.client_v4, srv, 8081)
        listed = [json.loads(x) for x in ok(lwtui_env, "rules", "--session", name, "--json").stdout.splitlines()]
        assert sorted(x["rule"] for x in listed) == sorted(
            [f"src host {topo.client_v4} and dst port 8080/tcp", "port 5999/udp"])
        saved = tmp_path / "saved.rules"
        out = ok(lwtui_env, "rules", "--session", name, "--save", str(saved))
        assert "saved 2 rules" in out.stdout
        lines = [x for x in saved.read_text().splitlines() if not x.startswith("#")]
        assert f"src host {topo.client_v4} and dst port 8080/tcp" in lines
        ttl = [x for x in lines if x.startswith("port 5999/udp ttl=")]
        assert ttl and 500 < int(ttl[0].split("=")[1]) <= 600
        assert w.stop() == 128 + signal.SIGTERM
    assert route_dump(topo.client_ns) == before


def test_a_bad_rules_file_attaches_nothing(topo, route_dump, lwtui_env, tmp_path):
    from tests.e2e.cli import run
    rules = tmp_path / "bad.rules"
    rules.write_text("port 8080/tcp\nsrc host 10.0.0.2 and verdict drop\n")
    before = route_dump(topo.client_ns)
    r = run(lwtui_env, "watch", f"{topo.server_v4}/32", "--netns", topo.client_ns, "--rules", str(rules),
            "--duration", "5")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    error, text, caret = r.stderr.rstrip("\n").splitlines()
    assert error.startswith(f"lwtui: {rules}:2: the kernel cannot enforce 'verdict'")
    assert text.strip() == "src host 10.0.0.2 and verdict drop" and text.index("verdict") == caret.index("^")
    assert route_dump(topo.client_ns) == before and lwtui_env.states() == [] and lwtui_env.pin_dirs() == []


def test_block_dry_run_counts_one_rule_while_the_others_enforce(topo, watch, lwtui_env, tmp_path):
    (tmp_path / "index.html").write_text("hello\n")
    name = f"t{os.getpid()}d"
    srv, cli = topo.server_v4, topo.client_v4
    with http_server(topo.server_ns, srv, 8080, str(tmp_path)), \
            http_server(topo.server_ns, srv, 8081, str(tmp_path)):
        w = watch(f"{srv}/32", "--netns", topo.client_ns, "--interval", "0.3", "--duration", "120",
                  "--session", name)
        out = ok(lwtui_env, "block", "dst port 8080/tcp", "--dry-run", "--session", name)
        assert "dry-run" in out.stdout
        ok(lwtui_env, "block", f"src host {cli} and dst port 8081/tcp", "--session", name)
        assert get(topo.client_ns, cli, srv, 8080)                       # the dry-run rule lets it pass
        assert not get(topo.client_ns, cli, srv, 8081, timeout=1.2)      # the other rule enforces
        f = w.wait_for(lambda d: d["type"] == "flow" and d["dport"] == 8080 and d["would_drops"] >= 3,
                       what="the 8080 flow's would-drops")
        assert (f["verdict"], f["drops"], f["rule"]) == ("would-drop", 0, "dst port 8080/tcp")
        listed = {x["rule"]: x for x in map(json.loads, ok(lwtui_env, "rules", "--session", name,
                                                           "--json").stdout.splitlines())}
        assert listed["dst port 8080/tcp"]["dry_run"] is True and listed["dst port 8080/tcp"]["hits"] >= 3
        assert listed[f"src host {cli} and dst port 8081/tcp"]["dry_run"] is False
        # The drop events name a compound rule by its text ("rule: ..."), never "rule rule"; the
        # dry-run rule's say "would drop". Right after a block the session may not have read the
        # new entries yet ("compound rule"); the SYNs' retransmits bring more events.
        for port, what, rule in ((8081, "dropped", f"src host {cli} and dst port 8081/tcp"),
                                 (8080, "would drop", "dst port 8080/tcp")):
            if port == 8080:
                assert get(topo.client_ns, cli, srv, 8080)
            d = w.wait_for(lambda d: d["type"] == "drop" and d["dport"] == port and "(rule: " in d["text"],
                           what=f"a drop event of the {port} flow naming its rule")
            assert d["text"].startswith(f"{what} out tcp ") and d["text"].endswith(f"(rule: {rule})"), d["text"]
        assert not [d for d in w.seen if d["type"] == "drop" and "rule rule" in d["text"]]
        assert w.stop() == 128 + signal.SIGTERM


def test_compound_entries_no_rule_decodes_from_are_said_not_hidden(topo, watch, lwtui_env):
    """An entry of the session's compound map that this lwtui did not write (here: a copy of a
    rule's entry under another group, with a term field no lwtui writes) is in force in the kernel
    but in no rule: the event log says so once, and `rules` lists what it can read and exits 1
    with a line naming the entry and its hits."""
    import ctypes as ct
    from lwtui.kernel import bpfsys, kstructs
    name = f"t{os.getpid()}u"
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", "0.3", "--duration", "120",
              "--session", name)
    rule = f"src host {topo.client_v4} and dst port 8081/tcp"
    ok(lwtui_env, "block", rule, "--session", name)
    fd = bpfsys.obj_get(str(lwtui_env.pin_root / name / "compound"))
    try:
        entries = []
        for i in range(bpfsys.map_info(fd)["max_entries"]):
            e = kstructs.CompoundEntry()
            bpfsys.map_lookup(fd, ct.c_uint32(i), e)
            entries.append(e)
        used = next(e for e in entries if e.group)
        free = next(i for i, e in enumerate(entries) if not e.group)
        foreign = kstructs.CompoundEntry.from_buffer_copy(bytes(used))
        foreign.group, foreign.terms[0].field = used.group ^ 0x5A5A, 0xEE
        bpfsys.map_update(fd, ct.c_uint32(free), foreign)
    finally:
        os.close(fd)
    said = w.wait_for(lambda d: d["type"] == "log" and d["kind"] == "error" and "cannot read" in d["text"],
                      what="the event log's line on the entry no rule decodes from")
    assert said["text"].startswith("1 compound rule entry that this lwtui cannot read (0 hits) is in force"), said
    r = run(lwtui_env, "rules", "--session", name, "--json")
    assert r.returncode == 1 and [json.loads(x)["rule"] for x in r.stdout.splitlines()] == [rule], r
    assert r.stderr.startswith("lwtui: 1 compound rule entry that this lwtui cannot read") and \
        r.stderr.count("\n") == 1, r.stderr
    assert w.stop() == 128 + signal.SIGTERM
    assert sum("cannot read" in d.get("text", "") for d in w.seen) == 1, "said once, not every tick"
