"""One function per `lwtui` subcommand, `cmd_<name>`: entry.py parses and dispatches
here, and turns the errors lwtui knows into exit codes with error_code().

Each command lives beside its kin: runcmds (the dashboard, watch), rulecmds
(block, allow, rules), sessioncmds (sessions, detach), labcmds (lab, demo), doctor.
"""

from __future__ import annotations

from lwtui.cli.doctor import cmd_doctor
from lwtui.cli.labcmds import cmd_demo, cmd_lab
from lwtui.cli.rulecmds import cmd_allow, cmd_block, cmd_rules
from lwtui.cli.runcmds import cmd_dashboard, cmd_watch
from lwtui.cli.sessioncmds import cmd_detach, cmd_sessions

__all__ = ["cmd_allow", "cmd_block", "cmd_dashboard", "cmd_demo", "cmd_detach", "cmd_doctor", "cmd_lab",
           "cmd_rules", "cmd_sessions", "cmd_watch", "error_code"]


def error_code(e: BaseException) -> int | None:
    """Exit code for an error lwtui knows (its message names the fix), else None.

    2: bad input or an environment that is not ready (nothing was changed);
    1: a failure at run time (the routes were restored on the way out, or what could not be
       is named with its fix: RestoreFailed).
    """
    from lwtui.kernel.pins import PinError
    from lwtui.session.faults import InjectedFault
    from lwtui.session.guard import PrivilegeError
    from lwtui.kernel.headers import HeadersMissing
    from lwtui.lab.lab import LabError
    from lwtui.net.netns import TopologyError
    from lwtui.core.rules import RuleError
    from lwtui.net.routes import RouteError
    from lwtui.session.live import RoutesGone, SessionError
    from lwtui.kernel.verdicts import VerdictError
    from lwtui.kernel.bpfsys import LibbpfMissing
    from lwtui.cli.watch import ReaderFailed
    from lwtui.kernel.features import FeatureError
    from lwtui.session.metrics import MetricsError
    known: tuple[type[Exception], ...] = (HeadersMissing, RuleError, RouteError, SessionError, VerdictError,
                                          PinError, PrivilegeError, LabError, TopologyError, MetricsError,
                                          LibbpfMissing, FeatureError)
    try:
        from lwtui.kernel.loader import ProbeError
        known += (ProbeError,)
    except ImportError:  # BCC missing: the probe cannot even be imported
        pass
    from lwtui.session.protocol import RestoreFailed
    if isinstance(e, (RoutesGone, ReaderFailed, InjectedFault, RestoreFailed)):
        return 1
    return 2 if isinstance(e, known) else None
