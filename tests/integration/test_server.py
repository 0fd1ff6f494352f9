"""`axp server` for real: a server subprocess on 127.0.0.1 (SQLite, or PostgreSQL from
Debian's package), driven by the real CLI in subprocesses, each user with their own HOME and
config folder; remote runs on the real Docker engine."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "example_experiments"
PG_ADMIN_ENV = "AXP_TEST_POSTGRES_URL"
PG_ADMIN_DEFAULT = "postgresql://axp:axp@127.0.0.1:5432/postgres"
# No key or endpoint of the machine's reaches a user or the server.
PROVIDER_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY",
                      "OPENAI_BASE_URL", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL")

HELLO = """
schema_version: 2
id: hello
name: Hello
agents:
  - name: command
    script: echo done > out.txt; echo odd > 'a ?#%.txt'
prompts:
  - id: p
    prompt: write out.txt
files:
  - name: mode
    source: mode
    dest: mode
tests:
  application:
    - name: out-written
      script: test -f out.txt && grep -qx pass mode/mode.txt
limits:
  max_turns: 1
  max_time_seconds: 60
"""

# Sleeps until a file it stages says otherwise: long enough to cancel, or to kill the server.
SLOW = """
schema_version: 2
id: slow
name: Slow
agents:
  - name: command
    script: 'sleep "$(cat wait/seconds)"; echo done > out.txt'
prompts:
  - id: p
    prompt: wait
files:
  - source: wait
    dest: wait
secrets: [GREETING]
tests:
  application:
    - name: out-written
      script: test -f out.txt && test "$GREETING" = "$(printf 'hello-from-the-%s' server)"
limits:
  max_turns: 1
  max_time_seconds: 300
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTEST_") and k not in PROVIDER_VARIABLES}
    env["AXP_NO_REAP"] = "1"
    return env


class Server:
    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def _db_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir)] + (
            ["--database-url", self.database_url] if self.database_url else [])

    def admin(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "axp_cli", "server", *args,
                               *self._db_args()], input=stdin, capture_output=True, text=True,
                              env=base_env(), timeout=60, cwd=self.data_dir.parent)

    def add_user(self, name: str, org: str) -> str:
        res = self.admin("user", "add", name, "--org", org)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    def start(self, same_port: bool = False) -> None:
        for _ in range(1 if same_port else 5):  # another process may take the port first
            self.port = self.port if same_port else free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.log = open(self.data_dir.parent / f"server-{self.port}.log", "w")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "axp_cli", "server", "--port", str(self.port),
                 *self._db_args()], env=base_env(), stdout=self.log, stderr=subprocess.STDOUT,
                text=True, cwd=self.data_dir.parent)
            while self.proc.poll() is None:
                try:
                    if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    time.sleep(0.2)
        pytest.fail(f"axp server did not start: {self.logs()}")

    def logs(self) -> str:
        return (self.data_dir.parent / f"server-{self.port}.log").read_text()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(120)
        self.proc = None


class User:
    """One person's machine: their own HOME, config folder and project folder."""

    def __init__(self, root: Path, server: Server) -> None:
        self.root = root
        self.server = server
        self.project = root / "project"
        self.project.mkdir(parents=True)
        (root / "home").mkdir()

    def env(self) -> dict[str, str]:
        env = base_env()
        env.update(HOME=str(self.root / "home"), XDG_CONFIG_HOME=str(self.root / "config"))
        return env

    def axp(self, *args: str, stdin: str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "axp_cli", *args], input=stdin,
                              capture_output=True, text=True, env=self.env(), timeout=timeout,
                              cwd=self.project)

    def login(self, token: str) -> subprocess.CompletedProcess[str]:
        return self.axp("auth", "login", "--server", self.server.url, stdin=token + "\n")

    @property
    def credentials(self) -> Path:
        return self.root / "config" / "axp" / "credentials.json"

    def write(self, rel: str, text: str) -> Path:
        path = self.project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def _postgres_database() -> Iterator[str]:
    import psycopg

    admin = os.environ.get(PG_ADMIN_ENV, PG_ADMIN_DEFAULT)
    name = f"axp_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(admin, autocommit=True)
    except psycopg.Error as e:
        pytest.fail(f"PostgreSQL is part of the test environment ({PG_ADMIN_ENV}={admin}; "
                    f".ci/run starts it): {e}")
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
    else:
        yield from _postgres_database()


