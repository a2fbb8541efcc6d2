"""The dashboard's filter language: the rule grammar's atoms, and a few more.

    flow PROTO SRC:SPORT DST:DPORT | [src|dst] host ADDR[/LEN] | [src|dst] port PORT[/PROTO]
    proto NAME | src ADDR[/LEN] | dst ADDR[/LEN] | hook in|out|xmit
    verdict drop|allow|would-drop          (drop also matches would-drop)
    a bare address or network (= host), a bare port or PORT/PROTO (= port),
    a bare protocol name (= proto)

joined by `and`, `or`, `not` and parentheses (lwtui.core.grammar.parse_expr,
the syntax rules have too); juxtaposition means `and`, and `and` binds tighter
than `or`. Atoms shared with rules behave as the rules do
(lwtui.core.rules), so what a person filters on is what they can block. The empty
filter matches everything. Pure Python.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from lwtui.core import names
from lwtui.core.compound import Term
from lwtui.core.flowcols import VERDICT_CODE, FlowView, rule_mask
from lwtui.core.grammar import Tokens, condition, network, number, parse_expr, port_atom
from lwtui.core.model import FlowRecord
from lwtui.core.names import HOOKS
from lwtui.core.rules import HostRule, RuleError

Mask = Callable[[FlowView], np.ndarray]


class Pred:
    """One node of a compiled filter: a test of one record, and where it has one, the
    same test over a FlowView's columns at once (a numpy mask)."""
    __slots__ = ("test", "vec")

    def __init__(self, test: Callable[[FlowRecord], bool], vec: Optional[Mask] = None):
        self.test, self.vec = test, vec

    def __call__(self, r: FlowRecord) -> bool:
        return self.test(r)

    def mask(self, view: FlowView) -> np.ndarray:
        if self.vec is not None:
            return self.vec(view)
        test = self.test        # no column form: one record at a time
        return np.fromiter((bool(test(r)) for r in view), dtype=bool, count=len(view))

_EXAMPLES = "e.g. host 10.0.0.3, port 80, proto udp, hook in, verdict drop"
_VERDICTS = {"drop": ("drop", "would-drop"), "would-drop": ("would-drop",), "allow": ("allow",)}

__all__ = ["Filter", "RuleError", "parse_filter"]


class Filter:
    """A compiled filter: matches(record) is one call into a tree of closures."""

    def __init__(self, text: str = "", pred: Optional[Pred] = None):
        self.text = text
        self._pred = pred

    @property
    def empty(self) -> bool:
        return self._pred is None

    def matches(self, record: FlowRecord) -> bool:
        return True if self._pred is None else bool(self._pred(record))

    def mask(self, view: FlowView) -> np.ndarray:
        """matches() of every row of a FlowView, as a boolean array (vectorized where the
        conditions allow: hooks, verdicts, protocols, hosts, ports, flows)."""
        return np.ones(len(view), dtype=bool) if self._pred is None else self._pred.mask(view)

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"


def parse_filter(text: str) -> Filter:
    """Compile a filter; RuleError with the offending token's position when it does not parse."""
    tk = Tokens(text)
    if tk.peek() is None:
        return Filter(text)
    return Filter(text, parse_expr(tk, _Predicates()))


class _Predicates:
    """The filter language's Algebra (lwtui.core.grammar): a tree of closures."""
    implicit_and = True
    expected = f"a condition, {_EXAMPLES}"

    def atom(self, word: str, tok: str, pos: int, tk: Tokens) -> Pred:
        return _atom(word, tok, pos, tk)

    def all(self, preds: list[Pred]) -> Pred:
        def every(r: FlowRecord) -> bool:
            for p in preds:
                if not p(r):
                    return False
            return True

        def vec(view: FlowView) -> np.ndarray:
            m = preds[0].mask(view)
            for p in preds[1:]:
                m = m & p.mask(view)
            return m
        return Pred(every, vec)

    def any(self, preds: list[Pred]) -> Pred:
        def some(r: FlowRecord) -> bool:
            for p in preds:
                if p(r):
                    return True
            return False

        def vec(view: FlowView) -> np.ndarray:
            m = preds[0].mask(view)
            for p in preds[1:]:
                m = m | p.mask(view)
            return m
        return Pred(some, vec)

    def negate(self, pred: Pred, pos: int) -> Pred:
        return Pred(lambda r: not pred(r), lambda view: ~pred.mask(view))


def _atom(word: str, tok: str, pos: int, tk: Tokens) -> Pred:
    if word == "hook":
        hook = _choice(tk, "hook", HOOKS)
        return Pred(lambda r: r.id.hook == hook, lambda view: view.keys["hook"] == HOOKS.index(hook))
    if word == "verdict":
        verdict = _choice(tk, "verdict", tuple(_VERDICTS))
        codes = [VERDICT_CODE[v] for v in _VERDICTS[verdict]]
        return Pred(lambda r: r.verdict in _VERDICTS[verdict], lambda view: np.isin(view.cols["verdict"], codes))
    cond = condition(word, pos, tk)
    if cond is not None:
        return _rule_pred(cond)
    return _bare(word, tok, pos, tk)


def _rule_pred(cond) -> Pred:
    """A condition rules share (a rule or a Term) as a filter node."""
    test = cond.holds if isinstance(cond, Term) else cond.matches
    return Pred(lambda r: test(r.id), lambda view: rule_mask(view.keys, cond))


def _choice(tk: Tokens, key: str, allowed: tuple) -> str:
    tok, pos = tk.take(f"{key} {'|'.join(allowed)}")
    value = tok.lower()
    if value not in allowed:
        raise tk.error(f"{key} is one of {', '.join(allowed)}, got {tok!r}", pos, len(tok))
    return value


def _bare(word: str, tok: str, pos: int, tk: Tokens) -> Pred:
    """Conveniences: an address or network, a port (PORT[/PROTO]), a protocol name."""
    if word in names.PROTO_BY_NAME:
        return _rule_pred(Term("proto", names.PROTO_BY_NAME[word]))
    if "." in tok or ":" in tok:
        return _rule_pred(HostRule(network(tok, pos, tk)))
    if tok[:1].isdigit():
        number(tok.partition("/")[0], pos, "port", 65535, tk)  # the port's own error first
        return _rule_pred(port_atom(tok, pos, tk))
    raise tk.error(f"unknown word {tok!r}: expected flow, host, port, proto, src, dst, hook, "
                   f"verdict, not, an address or a port", pos, len(tok))
