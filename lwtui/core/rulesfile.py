"""Rules files: a session's rules, written down to be repeated tomorrow.

    # the seed's ingress program
    src host 10.0.0.3 and dst port 8080/tcp
    host 10.0.0.9 ttl=300          # lifted by itself after 5 minutes

One rule per line in the rule grammar (lwtui.core.grammar), `#` starts a
comment, blank lines are skipped, and a line may end with `ttl=SECONDS`
(TTL_MIN..TTL_MAX). `--rules FILE` reads one before a session attaches;
`lwtui rules --save FILE` writes one (format_rules). A bad line is a
RuleError whose message starts with FILE:LINE and whose caret points into
that line. Pure Python.
"""

from __future__ import annotations

import re
from pathlib import Path

from lwtui.core.compound import MAX_COMPOUND, CompoundRule
from lwtui.core.grammar import parse_rule
from lwtui.core.model import RuleEntry
from lwtui.core.rules import TTL_MAX, TTL_MIN, Rule, RuleError

_TTL = re.compile(r"(?:^|\s)(ttl=(\S*))\s*$", re.IGNORECASE)
MAX_LINES = 100_000


def _ttl(line: str, where: str) -> tuple[str, float | None]:
    """The line without its trailing ttl=SECONDS, and the TTL (None: none given)."""
    m = _TTL.search(line)
    if m is None:
        return line, None
    word, value = m.group(1), m.group(2)
    try:
        ttl = float(value)
    except ValueError:
        ttl = -1.0
    if not TTL_MIN <= ttl <= TTL_MAX:
        raise RuleError(f"{where}: ttl must be {TTL_MIN}..{TTL_MAX} seconds, got {value!r}", m.start(1), line,
                        len(word))
    return line[:m.start(1)], ttl


def parse_rules(text: str, name: str = "rules") -> list[tuple[Rule, float | None]]:
    """The rules of a rules file's text, in order, with their TTLs; RuleError
    naming `name`:LINE for the first bad line. Compound rules together must
    fit the kernel's MAX_COMPOUND entries."""
    out: list[tuple[Rule, float | None]] = []
    entries = 0
    for n, raw in enumerate(text.splitlines()[:MAX_LINES + 1], 1):
        where = f"{name}:{n}"
        if n > MAX_LINES:
            raise RuleError(f"{where}: more than {MAX_LINES} lines: this is not a rules file")
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        body, ttl = _ttl(line, where)
        try:
            rule = parse_rule(body)
        except RuleError as e:
            raise RuleError(f"{where}: {e.message}", e.position, raw, e.length) from None
        if isinstance(rule, CompoundRule):
            entries += len(rule.dnf)
            if entries > MAX_COMPOUND:
                raise RuleError(f"{where}: the compound rules up to here take {entries} kernel entries; "
                                f"a session has {MAX_COMPOUND}: remove or merge some", 0, raw, len(body.strip()))
        out.append((rule, ttl))
    return out


def read_rules(path: str) -> list[tuple[Rule, float | None]]:
    """parse_rules of a file; RuleError (naming the file) when it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise RuleError(f"cannot read the rules file {path}: {reason}") from None
    return parse_rules(text, path)


def format_rules(entries: list[RuleEntry], header: str = "") -> str:
    """A rules file holding `entries`: one rule a line, with its TTL left (rounded
    up to a whole second) when it has one. parse_rules reads it back."""
    lines = [f"# {h}" for h in header.splitlines()]
    for e in entries:
        ttl = "" if e.expires_in is None else f" ttl={max(TTL_MIN, min(TTL_MAX, -int(-e.expires_in // 1)))}"
        lines.append(e.text + ttl)
    return "\n".join(lines) + "\n"
