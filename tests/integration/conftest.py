"""Integration tests drive the real Docker engine: without one they fail, never skip."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_axp.record.layout import RunPaths

# One model script for every agent (neutral tool names): writes out.txt and the sandbox's
# environment, which the secret checks read.
SHELL_WRITES_HI = """
turns:
  - tool_use:
      name: shell
      input: {command: "echo hi > /workspace/out.txt && env > /workspace/env.txt"}
  - text: done
usage: {input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 50}
"""


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # the engine is part of the test environment
        pytest.fail(f"a running Docker engine is required for integration tests: {e}")
    return client


class Project:
    """A scratch project folder with helpers to write experiments and run axp/pytest."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def env(self, reap: bool = False) -> dict[str, str]:
        """The environment of an axp or pytest started by a test."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        if not reap:
            # Tests run in parallel; one test's deliberate orphans are not another's to reap.
            env["AXP_NO_REAP"] = "1"
        return env

    def start(self, *argv: str, **popen_args) -> subprocess.Popen:
        """axp or pytest (`argv` after `python -m`) running in the background."""
        return subprocess.Popen([sys.executable, "-m", *argv], cwd=self.root, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **popen_args)

    def _run(self, argv: list[str], timeout: float, reap: bool = False,
             ) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.root, env=self.env(reap), capture_output=True,
                              text=True, timeout=timeout)

    def axp(self, *args: str, timeout: float = 300, reap: bool = False,
            hostname: str | None = None) -> subprocess.CompletedProcess:
        """`hostname`: run it as if on a machine of that name (its own UTS namespace), so it
        judges only the sandboxes labelled as that machine's."""
        argv = [sys.executable, "-m", "axp_cli", *args]
        if hostname:
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname,
                    *argv]
        return self._run(argv, timeout, reap)

    def pytest(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return self._run([sys.executable, "-m", "pytest", "-p", "no:randomly", *args], timeout)

    @property
    def runs_dir(self) -> Path:
        return self.root / ".axp" / "runs"

    def runs(self) -> list[RunPaths]:
        if not self.runs_dir.is_dir():
            return []
        return [RunPaths(p) for p in sorted(self.runs_dir.iterdir()) if p.is_dir()]

    def only_run(self) -> RunPaths:
        runs = self.runs()
        assert len(runs) == 1, [r.run_id for r in runs]
        return runs[0]


def container_ids(client, **filters) -> set[str]:
    """Ids of the containers that exist, without inspecting each one: parallel tests remove
    theirs at any moment, and an inspect of one just removed fails."""
    return {c.id for c in client.containers.list(all=True, filters=filters, sparse=True)}


def container_names(client) -> list[str]:
    return [name.lstrip("/") for c in client.containers.list(all=True, sparse=True)
            for name in (c.attrs.get("Names") or [])]


def outcomes(res: subprocess.CompletedProcess) -> dict[str, str]:
    """Item outcomes from pytest's -rA short summary: {node id: PASSED|FAILED|ERROR}."""
    found = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^(PASSED|FAILED|ERROR) (\S+)", line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


def summary(run: RunPaths, variant_id: str) -> dict:
    return json.loads(run.results(variant_id).run_summary.read_text())


def index(run: RunPaths) -> dict:
    return json.loads(run.index.read_text())


@pytest.fixture
def project(tmp_path, docker_client):
    proj = Project(tmp_path)
    yield proj
    run_ids = {r.run_id for r in proj.runs()}
    left = [c.id for c in docker_client.containers.list(
                all=True, filters={"label": "axp.run_id"}, sparse=True)
            if (c.attrs.get("Labels") or {}).get("axp.run_id") in run_ids]
    assert not left, f"containers left behind: {left}"
