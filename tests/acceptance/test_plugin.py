"""The plugin's pytest habits, end to end on the fake backend: collection, selection,
-x, JUnit, the xdist hand-off and error reporting."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

from .conftest import REPO

THREE = """\
schema_version: 2
id: three
name: Three
agents: [{name: command, script: "echo made-by-$AXP_VARIANT_ID > out.txt"}]
prompts:
  - {id: alpha, prompt: a}
  - {id: beta, prompt: b}
  - {id: gamma, prompt: c}
tests:
  application:
    - name: beta-fails
      script: >-
        grep -q "made-by-$AXP_VARIANT_ID" /workspace/out.txt
        && [ "$AXP_VARIANT_ID" != beta ]
limits: {max_time_seconds: 30}
"""

SETUP_FAILS = """\
schema_version: 2
id: badsetup
name: Bad setup
environments:
  - name: env
    setup: "echo preparing; exit 3"
agents: [{name: command, script: "true"}]
prompts: [{id: p, prompt: x}]
tests: {application: [{name: t, script: "true"}]}
limits: {max_time_seconds: 30}
"""


def _outcomes(result) -> dict[str, str]:
    found = {}
    for line in result.outlines:
        m = re.match(r"^(PASSED|FAILED|ERROR) (\S+)", line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


def _created_ahead(run, variant: str) -> bool:
    """The `axp.created_ahead` attribute of the variant's sandbox_create span."""
    (trace,) = run.results(variant).traces.glob("*.json")
    found = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("key") == "axp.created_ahead":
                found.append(node["value"]["boolValue"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(trace.read_text()))
    assert len(found) == 1, found
    return found[0]


def _section(result, title: str) -> list[str]:
    """The lines of the report section whose header names `title`, up to the next header."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if title in line and line.startswith("_"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(("_", "=")))
    return lines[start + 1:end]


def test_importing_the_plugin_loads_no_docker_sdk():
    code = ("import sys, pytest_axp.plugin, pytest_axp.collect, pytest_axp.session; "
            "sys.exit('docker' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, check=False,
                         text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr


def test_collection_needs_no_backend(axp):
    axp.write("three.yaml", THREE)
    # No fake backend either: collecting must not ask for one, or for the engine.
    result = axp.run("--collect-only", "-q", backend=False)
    assert result.ret == 0, result.stdout.str()
    assert {"three.yaml::alpha", "three.yaml::beta", "three.yaml::gamma"} <= set(result.outlines)
    assert axp.runs() == []


def test_a_run_end_to_end(axp):
    axp.write("three.yaml", THREE)
    result = axp.run("three.yaml", "-rA")
    result.assert_outcomes(passed=2, failed=1)
    assert "beta: fail: application/beta-fails" in result.stdout.str()
    (run,) = axp.runs()
    assert run.index.exists()
    alpha = axp.summary(run, "alpha")
    assert alpha["status"] == "pass" and axp.summary(run, "beta")["status"] == "fail"
    assert (run.results("alpha").workspace / "out.txt").read_text() == "made-by-alpha\n"
    # The agent's change is in the after_agent snapshot.
    assert '"out.txt"' in (run.results("alpha").root / "fs-diff" / "2.json").read_text()
    # Each item creates the next one's sandbox ahead; the next one takes it.
    assert [_created_ahead(run, v) for v in ("alpha", "beta", "gamma")] == [False, True, True]
    assert axp.sandbox_folders() == []


def test_k_lf_and_deselect(axp):
    axp.write("three.yaml", THREE)
    axp.run("three.yaml").assert_outcomes(passed=2, failed=1)

    lf = axp.run("three.yaml", "--lf", "-rA")
    assert _outcomes(lf) == {"three.yaml::beta": "FAILED"}
    assert axp.newest_run().selected_variants() == ["beta"]

    k = axp.run("three.yaml", "-k", "gamma or alpha", "-rA")
    assert k.ret == 0
    assert _outcomes(k) == {"three.yaml::alpha": "PASSED", "three.yaml::gamma": "PASSED"}
    assert axp.newest_run().selected_variants() == ["alpha", "gamma"]

    d = axp.run("three.yaml", "--deselect", "three.yaml::alpha", "-rA")
    assert _outcomes(d) == {"three.yaml::beta": "FAILED", "three.yaml::gamma": "PASSED"}
    assert axp.newest_run().selected_variants() == ["beta", "gamma"]
    assert len(axp.runs()) == 4


def test_x_stops_after_the_first_failed_variant(axp):
    axp.write("three.yaml", THREE)
    result = axp.run("three.yaml", "-x", "-rA")
    assert _outcomes(result) == {"three.yaml::alpha": "PASSED", "three.yaml::beta": "FAILED"}
    (run,) = axp.runs()
    assert axp.summary(run, "alpha")["status"] == "pass"
    assert not run.results("gamma").run_summary.exists()
    assert axp.sandbox_folders() == []


def test_junit_counts_one_testcase_per_variant(axp):
    axp.write("three.yaml", THREE)
    axp.write("badsetup.yaml", SETUP_FAILS)
    result = axp.run("three.yaml", "badsetup.yaml", "--junitxml=out.xml")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    suite = ET.parse(axp.path / "out.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    names = sorted(case.get("name") for case in suite.iter("testcase"))
    assert names == ["alpha", "beta", "default", "gamma"]


def test_xdist_workers_share_one_run_and_the_controller_writes_its_index(axp):
    axp.write("three.yaml", THREE)
    result = axp.run("three.yaml", "-n", "2", "-rA")
    result.assert_outcomes(passed=2, failed=1)
    (run,) = axp.runs()
    index = run.index.read_text()
    assert all(f'"{v}"' in index for v in ("alpha", "beta", "gamma"))
    assert sorted(p.name for p in run.root.rglob("index.json")) == ["index.json"]
    assert axp.sandbox_folders() == []


def test_a_broken_experiment_is_one_positioned_line(axp):
    shutil.copy(REPO / "tests" / "data" / "broken" / "syntax-error.yaml",
                axp.path / "broken.yaml")
    result = axp.run("broken.yaml")
    assert result.ret == 2
    (line,) = _section(result, "ERROR collecting broken.yaml")
    assert re.fullmatch(r"\S*/broken\.yaml:5:8: YAML syntax error: .+", line), line
    assert "Traceback" not in result.stdout.str()
    assert axp.runs() == []


def test_a_setup_error_is_one_line(axp):
    axp.write("badsetup.yaml", SETUP_FAILS)
    result = axp.run("badsetup.yaml", "-rE")
    result.assert_outcomes(errors=1)
    (line,) = _section(result, "ERROR at setup of badsetup.yaml::default")
    assert line == "default: error: setup 'environment/setup' failed (exit 3): non-zero exit"
    assert "Traceback" not in result.stdout.str()
    (run,) = axp.runs()
    assert axp.summary(run, "default")["status"] == "error"
