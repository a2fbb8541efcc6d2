"""The real dashboard in a real terminal, rules made without the CLI: `b` blocks what the
filter shows, `n` in the rules view blocks a rule typed by hand, `t` and `D` there give a
rule a new TTL and its own dry-run, `v` groups the flows. The kernel is the judge (curl
fails, a UDP send gets EPERM, `lwtui rules --json` lists what the keys made), and the
counts on screen are the datagrams the test sent. Then 80x24, as a person would see it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.test_dashboard_exits import START_TIMEOUT, _exit_status, quit_lifting
from tests.e2e.test_tmux import all_of, has_row, tmux, web  # noqa: F401 (tmux and web are fixtures)
from tests.ui.test_live import HTTP_BLOCKED, HTTP_FIRST, UDP_PORT, UDP_SPORT, curl_from, udp_from

RULE_B = "dst port 8080/tcp"
RULE_N = f"port {UDP_PORT}/udp"


def start_on_lab(tmux, topo) -> None:
    """lwtui on the server's route at out in the client namespace, named as the tmux server;
    returns once the dashboard shows it."""
    tmux.start(f"exec {sys.executable} -m lwtui {topo.server_v4}/32 --netns {topo.client_ns} --interval 0.5 "
               f"--session {tmux.name}")
    tmux.wait(all_of(f"routes {topo.server_v4}/32 out", "MONITOR"), "the dashboard", timeout=START_TIMEOUT)


def rules_json(name: str) -> dict[str, dict]:
    out = subprocess.run([sys.executable, "-m", "lwtui", "rules", "--session", name, "--json"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return {d["rule"]: d for d in map(json.loads, out.splitlines())}


def rule_cells(screen: str, rule: str) -> list[str] | None:
    """The rules view's cells after the rule's text: mode, TTL left, hits, dropped, would-drop, added."""
    line = next((x for x in screen.splitlines() if f" {rule} " in x), None)
    return None if line is None else line.split(rule, 1)[1].split()


def group_cells(screen: str, key: str) -> list[str] | None:
    line = next((x for x in screen.splitlines() if x.split()[:1] == [key]), None)
    return None if line is None else line.split()[1:]


def test_b_blocks_the_filter_n_types_a_rule_t_and_D_change_it(topo, web, tmux, route_dump):
    cli, srv = topo.client_v4, topo.server_v4
    before = route_dump(topo.client_ns)
    start_on_lab(tmux, topo)
    assert curl_from(topo.client_ns, web, HTTP_FIRST)
    assert udp_from(topo.client_ns, 20) == 20
    udp = (f"{cli}:{UDP_SPORT}", f"{srv}:{UDP_PORT}")
    tmux.wait(all_of(has_row(*udp, pkts="20"), has_row(f"{cli}:{HTTP_FIRST}", f"{srv}:8080")), "both rows")

    # b: the filter's rule, after a question naming it and what it matches now.
    tmux.keys("/")
    tmux.wait(all_of("Enter applies"), "the filter bar")
    tmux.type(RULE_B)
    tmux.keys("Enter")
    tmux.wait(all_of(f"filter: {RULE_B} → 1 match"), "the filtered table")
    tmux.keys("b")
    tmux.wait(all_of(f"Block {RULE_B}?", "The rule matches 1 flow of the 2 in the table now"), "the question")
    tmux.keys("Enter")
    tmux.wait(all_of(f"blocked {RULE_B}", "Rules (1)"), "the block")
    assert list(rules_json(tmux.name)) == [RULE_B]
    assert not curl_from(topo.client_ns, web, HTTP_BLOCKED, timeout=1.5)
    assert udp_from(topo.client_ns, 5) == 5                         # the rule is about 8080 alone

    # r, then n: a rule typed by hand; the kernel drops the datagrams (EPERM at out).
    tmux.keys("r")
    tmux.wait(all_of(RULE_B, "x remove"), "the rules view")
    tmux.keys("n")
    tmux.wait(all_of("Block a rule"), "the rule dialog")
    tmux.type(RULE_N)
    tmux.keys("Enter")
    tmux.wait(all_of(f"blocked {RULE_N}", "Rules (2)"), "the typed block")
    assert sorted(rules_json(tmux.name)) == sorted([RULE_B, RULE_N])
    assert udp_from(topo.client_ns, 5) == 0
    tmux.wait(lambda s: rule_cells(s, RULE_N) is not None and rule_cells(s, RULE_N)[:5] == ["drop", "∞", "5", "5",
                                                                                          "0"],
              "5 hits, 5 dropped")

    # The view lists port rules before compound ones: k moves onto the new rule. t: a TTL
    # from now; D: it alone counts would-drops while the other rule still drops.
    tmux.keys("k")
    tmux.keys("t")
    tmux.wait(all_of(f"TTL of {RULE_N}", "in seconds from now"), "the TTL dialog")
    tmux.type("600")
    tmux.keys("Enter")
    tmux.wait(all_of(f"{RULE_N} lifts itself in 10m00s"), "the new TTL")
    assert 590 < rules_json(tmux.name)[RULE_N]["expires_in"] <= 600
    tmux.keys("D")
    tmux.wait(all_of(f"{RULE_N}: dry-run"), "the rule's dry-run")
    listed = rules_json(tmux.name)
    assert listed[RULE_N]["dry_run"] is True and listed[RULE_B]["dry_run"] is False
    assert udp_from(topo.client_ns, 5) == 5                         # counted, let through
    tmux.wait(lambda s: (rule_cells(s, RULE_N) or [])[:1] == ["dry-run"] and rule_cells(s, RULE_N)[2:5] == [
        "10", "5", "5"], "10 hits: 5 dropped, 5 would-drop")
    assert not curl_from(topo.client_ns, web, HTTP_BLOCKED + 3, timeout=1.5), "the other rule still drops"

    # v twice: by port; the UDP flow's group is what was sent: 35 datagrams of 128 bytes, 5 dropped.
    tmux.keys("Escape")                 # alone: ESC and a key at once read as Alt+key
    tmux.wait(all_of("sorted by"), "the flows")
    tmux.keys("v")
    tmux.wait(all_of("By remote host:"), "the hosts")
    tmux.keys("v")
    tmux.wait(lambda s: "By port:" in s and (group_cells(s, f"{UDP_PORT}/udp") or [])[:6] == [
        "mdns", "1", "35", "4.4", "KiB", "5"], "the port group")

    quit_lifting(tmux, "Quit and lift 2 active rules?")
    assert route_dump(topo.client_ns) == before


def test_80x24_as_a_person_sees_it(topo, web, tmux):
    start_on_lab(tmux, topo)
    tmux._tmux("resize-window", "-t", tmux.name, "-x", "80", "-y", "24")
    assert curl_from(topo.client_ns, web, HTTP_FIRST)
    screen = tmux.wait(all_of("events lost", "? help", "q quit", "1 flow"), "the compact screen")
    lines = screen.splitlines()
    assert len(lines) == 24 and max(map(len, lines)) <= 80
    assert " up " in lines[0] and lines[0].rstrip().endswith("Events")          # uptime and tabs whole
    assert lines[1].startswith(" routes ") and "events lost" in lines[2]       # nothing wrapped away
    assert lines[-1].startswith("⏎ detail") and lines[-1].rstrip().endswith("q quit")
    tmux.keys("?")
    screen = tmux.wait(all_of("lwtui keys"), "the help")
    box = [x for x in screen.splitlines() if x.startswith("█")]
    assert len(box) >= 20 and all(x.rstrip().endswith("█") for x in box)         # closed on the right: not cut
    assert "rule and how many flows it matches now" in screen                    # long lines wrap in the box
    tmux.keys("Escape")
    tmux.wait(lambda s: "lwtui keys" not in s, "the help closed")
    tmux.keys("q")
    assert _exit_status(tmux) == "exit 0", tmux.screen()