@pytest.fixture
def server(tmp_path, database_url, docker_client) -> Iterator[Server]:
    srv = Server(tmp_path / "server-data", database_url)
    srv.data_dir.mkdir()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def sqlite_server(tmp_path, docker_client) -> Iterator[Server]:
    srv = Server(tmp_path / "server-data", None)
    srv.data_dir.mkdir()
    srv.start()
    yield srv
    srv.stop()


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def containing(root: Path, needle: str) -> list[str]:
    return [p.as_posix() for p in root.rglob("*")
            if p.is_file() and not p.is_symlink() and needle.encode() in p.read_bytes()]


def wait_for_state(user: User, run_id: str, wanted: str, seconds: float = 240) -> str:
    deadline = time.monotonic() + seconds
    out = ""
    while time.monotonic() < deadline:
        res = user.axp("runs", "status", run_id)
        out = res.stdout
        if res.stdout.startswith(f"run {run_id}: {wanted}"):
            return out
        time.sleep(0.5)
    pytest.fail(f"run {run_id} never became {wanted}: {out}")


def wait_for_file(path: Path, seconds: float = 240) -> None:
    """The sandbox's agent has started once the variant's layout is written."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} never appeared")
        time.sleep(0.5)


def wait_for_bundles(server: Server, org: str, count: int, seconds: float = 60) -> None:
    """A run's bundle goes just after its end is recorded: wait for what is left to be
    `count` bundles."""
    root = server.data_dir / "orgs" / org / "bundles"
    deadline = time.monotonic() + seconds
    while len(list(root.iterdir()) if root.is_dir() else []) != count:
        if time.monotonic() > deadline:
            pytest.fail(f"{root}: {sorted(p.name for p in root.iterdir())}, not {count}")
        time.sleep(0.2)


# -- accounts --------------------------------------------------------------------------------

def test_login_status_logout_and_a_wrong_token(server, tmp_path):
    token = server.add_user("alice", "acme")
    assert token.startswith("axp_") and len(token) > 40
    alice = User(tmp_path / "alice", server)
    res = alice.login(token)
    assert res.returncode == 0, res.stderr
    assert "as alice (organisation acme)" in res.stdout
    assert token not in res.stdout + res.stderr
    assert stat.S_IMODE(alice.credentials.stat().st_mode) == 0o600
    assert json.loads(alice.credentials.read_text()) == {"server": server.url, "token": token}
    status = alice.axp("auth", "status")
    assert status.returncode == 0 and "signed in to" in status.stdout and token not in status.stdout
    # The token is stored hashed: it is nowhere in the server's files (nor its database).
    assert containing(server.data_dir, token) == []

    mallory = User(tmp_path / "mallory", server)
    wrong = mallory.login(token[:-4] + "AAAA")
    assert wrong.returncode == 2 and "refused the token" in wrong.stderr
    assert not mallory.credentials.exists()
    # An API call without a token, or with a wrong one, is refused too.
    assert httpx.get(server.url + "/api/v1/runs").status_code == 401
    assert httpx.get(server.url + "/api/v1/runs",
                     headers={"authorization": "Bearer axp_nope"}).status_code == 401

    assert alice.axp("auth", "logout").stdout.strip() == "signed out"
    assert not alice.credentials.exists()
    assert alice.axp("auth", "status").returncode == 1
    assert alice.axp("upload", "x").returncode == 2
    alice.write("exp.yaml", HELLO)
    managed = alice.axp("local", "run", "exp.yaml", "--managed-model-access")
    assert managed.returncode == 2 and "needs a sign-in" in managed.stderr


# -- upload, download, query ---------------------------------------------------------------------

def test_upload_download_query_and_another_organisation(server, tmp_path):
    alice = User(tmp_path / "alice", server)
    assert alice.login(server.add_user("alice", "acme")).returncode == 0
    carol = User(tmp_path / "carol", server)
    assert carol.login(server.add_user("carol", "globex")).returncode == 0
    alice.write("exp.yaml", HELLO)
    alice.write("mode/mode.txt", "pass\n")
    res = alice.axp("local", "run", "exp.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    (run_dir,) = (alice.project / ".axp" / "runs").iterdir()
    run_id = run_dir.name
    assert f"uploaded run {run_id} to {server.url}" in res.stdout

    again = alice.axp("upload", run_id)
    assert again.returncode == 0 and "already uploaded, unchanged" in again.stdout
    listed = json.loads(alice.axp("runs", "list", "--json").stdout)
    assert [(r["run_id"], r["status"], r["kind"]) for r in listed] == [(run_id, "pass", "upload")]

    down = alice.axp("download", run_id)
    assert down.returncode == 0, down.stderr
    got = alice.project / ".axp" / "downloads" / run_id
    assert files_of(got) == files_of(run_dir) and len(files_of(got)) > 10

    q = alice.axp("query", "select run_id, variant_id, status from runs", "--json")
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout) == [{"run_id": run_id, "variant_id": "default",
                                     "status": "pass"}]
    tests = json.loads(alice.axp("query", "select name, status from tests", "--json").stdout)
    assert tests == [{"name": "out-written", "status": "pass"}]
    # The same tables locally, over the downloaded copy.
    local = alice.axp("local", "query", run_id, "select count(*) as n from tests", "--json",
                      "--runs-dir", ".axp/downloads")
    assert json.loads(local.stdout) == [{"n": 1}]
    # SQL reads the organisation's tables, not the server's files.
    escape = alice.axp("query", "select * from read_csv('/etc/passwd')")
    assert escape.returncode == 2 and "query failed" in escape.stderr

    # Another organisation sees none of it.
    for argv in (("runs", "status", run_id), ("download", run_id)):
        other = carol.axp(*argv)
        assert other.returncode == 1 and f"no run {run_id}" in other.stderr, other.stderr
    assert json.loads(carol.axp("query", "select count(*) as n from runs", "--json").stdout) \
        == [{"n": 0}]
    assert json.loads(carol.axp("runs", "list", "--json").stdout) == []


def test_a_half_uploaded_run_is_never_listed(server, tmp_path):
    token = server.add_user("alice", "acme")
    alice = User(tmp_path / "alice", server)
    assert alice.login(token).returncode == 0
    headers = {"authorization": f"Bearer {token}"}
    content = b"{}\n"
    import hashlib

    manifest = {"files": {"index.json": {"size": len(content),
                                         "sha256": hashlib.sha256(content).hexdigest()},
                          "x.txt": {"size": 1, "sha256": hashlib.sha256(b"x").hexdigest()}},
                "links": {}}
    run_id = "half-01M8JZ2TC3YV34W51YPMZ8CKGD"
    answer = httpx.post(f"{server.url}/api/v1/uploads/{run_id}", json=manifest, headers=headers)
    assert answer.json() == {"complete": False, "missing": ["index.json", "x.txt"]}
    assert httpx.put(f"{server.url}/api/v1/uploads/{run_id}/files/index.json", content=content,
                     headers=headers).status_code == 200
    wrong = httpx.put(f"{server.url}/api/v1/uploads/{run_id}/files/x.txt", content=b"y",
                      headers=headers)
    assert wrong.status_code == 400 and "do not match" in wrong.json()["error"]
    commit = httpx.post(f"{server.url}/api/v1/uploads/{run_id}/commit", headers=headers)
    assert commit.status_code == 409
    assert json.loads(alice.axp("runs", "list", "--json").stdout) == []
    assert alice.axp("download", run_id).returncode == 1
    escape = httpx.post(f"{server.url}/api/v1/uploads/{run_id}",
                        json={"files": {"../../x": manifest["files"]["x.txt"]}, "links": {}},
                        headers=headers)
    assert escape.status_code == 400
    # Resumed: only what is missing is asked for; then the commit makes it one complete run.
    answer = httpx.post(f"{server.url}/api/v1/uploads/{run_id}", json=manifest, headers=headers)
    assert answer.json()["missing"] == ["x.txt"]
    httpx.put(f"{server.url}/api/v1/uploads/{run_id}/files/x.txt", content=b"x", headers=headers)
    assert httpx.post(f"{server.url}/api/v1/uploads/{run_id}/commit",
                      headers=headers).status_code == 200
    assert [r["run_id"] for r in json.loads(alice.axp("runs", "list", "--json").stdout)] \
        == [run_id]


# -- remote runs ------------------------------------------------------------------------------

def test_a_lost_postgresql_connection_is_made_again(tmp_path, docker_client):
    """PostgreSQL restarted, or an admin ended the server's sessions: the next request
    connects again instead of failing until the server is restarted."""
    import psycopg

    database = next(databases := _postgres_database())
    srv = Server(tmp_path / "server-data", database)
    srv.data_dir.mkdir()
    srv.start()
    try:
        alice = User(tmp_path / "alice", srv)
        assert alice.login(srv.add_user("alice", "acme")).returncode == 0
        alice.write("exp.yaml", HELLO)
        alice.write("mode/mode.txt", "pass\n")
        assert alice.axp("local", "run", "exp.yaml").returncode == 0  # uploaded
        name = database.rsplit("/", 1)[1]
        for _ in range(2):  # each loss, not only the first
            with psycopg.connect(os.environ.get(PG_ADMIN_ENV, PG_ADMIN_DEFAULT),
                                 autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
            assert ended and all(row[0] for row in ended)
            listed = alice.axp("runs", "list", "--json")
            assert listed.returncode == 0, listed.stderr + srv.logs()
            assert [r["status"] for r in json.loads(listed.stdout)] == ["pass"]
            status = alice.axp("auth", "status")
            assert status.returncode == 0 and "as alice" in status.stdout, status.stderr
    finally:
        srv.stop()
        next(databases, None)  # drops the database


def test_remote_run_watch_detach_and_cancel(server, tmp_path, docker_client):
    alice = User(tmp_path / "alice", server)
    assert alice.login(server.add_user("alice", "acme")).returncode == 0
    secret = "hello-from-the-server"
    assert server.admin("secret", "set", "GREETING", "--org", "acme",
                        stdin=secret + "\n").returncode == 0
    alice.write("exp.yaml", HELLO)
    alice.write("mode/mode.txt", "pass\n")
    res = alice.axp("run", "exp.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = res.stdout.splitlines()[0].split()[1]
    assert f"run {run_id}: pass" in res.stdout
    assert "default  pass" in res.stdout  # the engine's own table, streamed
    wait_for_bundles(server, "acme", 0)  # what was sent for a finished run is not kept
    assert (server.data_dir / "orgs" / "acme" / "jobs" / run_id / "output.log").is_file()
    status = alice.axp("runs", "status", run_id)
    assert status.stdout.splitlines() == [f"run {run_id}: pass", "  default: pass"]
    # Downloaded and uploaded back unchanged, a run made on the server is still one run.
    assert alice.axp("download", run_id).returncode == 0
    back = alice.axp("upload", run_id, "--runs-dir", ".axp/downloads")
    assert back.returncode == 0 and "already uploaded, unchanged" in back.stdout, back.stderr

    # Detached: the id comes back at once; `runs status --watch` follows it to its end. The
    # run needs the organisation's secret, which the experiment never carries.
    alice.write("slow.yaml", SLOW)
    alice.write("wait/seconds", "1\n")
    detached = alice.axp("run", "slow.yaml", "--detach")
    assert detached.returncode == 0, detached.stderr
    slow_id = detached.stdout.splitlines()[0].split()[1]
    watched = alice.axp("runs", "status", slow_id, "--watch")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert f"run {slow_id}: pass" in watched.stdout
    runs_root = server.data_dir / "orgs" / "acme" / "runs"
    assert containing(runs_root / slow_id, secret) == []
    assert containing(server.data_dir / "orgs" / "acme" / "jobs", secret) == []

    # Ctrl-C on `axp run` detaches: the run goes on. Then it is cancelled while it runs: it
    # ends, its sandbox goes, its folder stays.
    alice.write("wait/seconds", "600\n")
    watching = subprocess.Popen([sys.executable, "-m", "axp_cli", "run", "slow.yaml"],
                                cwd=alice.project, env=alice.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    assert watching.stdout is not None
    cancel_id = watching.stdout.readline().split()[1]
    wait_for_state(alice, cancel_id, "running")
    wait_for_file(runs_root / cancel_id / "results" / "default" / "layout.json")
    watching.send_signal(signal.SIGINT)
    _, err = watching.communicate(timeout=60)
    assert watching.returncode == 130 and f"detached from run {cancel_id}" in err, err
    assert alice.axp("runs", "status", cancel_id).stdout.startswith(f"run {cancel_id}: running")
    res = alice.axp("runs", "cancel", cancel_id)
    assert res.returncode == 0 and "cancelling" in res.stdout
    wait_for_state(alice, cancel_id, "cancelled")
    left = docker_client.containers.list(all=True, filters={"label": f"axp.run_id={cancel_id}"})
    assert left == []
    assert (runs_root / cancel_id / "variants" / "default" / "resolved-variant.yaml").is_file()
    wait_for_bundles(server, "acme", 0)
    # A repeat's runs share one bundle: it goes when the last of them ends.
    queued = alice.axp("run", "slow.yaml", "--repeat", "2", "--detach").stdout.split()
    first, second = queued[1], queued[3]
    assert alice.axp("runs", "cancel", first).returncode == 0
    wait_for_state(alice, first, "cancelled")
    wait_for_bundles(server, "acme", 1)
    assert alice.axp("runs", "cancel", second).returncode == 0
    wait_for_state(alice, second, "cancelled")
    wait_for_bundles(server, "acme", 0)


def test_server_killed_mid_run_loses_nothing_and_resumes(server, tmp_path):
    alice = User(tmp_path / "alice", server)
    assert alice.login(server.add_user("alice", "acme")).returncode == 0
    assert server.admin("secret", "set", "GREETING", "--org", "acme",
                        stdin="hello-from-the-server\n").returncode == 0
    alice.write("exp.yaml", HELLO)
    alice.write("mode/mode.txt", "pass\n")
    finished = alice.axp("run", "exp.yaml")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    done_id = finished.stdout.splitlines()[0].split()[1]
    wait_for_bundles(server, "acme", 0)

    alice.write("slow.yaml", SLOW)
    alice.write("wait/seconds", "20\n")
    slow_id = alice.axp("run", "slow.yaml", "--detach").stdout.splitlines()[0].split()[1]
    runs_root = server.data_dir / "orgs" / "acme" / "runs"
    wait_for_state(alice, slow_id, "running")
    wait_for_file(runs_root / slow_id / "results" / "default" / "layout.json")
    server.stop(signal.SIGKILL)
    server.start(same_port=True)  # where alice's CLI signed in
    wait_for_bundles(server, "acme", 1)  # the interrupted run's, for its resume
    assert "was interrupted" in server.logs()
    listed = {r["run_id"]: r for r in json.loads(alice.axp("runs", "list", "--json").stdout)}
    assert listed[done_id]["status"] == "pass" and listed[done_id]["state"] == "done"
    assert listed[slow_id]["state"] == "interrupted"
    assert "runs resume" in alice.axp("runs", "status", slow_id).stdout
    # Resumed: the variant with no result runs again, into the same run folder.
    res = alice.axp("runs", "resume", slow_id, "--watch")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"run {slow_id}: pass" in res.stdout
    assert json.loads((runs_root / slow_id / "index.json").read_text())["run_id"] == slow_id
    wait_for_bundles(server, "acme", 0)


# -- managed model access ---------------------------------------------------------------------

REAL_KEY = "sk-ant-test-ORGKEY-stays-on-the-server-0123456789"


def test_managed_model_access_keeps_the_key_on_the_server(sqlite_server, tmp_path):
    from pytest_axp.gateway import ModelGateway, ModelScript

    server = sqlite_server
    alice = User(tmp_path / "alice", server)
    token = server.add_user("alice", "acme")
    assert alice.login(token).returncode == 0
    # The CLI agent (claude-code): one model call per script turn, no side requests, so the
    # upstream's counts are exact.
    (alice.project / "claude-hello.yaml").write_text(
        (EXAMPLES / "claude-hello.yaml").read_text().replace("- name: claude\n",
                                                              "- name: claude-code\n"))
    script = ModelScript.load(EXAMPLES / "claude-hello.model.yaml")
    # The scripted upstream stands in for the model API; it accepts the organisation's key only.
    with ModelGateway(bind_host="127.0.0.1", api_key="unused") as upstream:
        up = upstream.open_run("upstream", bodies_dir=tmp_path / "up-bodies",
                               traces_dir=tmp_path / "up-traces", trace_id="up",
                               max_cost_usd=None, script=script, token=REAL_KEY)
        for name, value in (("ANTHROPIC_API_KEY", REAL_KEY),
                            ("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{upstream.port}")):
            assert server.admin("secret", "set", name, "--org", "acme",
                                stdin=value + "\n").returncode == 0
        without = alice.axp("local", "run", "claude-hello.yaml")
        res = alice.axp("local", "run", "claude-hello.yaml", "--managed-model-access")
        upstream.close_run(up)
    assert res.returncode == 0, res.stdout + res.stderr
    assert up.requests == 3
    assert without.returncode == 1  # no key here, and not asked to use the server's
    run_dirs = sorted((alice.project / ".axp" / "runs").iterdir())
    for root in (alice.project, alice.root / "home"):
        assert containing(root, REAL_KEY) == []
    for run_dir in run_dirs:
        assert containing(run_dir, token) == []
    status = alice.axp("auth", "status")
    assert "3 call(s), 360 tokens in, 90 out" in status.stdout, status.stdout
    usage = server.admin("usage", "--org", "acme").stdout.splitlines()
    assert usage[2].split() == ["acme", "alice", "3", "360", "90", "$0.0024"]


# The other model APIs: (agent, model API, key secret, base URL secret, the SDKs' form of it).
OTHER_APIS = {
    "codex": ("gpt-5.2", "openai-responses", "OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
    "gemini": ("gemini-2.5-flash", "gemini", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", ""),
}
# A model call of each, as its client sends it to the server's /gateway.
API_CALLS = {
    "openai-responses": ("/v1/responses", {"authorization": "Bearer {token}"},
                         {"model": "gpt-5.2", "input": "hi"}),
    "gemini": ("/v1beta/models/gemini-2.5-flash:generateContent", {"x-goog-api-key": "{token}"},
               {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
}
AGENT_EXPERIMENT = """
schema_version: 2
id: managed
name: An agent through the server
agents: [{name: AGENT, model: MODEL}]
prompts: [{id: go, prompt: write the file}]
tests:
  application: [{name: file, script: 'grep -qx hi out.txt'}]
