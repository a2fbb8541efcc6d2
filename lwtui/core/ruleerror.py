"""RuleError: a rule or filter that does not parse, with the offending token's
position, echoed safely with a caret under it. Pure Python.
"""

from __future__ import annotations

import re

SHOWN = 200    # characters of a rule echoed in an error


def _visible(text: str) -> str:
    """`text` on one line: whitespace as spaces, other control characters escaped (\\x1b)."""
    return "".join(" " if c.isspace() else c if c.isprintable() else repr(c)[1:-1] for c in text)


def clip_message(message: str) -> str:
    """A one-line message with what the user typed shortened: quoted tokens of more than 60
    characters, and words of more than 100 (a path, a name) around their middle, control
    characters escaped; at most 2 * SHOWN characters."""
    message = re.sub(r"('[^']{60,}'|\"[^\"]{60,}\")", lambda m: m.group()[:50] + "…" + m.group()[0], message)
    message = re.sub(r"\S{100,}", lambda m: m.group()[:45] + "…" + m.group()[-45:], message)
    message = _visible(message)
    return message if len(message) <= 2 * SHOWN else message[:2 * SHOWN - 1] + "…"


class RuleError(ValueError):
    """A rule or filter that does not parse. `message` names the fix, `position`
    is the character offset of the offending token in `text` (when known)."""

    def __init__(self, message: str, position: int = 0, text: str | None = None, length: int = 1):
        super().__init__(message)
        self.message = message
        self.position = position
        self.text = text
        self.length = max(1, length)

    def pretty(self, text: str | None = None, indent: str = "  ") -> str:
        """The message, then the text with a caret under the offending token.

        What the user typed is echoed at most SHOWN characters around the
        token (… marks what is left out), with control characters escaped
        (no terminal escape sequence reaches the screen), and long quoted
        tokens in the message are shortened the same way.
        """
        message = clip_message(self.message)
        text = self.text if text is None else text
        if text is None:
            return message
        pos = min(max(self.position, 0), len(text))
        start = max(0, min(pos - SHOWN // 2, len(text) - SHOWN))
        end = min(len(text), start + SHOWN)
        lead = ("…" if start else "") + _visible(text[start:pos])
        token = _visible(text[pos:min(end, pos + self.length)]) or " "
        tail = _visible(text[pos + self.length:end]) + ("…" if end < len(text) else "")
        return f"{message}\n{indent}{lead}{token}{tail}\n{indent}{' ' * len(lead)}{'^' * len(token)}"

    def __str__(self) -> str:
        return self.pretty()
