"""The one grammar of rules and filters: tokens with their offsets, the
conditions both languages share, the expression syntax (and, or, not,
parentheses) and parse_rule.

    flow PROTO SRC:SPORT DST:DPORT
    [src|dst] host ADDR[/LEN]       (src ADDR, dst ADDR: the same)
    [src|dst] port PORT[/PROTO]
    proto NAME|N
    COND and COND, COND or COND, not COND, ( ... )

parse_expr reads an expression once and builds it with an Algebra: the
filter language (lwtui.core.filters) builds predicates and adds a few
display-only conditions (hook, verdict, bare words); rules build the
disjunctive normal form the kernel enforces (CompoundRule), and refuse with
a caret what it cannot. So what a person filters on is what they can block.
A rule that is one flow, host or port alone stays that single-key rule.
Errors are RuleError with the offset of the offending token. Pure Python.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Generic, Optional, Protocol, TypeVar

from lwtui.core import names
from lwtui.core.model import IPAddress, IPNetwork
from lwtui.core.compound import MAX_CONJUNCTIONS, MAX_TERMS, CompoundRule, Conjunction, Term, normalise
from lwtui.core.rules import (FlowRule, HostRule, PortRule, Rule, RuleError, check_flow, check_network,
                              check_port_rule)

_DIGITS = re.compile(r"[0-9]{1,9}\Z")  # ASCII only: int() would take '٣' and '1_0'
_TOKENS = re.compile(r"[()]|[^\s()]+")
MAX_NESTING = 32


class Tokens:
    """The words of a rule or filter with their offsets; errors point at them."""

    def __init__(self, text: str):
        self.text = text
        self.items = [(m.group(), m.start()) for m in _TOKENS.finditer(text)]
        self.i = 0

    def peek(self) -> str | None:
        return self.items[self.i][0].lower() if self.i < len(self.items) else None

    def take(self, what: str) -> tuple[str, int]:
        """The next token; at the end, an error saying `what` was expected."""
        if self.i >= len(self.items):
            raise self.error(f"expected {what}", len(self.text))
        tok = self.items[self.i]
        self.i += 1
        return tok

    def error(self, message: str, pos: int, length: int = 1) -> RuleError:
        return RuleError(message, pos, self.text, length)


def number(s: str, pos: int, what: str, limit: int, tk: Tokens) -> int:
    if not _DIGITS.match(s) or int(s) > limit:
        raise tk.error(f"{what} must be a number 0..{limit}, got {s!r}", pos, len(s))
    return int(s)


def protocol(s: str, pos: int, tk: Tokens) -> int:
    name = s.lower()
    if name in names.PROTO_BY_NAME:
        return names.PROTO_BY_NAME[name]
    if _DIGITS.match(s) and int(s) <= 255:
        return int(s)
    raise tk.error(f"unknown protocol {s!r}: use tcp, udp, icmp, icmpv6 or a number 0..255", pos, len(s))


def address(s: str, pos: int, tk: Tokens) -> IPAddress:
    if "%" in s:
        raise tk.error(f"{s!r}: zone ids (%...) are not part of rules; leave them out", pos, len(s))
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        raise tk.error(f"{s!r} is not an IP address (e.g. 10.0.0.3 or fd00::3)", pos, len(s)) from None


def network(s: str, pos: int, tk: Tokens) -> IPNetwork:
    addr_s, slash, len_s = s.partition("/")
    addr = address(addr_s, pos, tk)
    bits: int = addr.max_prefixlen
    if slash:
        bits = number(len_s, pos + len(addr_s) + 1, f"IPv{addr.version} prefix length",
                       addr.max_prefixlen, tk)
    net = ipaddress.ip_network((addr, bits), strict=False)
    if net.network_address != addr:
        raise tk.error(f"{s} has host bits set: did you mean {net}?", pos, len(s))
    check_network(net, tk.error, pos)
    return net


def is_address(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:      # the question asked: is it an address?
        return False


def endpoint_word(s: str, pos: int, tk: Tokens) -> tuple[IPAddress, int, int]:
    """ADDR:PORT or [ADDR]:PORT -> (address, port, offset of the port)."""
    if s.startswith("["):
        addr_s, close, rest = s[1:].partition("]")
        if not close or not rest.startswith(":"):
            raise tk.error(f"expected [ADDR]:PORT, e.g. [fd00::2]:5000, got {s!r}", pos, len(s))
        addr, port_s, port_pos = address(addr_s, pos + 1, tk), rest[1:], pos + len(addr_s) + 3
    else:
        addr_s, colon, port_s = s.rpartition(":")
        if ":" in addr_s or (not colon and s.count(":") > 1):
            split_ok = is_address(addr_s) and _DIGITS.match(port_s)
            example = f"[{addr_s}]:{port_s}" if split_ok else f"[{s}]:PORT"
            raise tk.error(f"IPv6 addresses in flow rules go in brackets: {example}", pos, len(s))
        if not colon:
            raise tk.error(f"expected ADDR:PORT, e.g. 10.0.0.3:8080, got {s!r}", pos, len(s))
        addr, port_pos = address(addr_s, pos, tk), pos + len(addr_s) + 1
    return addr, number(port_s, port_pos, "port", 65535, tk), port_pos


def flow_atom(tk: Tokens) -> FlowRule:
    p_tok, p_pos = tk.take("a protocol: flow PROTO SRC:SPORT DST:DPORT")
    proto = protocol(p_tok, p_pos, tk)
    s_tok, s_pos = tk.take("SRC:SPORT, e.g. flow tcp 10.0.0.2:40000 10.0.0.3:8080")
    src, sport, sp_pos = endpoint_word(s_tok, s_pos, tk)
    if tk.peek() == "->":
        tk.take("->")
    d_tok, d_pos = tk.take("DST:DPORT, e.g. flow tcp 10.0.0.2:40000 10.0.0.3:8080")
    dst, dport, dp_pos = endpoint_word(d_tok, d_pos, tk)
    check_flow(proto, src, sport, dst, dport, tk.error, (p_pos, d_pos, sp_pos, dp_pos))
    return FlowRule(proto, src, sport, dst, dport)


def port_atom(s: str, pos: int, tk: Tokens) -> PortRule:
    port_s, slash, proto_s = s.partition("/")
    port = number(port_s, pos, "port", 65535, tk)
    proto = protocol(proto_s, pos + len(port_s) + 1, tk) if slash else None
    check_port_rule(port, proto, tk.error, (pos, pos + len(port_s) + 1))
    return PortRule(port, proto)


def condition(word: str, pos: int, tk: Tokens) -> Rule | Term | None:
    """A condition both languages share, from its first word (lower case):
    a single-key rule (flow, host, port), a Term (src/dst host or port,
    proto), or None when `word` starts none of them."""
    if word == "flow":
        return flow_atom(tk)
    if word == "host":
        return HostRule(network(*tk.take("an address: host ADDR[/LEN], e.g. host 10.0.0.3"), tk))
    if word == "port":
        return port_atom(*tk.take("a port: port PORT[/PROTO], e.g. port 8080/tcp"), tk)
    if word == "proto":
        return Term("proto", protocol(*tk.take("a protocol: proto tcp|udp|icmp|icmpv6|NUMBER"), tk))
    if word in ("src", "dst"):
        tok, at = tk.take(f"an address: {word} [host] ADDR[/LEN], or a port: {word} port PORT[/PROTO]")
        if tok.lower() == "port":
            p = port_atom(*tk.take(f"a port: {word} port PORT[/PROTO], e.g. {word} port 8080/tcp"), tk)
            return Term(f"{word} port", p.port, p.proto)
        if tok.lower() == "host":
            tok, at = tk.take(f"an address: {word} host ADDR[/LEN], e.g. {word} host 10.0.0.0/24")
        return Term(f"{word} host", network(tok, at, tk))
    return None


T = TypeVar("T")


class Algebra(Protocol[T]):
    """What parse_expr builds an expression with."""
    implicit_and: bool   # juxtaposition means `and` (filters) or is an error (rules)
    expected: str        # the condition expected, for "expected ..." errors

    def atom(self, word: str, tok: str, pos: int, tk: Tokens) -> T: ...
    def all(self, items: list[T]) -> T: ...
    def any(self, items: list[T]) -> T: ...
    def negate(self, item: T, pos: int) -> T: ...


def parse_expr(tk: Tokens, alg: Algebra[T]) -> T:
    """The whole of tk as one expression; `and` binds tighter than `or`."""
    value = _or(tk, alg, 0)
    if tk.peek() is not None:  # only a ')' can stop the top-level expression early
        tok, pos = tk.take("")
        raise tk.error("unmatched ')': remove it or add '(' before", pos, len(tok))
    return value


def _or(tk: Tokens, alg: Algebra[T], depth: int) -> T:
    items = [_and(tk, alg, depth)]
    while tk.peek() == "or":
        tk.take("or")
        items.append(_and(tk, alg, depth))
    return items[0] if len(items) == 1 else alg.any(items)


def _and(tk: Tokens, alg: Algebra[T], depth: int) -> T:
    items = [_unary(tk, alg, depth)]
    while tk.peek() not in (None, ")", "or"):
        if tk.peek() == "and":
            tk.take("and")
        elif not alg.implicit_and:
            tok, pos = tk.take("")
            raise tk.error(f"unexpected {tok!r}: join conditions with and, or", pos, len(tok))
        items.append(_unary(tk, alg, depth))
    return items[0] if len(items) == 1 else alg.all(items)


def _unary(tk: Tokens, alg: Algebra[T], depth: int) -> T:
    """[not ...] ( expr ) | atom; `not` chains are folded, nesting is bounded."""
    negate, not_pos = False, 0
    while tk.peek() == "not":
        not_pos = tk.take("not")[1]
        negate = not negate
    tok, pos = tk.take(alg.expected)
    word = tok.lower()
    if word == "(":
        if depth >= MAX_NESTING:
            raise tk.error(f"parentheses nested deeper than {MAX_NESTING}", pos)
        if tk.peek() == ")":
            raise tk.error("empty parentheses: put a condition inside", pos, 2)
        value = _or(tk, alg, depth + 1)
        if tk.peek() != ")":
            raise tk.error("unclosed '(': add ')'", pos)
        tk.take(")")
    elif word in ("and", "or"):
        raise tk.error(f"'{word}' needs a condition on each side, {alg.expected}", pos, len(tok))
    elif word == ")":
        raise tk.error("unmatched ')': remove it or add '(' before", pos)
    else:
        value = alg.atom(word, tok, pos, tk)
    return alg.negate(value, not_pos) if negate else value


# -- rules: the DNF the kernel enforces ------------------------------------------

_RULE_EXPECTED = "a rule: flow PROTO SRC:SPORT DST:DPORT, host ADDR[/LEN] or port PORT[/PROTO]"
_NOT_IN_RULES = {
    "hook": "rules apply at every hook of the session: attach only the hook you want "
            "(--hook), or filter with hook in the dashboard",
    "verdict": "verdict is what rules decide, not something a rule can match",
}


@dataclass
class _Dnf:
    """A rule expression so far: conjunctions of (term, offset) pairs; or a
    single-key rule as written (`single`) while nothing has joined it."""
    conjs: list[list[tuple[Term, int]]]
    pos: int
    single: Optional[Rule] = None


def _as_term(rule: Rule, pos: int, tk: Tokens) -> Term:
    if isinstance(rule, HostRule):
        return Term("host", rule.network)
    if isinstance(rule, PortRule):
        return Term("port", rule.port, rule.proto)
    raise tk.error("a flow rule stands alone: block the flow by itself, or write its parts "
                   "(src host, dst port, ...)", pos, 4)


class _RuleAlgebra:
    implicit_and = False
    expected = _RULE_EXPECTED

    def __init__(self, tk: Tokens):
        self.tk = tk

    def atom(self, word: str, tok: str, pos: int, tk: Tokens) -> _Dnf:
        if word in _NOT_IN_RULES:
            raise tk.error(f"the kernel cannot enforce {word!r}: {_NOT_IN_RULES[word]}", pos, len(tok))
        cond = condition(word, pos, tk)
        if cond is None:
            raise tk.error(f"unknown rule {tok!r}: rules start with flow, host or port "
                           "(or src, dst, proto, not, '(')", pos, len(tok))
        if isinstance(cond, Term):
            return _Dnf([[(cond, pos)]], pos)
        return _Dnf([[(_as_term(cond, pos, tk), pos)]] if cond.kind != "flow" else [], pos, single=cond)

    def _terms(self, d: _Dnf) -> list[list[tuple[Term, int]]]:
        if d.single is not None and not d.conjs:
            _as_term(d.single, d.pos, self.tk)      # a flow rule inside an expression: refused
        return d.conjs

    def _limit(self, conjs: list, pos: int) -> None:
        if len(conjs) > MAX_CONJUNCTIONS:
            raise self.tk.error(f"this rule needs more than {MAX_CONJUNCTIONS} kernel rules (its `or`s, "
                                f"and `not` of `and`s, multiply out): split it, or use fewer `or`s", pos)

    def all(self, items: list[_Dnf]) -> _Dnf:
        acc: list[list[tuple[Term, int]]] = [[]]
        for d in items:
            terms = self._terms(d)
            self._limit([None] * (len(acc) * len(terms)), d.pos)
            acc = [a + b for a in acc for b in terms]
        return _Dnf(acc, items[0].pos)

    def any(self, items: list[_Dnf]) -> _Dnf:
        acc: list[list[tuple[Term, int]]] = []
        for d in items:
            acc += self._terms(d)
            self._limit(acc, d.pos)
        return _Dnf(acc, items[0].pos)

    def negate(self, item: _Dnf, pos: int) -> _Dnf:
        """not (C1 or C2 ...) = (not t11 or not t12 ...) and (not t21 ...) and ..."""
        negated = [_Dnf([[(t.negated(), at)] for t, at in conj], item.pos) for conj in self._terms(item)]
        return self.all(negated) if len(negated) > 1 else _Dnf(negated[0].conjs, pos)


def _compound(d: _Dnf, tk: Tokens) -> CompoundRule:
    """The DNF without repeated terms and conjunctions, within the kernel's limits."""
    dnf: list[Conjunction] = []
    for conj in d.conjs:
        terms = normalise(tuple(t for t, _ in conj))
        if terms is None or terms in dnf:
            continue
        if len(terms) > MAX_TERMS:
            at = next(at for t, at in conj if t == terms[MAX_TERMS])
            raise tk.error(f"more than {MAX_TERMS} terms joined by `and` (after `not` and `or` "
                           f"multiply out): the kernel checks at most {MAX_TERMS}; split the rule", at)
        dnf.append(terms)
    if not dnf:
        raise tk.error("this rule can never match (it holds a condition and its negation)", d.pos,
                       len(tk.text) - d.pos)
    return CompoundRule(tuple(dnf))


def _single(rule: CompoundRule) -> Rule:
    """A compound of one plain host or port term is that single-key rule."""
    if len(rule.dnf) == 1 and len(rule.dnf[0]) == 1 and not rule.dnf[0][0].negate:
        t = rule.dnf[0][0]
        if t.field == "host" and not isinstance(t.value, int):
            return HostRule(t.value)
        if t.field == "port" and isinstance(t.value, int):
            return PortRule(t.value, t.proto)
    return rule


def parse_rule(text: str) -> Rule:
    """Parse one rule of the grammar; RuleError (with position) when it does not
    parse or the kernel cannot enforce it. flow, host and port alone give
    their single-key rules; anything else a CompoundRule."""
    tk = Tokens(text)
    d = parse_expr(tk, _RuleAlgebra(tk))
    if d.single is not None and d.single.kind == "flow":
        return d.single
    return _single(_compound(d, tk))
