"""Rules files: one rule a line, # comments, ttl=SECONDS; bad lines named by
file:line with a caret; what `rules --save` writes reads back the same."""

from __future__ import annotations

import pytest

from lwtui.core.grammar import parse_rule
from lwtui.core.model import RuleEntry
from lwtui.core.rules import RuleError
from lwtui.core.rulesfile import format_rules, parse_rules, read_rules

GOOD = """\
# the seed's ingress program
src host 10.0.0.3 and dst port 8080/tcp

host 10.0.0.9 ttl=300      # five minutes
  port 53/udp   TTL=1.5
flow tcp 10.0.0.2:40000 10.0.0.3:8080
"""


def test_a_rules_file_gives_its_rules_in_order_with_their_ttls():
    rules = parse_rules(GOOD, "today.rules")
    assert [(r.text, ttl) for r, ttl in rules] == [
        ("src host 10.0.0.3 and dst port 8080/tcp", None), ("host 10.0.0.9", 300.0),
        ("port 53/udp", 1.5), ("flow tcp 10.0.0.2:40000 10.0.0.3:8080", None)]
    assert parse_rules("# nothing\n\n   \n") == []


@pytest.mark.parametrize("text, line, pos, words", [
    ("port 80\nhost 10.0.0.3/24\n", 2, 5, ["f.rules:2:", "did you mean 10.0.0.0/24"]),
    ("port 80 ttl=0\n", 1, 8, ["f.rules:1:", "ttl must be 1..604800"]),
    ("port 80 ttl=soon\n", 1, 8, ["ttl must be"]),
    ("\n\nsrc host 10.0.0.3 and hook in # no\n", 3, 22, ["f.rules:3:", "cannot enforce 'hook'"]),
    ("".join(f"port {p} or port {p + 1000} or proto {p}\n" for p in range(3)), 3, 0, ["take 9 kernel entries",
                                                                                      "a session has 8"]),
])
def test_a_bad_line_is_named_by_file_and_line_with_a_caret(text, line, pos, words):
    with pytest.raises(RuleError) as info:
        parse_rules(text, "f.rules")
    e = info.value
    for w in words:
        assert w in e.message, (w, e.message)
    assert e.message.startswith(f"f.rules:{line}:")
    assert e.text == text.splitlines()[line - 1] and e.position == pos
    assert e.pretty().splitlines()[-1].strip().startswith("^")


def test_an_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(RuleError, match=r"cannot read the rules file .*nope: No such file"):
        read_rules(str(tmp_path / "nope"))


def test_saved_rules_read_back_the_same():
    entries = [RuleEntry(text="src host 10.0.0.3 and dst port 8080/tcp", kind="rule", hits=3, expires_in=None,
                         created=0.0),
               RuleEntry(text="host 10.0.0.9", kind="host", hits=0, expires_in=41.2, created=0.0)]
    text = format_rules(entries, header="rules of session lab")
    assert text.splitlines()[0] == "# rules of session lab"
    back = parse_rules(text)
    assert [(r, ttl) for r, ttl in back] == [(parse_rule(entries[0].text), None), (parse_rule("host 10.0.0.9"), 42)]
