"""Acceptance tests of the pytest plugin, as pytest-xdist has them: real pytest runs
(pytester, in a subprocess) of experiment files, on the local fake backend. No Docker:
every run points DOCKER_HOST at nothing, so touching the engine would fail it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_axp.record.layout import RunPaths

REPO = Path(__file__).resolve().parents[2]
FAKE = ["-p", "tests.fakes.local_backend"]
# Only the plugins these runs need (as `axp local run` does): each run starts sooner.
PLUGINS = ["-p", "pytest_axp.plugin", "-p", "xdist.plugin", "-p", "pytester"]


class AxpPytester:
    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path

    def write(self, name: str, text: str) -> Path:
        path = self.path / name
        path.write_text(text)
        return path

    def run(self, *args: str, backend: bool = True) -> pytest.RunResult:
        extra = FAKE if backend else []
        return self.pytester.runpytest_subprocess(*PLUGINS, *extra, *args, timeout=120)

    def runs(self) -> list[RunPaths]:
        root = self.path / ".axp" / "runs"
        return [RunPaths(p) for p in sorted(root.iterdir())] if root.is_dir() else []

    def newest_run(self) -> RunPaths:
        return max(self.runs(), key=lambda r: r.run_id.rsplit("-", 1)[1])

    def summary(self, run: RunPaths, variant: str) -> dict:
        return json.loads(run.results(variant).run_summary.read_text())

    def sandbox_folders(self) -> list[Path]:
        return sorted((self.path / "tmp").glob("axp-local-*"))


@pytest.fixture
def axp(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> AxpPytester:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent")
    # The fake's sandbox folders land here, so a test can see that none is left.
    (pytester.path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(pytester.path / "tmp"))
    monkeypatch.setenv("AXP_NO_REAP", "1")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("AXP_RUNS_DIR", raising=False)
    return AxpPytester(pytester)
