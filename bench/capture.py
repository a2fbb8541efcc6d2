"""What packet capture (--pcap, the dashboard's w) costs in the program, through BPF_PROG_TEST_RUN.

Every round measures at `out`, with the real program compiled as a Session
compiles it, the mean ns/run over `repeat` runs of one TCP packet:
  noop                 `r0 = BPF_OK; exit` (the floor of the hook and the harness)
  allowed, off / on    an existing allowed flow with capture off and on: the
                       allowed path never reaches the capture code, so these should match
  dropped, off         a packet dropped by a host rule, no pcap file open (one config lookup more)
  dropped, on, capped  capture on at the default bound (1000 a second per CPU):
                       past the first thousand runs each second, the packet is
                       counted as over the rate, not sent
  dropped, on, all     capture on with no practical bound, a reader thread
                       draining the perf buffer as a session's does: every packet sent
Case order rotates from round to round; figures are medians over rounds, ratios
are taken within one round against `dropped, off`.
"""

from __future__ import annotations

from lwtui.kernel.probe import Probe
from lwtui.kernel.verdicts import RuleStore
from lwtui.session.capture import CAPTURE_RATE

from . import packets
from .common import Result, Spread, log, ratio_spread, require_root
from .microbench import _Events, _run
from .progs import Noop, lwtui_cflags

BPF_OK, BPF_DROP = 0, 2
SNAPLEN = 128
UNBOUNDED = 1 << 40


class _Reader(_Events):
    """A session's event reader (microbench's), also counting captures."""

    def __init__(self, probe: Probe):
        self.captures = 0
        probe.open_captures(self._on_capture, self._on_lost)   # before the reader thread starts
        super().__init__(probe)

    def _on_capture(self, rec, data) -> None:
        self.captures += 1


def run(rounds: int = 5, repeat: int = 1_000_000) -> Result:
    require_root()
    res = Result("capture", params={"rounds": rounds, "repeat": repeat, "hook": "out", "snaplen": SNAPLEN,
                                    "capture_rate": CAPTURE_RATE, "cflags": list(lwtui_cflags())})
    noop = Noop(("out",))
    probe = Probe(hooks=("out",), extra_cflags=lwtui_cflags())
    reader = _Reader(probe)
    try:
        probe.set_config(dry_run=False, rules_gen=1)
        RuleStore({n: probe.map_fd(n) for n in ("verdicts", "host_rules", "port_rules", "compound", "config")}) \
            .add(f"host {packets.DROP4}")
        fd = probe.prog_fd("out")
        allowed, dropped = packets.packet("tcp"), packets.packet("tcp", dropped=True)
        _run(fd, allowed, 1, BPF_OK, "allowed warm-up")      # the flow exists before it is timed

        def capture(on: bool, rate: int = CAPTURE_RATE):
            return lambda: probe.set_capture(SNAPLEN if on else 0, rate)
        cases = {
            "noop": (None, noop.fds["out"], allowed, BPF_OK),
            "allowed, off": (capture(False), fd, allowed, BPF_OK),
            "allowed, on": (capture(True), fd, allowed, BPF_OK),
            "dropped, off": (capture(False), fd, dropped, BPF_DROP),
            "dropped, on, capped": (capture(True), fd, dropped, BPF_DROP),
            "dropped, on, all": (capture(True, UNBOUNDED), fd, dropped, BPF_DROP),
        }
        names = list(cases)
        ns: dict[str, list[float]] = {n: [] for n in names}
        sent: dict[str, list[int]] = {n: [] for n in names}
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                setup, prog, data, want = cases[name]
                if setup is not None:
                    setup()
                before = probe.read_capture_stats()["sent"]
                ns[name].append(_run(prog, data, repeat, want, name))
                sent[name].append(probe.read_capture_stats()["sent"] - before)
            probe.set_capture(0)
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {ns[n][-1]:.0f} ns" for n in names))
        base = ns["dropped, off"]
        for name in names:
            s = Spread.of(ns[name])
            res.rows.append({"case": name, "ns": s.as_dict(1), "vs_dropped_off": ratio_spread(ns[name], base).as_dict(),
                             "captures_sent_per_round": Spread.of([float(x) for x in sent[name]]).as_dict(0)})
        res.notes.append(f"reader: {reader.captures} captures received, {reader.lost} lost (perf buffer)")
        allowed_ratio = ratio_spread(ns["allowed, on"], ns["allowed, off"]).median
        res.target("allowed packets cost the same with capture on", allowed_ratio, 1.05, higher_is_better=False,
                   unit="x")
    finally:
        reader.close()
        probe.close()
        noop.close()
    return res
