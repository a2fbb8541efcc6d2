"""Names for the dashboard's `n`: reverse lookups off the caller's thread, cached, with a timeout.

Reverse DNS comes from a resolver the test controls (a hosts-style file it
writes, read by the lookup function), never from the network; service names
from the machine's own /etc/services, the oracle read here with grep's eyes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from lwtui.core.resolve import NameCache


def hosts_lookup(path: Path, calls: list):
    """A lookup reading an /etc/hosts-style file: address -> first name; OSError when absent."""
    def lookup(addr: str) -> str:
        calls.append((addr, threading.current_thread().name))
        for line in path.read_text().splitlines():
            parts = line.split("#")[0].split()
            if parts and parts[0] == addr:
                return parts[1]
        raise OSError(f"{addr}: no name")
    return lookup


def services(port: int, proto: str) -> str | None:
    """The first name /etc/services gives to port/proto."""
    for line in Path("/etc/services").read_text().splitlines():
        parts = line.split("#")[0].split()
        if len(parts) >= 2 and parts[1] == f"{port}/{proto}":
            return parts[0]
    return None


def wait_for(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_names_come_from_the_lookup_on_its_own_threads_once_each(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.3 lwtui-srv srv\nfd00::3 lwtui-srv6\n")
    calls: list = []
    arrived = threading.Event()
    names = NameCache(hosts_lookup(hosts, calls), on_resolved=arrived.set)
    try:
        assert names.host("10.0.0.3") is None            # asked, not waited for
        assert arrived.wait(5)
        assert names.host("10.0.0.3") == "lwtui-srv"
        assert names.host("fd00::3") is None
        wait_for(lambda: names.host("fd00::3") == "lwtui-srv6")
        assert names.host("10.0.0.9") is None            # no name: asked once, cached as none
        wait_for(lambda: len(calls) == 3)
        wait_for(lambda: "10.0.0.9" in names._hosts)
        for _ in range(3):
            assert names.host("10.0.0.9") is None and names.host("10.0.0.3") == "lwtui-srv"
        assert [a for a, _ in calls] == ["10.0.0.3", "fd00::3", "10.0.0.9"]
        assert all(t.startswith("lwtui-names") and t != threading.current_thread().name for _, t in calls)
    finally:
        names.close()


def test_a_slow_lookup_times_out_and_its_late_answer_is_ignored():
    release = threading.Event()

    def stuck(addr: str) -> str:
        release.wait(10)
        return "too-late"
    names = NameCache(stuck, timeout=0.2)
    try:
        began = time.monotonic()
        assert names.host("10.0.0.7") is None
        assert time.monotonic() - began < 0.1            # the caller never waits for the resolver
        time.sleep(0.3)
        assert names.host("10.0.0.7") is None            # timed out: nameless from now on
        release.set()
        time.sleep(0.1)
        assert names.host("10.0.0.7") is None
    finally:
        release.set()
        names.close()


def test_service_names_are_those_of_etc_services():
    names = NameCache(lambda a: "")
    try:
        for port, proto in ((53, "udp"), (53, "tcp"), (8080, "tcp"), (22, "tcp")):
            assert names.service(port, proto) == services(port, proto), (port, proto)
        assert names.service(53, "udp") == "domain"
        assert names.service(39211, "udp") is None and services(39211, "udp") is None
        assert names.service(0, "tcp") is None and names.service(8, "icmp") is None
    finally:
        names.close()
