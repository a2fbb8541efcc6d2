"""`lwtui block`, `allow` and `rules`: a running session's rules, from another shell,
through its pinned verdict maps."""

from __future__ import annotations

import json
import sys
import time

from lwtui.cli.console import console
from lwtui.kernel import pins
from lwtui.session import state


def _running_session(name: str | None) -> state.SessionState:
    """The session `block`/`allow`/`rules` act on: a running one, or one kept with --keep-blocks."""
    from lwtui.session.live import SessionError
    states = [s for s in state.list_states() if s.status in ("running", "kept")]
    if name:
        for s in states:
            if s.name == name:
                return s
        names = ", ".join(s.name for s in states) or "none running"
        raise SessionError(f"no running session named {name!r} ({names}): see `lwtui sessions`")
    running = [s for s in states if s.status == "running"]
    if len(running) == 1 or (not running and len(states) == 1):
        return (running or states)[0]
    if not states:
        raise SessionError("no lwtui session is running: start one with `lwtui ROUTE` or `lwtui watch ROUTE`")
    raise SessionError("several sessions are running (" + ", ".join(s.name for s in states) +
                       "): pick one with --session NAME")


def _store(args):
    from lwtui.session.guard import require_privileges
    from lwtui.kernel.verdicts import RuleStore
    require_privileges()
    st = _running_session(args.session)
    return st, RuleStore(pins.open_pinned(st.name), owns_fds=True)


def _guard_ssh(rule, force: bool) -> None:
    """Refuse, headless, a rule that would cut the user's own SSH connection."""
    from lwtui.session.guard import ssh_flow_blocked_by
    hit = ssh_flow_blocked_by(rule)
    if hit and not force:
        from lwtui.session.live import SessionError
        raise SessionError(f"{rule.text!r} would block your own SSH connection ({hit}): add --force to do it anyway")


def cmd_block(args) -> int:
    from lwtui.core.grammar import parse_rule
    rule = parse_rule(" ".join(args.rule))
    dry = getattr(args, "dry_run", False)
    if not dry:         # a dry-run rule drops nothing: it cannot cut the connection
        _guard_ssh(rule, args.force)
    st, store = _store(args)
    try:
        store.add(rule, ttl=args.ttl, dry_run=dry)
    finally:
        store.close()
    ttl = f" for {args.ttl:g}s" if args.ttl else ""
    what = "dry-run (counts would-drops, drops nothing)" if dry else "blocked"
    console().print(f"{what} [bold]{rule.text}[/]{ttl} in session {st.name}")
    return 0


def cmd_allow(args) -> int:
    from lwtui.core.grammar import parse_rule
    rule = parse_rule(" ".join(args.rule))
    st, store = _store(args)
    try:
        gone = store.remove(rule)
    finally:
        store.close()
    if not gone:
        from lwtui.kernel.verdicts import VerdictError
        raise VerdictError(f"no rule {rule.text!r} in session {st.name}: see `lwtui rules`")
    console().print(f"allowed [bold]{rule.text}[/] in session {st.name}")
    return 0


def cmd_rules(args) -> int:
    from lwtui.cli.watch import rule_json
    from lwtui.kernel.verdicts import unreadable_message
    st, store = _store(args)
    try:
        entries = store.entries()
        unreadable = store.unreadable
    finally:
        store.close()
    if unreadable[0]:       # said on stderr, the listing as it is on stdout; exit 1
        print(f"lwtui: {unreadable_message(*unreadable)}", file=sys.stderr)
    if getattr(args, "save", None):
        return _save_rules(args.save, st.name, entries) or (1 if unreadable[0] else 0)
    if args.json:
        for e in entries:
            print(json.dumps(rule_json(e), separators=(",", ":")))
        return 1 if unreadable[0] else 0
    from rich.table import Table
    t = Table(title=f"rules of session {st.name}", title_justify="left")
    for c in ("rule", "kind", "hits", "ttl left"):
        t.add_column(c)
    for e in entries:
        t.add_row(e.text, e.kind, str(e.hits), "-" if e.expires_in is None else f"{e.expires_in:.0f}s")
    if not entries:
        t.caption = "no rules: block with `lwtui block RULE` or a key in the dashboard"
    console().print(t)
    return 1 if unreadable[0] else 0


def _save_rules(path: str, name: str, entries) -> int:
    """Write a session's rules as a rules file (lwtui.core.rulesfile) for --rules."""
    from lwtui.core.records import rfc3339
    from lwtui.core.rulesfile import format_rules
    from lwtui.cli.targets import UsageError
    text = format_rules(entries, header=f"rules of session {name}, saved {rfc3339(time.time())}\n"
                                        "use: lwtui watch ROUTE ... --rules FILE (or the dashboard's --rules)")
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}: choose a writable path") from None
    print(f"saved {len(entries)} rule{'s' if len(entries) != 1 else ''} of session {name} to {path}")
    return 0
