"""Plugins: an agent from a conftest.py or a pip-installed package, the reporting hooks,
and agent image layers built once."""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest

from .conftest import outcomes

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "plugins" / "axp-echo-agent"

CONFTEST = '''
import json, os
import pytest
from pytest_axp.record.summary import AgentOutcome

LOG = os.path.join(os.path.dirname(__file__), "hooks.jsonl")


def _log(**entry):
    with open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\\n")


class Shout:
    name = "shout"
    model_api = None

    def image_layer(self):
        return None

    def validate(self, agent_spec):
        return []

    def run(self, ctx):
        result = ctx.sandbox.exec(argv=["sh", "-c", 'echo "$1!" > shout.txt', "x",
                                        ctx.variant.prompt.prompt],
                                  phase="agent", name="shout", user="agent", env=ctx.env)
        return AgentOutcome(name=self.name, exit_code=result.exit_code,
                            timed_out=result.timed_out)


def pytest_axp_agent(name, config):
    return Shout() if name == "shout" else None


def pytest_axp_agent_names(config):
    return ["shout"]


def pytest_axp_variant_finished(run, summary):
    _log(hook="variant", variant=summary["variant_id"], status=summary["status"],
         written=run.results(summary["variant_id"]).run_summary.is_file(),
         worker=os.environ.get("PYTEST_XDIST_WORKER", ""))


def pytest_axp_run_finished(run_dir, index):
    _log(hook="run", run=run_dir.name, variants=sorted(index["variants"]),
         written=(run_dir / "index.json").is_file(),
         worker=os.environ.get("PYTEST_XDIST_WORKER", ""))
'''

SHOUT = """
schema_version: 2
id: shout
name: Shout
agents:
  - shout
  - {name: command, script: "echo quiet > shout.txt"}
prompts: [hello]
tests: {application: [{name: loud, script: 'grep -qx "hello!" shout.txt'}]}
limits: {max_time_seconds: 60}
"""

UNKNOWN = """
schema_version: 2
id: nope
name: Nope
agents: [nope]
prompts: [hello]
tests: {application: [{name: t, script: "true"}]}
limits: {max_time_seconds: 30}
"""


def test_a_conftest_agent_runs_and_the_reporting_hooks_see_each_result(project):
    project.write("conftest.py", CONFTEST)
    project.write("shout.yaml", SHOUT)
    res = project.pytest("shout.yaml", "-n", "2", "-rA")
    assert outcomes(res) == {"shout.yaml::shout": "PASSED", "shout.yaml::command": "FAILED"}, \
        res.stdout + res.stderr
    log = [json.loads(line) for line in (project.root / "hooks.jsonl").read_text().splitlines()]
    variants = sorted((e for e in log if e["hook"] == "variant"), key=lambda e: e["variant"])
    runs = [e for e in log if e["hook"] == "run"]
    run = project.only_run()
    # Each variant's hook ran on the worker that ran it, its summary already on disk.
    assert [(e["variant"], e["status"], e["written"]) for e in variants] == [
        ("command", "fail", True), ("shout", "pass", True)]
    assert all(e["worker"].startswith("gw") for e in variants), variants
    # The run's hook ran once, on the controller, after index.json was written.
    assert runs == [{"hook": "run", "run": run.run_id, "variants": ["command", "shout"],
                     "written": True, "worker": ""}]


def test_an_unknown_agent_errors_in_one_line_naming_the_plugin_agents(project):
    project.write("conftest.py", CONFTEST)
    project.write("nope.yaml", UNKNOWN)
    res = project.pytest("nope.yaml", "-rA")
    assert outcomes(res) == {"nope.yaml::default": "ERROR"}, res.stdout + res.stderr
    assert ("agent 'nope' is not available (known: shout, command, claude, claude-code, acp"
            in res.stdout)
    assert "Traceback" not in res.stdout
    run = project.only_run()
    assert not run.results("default").commands.exists()  # no container, no command


