"""A pcap file of packets as the LWT hooks see them: the evidence of drops.

The classic pcap format (tcpdump.org "pcap savefile"), nanosecond variant
(magic 0xa1b23c4d), link type LINKTYPE_RAW (101): at every LWT hook a packet
starts at its IPv4 or IPv6 header, with no link-layer header, and tcpdump and
Wireshark read raw IP of either family under that link type.

Written here with `struct` rather than through a library: the format is a
24-byte file header and a 16-byte header per packet, and the maintained
writers at hand do not fit: dpkt's pcap.Writer records every packet's original
length as its captured length (a packet cut at the snaplen would look whole)
and takes float seconds (nanoseconds lost); scapy would bring a large
dependency for these few lines.

A file is bounded: past `max_bytes` packets are not written, only counted
(`skipped`). Pure Python: the standard library only.
"""

from __future__ import annotations

import errno
import os
import struct
import threading

LINKTYPE_RAW = 101
MAGIC_NANO = 0xA1B23C4D
SNAPLEN_DEFAULT = 128
SNAPLEN_MIN, SNAPLEN_MAX = 16, 65535
MAX_BYTES_DEFAULT = 64 * 1024 * 1024   # 64 MiB a file
_FILE_HEADER = struct.Struct("<IHHiIII")   # magic, 2, 4, thiszone, sigfigs, snaplen, linktype
_PACKET_HEADER = struct.Struct("<IIII")    # seconds, nanoseconds, captured length, original length


def check_writable(path: str) -> None:
    """OSError (with its strerror) when `path` could not be created or overwritten as a file;
    changes nothing, so a command can refuse bad input before it does anything."""
    p = os.path.abspath(path)
    if os.path.isdir(p):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if os.path.exists(p):
        if not os.access(p, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return
    parent = os.path.dirname(p)
    if not os.path.isdir(parent):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)


class PcapWriter:
    """One pcap file, open for appending packets; thread-safe (one lock per write).

    The file is created (truncated) when the writer is made: an OSError there is the
    caller's bad input (an unwritable path) before anything else happens.
    """

    def __init__(self, path: str, snaplen: int = SNAPLEN_DEFAULT, max_bytes: int = MAX_BYTES_DEFAULT):
        if not SNAPLEN_MIN <= snaplen <= SNAPLEN_MAX:
            raise ValueError(f"snaplen must be {SNAPLEN_MIN}..{SNAPLEN_MAX}, got {snaplen}")
        self.path = path
        self.snaplen = snaplen
        self.max_bytes = max_bytes
        self.packets = 0          # packets written
        self.skipped = 0          # packets not written: the file reached max_bytes
        self._lock = threading.Lock()
        self._f = open(path, "wb")  # noqa: SIM115 - held until close()
        self._f.write(_FILE_HEADER.pack(MAGIC_NANO, 2, 4, 0, 0, snaplen, LINKTYPE_RAW))
        self._f.flush()
        self.size = _FILE_HEADER.size

    @property
    def full(self) -> bool:
        return self.skipped > 0

    @property
    def closed(self) -> bool:
        return self._f.closed

    def write(self, ts_ns: int, data: bytes, orig_len: int) -> bool:
        """Append one packet: wall-clock time in ns since the epoch, its first bytes (cut
        at the snaplen), its whole length. False when it was not written (file full, or
        closed)."""
        data = data[:self.snaplen]
        rec = _PACKET_HEADER.size + len(data)
        with self._lock:
            if self._f.closed:
                return False
            if self.size + rec > self.max_bytes:
                self.skipped += 1
                return False
            sec, nsec = divmod(ts_ns, 1_000_000_000)
            self._f.write(_PACKET_HEADER.pack(sec, nsec, len(data), max(orig_len, len(data))) + data)
            self._f.flush()     # each packet on disk as it comes: a reader (or a crash) sees it
            self.size += rec
            self.packets += 1
            return True

    def close(self) -> None:
        with self._lock:
            if not self._f.closed:
                self._f.close()

    def discard(self) -> None:
        """Close and remove the file (the session it was for never started)."""
        self.close()
        try:
            os.unlink(self.path)
        except OSError:     # removed already, or its directory went: nothing of it is left to discard
            pass
