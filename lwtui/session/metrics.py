"""`--metrics [ADDR:]PORT`: Prometheus text at /metrics, read from the kernel at scrape time.

A custom collector (prometheus_client's documented way to export values
another system owns) reads the same maps the Session reads, when Prometheus
asks: there is no second copy of the counters to drift. Names are a contract
(README, "Metrics"); per-flow series exist only as an opt-in top-K by bytes,
so the number of series stays bounded whatever the traffic.

The server binds before anything is attached (MetricsServer() raises
MetricsError for a bad address or a port in use: bad input, nothing changed)
and serves an empty page until attach() hands it the running session.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
from typing import Any, Iterator

from lwtui.core.names import endpoint
from lwtui.kernel import kstructs
from lwtui.kernel.codec import flow_id_from_key
from lwtui.session.routeindex import RouteIndex

DEFAULT_ADDR = "127.0.0.1"
MAX_TOP_FLOWS = 1000


class MetricsError(RuntimeError):
    """--metrics cannot listen where asked; the message names the fix."""


def parse_listen(text: str) -> tuple[str, int]:
    """`PORT`, `ADDR:PORT` or `[IPV6]:PORT` -> (address, port); ValueError naming the form.

    ADDR must be an IP address (no names: what is bound is what was asked);
    without it lwtui listens on 127.0.0.1 only.
    """
    addr, sep, port = text.rpartition(":")
    if not sep:
        addr = DEFAULT_ADDR
    elif addr.startswith("[") and addr.endswith("]"):
        addr = addr[1:-1]
    elif ":" in addr:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9100")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number 1..65535, e.g. 9100 or 127.0.0.1:9100")
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise ValueError(f"{text!r}: {addr!r} is not an IP address: write e.g. 127.0.0.1:{port}") from None
    return addr, int(port)


def _split(packets: int, nbytes: int, drops: int) -> tuple[int, int]:
    """(dropped packets, dropped bytes) of one flow.

    The flow map counts a flow's packets, bytes and drops, not the bytes of
    its drops: when a flow was only partly dropped, its bytes are split in
    proportion to its packets (exact when its packets have one size, as a
    stream of equal datagrams does). Whole flows allowed or dropped are exact.
    """
    drops = min(drops, packets)
    if drops == packets:
        return drops, nbytes
    return drops, (nbytes * drops // packets if packets else 0)


class SessionCollector:
    """Reads a running Session's maps at each scrape and yields the lwtui_ families."""

    def __init__(self, session, top_flows: int = 0):
        self.session = session
        self.top_flows = top_flows
        self.routes = RouteIndex(session.targets)

    def describe(self) -> list:
        return []   # nothing to read at registration: the names are checked in collect()

    def collect(self) -> Iterator:
        s = self.session
        if s.closed or s.probe is None or s.store is None:
            return
        try:
            raw = s.probe.read_flows()
            stats = s.probe.read_stats()
            rules = s.store.entries()
            capacity = s.probe.map_max_entries("flows")
            runtime = s.run_stats()
        except (OSError, RuntimeError, KeyError) as e:  # KeyError: BCC's word for a failed map lookup
            if not s.closed:    # a read failed while the session runs: this scrape is empty, the log says why
                why = f"{type(e).__name__}: {e}" if str(e) else f"{type(e).__name__}, the kernel refused a lookup"
                s.log("error", f"metrics scrape left empty: reading the maps failed ({why})")
            return              # else closing under us (ProbeError, SessionError): nothing to say
        yield from self._traffic(raw, s.dry_run)
        yield from _session_families(stats, rules, len(raw), capacity, s.reader_lost)
        yield from _run_families(runtime)
        if self.top_flows:
            yield from self._top_flows(raw)

    def _traffic(self, raw: list, dry_run: bool) -> Iterator:
        """lwtui_packets_total and lwtui_bytes_total by route, hook and verdict.

        Derived from the flow map read (each flow's packets, bytes and drops
        summed by route and hook): the kernel has no per-route or per-hook
        verdict counters. Flows the map could not hold (stats
        flow_update_failed) are missing here, and a flow evicted by the LRU
        takes its counts with it: a series can then go down, which rate()
        reads as a counter reset. Drops of a session switched between dry-run
        and blocking are all labelled by its mode now.
        """
        from prometheus_client.core import CounterMetricFamily
        dropped = "would_drop" if dry_run else "drop"
        sums: dict[tuple[str, str], list[int]] = {}
        for key, st in raw:
            hook = kstructs.HOOK_NAMES.get(key.hook, str(key.hook))
            ref = self.routes.lookup(hook, bytes(key.daddr))
            acc = sums.setdefault((ref.prefix if ref else "", hook), [0, 0, 0, 0])
            dp, db = _split(st.packets, st.bytes, st.drops)
            acc[0] += st.packets - dp
            acc[1] += st.bytes - db
            acc[2] += dp
            acc[3] += db
        labels = ["route", "hook", "verdict"]
        pk = CounterMetricFamily("lwtui_packets", "Packets seen by lwtui's programs, by route, hook and verdict "
                                 "(summed from the flow map)", labels=labels)
        by = CounterMetricFamily("lwtui_bytes", "Bytes (whole IP packets) by route, hook and verdict "
                                 "(summed from the flow map)", labels=labels)
        for (route, hook), (ap, ab, dp, db) in sorted(sums.items()):
            pk.add_metric([route, hook, "allow"], ap)
            by.add_metric([route, hook, "allow"], ab)
            pk.add_metric([route, hook, dropped], dp)
            by.add_metric([route, hook, dropped], db)
        yield pk
        yield by

    def _top_flows(self, raw: list) -> Iterator:
        """The top_flows busiest flows by bytes (--metrics-flows K), one series each."""
        from prometheus_client.core import CounterMetricFamily
        labels = ["route", "hook", "proto", "src", "sport", "dst", "dport"]
        fams = {n: CounterMetricFamily(f"lwtui_flow_{n}", f"{n.capitalize()} of one of the busiest flows by bytes "
                                       "(--metrics-flows)", labels=labels) for n in ("packets", "bytes", "drops")}
        for key, st in heapq.nlargest(self.top_flows, raw, key=lambda kv: kv[1].bytes):
            f = flow_id_from_key(key)
            ref = self.routes.lookup(f.hook, bytes(key.daddr))
            values = [ref.prefix if ref else "", f.hook, f.proto_name, str(f.src), str(f.sport),
                      str(f.dst), str(f.dport)]
            fams["packets"].add_metric(values, st.packets)
            fams["bytes"].add_metric(values, st.bytes)
            fams["drops"].add_metric(values, st.drops)
        yield from fams.values()


