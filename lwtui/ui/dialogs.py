"""Modal screens and the filter bar: help, the TTL prompt, the lock-out and quit questions, `/`."""

from __future__ import annotations

from typing import Generic, TypeVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from lwtui.core.grammar import parse_rule
from lwtui.core.rules import TTL_MAX, TTL_MIN, Rule, RuleError
from lwtui.ui.keys import KEYS, display

FILTER_HINT = "filter: host 10.0.0.3 and port 8080 · not proto udp · verdict drop — Enter applies, empty clears, Esc cancels"


class HelpScreen(ModalScreen[None]):
    """Every key with what it does (the same list the footer is built from)."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", justify="right")
        table.add_column()
        for keys, _, _, text, _ in KEYS:
            table.add_row(display(keys), text)
        table.add_row("", "")
        table.add_row("", Text("A block acts from the next packet on; the row shows it at the next "
                               "refresh. a undoes it.", style="dim"))
        table.add_row("", Text("Filter words: host, port, flow, proto, src, dst, hook, verdict; "
                               "and, or, not, ( ).", style="dim"))
        table.add_row("", Text("Event log: c kind, l level, / search, f follows the newest or stops "
                               "(scrolling up stops too; End follows again).", style="dim"))
        with VerticalScroll(id="help-box"):    # scrolls (arrows, PgDn) where the terminal is short
            yield Static(Text("lwtui keys", style="bold"), id="help-title")
            yield Static(table)
            yield Static(Text("esc closes · ↑ ↓ PgUp PgDn scroll", style="dim"), id="help-foot")


_T = TypeVar("_T")


class Refused(Exception):
    """A line that does not parse: args[0] is the message (a Text) shown under it."""


class LineScreen(ModalScreen[_T], Generic[_T]):
    """One line to type: Enter gives parse(line), or None when it is empty; a line that does
    not parse stays, with why under it (the Static `#ERROR_ID`)."""

    ERROR_ID = ""

    def parse(self, line: str) -> _T:
        raise NotImplementedError

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            self.dismiss(None)
            return
        try:
            value = self.parse(event.value)
        except Refused as e:
            self.query_one(f"#{self.ERROR_ID}", Static).update(e.args[0])
            return
        self.dismiss(value)


class TtlScreen(LineScreen[float | None]):
    """Asks for the TTL of the next block, or of an active `rule`; returns seconds, or None to
    clear it. Esc returns `current` and sets `cancelled`."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, current: float | None, rule: str | None = None):
        super().__init__()
        self.current = current
        self.rule = rule
        self.cancelled = False

    def compose(self) -> ComposeResult:
        with Vertical(id="ttl-box"):
            if self.rule is None:
                title = Text("TTL for the next block, in seconds (empty: no TTL). The rule lifts itself when it "
                             "runs out.")
            else:
                title = Text.assemble("TTL of ", (self.rule, "bold"), ", in seconds from now (empty: no TTL, "
                                      "it stays until removed).")
            yield Static(title, id="ttl-title")
            yield Input(value="" if not self.current else f"{self.current:g}", placeholder="e.g. 30",
                        id="ttl-input")
            yield Static("", id="ttl-error")

    ERROR_ID = "ttl-error"

    def parse(self, line: str) -> float | None:
        text = line.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not TTL_MIN <= seconds <= TTL_MAX:
            raise Refused(Text(f"{text!r}: give a number of seconds between {TTL_MIN} and {TTL_MAX}",
                               style="bold red"))
        return seconds

    def action_cancel(self) -> None:
        self.cancelled = True
        self.dismiss(self.current)


RULE_HINT = ("host ADDR[/LEN] · port PORT[/PROTO] · flow PROTO SRC:SPORT DST:DPORT — "
             "e.g. host 10.0.0.9, port 53/udp. Enter blocks, Esc cancels")


