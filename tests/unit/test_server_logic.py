"""The server's pure parts: upload manifests, the command line of a queued run, the database
layer on SQLite (the integration tests drive it on PostgreSQL too)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from pytest_axp.server import manifest as M
from pytest_axp.server.db import Database
from pytest_axp.server.store import QUEUED, RUNNING, Store, StoreError
from pytest_axp.server.worker import local_run_argv


def _entry(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/",
                                  "a\\b", "a/./b", "x\x00y"])
def test_paths_that_leave_the_run_folder_are_refused(path):
    with pytest.raises(M.ManifestError):
        M.check_rel_path(path)
    with pytest.raises(M.ManifestError):
        M.validate({"files": {path: _entry(b"x")}, "links": {}})


def test_manifest_of_a_folder_round_trips_and_its_digest_is_stable(tmp_path):
    (tmp_path / "results" / "v").mkdir(parents=True)
    (tmp_path / "index.json").write_bytes(b"{}")
    (tmp_path / "results" / "v" / "a.log").write_bytes(b"hello")
    os.symlink("a.log", tmp_path / "results" / "v" / "link")
    found = M.build(tmp_path)
    assert found == {"files": {"index.json": _entry(b"{}"), "results/v/a.log": _entry(b"hello")},
                     "links": {"results/v/link": "a.log"}}
    assert M.validate(found) == found
    assert M.digest(M.build(tmp_path)) == M.digest(found)
    (tmp_path / "index.json").write_bytes(b"{ }")
    assert M.digest(M.build(tmp_path)) != M.digest(found)


@pytest.mark.parametrize("bad", [
    {"files": {"a": {"size": -1, "sha256": "0" * 64}}, "links": {}},
    {"files": {"a": {"size": 1, "sha256": "nothex"}}, "links": {}},
    {"files": {"a": _entry(b"x")}, "links": {"a": "b"}},
    {"files": {"a": _entry(b"x"), "a/b": _entry(b"y")}, "links": {}},
    {"files": []},
    [],
])
def test_malformed_manifests_are_refused(bad):
    with pytest.raises(M.ManifestError):
        M.validate(bad)


def test_run_ids_are_names_not_paths():
    assert M.check_run_id("hello-01M8JZ2TC3YV34W51YPMZ8CKGD")
    for bad in ("..", "a/b", ".hidden", "a..b", ""):
        with pytest.raises(M.ManifestError):
            M.check_run_id(bad)


def test_queued_run_command_lines():
    bundle, runs = Path("/b"), Path("/runs")
    request = {"experiment": "tree/exp.yaml", "variants": ["a", "b"],
               "files": ["data=bound/0/data.txt", "bound/1/x::dest/x"], "jobs": 2}
    argv = local_run_argv(request, bundle, runs, "exp-01M8JZ2TC3YV34W51YPMZ8CKGD", resume=False)
    assert argv[:6] == [sys.executable, "-m", "axp_cli", "local", "run", "/b/tree/exp.yaml"]
    assert argv[6:] == ["--runs-dir", "/runs", "--run-ulid", "01M8JZ2TC3YV34W51YPMZ8CKGD",
                        "--variant", "a", "--variant", "b", "--file", "data=/b/bound/0/data.txt",
                        "--file", "/b/bound/1/x::dest/x", "--jobs", "2"]
    resumed = local_run_argv(request, bundle, runs, "exp-01M8JZ2TC3YV34W51YPMZ8CKGD",
                             resume=True)
    assert resumed[6:] == ["--runs-dir", "/runs", "--resume", "exp-01M8JZ2TC3YV34W51YPMZ8CKGD"]


def test_store_on_sqlite(tmp_path):
    store = Store(Database.open(tmp_path), tmp_path)
    token = store.add_user("alice", "acme")
    assert store.user_for_token(token).org == "acme"
    assert store.user_for_token(token + "x") is None
    assert store.user_for_token("not-a-token") is None
    with pytest.raises(StoreError, match="exists already"):
        store.add_user("alice", "other")
    with pytest.raises(StoreError):
        store.add_user("../bob", "acme")
    with pytest.raises(StoreError, match="no organisation"):
        store.set_secret("nobody", "KEY", "value")
    store.set_secret("acme", "KEY", "one")
    store.set_secret("acme", "KEY", "two")
    assert store.secrets("acme") == {"KEY": "two"}
    store.insert_run("acme", "e-1", "alice", "e", "remote", QUEUED, "{}")
    claimed = store.claim_next()
    assert claimed is not None and claimed["state"] == RUNNING
    assert store.claim_next() is None
    assert store.mark_interrupted() == [("acme", "e-1")]
    # Reopened: the migrations are not run twice, the rows are there.
    store.db.close()
    again = Store(Database.open(tmp_path), tmp_path)
    assert again.run("acme", "e-1")["state"] == "interrupted"


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_dashboard_serves_the_signed_in_browsers_organisation(tmp_path):
    """The seam for the viewer: every path that is not the API's goes to the viewer app made
    for the organisation of the token in the browser's cookie."""
    from starlette.responses import PlainTextResponse
    from starlette.testclient import TestClient

    from pytest_axp.server.app import create_app

    def fake_viewer(runs_dir: Path):
        async def app(scope, receive, send):
            await PlainTextResponse(f"{runs_dir} {scope['path']}")(scope, receive, send)
        return app

    store = Store(Database.open(tmp_path), tmp_path)
    token = store.add_user("alice", "acme")
    store.add_user("bob", "globex")
    store.db.close()
    with TestClient(create_app(tmp_path, workers=0, dashboard=fake_viewer)) as client:
        first = client.get("/runs/x", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/login"
        assert client.post("/login", data={"token": token + "x"}).status_code == 401
        signed = client.post("/login", data={"token": token}, follow_redirects=False)
        assert signed.status_code == 303 and "httponly" in signed.headers["set-cookie"].lower()
        page = client.get("/runs/x")
        assert page.text == f"{tmp_path / 'orgs' / 'acme' / 'runs'} /runs/x"
        # The API keeps its own authentication: the cookie is not a bearer token.
        assert client.get("/api/v1/runs").status_code == 401
