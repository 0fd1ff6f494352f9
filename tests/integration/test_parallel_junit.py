"""`pytest -n 2 --junitxml` over two experiments: one index per run, one testcase per item."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .conftest import index

EXPERIMENT = """
schema_version: 2
id: {id}
name: {id}
agents:
  - name: command
    script: echo hi > out.txt
prompts: [{{id: a, prompt: one}}, {{id: b, prompt: two}}]
tests:
  application:
    - name: must-fail-for-b
      script: '[ "$AXP_VARIANT_ID" != b ]'
limits: {{max_time_seconds: 30}}
"""


def test_xdist_shares_runs_and_junit_has_one_case_per_item(project):
    project.write("exp/first.yaml", EXPERIMENT.format(id="first"))
    project.write("exp/second.yaml", EXPERIMENT.format(id="second"))
    project.write("exp/not-an-experiment.yaml", "just: some config\n")
    res = project.pytest("exp", "-n", "2", "--junitxml=junit.xml")
    assert res.returncode == 1, res.stdout + res.stderr
    runs = project.runs()
    assert sorted(r.run_id.rsplit("-", 1)[0] for r in runs) == ["first", "second"]
    ulids = {r.run_id.rsplit("-", 1)[1] for r in runs}
    assert len(ulids) == 1, "workers must share the controller's run id"
    for run in runs:
        assert set(index(run)["variants"]) == {"a", "b"}
        assert index(run)["variants"]["b"]["status"] == "fail"

    cases = ET.parse(project.root / "junit.xml").getroot().iter("testcase")
    by_name = {}
    for case in cases:
        key = (case.get("classname"), case.get("name"))
        assert key not in by_name, f"duplicate testcase {key}"
        by_name[key] = case
    assert len(by_name) == 4
    for (_classname, name), case in by_name.items():
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["axp.run_id"].endswith(next(iter(ulids)))
        assert props["axp.status"] == ("fail" if name == "b" else "pass")
        assert props["axp.results_dir"].endswith(f"/results/{name}")
        failures = list(case.iter("failure"))
        if name == "b":
            assert failures and any("must-fail-for-b" in (f.get("message") or "")
                                    for f in failures)
        else:
            assert not failures