limits: {max_time_seconds: 180}
"""
SHELL_SCRIPT = """
turns:
  - tool_use:
      name: shell
      input: {command: "echo hi > /workspace/out.txt"}
  - text: done
usage: {input_tokens: 100, output_tokens: 20}
"""


@pytest.mark.parametrize("agent", sorted(OTHER_APIS))
def test_managed_model_access_for_every_model_api(sqlite_server, tmp_path, agent):
    """codex (OpenAI Responses) and gemini (Gemini API): their calls go through the server
    with the organisation's key for that API, and are metered for the user."""
    from pytest_axp.gateway import ModelGateway, ModelScript

    model, api, key_secret, url_secret, url_suffix = OTHER_APIS[agent]
    org_key = f"org-key-{agent}-stays-on-the-server-0123456789"
    server = sqlite_server
    alice = User(tmp_path / "alice", server)
    token = server.add_user("alice", "acme")
    assert alice.login(token).returncode == 0
    alice.write("exp.yaml", AGENT_EXPERIMENT.replace("AGENT", agent).replace("MODEL", model))
    script = ModelScript.load(alice.write("model.yaml", SHELL_SCRIPT))
    # The organisation has no key for this API yet (a Messages key does not stand in): the
    # call is refused in the API's own shape, naming the secret to set, and nothing is metered.
    assert server.admin("secret", "set", "ANTHROPIC_API_KEY", "--org", "acme",
                        stdin="sk-ant-not-for-this-api\n").returncode == 0
    path, headers, body = API_CALLS[api]
    refused = httpx.post(server.url + "/gateway" + path, json=body, headers={
        k: v.format(token=token) for k, v in headers.items()})
    assert refused.status_code in (400, 402), refused.text
    assert f"has no {key_secret}" in refused.json()["error"]["message"]
    with ModelGateway(bind_host="127.0.0.1", api_key="unused") as upstream:
        # The scripted upstream speaks the agent's API and accepts the organisation's key only.
        up = upstream.open_run("upstream", bodies_dir=tmp_path / "up-bodies",
                               traces_dir=tmp_path / "up-traces", trace_id="up",
                               max_cost_usd=None, script=script, token=org_key,
                               model_api=api)
        for name, value in ((key_secret, org_key),
                            (url_secret, f"http://127.0.0.1:{upstream.port}{url_suffix}")):
            assert server.admin("secret", "set", name, "--org", "acme",
                                stdin=value + "\n").returncode == 0
        res = alice.axp("local", "run", "exp.yaml", "--managed-model-access")
        upstream.close_run(up)
        metered = up.meter.snapshot()
    run_dirs = sorted((alice.project / ".axp" / "runs").iterdir())
    assert res.returncode == 0, res.stdout + res.stderr
    assert up.meter.turns >= 2  # the scripted turns, answered for the organisation's key
    for root in (alice.project, alice.root / "home"):
        assert containing(root, org_key) == []
    for run_dir in run_dirs:
        assert containing(run_dir, token) == []
    # What the upstream metered is what the server metered for alice.
    calls = up.requests
    tokens_in, tokens_out = metered["input_tokens"], metered["output_tokens"]
    assert tokens_in >= 200 and tokens_out >= 40
    status = alice.axp("auth", "status")
    assert f"{calls} call(s), {tokens_in} tokens in, {tokens_out} out" in status.stdout, \
        status.stdout
    usage = server.admin("usage", "--org", "acme").stdout.splitlines()
    assert usage[2].split()[:5] == ["acme", "alice", str(calls), str(tokens_in),
                                    str(tokens_out)]