def _session_families(stats: dict, rules: list, flows: int, capacity: int, reader_lost: int) -> Iterator:
    """Rule hits, parse errors, lost events, flow map fill."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    hits = CounterMetricFamily("lwtui_rule_hits", "Packets each active rule matched (dropped or would-drop)",
                               labels=["rule"])
    for r in rules:
        hits.add_metric([r.text], r.hits)
    yield hits
    yield CounterMetricFamily("lwtui_parse_errors", "Packets lwtui's programs could not parse",
                              value=stats["parse_errors"])
    # The programs count failed outputs exactly; the reader's lost callback reports
    # the same losses later and in part: the larger of the two is the count.
    yield CounterMetricFamily("lwtui_events_lost", "Events that never reached lwtui",
                              value=max(stats["events_failed"], reader_lost))
    yield GaugeMetricFamily("lwtui_flows", "Entries in the kernel flow map", value=flows)
    yield GaugeMetricFamily("lwtui_flow_capacity", "Entries the kernel flow map holds at most", value=capacity)


def _run_families(runtime: dict[str, tuple[int, int]]) -> Iterator:
    """lwtui's own cost: time and runs of each hook's program (kernel run-time statistics,
    on while lwtui runs; absent where the kernel cannot keep them)."""
    from prometheus_client.core import CounterMetricFamily
    secs = CounterMetricFamily("lwtui_bpf_run_seconds", "Time lwtui's program of each hook ran in the kernel",
                               labels=["hook"])
    runs = CounterMetricFamily("lwtui_bpf_runs", "Runs of lwtui's program of each hook (one per packet)",
                               labels=["hook"])
    for hook, (ns, n) in runtime.items():
        secs.add_metric([hook], ns / 1e9)
        runs.add_metric([hook], n)
    yield secs
    yield runs


class MetricsServer:
    """The /metrics HTTP server: bound at construction, fed by attach(), stopped by close()."""

    def __init__(self, addr: str, port: int):
        from prometheus_client import CollectorRegistry, start_http_server
        self.addr, self.port = addr, port
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector: SessionCollector | None = None
        try:
            httpd, self._thread = start_http_server(port, addr, registry=self.registry)
        except OSError as e:
            raise MetricsError(_bind_error(addr, port, e)) from None
        self._httpd: Any = httpd   # None once closed

    @property
    def url(self) -> str:
        return f"http://{endpoint(self.addr, self.port)}/metrics"

    def attach(self, session, top_flows: int = 0) -> None:
        """Serve `session`'s figures from now on."""
        collector = self._collector = SessionCollector(session, top_flows)
        self.registry.register(collector)

    def close(self) -> None:
        """Stop serving (before the session closes its maps); safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        if self._collector is not None:
            self.registry.unregister(self._collector)
            self._collector = None
        httpd.shutdown()
        httpd.server_close()
        self._thread.join(timeout=2)


def _bind_error(addr: str, port: int, e: OSError) -> str:
    where = f"--metrics {endpoint(addr, port)}"
    if e.errno == errno.EADDRINUSE:
        return f"{where}: port {port} is already in use: pick another port"
    if e.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {addr} is not an address of this host: use 127.0.0.1 or one of `ip addr`"
    if e.errno == errno.EACCES:
        return f"{where}: not allowed to listen on port {port}: pick a port above 1023"
    return f"{where}: cannot listen ({e.strerror}): pick another address or port"
