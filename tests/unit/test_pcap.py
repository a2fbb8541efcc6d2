"""The pcap writer: a file tcpdump reads (the oracle), cut at the snaplen, bounded in size."""

from __future__ import annotations

import ipaddress
import shutil
import struct
import subprocess

import pytest

from lwtui.core.model import FlowId, Snapshot
from lwtui.core.pcap import PcapWriter, check_writable
from lwtui.session.protocol import SessionError
from lwtui.session.replay import ReplaySession

TS = 1_700_000_000_123_456_789   # ns since the epoch


def udp_packet(payload: int = 100, sport: int = 40000, dport: int = 53) -> bytes:
    """An IPv4/UDP packet 10.0.0.2 -> 10.0.0.3 (checksums 0: tcpdump does not mind)."""
    total = 20 + 8 + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0, bytes([10, 0, 0, 2]), bytes([10, 0, 0, 3]))
    return ip + struct.pack("!HHHH", sport, dport, 8 + payload, 0) + b"x" * payload


def tcpdump(path, *flags: str) -> list[str]:
    exe = shutil.which("tcpdump")
    if exe is None:
        pytest.fail("tcpdump is needed for this test: apt-get install -y tcpdump")
    r = subprocess.run([exe, "-r", str(path), "-nn", *flags], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_tcpdump_reads_raw_ip_with_nanosecond_times(tmp_path):
    path = tmp_path / "x.pcap"
    w = PcapWriter(str(path), snaplen=128)
    assert w.write(TS, udp_packet(), 128) and w.write(TS + 1, udp_packet(sport=40001), 128)
    w.close()
    lines = tcpdump(path, "-tt", "--nano")
    assert [line.split(" IP ")[0] for line in lines] == ["1700000000.123456789", "1700000000.123456790"]
    assert [line.split(" IP ")[1].split(":")[0] for line in lines] == ["10.0.0.2.40000 > 10.0.0.3.53",
                                                                      "10.0.0.2.40001 > 10.0.0.3.53"]


def test_a_packet_is_cut_at_the_snaplen_and_keeps_its_length(tmp_path):
    path = tmp_path / "cut.pcap"
    w = PcapWriter(str(path), snaplen=40)
    w.write(TS, udp_packet(1000), 1028)
    w.close()
    raw = path.read_bytes()
    assert struct.unpack("<IIII", raw[24:40])[2:] == (40, 1028)     # captured, original
    assert len(raw) == 24 + 16 + 40
    assert len(tcpdump(path)) == 1


def test_past_the_size_cap_packets_are_counted_not_written(tmp_path):
    path = tmp_path / "cap.pcap"
    w = PcapWriter(str(path), snaplen=128, max_bytes=24 + 3 * (16 + 128))
    results = [w.write(TS + i, udp_packet(), 128) for i in range(5)]
    w.close()
    assert results == [True, True, True, False, False]
    assert (w.packets, w.skipped, w.full) == (3, 2, True)
    assert len(tcpdump(path)) == 3
    assert w.write(TS, udp_packet(), 128) is False     # closed


def test_an_unwritable_path_fails_at_once(tmp_path):
    with pytest.raises(OSError):
        PcapWriter(str(tmp_path / "no-such-dir" / "x.pcap"))
    with pytest.raises(ValueError, match="snaplen must be 16..65535"):
        PcapWriter(str(tmp_path / "x.pcap"), snaplen=8)


def test_check_writable_changes_nothing_and_names_the_problem(tmp_path):
    existing = tmp_path / "keep.pcap"
    existing.write_bytes(b"the user's own file")
    check_writable(str(existing))                       # may be overwritten, but is not touched yet
    check_writable(str(tmp_path / "new.pcap"))
    assert existing.read_bytes() == b"the user's own file" and not (tmp_path / "new.pcap").exists()
    for bad, err in ((tmp_path / "no-such-dir" / "x.pcap", FileNotFoundError), (tmp_path, IsADirectoryError)):
        with pytest.raises(err):
            check_writable(str(bad))


def test_a_replay_refuses_to_record_and_leaves_no_file(tmp_path):
    path = tmp_path / "replay.pcap"
    w = PcapWriter(str(path))
    flow = FlowId("out", 17, ipaddress.ip_address("10.0.0.2"), 40000, ipaddress.ip_address("10.0.0.3"), 53)
    with pytest.raises(SessionError, match="recording needs a live session"):
        ReplaySession([Snapshot(time=1.0)]).record(w, flow)
    assert not path.exists()
