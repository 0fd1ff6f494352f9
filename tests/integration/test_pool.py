"""Sandboxes on a pool of engines: the machine's own engine plus two more started here, each
with its own state and bridge (tests/engines.py), standing in for other hosts.

Each xdist worker starts its own extra engines; only the twelve-variant test places pool
sandboxes on the machine's engine, so tests on other workers never take its room."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from pytest_axp.sandbox.pool import LABEL_CPUS, PoolBackend
from tests.engines import (
    ExtraEngine,
    kill_engine,
    restart_engine,
    start_engine,
    start_sshd,
    stop_engine,
    stop_sshd,
)

from .conftest import summary

EXAMPLES = Path(__file__).resolve().parents[2] / "example_experiments"
MAIN = "unix:///var/run/docker.sock"


@pytest.fixture(scope="session")
def extra_engines():
    """Two extra engines for the session, started one after another, stopped by pidfile,
    their bridges deleted."""
    engines: list[ExtraEngine] = []
    try:
        for _ in range(2):
            engines.append(start_engine("axpp"))
        yield engines
    finally:
        for engine in engines:
            stop_engine(engine)


def _run_labelled(client, run_id: str) -> list[str]:
    return [c.id for c in client.containers.list(
        all=True, filters={"label": f"axp.run_id={run_id}"}, sparse=True)]


def _experiment(project, commands: int, agent_script: str, claude: int = 0) -> None:
    prompts = ", ".join(f"{{id: c{i}, prompt: go}}" for i in range(commands))
    project.write("pool.yaml", f"""
schema_version: 2
id: pool
name: Pool
agents: [{{name: command, script: "{agent_script}"}}]
prompts: [{prompts}]
tests:
  application:
    - name: out
      script: test "$(cat out.txt)" = hi
limits: {{max_time_seconds: 120}}
""")
    if claude:
        shutil.copy(EXAMPLES / "claude-hello.model.yaml", project.root)
        text = (EXAMPLES / "claude-hello.yaml").read_text().replace(
            "id: claude-hello", "id: poolclaude")
        text = text.replace("prompts:\n  - id: greet\n", "prompts:\n" + "".join(
            f"  - id: g{i}\n    prompt: Create /workspace/hello.txt containing the word hello, "
            "then show it with cat.\n" for i in range(claude)) + "  - id: greet\n")
        project.write("claude.yaml", text)


def test_twelve_variants_over_three_engines(project, extra_engines, docker_client):
    """10 command variants and 2 scripted-claude ones over the machine's engine and two more:
    every engine gets variants, the images are on each, the claude variants reach the model
    gateway from wherever they ran, and no container is left on any engine."""
    urls = [MAIN, *(e.url for e in extra_engines)]
    hosts = [arg for url in urls for arg in ("--docker-host", url)]
    _experiment(project, 10, "echo hi > out.txt; sleep 2")
    res = project.axp("local", "run", "pool.yaml", "--jobs", "3", "--cpus", "1",
                      "--memory", "1g", *hosts, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    engines = {}
    for vid in run.selected_variants():
        s = summary(run, vid)
        assert s["status"] == "pass", s
        engines[vid] = s["engine"]
        spans = "".join(p.read_text() for p in run.results(vid).traces.glob("*.otlp.json")
                        if ".agent." not in p.name)
        assert s["engine"] in spans  # on the harness span (axp.engine) too
    assert len(engines) == 10
    assert set(engines.values()) == set(urls), engines
    for engine in extra_engines:
        cli = engine.client()
        tags = [t for image in cli.images.list() for t in image.tags]
        assert any(t.startswith("pytest-axp/base:") for t in tags), tags
        assert not _run_labelled(cli, run.run_id)
    assert not _run_labelled(docker_client, run.run_id)

    # Two claude variants (the real CLI, a scripted model), on the same pool: the gateway
    # listens on every engine's bridge address and is checked from inside each sandbox.
    _experiment(project, 0, "true", claude=1)
    res = project.axp("local", "run", "claude.yaml", "--jobs", "2", "--cpus", "1",
                      "--memory", "1g", "--model-script", "claude-hello.model.yaml", *hosts,
                      timeout=1500)
    assert res.returncode == 0, res.stdout + res.stderr
    crun = max((r for r in project.runs() if r.run_id.startswith("poolclaude-")),
               key=lambda r: r.run_id)
    for vid in crun.selected_variants():
        s = summary(crun, vid)
        assert s["status"] == "pass", s
        assert s["agent"]["turns"] == 3
        assert s["engine"] in urls
        checks = [json.loads(line) for line in
                  crun.results(vid).commands_index.read_text().splitlines()]
        assert any(c["name"] == "gateway-check" and c["exit_code"] == 0 for c in checks)
    for engine in extra_engines:
        assert not _run_labelled(engine.client(), crun.run_id)


def test_gateway_is_reached_from_every_engine(extra_engines, tmp_path):
    """The gateway binds on each engine's address; a sandbox on each engine connects."""
    from pytest_axp.gateway import ModelGateway
    from pytest_axp.record.commands import CommandLog
    from pytest_axp.record.layout import RunPaths
    from pytest_axp.sandbox.docker_image import DEFAULT_BASE_IMAGE

    pool = PoolBackend([MAIN, *(e.url for e in extra_engines)])
    pool.distribute([DEFAULT_BASE_IMAGE])
    addresses = pool.host_addresses(isolated=False)
    assert {e.gateway for e in extra_engines} <= set(addresses)
    gateway = ModelGateway(bind_host=addresses)
    gateway.start()
    try:
        for engine in pool.engines:
            sandbox = engine.backend.create(
                image=DEFAULT_BASE_IMAGE, labels={"axp.test": "pool-gateway"},
                extra_hosts={"host.docker.internal": "host-gateway"})
            try:
                paths = RunPaths(tmp_path / engine.display.replace("/", "_")).results("v")
                paths.root.mkdir(parents=True)
                sandbox.commands = CommandLog(paths)
                res = sandbox.exec(f"timeout 10 bash -c ': > /dev/tcp/host.docker.internal/"
                                   f"{gateway.port}'", phase="setup", name="reach")
                assert res.exit_code == 0, engine.display
            finally:
                sandbox.remove()
    finally:
        gateway.stop()