class RuleScreen(LineScreen[Rule | None]):
    """Asks for a rule in the `lwtui block` grammar; returns the parsed Rule, or None.

    A rule that does not parse stays in the line, its error with a caret under
    the word at fault.
    """

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, ttl: float | None = None):
        super().__init__()
        self.ttl = ttl

    def compose(self) -> ComposeResult:
        with Vertical(id="rule-box"):
            title = "Block a rule" + (f" (TTL {self.ttl:g}s, set with t)" if self.ttl else "")
            yield Static(Text(title, style="bold"), id="rule-title")
            yield Static(Text(RULE_HINT), id="rule-hint")
            yield Input(placeholder="host 10.0.0.9", id="rule-input")
            yield Static("", id="rule-error")

    ERROR_ID = "rule-error"

    def parse(self, line: str) -> Rule | None:
        try:
            return parse_rule(line.strip())
        except RuleError as e:
            raise Refused(Text(e.pretty(line, indent=""), style="bold red")) from None

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question whose safe answer is the default: only `y` says yes.

    n, Esc and Enter say no, so a key pressed out of habit never confirms.
    """

    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape,enter", "answer(False)", "no")]

    def __init__(self, title: str, detail: str, yes: str, no: str):
        super().__init__()
        self.title_text, self.detail, self.yes, self.no = title, detail, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Text(self.title_text, style="bold"), id="confirm-title")
            yield Static(Text(self.detail), id="confirm-detail")   # [IPv6]:port is not markup
            yield Static(self.keys_text(), id="confirm-keys")

    def keys_text(self) -> Text:
        return Text.assemble(("y", "bold red"), f" {self.yes}    ", ("n", "bold green"),
                             f" / esc / enter  {self.no} (default)")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class BlockFilterScreen(ConfirmScreen):
    """b: block what the filter shows? Blocking is what was asked for: y and Enter say yes,
    n and Esc cancel."""

    BINDINGS = [Binding("y,enter", "answer(True)", "block"), Binding("n,escape", "answer(False)", "cancel")]

    def __init__(self, rule: Rule, matching: int, shown: int):
        flows = "flow" if matching == 1 else "flows"
        super().__init__(f"Block {rule.text}?",
                         f"The rule matches {matching} {flows} of the {shown} in the table now, and every "
                         "new one like them.", yes="block", no="cancel")

    def keys_text(self) -> Text:
        return Text.assemble(("y", "bold red"), " / enter  block    ", ("n", "bold green"), " / esc  cancel")


class QuitScreen(ConfirmScreen):
    """Quit and lift the session's rules? Here quitting is what was asked for: y and Enter say
    yes, n and Esc stay."""

    BINDINGS = [Binding("y,enter", "answer(True)", "quit"), Binding("n,escape", "answer(False)", "stay")]

    def __init__(self, rules: int):
        word, verb = ("rule", "it blocks") if rules == 1 else ("rules", "they block")
        super().__init__(
            f"Quit and lift {rules} active {word}?",
            f"Quitting restores the routes and removes the session's {word}: what {verb} flows again.\n"
            "To keep blocks past the end of lwtui, start it with --keep-blocks "
            "(lift them later with `lwtui detach --session NAME`).", yes="quit", no="stay")
        self.rules = rules

    def keys_text(self) -> Text:
        return Text.assemble(("y", "bold red"), " / enter  quit and lift them    ", ("n", "bold green"),
                             " / esc  stay")


class FilterBar(Vertical):
    """An input line for the filter; the app parses what is submitted."""

    def compose(self) -> ComposeResult:
        yield Static(FILTER_HINT, id="filter-hint")
        yield Input(placeholder="host 10.0.0.3 and port 8080", id="filter-input")

    def open(self, text: str) -> None:
        self.query_one("#filter-hint", Static).update(FILTER_HINT)
        self.display = True
        field = self.query_one(Input)
        field.value = text
        field.cursor_position = len(text)
        field.focus()

    def close(self) -> None:
        self.display = False

    def show_error(self, text: str) -> None:
        """The parse error, with its caret, above the line being edited."""
        self.query_one("#filter-hint", Static).update(Text(text, style="bold red"))
