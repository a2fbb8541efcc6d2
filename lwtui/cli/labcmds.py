"""`lwtui lab` (up, down, status) and `lwtui demo`: the dashboard on the lab's routes,
the lab torn down on quit."""

from __future__ import annotations

import json

from lwtui.cli.console import console
from lwtui.cli.runcmds import finish, need_terminal


def cmd_lab(args) -> int:
    from lwtui.cli.labstatus import lab_table, with_rfc3339_times
    from lwtui.lab.lab import Lab
    from lwtui.session.guard import require_privileges
    require_privileges()        # status too: as another user the lab's files cannot be read, and it would say so wrongly
    lab = Lab(prefix=args.prefix)
    if args.action == "up":
        topo = lab.up()
        console().print(f"lab up: {topo.client_ns} ({topo.client_v4}, {topo.client_v6}) <-> "
                        f"{topo.server_ns} ({topo.server_v4}, {topo.server_v6}); "
                        f"try: lwtui {topo.server_v4}/32 --netns {topo.client_ns}")
    elif args.action == "down":
        lab.down()
        console().print("lab down")
    else:
        st = lab.status()
        if args.json:
            print(json.dumps(with_rfc3339_times(st), default=str))
        else:
            console().print(lab_table(st))
        return 0 if st.get("up") else 1
    return 0


def cmd_demo(args) -> int:
    """Build the lab, watch out on the client and in on the server, tear all down on quit."""
    from lwtui.lab.lab import Lab
    from lwtui.net.routes import Target, list_routes
    from lwtui.session.live import Session
    from lwtui.ui.app import run_dashboard
    from lwtui.session.guard import require_privileges
    require_privileges()
    need_terminal()
    lab = Lab(prefix=args.prefix)
    topo = lab.up()
    try:
        targets = [Target(prefix=f"{topo.server_v4}/32", hook="out", netns=topo.client_ns),
                   Target(prefix=f"{topo.server_v6}/128", hook="out", netns=topo.client_ns),
                   Target(prefix=f"{topo.server_v4}/32", hook="in", netns=topo.server_ns)]
        session = Session(targets, name=f"{args.prefix}-demo", keep_blocks=getattr(args, "keep_blocks", False))
        try:
            session.start()
            return run_dashboard(session, interval=args.interval,
                                 list_routes=lambda: list_routes(topo.client_ns)) or 0
        finally:
            finish(session)
    finally:
        if not args.keep_lab:
            lab.down()