def test_an_engine_lost_mid_run_errors_only_its_running_variants(project, extra_engines):
    """An engine killed while variants run there: those end `error` ("engine <url> lost",
    infrastructure), nothing more goes there, the rest pass on the other engine; after the
    engine is back, `axp sandbox clean` over the pool removes what the dead engine held."""
    doomed = start_engine("axpk")
    try:
        _experiment(project, 6, "echo hi > out.txt; sleep 10")
        proc = project.start("axp_cli", "local", "run", "pool.yaml", "--jobs", "2",
                             "--cpus", "1", "--memory", "1g",
                             "--docker-host", extra_engines[0].url, "--docker-host", doomed.url)
        cli = doomed.client()
        assert proc.stdout is not None
        # Killed once a variant's agent runs there (progress lines name the phase).
        for line in proc.stdout:
            m = re.match(r"progress: (\S+): agent", line)
            if m and cli.containers.list(
                    filters={"label": f"axp.variant_id={m.group(1)}", "status": "running"}):
                break
        else:
            pytest.fail("no agent ran on the engine to be killed: " + proc.communicate()[1])
        kill_engine(doomed)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 1, out + err
        run = project.only_run()
        statuses = {}
        for vid in run.selected_variants():
            s = summary(run, vid)
            statuses[vid] = (s["status"], s["engine"])
            if s["engine"] == doomed.url:
                assert s["status"] == "error", s
                assert f"engine {doomed.url} lost" in s["error"]["message"], s
                assert s["error"]["infrastructure"] is True
            else:
                assert s["status"] == "pass", s
        lost = [v for v, (_, e) in statuses.items() if e == doomed.url]
        assert 1 <= len(lost) <= 2, statuses  # what ran there when it died, nothing after
        assert not _run_labelled(extra_engines[0].client(), run.run_id)

        restart_engine(doomed)
        res = project.axp("sandbox", "clean", "--yes", "--docker-host", doomed.url)
        assert res.returncode == 0, res.stdout + res.stderr
        assert not _run_labelled(doomed.client(), run.run_id)
    finally:
        stop_engine(doomed)


def test_an_interrupt_leaves_no_container_on_any_engine(project, extra_engines):
    """Ctrl-C while sandboxes run on every engine of the pool: none is left on any."""
    urls = [e.url for e in extra_engines]
    _experiment(project, 6, "echo hi > out.txt; sleep 60")
    proc = project.start("axp_cli", "local", "run", "pool.yaml", "--jobs", "3", "--cpus", "1",
                         "--memory", "1g", *[a for url in urls for a in ("--docker-host", url)])
    clients = [e.client() for e in extra_engines]
    deadline = time.monotonic() + 300

    def running(cli) -> bool:  # a sandbox of this test's run
        return any(c.attrs.get("State") == "running" and
                   any(n.startswith("/axp-pool-") for n in c.attrs.get("Names") or [])
                   for c in cli.containers.list(filters={"label": LABEL_CPUS}, sparse=True))

    while not all(running(cli) for cli in clients):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, out + err
    run_id = project.only_run().run_id
    for cli in clients:
        assert not _run_labelled(cli, run_id)


