"""Concurrent writers of the config: the dashboard toggling dry-run while
`lwtui block`/`allow` in another process change rules. No write may undo
another: dry-run is never lost, in the map nor in what the programs do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import packets as P
from kutil import BPF_DROP, BPF_OK, add_rule, host_key, run
from lwtui.kernel.pins import PINNED_MAPS
from lwtui.kernel.verdicts import RuleStore

ROOT = Path(__file__).resolve().parents[2]

CHURN = """
import json, sys, time
from lwtui.kernel.verdicts import RuleStore
s = RuleStore(json.loads(sys.argv[1]))
n, deadline = 0, time.monotonic() + float(sys.argv[2])
print("ready", flush=True)
while time.monotonic() < deadline and n < 200000:
    s.add("port 9/udp")
    s.remove("port 9/udp")
    n += 2
print(n, flush=True)
"""


def test_dry_run_is_never_lost_while_another_process_blocks_and_unblocks(probe):
    fds = {n: probe.map_fd(n) for n in PINNED_MAPS}
    store = RuleStore(fds)
    add_rule(probe, host_key("10.0.0.3/32"))
    frame = P.packet(4, P.UDP, "10.0.0.2", "10.0.0.3", 1, 2)
    churn = subprocess.Popen([sys.executable, "-c", CHURN, json.dumps(fds), "3"], pass_fds=list(fds.values()),
                             cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert churn.stdout.readline().strip() == "ready", churn.stderr.read()
        toggles, wrong = 0, []
        while churn.poll() is None:
            on = toggles % 2 == 0
            store.set_dry_run(on)
            toggles += 1
            for _ in range(3):
                seen = store.config().dry_run, run(probe, "out", frame)
                if seen != (int(on), BPF_OK if on else BPF_DROP):
                    wrong.append((on, seen))
        out, err = churn.communicate(timeout=10)
    finally:
        if churn.poll() is None:
            churn.kill()
            churn.wait()
    assert churn.returncode == 0, err
    changes = int(out.split()[-1])
    assert changes > 1000 and toggles > 300, (changes, toggles)  # the two really overlapped
    assert wrong == [], f"{len(wrong)} of {toggles * 3} checks saw dry-run lost or invented: {wrong[:5]}"