def test_an_agent_layer_is_built_once_and_its_context_made_only_then(docker_client, tmp_path):
    from pytest_axp.sandbox.base import ImageLayer
    from pytest_axp.sandbox.docker_image import ensure_layer, layer_tag

    made = []

    def context(log):
        made.append(1)
        return {"Dockerfile": b"ARG BASE\nFROM ${BASE}\nLABEL axp.test=layer\n"}

    layer = ImageLayer(name="test-layer", key=f"test {uuid.uuid4()}", context=context)
    tag = layer_tag("debian:bookworm", layer)
    try:
        assert ensure_layer("debian:bookworm", layer, tmp_path) == tag
        assert ensure_layer("debian:bookworm", layer, tmp_path) == tag
        assert made == [1]  # the second call found the image: no context, no build
        assert docker_client.images.get(tag).labels.get("axp.test") == "layer"
    finally:
        docker_client.images.remove(tag, force=True)


# -- the example plugin, pip-installed into a fresh virtual environment ---------------------

def _site_dirs() -> list[str]:
    """Where this interpreter's packages are (a venv's, or a global python's and its user
    site), so a new venv can import pytest-axp and its dependencies without downloading."""
    found = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib"),
             *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(found) if Path(d).is_dir()]


def _fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    python = path / "bin" / "python"
    show = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run([str(python), "-c", show],
                             capture_output=True, text=True, check=True).stdout.strip()
    # addsitedir, not a bare path: the .pth files there (editable installs) count too.
    lines = [f"import site; site.addsitedir({d!r})" for d in _site_dirs()]
    (Path(purelib) / "zz_parent_env.pth").write_text("\n".join(lines) + "\n")
    return python


def _isolation() -> list[str]:
    """Build with this environment's setuptools when it can make a wheel by itself (70.1+,
    or with `wheel`): nothing is downloaded. Else pip fetches setuptools for the build."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    try:
        major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return []
    able = (major, minor) >= (70, 1) or find_spec("wheel") is not None
    return ["--no-build-isolation"] if able else []


@pytest.fixture(scope="module")
def venvs(tmp_path_factory):
    root = tmp_path_factory.mktemp("venvs")
    with_plugin, without = _fresh_venv(root / "with"), _fresh_venv(root / "without")
    res = subprocess.run([str(with_plugin), "-m", "pip", "install", "--no-deps", "-q",
                          *_isolation(), str(EXAMPLE)], capture_output=True, text=True, timeout=600,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return with_plugin, without


def _copy_example(project) -> Path:
    shutil.copy(EXAMPLE / "echo.yaml", project.root / "echo.yaml")
    return project.root / "echo.yaml"


def _run(project, python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", *args], cwd=project.root, env=project.env(),
                          capture_output=True, text=True, timeout=600, check=False)


def test_the_example_plugin_runs_under_axp_local_run_after_a_pip_install(project, venvs):
    python, _ = venvs
    _copy_example(project)
    res = _run(project, python, "axp_cli", "local", "run", "echo.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    summary = json.loads(run.results("default").run_summary.read_text())
    assert summary["status"] == "pass" and summary["agent"]["name"] == "echo"
    printed = run.results("default").agent_raw.read_text()
    assert printed == "Hello from the echo agent; quotes ' \" and $HOME stay as written\n"


def test_the_example_plugin_runs_under_pytest_after_a_pip_install(project, venvs):
    python, _ = venvs
    _copy_example(project)
    res = _run(project, python, "pytest", "-p", "no:randomly", "-rA", "echo.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert outcomes(res) == {"echo.yaml::default": "PASSED"}


def test_without_the_plugin_the_example_fails_validation_naming_the_known_agents(
        project, venvs):
    with_plugin, without = venvs
    _copy_example(project)
    res = _run(project, without, "axp_cli", "experiment", "validate", "echo.yaml")
    assert res.returncode == 2, res.stdout + res.stderr
    assert ("echo.yaml: variant default: agent 'echo' is not available (known: command, "
            "claude, claude-code, acp") in res.stderr.strip().splitlines()[-1]
    for args in (("local", "run", "--dry-run", "echo.yaml"), ("local", "run", "echo.yaml")):
        res = _run(project, without, "axp_cli", *args)
        assert res.returncode == 2 and "known: command, claude, " in res.stderr, res.stderr
    assert not project.runs()  # refused before any run folder
    res = _run(project, with_plugin, "axp_cli", "experiment", "validate", "echo.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
