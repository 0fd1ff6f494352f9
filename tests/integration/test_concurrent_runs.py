"""Two `axp local run` at once in one folder keep their runs apart."""

from __future__ import annotations

from .conftest import index, summary

EXPERIMENT = """
schema_version: 2
id: twice
name: Twice
agents: [{name: command, script: 'echo "$AXP_RUN_ID" > run-id.txt'}]
prompts: [{id: a, prompt: x}, {id: b, prompt: y}, {id: c, prompt: z}]
tests: {application: [{name: own-run, script: '[ "$(cat run-id.txt)" = "$AXP_RUN_ID" ]'}]}
limits: {max_time_seconds: 60}
"""


def test_two_runs_at_once_do_not_mix(project, docker_client):
    project.write("twice.yaml", EXPERIMENT)
    procs = [project.start("axp_cli", "local", "run", "twice.yaml", "--jobs", "2")
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out + err
    runs = project.runs()
    assert len(runs) == 2
    printed = [next(x.split()[1] for x in out.splitlines() if x.startswith("run "))
               for out, _ in outputs]
    assert sorted(printed) == sorted(r.run_id for r in runs)
    for run in runs:
        assert set(index(run)["variants"]) == {"a", "b", "c"}
        for vid in ("a", "b", "c"):
            assert summary(run, vid)["run_id"] == run.run_id
            seen = (run.results(vid).workspace / "run-id.txt").read_text().strip()
            assert seen == run.run_id
