"""Evidence from the dashboard: `w` records the selected flow's dropped packets to a pcap file.

A mixin for the App. The file goes where exports go (lwtui.core.export.export_dir:
$XDG_STATE_HOME/lwtui, else ~/.local/state/lwtui), named in a notification, in the
header while it is written, and in the detail pane of its flow. `w` again stops it
and says how many packets it holds. The session writes it on its event reader
thread; the UI only opens and hands over the file.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Callable

from lwtui.core.eventlog import flow_text
from lwtui.core.export import export_dir, export_path
from lwtui.core.model import FlowId
from lwtui.core.pcap import PcapWriter
from lwtui.session.protocol import SessionLike
from lwtui.ui.appbase import AppMixin


class RecordMixin(AppMixin):
    """The `w` key; needs the App's session, snapshot ticks and error reporting."""

    session: SessionLike
    snaplen: int
    recording: PcapWriter | None         # the file `w` is writing, if any
    report: Callable[..., None]

    if TYPE_CHECKING:
        @abstractmethod
        def _selected_or_warn(self) -> FlowId | None: ...

        @abstractmethod
        def request_tick(self) -> None: ...

    def action_record(self) -> None:
        """w: start recording the selected flow's dropped and would-drop packets, or stop."""
        if self.recording is not None:
            self.stop_recording()
            return
        flow = self._selected_or_warn()
        if flow is None:
            return
        path = export_path(export_dir(), "drops", "pcap")
        try:
            writer = PcapWriter(str(path), self.snaplen)
        except OSError as e:
            self.report("cannot record", e)
            return
        try:
            self.session.record(writer, flow)
        except (RuntimeError, OSError, ValueError) as e:   # SESSION_ERRORS (actions.py)
            writer.discard()
            self.report("cannot record", e)
            return
        self.recording = writer
        self.notify(f"{flow_text(flow)}: its dropped and would-drop packets (first {writer.snaplen} bytes) "
                    f"go to\n{writer.path}\nw again stops", title="recording", timeout=10)
        self.request_tick()

    def stop_recording(self) -> None:
        """Stop the file `w` started (also on the way out) and say what it holds."""
        writer, self.recording = self.recording, None
        if writer is None:
            return
        try:
            self.session.stop_recording(writer)
        except (RuntimeError, OSError, ValueError) as e:
            self.report("recording not stopped cleanly", e)
        skipped = f", {writer.skipped} not written (file full)" if writer.skipped else ""
        self.notify(f"{writer.packets} packet(s) in {writer.path}{skipped}", title="recording stopped",
                    timeout=10)
        self.request_tick()
