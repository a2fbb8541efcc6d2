"""Recording dropped and would-drop packets into pcap files (--pcap, the dashboard's w).

The programs send a dropped or would-drop packet's first bytes to the
`captures` perf buffer only while capture is switched on in the config map
(the snaplen, 0: off), at most a bounded number a second per CPU; the
Recorder switches it on with the first file and off with the last. Each
capture is written, on the event reader thread, to every file that wants its
flow (a file for one flow, or for every flow). Kernel timestamps are
CLOCK_MONOTONIC: they become wall-clock time with the offset taken at start.

Losses are counted where they happen: over the rate and failed outputs in the
kernel (`capture_stats`), records the reader lost (the perf buffer's lost
callback), and packets a full file did not take (each file's `skipped`).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable

from lwtui.core.eventlog import flow_text
from lwtui.core.model import FlowId, Recording
from lwtui.core.pcap import PcapWriter
from lwtui.kernel import kstructs
from lwtui.kernel.codec import flow_id_from_key, key_from_flow_id

if TYPE_CHECKING:
    from lwtui.kernel.probe import Probe

CAPTURE_RATE = 1000   # captures per second and CPU at most (the kernel's bound; README "Evidence")


class Recorder:
    """The pcap files of one session and the kernel's capture switch."""

    def __init__(self, log: Callable[[str, str], None], ids: dict | None = None, rate: int = CAPTURE_RATE):
        self._log = log
        self._ids = ids
        self._rate = rate
        self._files: list[tuple[PcapWriter, FlowId | None]] = []
        self._lock = threading.Lock()          # the files
        self._open_lock = threading.Lock()     # the capture buffer, opened once
        self._probe: Probe | None = None
        self._opened = False
        self._lost = 0
        self._mono_to_wall_ns = time.time_ns() - time.monotonic_ns()

    def bind(self, probe: Probe) -> None:
        """The session's probe, once started; the capture buffer opens with the first file."""
        self._probe = probe

    def record(self, writer: PcapWriter, flow: FlowId | None = None) -> None:
        """Write dropped and would-drop packets (of `flow` only, if given) to `writer` from now on."""
        probe = self._probe
        if probe is None:
            raise RuntimeError("the session is not running: nothing to record")
        with self._open_lock:   # not under _lock: opening waits for the reader's poll, whose callbacks take _lock
            if not self._opened:
                probe.open_captures(self._on_capture, self._on_lost)
                self._opened = True
        with self._lock:
            files = self._files + [(writer, flow)]
            self._switch(probe, files)     # a failure here leaves the file out
            self._files = files
        self._log("info", f"recording {'dropped and would-drop packets' if flow is None else 'flow ' + flow_text(flow)}"
                          f" to {writer.path} (first {writer.snaplen} bytes of each)")

    def stop(self, writer: PcapWriter) -> None:
        """Stop writing to `writer` and close it; capture goes off with the last file."""
        with self._lock:
            self._files = [(w, f) for w, f in self._files if w is not writer]
            probe = self._probe
            if probe is not None:
                try:
                    self._switch(probe, self._files)
                except RuntimeError:    # ProbeError: the probe closed under us, capture is gone with it
                    pass
                except OSError as e:    # the config map refused: the kernel may go on capturing
                    self._log("error", f"packet capture could not be switched {'off' if not self._files else 'over'}"
                                       f" ({e}): the programs may send dropped packets until the session ends")
        writer.close()
        self._log("info", f"{writer.path}: {writer.packets} packet(s) recorded" +
                  (f", {writer.skipped} not written (file full)" if writer.skipped else ""))

    def _switch(self, probe: Probe, files: list) -> None:
        """Set the kernel's capture for these files: the largest snaplen (0: off), and only
        their flow when every file wants the same one, so the rate bound is that flow's."""
        snaplen = max((w.snaplen for w, _ in files), default=0)
        flows = {f for _, f in files}
        only = next(iter(flows)) if len(flows) == 1 else None
        probe.set_capture(snaplen, self._rate, key_from_flow_id(only) if only is not None else None)

    def close(self) -> None:
        """Close every file (the session ends)."""
        with self._lock:
            files, self._files = self._files, []
        for w, _ in files:
            w.close()

    def status(self) -> tuple[tuple[Recording, ...], int]:
        """The files being written, and the captures lost over the session (kernel and reader)."""
        with self._lock:
            recs = tuple(Recording(w.path, f, w.packets, w.skipped) for w, f in self._files)
        lost = self._lost
        probe = self._probe
        if probe is not None and self._opened:
            try:
                st = probe.read_capture_stats()
                lost += st["limited"] + st["failed"]
            except RuntimeError:    # ProbeError: the probe closed under us: what the reader saw
                pass
        return recs, lost

    # -- the reader thread ---------------------------------------------------
    def _on_capture(self, rec: kstructs.LwtuiCapture, data: bytes) -> None:
        with self._lock:
            files = list(self._files)
        if not files:
            return
        fid = flow_id_from_key(rec.key, self._ids)
        when = rec.ts_ns + self._mono_to_wall_ns
        for w, flow in files:
            if flow is None or flow == fid:
                if not w.write(when, data, rec.len) and w.skipped == 1:
                    self._log("lost", f"{w.path} reached its size cap ({w.max_bytes} bytes): "
                                      "further packets are counted, not written")

    def _on_lost(self, count: int) -> None:
        self._lost += count
        self._log("lost", f"{count} captured packet(s) lost (reader too slow)")
