"""The session interface: the live Session and the replay both satisfy `SessionLike`.

The dashboard and `watch` know a session only by this Protocol (an
import-linter contract keeps them off lwtui.session.live), so whatever they
call must exist, with the same signature, on both classes. Checked twice:
statically, by mypy on this file (the typed function below would not check if
either class fell short of the Protocol), and at run time, member by member.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from lwtui.core.model import Snapshot
from lwtui.net.routes import Target
from lwtui.session.live import Session
from lwtui.session.protocol import SessionLike
from lwtui.session.replay import ReplaySession

ROOT = Path(__file__).resolve().parents[2]


def as_session_like(live: Session, replay: ReplaySession) -> list[SessionLike]:
    """What mypy checks: each class is assignable to the Protocol, member by member."""
    return [live, replay]


def _members() -> tuple[list[str], list[str]]:
    """The Protocol's methods and its properties (data members), by name."""
    methods, props = [], []
    for name, value in vars(SessionLike).items():
        if isinstance(value, property):
            props.append(name)
        elif inspect.isfunction(value) and not name.startswith("_"):
            methods.append(name)
    return sorted(methods), sorted(props)


METHODS, PROPERTIES = _members()


def _live() -> Session:
    """A Session as built before start(): nothing compiled, attached or pinned (never started here)."""
    return Session([Target(prefix="192.0.2.1/32", hook="out", netns=None, dev=None)], name="lwtui-proto")


def test_the_protocol_names_what_the_front_ends_call():
    assert METHODS == ["allow", "allow_flow", "block", "block_flow", "close", "poll_events", "record", "rules",
                       "set_dry_run", "set_rule_dry_run", "set_ttl", "snapshot", "stop_recording", "would_cut_ssh"]
    assert PROPERTIES == ["closed", "dry_run", "keep_blocks", "lost", "name"]


def _shape(fn) -> list[tuple]:
    """A signature's parameters as (name, kind, default); the types are compared resolved."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("cls", [Session, ReplaySession], ids=lambda c: c.__name__)
@pytest.mark.parametrize("method", METHODS)
def test_each_method_has_the_protocols_signature(cls, method):
    want, got = getattr(SessionLike, method), getattr(cls, method)
    assert inspect.isfunction(got), f"{cls.__name__}.{method} is not a method"
    assert _shape(got) == _shape(want), \
        f"{cls.__name__}.{method}{inspect.signature(got)} differs from SessionLike.{method}{inspect.signature(want)}"
    assert typing.get_type_hints(got) == typing.get_type_hints(want), \
        f"{cls.__name__}.{method}: {typing.get_type_hints(got)} != {typing.get_type_hints(want)}"


@pytest.mark.parametrize("make", [_live, lambda: ReplaySession([Snapshot(time=1.0)])], ids=["Session", "ReplaySession"])
def test_instances_of_both_are_session_like_with_typed_data_members(make):
    s = make()
    assert isinstance(s, SessionLike), type(s).__name__
    assert s.name == "lwtui-proto" if isinstance(s, Session) else s.name == "replay"
    assert s.dry_run is False
    assert s.keep_blocks is False
    assert s.closed is False
    assert list(s.lost) == []


def test_the_replay_is_closed_after_close():
    r = ReplaySession([Snapshot(time=1.0)])
    assert r.close() == []
    assert r.closed is True


def test_a_class_missing_a_member_is_not_session_like():
    class Partial:
        name, dry_run, keep_blocks, closed, lost = "x", False, False, False, []

        def snapshot(self) -> Snapshot:
            return Snapshot(time=0.0)
    assert not isinstance(Partial(), SessionLike)


def test_mypy_accepts_both_classes_as_the_protocol():
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", str(Path(__file__).relative_to(ROOT))],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    if "No module named mypy" in r.stderr:
        pytest.fail("mypy is missing: .venv/bin/pip install -e '.[test]' (or pip install 'mypy>=1.10')")
    assert r.returncode == 0, r.stdout + r.stderr
