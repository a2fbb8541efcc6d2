"""The real dashboard in a real terminal: `q` with an active block asks first; `n` keeps the
session and the kernel keeps dropping; `q` then Enter quits and the routes are as before."""

from __future__ import annotations

from tests.e2e.test_dashboard_exits import quit_lifting
from tests.e2e.test_tmux import all_of, has_row, tmux, web  # noqa: F401 (tmux and web are fixtures)
from tests.e2e.test_tmux_rules import start_on_lab
from tests.ui.test_live import HTTP_AFTER, HTTP_BLOCKED, HTTP_FIRST, curl_from

def test_q_asks_before_lifting_a_block_and_n_keeps_it(topo, web, tmux, route_dump):
    cli, srv = topo.client_v4, topo.server_v4
    before = route_dump(topo.client_ns)
    start_on_lab(tmux, topo)
    assert curl_from(topo.client_ns, web, HTTP_FIRST)
    tmux.wait(has_row(f"{cli}:{HTTP_FIRST}", f"{srv}:8080"), "the HTTP row")
    tmux.keys("p")
    tmux.wait(all_of("blocked port 8080/tcp", "Rules (1)"), "the block")

    tmux.keys("q")
    tmux.wait(all_of("Quit and lift 1 active rule?", "--keep-blocks", "y / enter"), "the question")
    tmux.keys("n")
    tmux.wait(lambda s: "Quit and lift" not in s, "the question gone")
    assert not curl_from(topo.client_ns, web, HTTP_BLOCKED, timeout=1.5), "the block was lifted by n"
    assert tmux.exit_status() is None, tmux.screen()        # 1.5 s after n, still running

    quit_lifting(tmux, "Quit and lift 1 active rule?")        # the question again: Enter lifts and quits
    assert f"on exit: {srv}/32 (out): restored" in tmux.screen()
    assert route_dump(topo.client_ns) == before
    assert curl_from(topo.client_ns, web, HTTP_AFTER), "the block outlived the session"
