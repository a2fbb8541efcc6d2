"""The dashboard's filter language: the rule grammar's atoms, and a few more.

    flow PROTO SRC:SPORT DST:DPORT | host ADDR[/LEN] | port PORT[/PROTO]
    proto NAME | src ADDR[/LEN] | dst ADDR[/LEN] | hook in|out|xmit
    verdict drop|allow|would-drop          (drop also matches would-drop)
    a bare address or network (= host), a bare port or PORT/PROTO (= port),
    a bare protocol name (= proto)

joined by `and`, `or`, `not` and parentheses; juxtaposition means `and`, and
`and` binds tighter than `or`. Atoms shared with rules behave as the rules do
(lwtui.core.rules), so what a person filters on is what they can block. The empty
filter matches everything. Pure Python.
"""

from __future__ import annotations

from typing import Callable, Optional

from lwtui.core import names
from lwtui.core.grammar import MAX_NESTING, Tokens, network, number, port_atom, protocol, rule_atom
from lwtui.core.model import FlowRecord
from lwtui.core.names import HOOKS
from lwtui.core.rules import HostRule, RuleError

Pred = Callable[[FlowRecord], bool]

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

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"


def parse_filter(text: str) -> Filter:
    """Compile a filter; RuleError with the offending token's position when it does not parse."""
    tk = Tokens(text)
    if tk.peek() is None:
        return Filter(text)
    pred = _or(tk, 0)
    if tk.peek() is not None:  # only a ')' can stop the top-level expression early
        tok, pos = tk.take("")
        raise tk.error("unmatched ')': remove it or add '(' before", pos, len(tok))
    return Filter(text, pred)


def _all(preds: list[Pred]) -> Pred:
    if len(preds) == 1:
        return preds[0]

    def every(r: FlowRecord) -> bool:
        for p in preds:
            if not p(r):
                return False
        return True
    return every


def _any(preds: list[Pred]) -> Pred:
    if len(preds) == 1:
        return preds[0]

    def some(r: FlowRecord) -> bool:
        for p in preds:
            if p(r):
                return True
        return False
    return some


def _or(tk: Tokens, depth: int) -> Pred:
    preds = [_and(tk, depth)]
    while tk.peek() == "or":
        tk.take("or")
        preds.append(_and(tk, depth))
    return _any(preds)


def _and(tk: Tokens, depth: int) -> Pred:
    preds = [_unary(tk, depth)]
    while tk.peek() not in (None, ")", "or"):
        if tk.peek() == "and":
            tk.take("and")
        preds.append(_unary(tk, depth))
    return _all(preds)


def _unary(tk: Tokens, depth: int) -> Pred:
    """[not ...] ( expr ) | atom; `not` chains are folded, nesting is bounded."""
    negate = False
    while tk.peek() == "not":
        tk.take("not")
        negate = not negate
    tok, pos = tk.take(f"a condition, {_EXAMPLES}")
    word = tok.lower()
    if word == "(":
        if depth >= MAX_NESTING:
            raise tk.error(f"parentheses nested deeper than {MAX_NESTING}", pos)
        if tk.peek() == ")":
            raise tk.error("empty parentheses: put a condition inside", pos, 2)
        pred = _or(tk, depth + 1)
        if tk.peek() != ")":
            raise tk.error("unclosed '(': add ')'", pos)
        tk.take(")")
    elif word in ("and", "or"):
        raise tk.error(f"'{word}' needs a condition on each side, {_EXAMPLES}", pos, len(tok))
    elif word == ")":
        raise tk.error("unmatched ')': remove it or add '(' before", pos)
    else:
        pred = _atom(word, tok, pos, tk)
    if negate:
        inner = pred
        return lambda r: not inner(r)
    return pred


def _atom(word: str, tok: str, pos: int, tk: Tokens) -> Pred:
    if word in ("flow", "host", "port"):
        rule = rule_atom(word, pos, tk)
        return lambda r: rule.matches(r.id)
    if word == "proto":
        num = protocol(*tk.take("a protocol: proto tcp|udp|icmp|icmpv6|NUMBER"), tk)
        return lambda r: r.id.proto == num
    if word in ("src", "dst"):
        net = network(*tk.take(f"an address: {word} ADDR[/LEN], e.g. {word} 10.0.0.0/24"), tk)
        if word == "src":
            return lambda r: r.id.src in net
        return lambda r: r.id.dst in net
    if word == "hook":
        return _choice(tk, "hook", HOOKS, lambda r, v: r.id.hook == v)
    if word == "verdict":
        return _choice(tk, "verdict", tuple(_VERDICTS), lambda r, v: r.verdict in _VERDICTS[v])
    return _bare(word, tok, pos, tk)


def _choice(tk: Tokens, key: str, allowed: tuple, test) -> Pred:
    tok, pos = tk.take(f"{key} {'|'.join(allowed)}")
    value = tok.lower()
    if value not in allowed:
        raise tk.error(f"{key} is one of {', '.join(allowed)}, got {tok!r}", pos, len(tok))
    return lambda r: test(r, value)


def _bare(word: str, tok: str, pos: int, tk: Tokens) -> Pred:
    """Conveniences: an address or network, a port (PORT[/PROTO]), a protocol name."""
    if word in names.PROTO_BY_NAME:
        num = names.PROTO_BY_NAME[word]
        return lambda r: r.id.proto == num
    if "." in tok or ":" in tok:
        rule = HostRule(network(tok, pos, tk))
        return lambda r: rule.matches(r.id)
    if tok[:1].isdigit():
        number(tok.partition("/")[0], pos, "port", 65535, tk)  # the port's own error first
        port_rule = port_atom(tok, pos, tk)
        return lambda r: port_rule.matches(r.id)
    raise tk.error(f"unknown word {tok!r}: expected flow, host, port, proto, src, dst, hook, "
                   f"verdict, not, an address or a port", pos, len(tok))
