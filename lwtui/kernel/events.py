"""The probe's event transports: the `events` buffer, a perf buffer (the default, any
kernel lwtui runs on) or, with events="ringbuf", a BPF ring buffer (kernel 5.8+),
which costs about half as much per event in the program (BENCHMARKS.md, new-flow
storm); the `captures` perf buffer of dropped packets beside it; and polling both.

A mixin for lwtui.kernel.probe.Probe, which chooses the transport at compile time
and sets what the mixin uses. Callbacks run inside poll_events(); an exception in
one is raised again from there, not lost in ctypes.
"""

from __future__ import annotations

import ctypes as ct
import threading
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Callable

from lwtui.kernel import kstructs
from lwtui.kernel.loader import ProbeError


class EventBuffers:
    """The event and capture buffers of a loaded probe."""

    # What the buffers use of Probe (it sets them when it loads the programs):
    transport: str                          # "perf" or "ringbuf"
    _bpf: Any                               # the BCC object; None once closed
    _events_open: bool
    _captures_open: bool
    _callback_error: BaseException | None   # raised again from poll_events
    _poll_lock: threading.Lock              # close() waits for a poll in progress

    if TYPE_CHECKING:
        @abstractmethod
        def _live(self) -> Any: ...

    def open_events(self, on_event: Callable[[kstructs.LwtuiEvent], None], on_lost: Callable[[int], None],
                    page_cnt: int = 64, wakeup_events: int = 128) -> None:
        """Open the event buffer; callbacks run inside poll_events().

        Perf buffer: page_cnt pages per CPU, the reader woken every
        wakeup_events events (a wakeup costs the program ~8 us; at 128 an event
        costs ~170 ns, at 16 ~600 ns); poll_events() drains the rest, so
        nothing waits longer than one poll. Ring buffer: page_cnt and
        wakeup_events do not apply and on_lost is never called; failed outputs
        are counted in stats["events_failed"].
        """
        if self._events_open:
            raise ProbeError("events are already open")

        def raw(data, size):
            try:
                on_event(kstructs.decode_event(ct.string_at(data, size)))
            except BaseException as e:  # raised again from poll_events, not lost in ctypes
                self._callback_error = self._callback_error or e
            return 0  # a ring buffer stops consuming on non-zero

        def lost(count):
            try:
                on_lost(int(count))
            except BaseException as e:
                self._callback_error = self._callback_error or e

        table = self._live()[b"events"]
        try:
            if self.transport == "ringbuf":
                table.open_ring_buffer(lambda ctx, data, size: raw(data, size))
            else:
                table.open_perf_buffer(lambda cpu, data, size: raw(data, size), page_cnt=page_cnt,
                                       lost_cb=lost, wakeup_events=wakeup_events)
        except Exception as e:  # BCC raises bare Exception (page_cnt not a power of two, no memory)
            raise ProbeError(f"cannot open the {self.transport} event buffer ({e}): use a power-of-two "
                             "page_cnt, or raise `ulimit -l`") from e
        self._events_open = True

    def poll_events(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms for events, then drain what batched wakeups left.

        Returns at once on a closed probe, so a reader thread may race close().
        An exception raised by a callback is raised here.
        """
        with self._poll_lock:
            bpf = self._bpf
            if bpf is None:
                return
            if not self._events_open:
                raise ProbeError("open_events() first")
            if self.transport == "ringbuf":
                bpf.ring_buffer_poll(timeout_ms)
                bpf.ring_buffer_consume()
                if self._captures_open:     # the captures' perf buffer, beside the ring buffer
                    bpf.perf_buffer_poll(0)
                    bpf.perf_buffer_consume()
            else:
                bpf.perf_buffer_poll(timeout_ms)
                bpf.perf_buffer_consume()
        if self._callback_error is not None:
            err, self._callback_error = self._callback_error, None
            raise err

    def open_captures(self, on_capture: Callable[[kstructs.LwtuiCapture, bytes], None],
                      on_lost: Callable[[int], None], page_cnt: int = 64, wakeup_events: int = 16) -> None:
        """Open the `captures` perf buffer; callbacks run inside poll_events(), beside the
        events'. A record is 64 bytes plus the packet's snaplen, so 64 pages per CPU hold
        over a thousand of them at the default snaplen."""
        if self._captures_open:
            raise ProbeError("captures are already open")

        def raw(cpu, data, size):
            try:
                on_capture(*kstructs.decode_capture(ct.string_at(data, size)))
            except BaseException as e:  # raised again from poll_events, not lost in ctypes
                self._callback_error = self._callback_error or e

        def lost(count):
            try:
                on_lost(int(count))
            except BaseException as e:
                self._callback_error = self._callback_error or e

        # Under the poll lock: BCC's poll walks the dict of open perf buffers this adds to,
        # and the reader thread may be polling (a poll waits at most its timeout).
        with self._poll_lock:
            try:
                self._live()[b"captures"].open_perf_buffer(raw, page_cnt=page_cnt, lost_cb=lost,
                                                           wakeup_events=wakeup_events)
            except Exception as e:  # BCC raises bare Exception
                raise ProbeError(f"cannot open the capture buffer ({e}): raise `ulimit -l`") from e
            self._captures_open = True
