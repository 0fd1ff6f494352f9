"""The viewer as the server's dashboard, in headless Chromium: a browser signs in with a
token and sees its organisation's runs, uploaded and run on the server; another's are not
there."""

from __future__ import annotations

from .test_server import HELLO, User, sqlite_server  # noqa: F401 (fixtures)
from .test_view import browser


def test_dashboard_in_chromium(sqlite_server, tmp_path):  # noqa: F811
    server = sqlite_server
    alice = User(tmp_path / "alice", server)
    token = server.add_user("alice", "acme")
    assert alice.login(token).returncode == 0
    carol = User(tmp_path / "carol", server)
    carol_token = server.add_user("carol", "globex")
    assert carol.login(carol_token).returncode == 0
    alice.write("exp.yaml", HELLO)
    alice.write("mode/mode.txt", "pass\n")
    res = alice.axp("run", "exp.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = res.stdout.splitlines()[0].split()[1]
    with browser() as (page, errors):
        page.goto(server.url + "/")
        assert page.url.endswith("/login")
        page.fill("input[name=token]", token)
        page.click("button")
        page.wait_for_selector(f"a[href='/runs/{run_id}']")
        page.click(f"a[href='/runs/{run_id}']")
        page.wait_for_selector(f"a[href='/runs/{run_id}/default']")
        page.click(f"a[href='/runs/{run_id}/default']")
        page.wait_for_selector("text=out-written")
        assert errors == []
    with browser() as (page, errors):
        page.goto(server.url + "/login")
        page.fill("input[name=token]", carol_token)
        page.click("button")
        page.wait_for_load_state()
        assert run_id not in page.content()
        assert page.goto(f"{server.url}/runs/{run_id}").status == 404
