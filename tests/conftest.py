"""Shared fixtures: a fresh client/server namespace pair per test, and the route oracle.

The oracle is iproute2's JSON output (`ip -j -d route`, `ip -j -d rule`), never
pyroute2, which lwtui itself uses: a bug there must not hide in the check.
Tests that need the kernel FAIL without root (they are never skipped).
"""

from __future__ import annotations

import itertools
import os
import subprocess

import pytest

from lwtui.net.netns import Topology, create_topology, destroy_topology

_counter = itertools.count(1)

# `make test` runs the suite on three pytest-xdist workers (`-n 3 --dist loadgroup`);
# every test's namespaces, sessions, pins and state are its own (names carry the
# worker's pid). Two kinds of test act on the whole host and are kept apart:
#   host_wide  looks at or leaves routes in every namespace (`detach --all`,
#              `sessions`, `doctor`'s leftovers, SIGKILLed sessions): one worker
#              runs them all, one after another, so none restores another's leftover;
#   alone      needs that no other lwtui runs at all (BPF run-time statistics are
#              on for the whole host while any lwtui holds them): `make test` runs
#              these after the rest, by themselves (`-m alone`).


@pytest.hookimpl(tryfirst=True)    # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("host_wide"):
            item.add_marker(pytest.mark.xdist_group("host_wide"))


@pytest.fixture(scope="session", autouse=True)
def private_settings_and_exports(tmp_path_factory):
    """$XDG_CONFIG_HOME and $XDG_STATE_HOME of the test run, inherited by every lwtui it starts:
    a dashboard remembers its sort and theme, and one test's choices must not reach the next
    test, nor the user's own settings."""
    saved = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME")}
    base = tmp_path_factory.mktemp("xdg")
    os.environ["XDG_CONFIG_HOME"], os.environ["XDG_STATE_HOME"] = str(base / "config"), str(base / "state")
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v

_ORACLE = (
    ("route4", ["-4", "-j", "-d", "route", "show", "table", "all"]),
    ("route6", ["-6", "-j", "-d", "route", "show", "table", "all"]),
    ("rule4", ["-4", "-j", "-d", "rule", "show"]),
    ("rule6", ["-6", "-j", "-d", "rule", "show"]),
)


def route_dump_of(ns: str) -> str:
    """Every route and rule of namespace `ns` as one JSON text, byte for byte as iproute2 prints it.

    Equal strings mean identical routing state; `json.loads` gives
    {"route4": [...], "route6": [...], "rule4": [...], "rule6": [...]}.
    """
    parts = []
    for key, args in _ORACLE:
        res = subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, timeout=10)
        assert res.returncode == 0, f"ip -n {ns} {' '.join(args)}: {res.stderr.strip()}"
        parts.append(f'"{key}": {res.stdout.strip() or "[]"}')
    return "{" + ", ".join(parts) + "}"


@pytest.fixture
def route_dump():
    """route_dump(ns) -> the oracle JSON text of a namespace's routes and rules."""
    return route_dump_of


@pytest.fixture
def topo(request) -> Topology:
    """A fresh topology (namespaces `lwtui-t<pid>-<n>-cli/-srv`), deleted when the test ends."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces, bpf(2)): run pytest as root")
    prefix = f"lwtui-t{os.getpid() % 10000}-{next(_counter)}"
    request.addfinalizer(lambda: destroy_topology(prefix))
    return create_topology(prefix)
