"""lwtui's benchmark suite: data-path cost, throughput, flow storms, dashboard
scaling, start-up and verdict latency.

Run as root with `python -m bench [NAME ...]` (see bench/__main__.py). Not a
test suite: nothing here runs in CI. Method and results: BENCHMARKS.md.
"""