def test_an_ssh_engine_reaches_the_gateway_through_a_remote_forward(extra_engines, tmp_path,
                                                                     monkeypatch):
    """An ssh:// engine's sandboxes reach the gateway through the SSH connection: its bridge
    address on its own host, forwarded here (the gateway listens on loopback only)."""
    from pytest_axp.gateway import ModelGateway
    from pytest_axp.record.commands import CommandLog
    from pytest_axp.record.layout import RunPaths
    from pytest_axp.sandbox.docker_image import DEFAULT_BASE_IMAGE

    ssh = start_sshd(docker_host=extra_engines[1].url)
    monkeypatch.setenv("PATH", f"{ssh.bin_dir}:{os.environ['PATH']}")
    pool = PoolBackend([ssh.url()])
    try:
        assert pool.host_addresses(isolated=False) == ["127.0.0.1"]
        gateway = ModelGateway(bind_host=pool.host_addresses(isolated=False))
        gateway.start()
        try:
            pool.expose_gateway(gateway.port, isolated=False)
            pool.distribute([DEFAULT_BASE_IMAGE])
            sandbox = pool.create(image=DEFAULT_BASE_IMAGE, labels={"axp.test": "forward"},
                                  extra_hosts={"host.docker.internal": "host-gateway"})
            try:
                paths = RunPaths(tmp_path).results("v")
                paths.root.mkdir(parents=True)
                sandbox.commands = CommandLog(paths)
                res = sandbox.exec(f"timeout 10 bash -c ': > /dev/tcp/host.docker.internal/"
                                   f"{gateway.port}'", phase="setup", name="reach")
                assert res.exit_code == 0
                # Over ssh, an attached process's stdin can be ended (ACP adapters wait
                # for it) and what it wrote comes back whole.
                proc = sandbox.start(["sh", "-c", "cat; echo done"], phase="agent",
                                     name="cat")
                proc.write(b"line one\n")
                proc.close_stdin()
                assert proc.read_line(30) == b"line one\n"
                assert proc.read_line(30) == b"done\n"
                assert proc.read_line(30) is None
                assert proc.wait(30) == 0
                # Each exec is a few API calls: they reuse connections; only the attached
                # stream (handed over to the exec) takes one of its own.
                before = ssh.connections()
                for _ in range(20):
                    sandbox.exec("true", phase="setup", name="again")
                made = ssh.connections() - before
                assert 20 <= made <= 25, made  # the SDK alone: three per exec (measured 60)
            finally:
                sandbox.remove()
        finally:
            gateway.stop()
    finally:
        pool.finish()
        stop_sshd(ssh)


@pytest.mark.parametrize("args,env,says", [
    (["--docker-host", "/var/run/docker.sock"], {}, "--docker-host: docker host '/var/run"),
    ([], {"AXP_DOCKER_HOSTS": "unix:///a.sock,build-2:2375"},
     "AXP_DOCKER_HOSTS: docker host 'build-2:2375'"),
])
def test_an_engine_url_without_a_scheme_is_refused(project, monkeypatch, args, env, says):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _experiment(project, 1, "echo hi > out.txt")
    res = project.axp("local", "run", "pool.yaml", *args)
    assert res.returncode == 2
    assert says in res.stderr and "expected unix://PATH" in res.stderr
    assert "Traceback" not in res.stderr and not project.runs()


def test_a_gateway_the_sandbox_cannot_reach_is_a_clear_error_before_the_agent(project):
    """A tcp:// engine told to reach the gateway at an address its containers cannot (here
    loopback, which is the container's own): the variant is `error` before the agent runs,
    naming the engine and --gateway-host."""
    engine = start_engine("axpg", tcp=True)
    try:
        _experiment(project, 0, "true", claude=1)
        res = project.axp("local", "run", "claude.yaml", "--variant", "greet", "--cpus", "1",
                          "--memory", "1g", "--model-script", "claude-hello.model.yaml",
                          "--docker-host", engine.tcp_url, "--gateway-host", "127.0.0.1",
                          timeout=900)
        assert res.returncode == 1, res.stdout + res.stderr
        s = summary(project.only_run(), "greet")
        assert s["status"] == "error" and s["engine"] == engine.tcp_url
        assert s["error"]["infrastructure"] is True
        assert ("the model gateway (host.docker.internal = 127.0.0.1, port"
                in s["error"]["message"]
                and f"on engine {engine.tcp_url}: give --gateway-host" in s["error"]["message"])
        assert s["agent"].get("turns") in (None, 0)  # claude never ran
        assert not _run_labelled(engine.client(), project.only_run().run_id)
    finally:
        stop_engine(engine)


def test_a_run_over_a_pool_with_an_ssh_engine(project, extra_engines, monkeypatch):
    """A run over an engine reached by ssh:// (a local sshd, an extra engine behind it) and
    one on a unix socket: every variant passes (its commands' output, exit codes and the
    workspace snapshots all come back over SSH), both engines get variants, the engine is
    recorded as the ssh URL, and nothing is left on either."""
    ssh = start_sshd(docker_host=extra_engines[1].url)
    try:
        monkeypatch.setenv("PATH", f"{ssh.bin_dir}:{os.environ['PATH']}")
        urls = [ssh.url(), extra_engines[0].url]
        _experiment(project, 6, "seq 1 5000 > big.txt; echo hi > out.txt; sleep 1; cat big.txt")
        res = project.axp("local", "run", "pool.yaml", "--jobs", "3", "--cpus", "1",
                          "--memory", "1g", *[a for url in urls for a in ("--docker-host", url)],
                          timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        run = project.only_run()
        used = set()
        for vid in run.selected_variants():
            s = summary(run, vid)
            assert s["status"] == "pass", s
            used.add(s["engine"])
        assert used == set(urls), used
        for engine in extra_engines:
            assert not _run_labelled(engine.client(), run.run_id)
    finally:
        stop_sshd(ssh)