def test_a_remote_run_stages_only_what_was_sent_with_it(sqlite_server, tmp_path):
    import io
    import tarfile

    server = sqlite_server
    token = server.add_user("alice", "acme")
    alice = User(tmp_path / "alice", server)
    assert alice.login(token).returncode == 0
    # A named entry with an absolute source is sent bound; an unnamed one is refused here.
    alice.write("mode/mode.txt", "pass\n")
    alice.write("abs.yaml", HELLO.replace("source: mode", f"source: {alice.project}/mode"))
    res = alice.axp("run", "abs.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    alice.write("anon.yaml", HELLO.replace("  - name: mode\n    source: mode",
                                           f"  - source: {tmp_path}/alice/project/mode"))
    res = alice.axp("run", "anon.yaml", "--detach")
    assert res.returncode == 2 and "is an absolute path on this machine" in res.stderr
    # A hand-made bundle naming server paths is refused before anything is queued.
    for source, files in ((f"{server.data_dir}/orgs", []), ("../../../../orgs", []),
                          ("mode", ["mode=../../secrets"])):
        exp = HELLO.replace("source: mode", f"source: {source}").encode()
        request = json.dumps({"experiment": "tree/exp.yaml", "files": files}).encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in (("tree/exp.yaml", exp), ("request.json", request)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        answer = httpx.post(server.url + "/api/v1/runs", content=buf.getvalue(),
                            headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == 400, answer.text
        assert "outside the files sent" in answer.json()["error"] \
            or "not a path inside" in answer.json()["error"]
    listed = json.loads(alice.axp("runs", "list", "--json").stdout)
    assert [(r["kind"], r["status"]) for r in listed] == [("remote", "pass")]
