"""Selecting variants with -k, --lf, --deselect and --axp-variant: only those are written."""

from __future__ import annotations

THREE = """
schema_version: 2
id: three
name: Three
agents: [{name: command, script: "true"}]
prompts:
  - {id: alpha, prompt: a}
  - {id: beta, prompt: b}
  - {id: gamma, prompt: c}
tests:
  application:
    - name: beta-fails
      script: '[ "$AXP_VARIANT_ID" != beta ]'
limits: {max_time_seconds: 30}
"""


def _variants_of_newest(project):
    newest = max(project.runs(), key=lambda r: r.run_id.rsplit("-", 1)[1])
    return newest.selected_variants(), newest


def test_k_lf_and_deselect(project):
    project.write("three.yaml", THREE)
    first = project.pytest("three.yaml")
    assert first.returncode == 1
    assert "1 failed, 2 passed" in first.stdout

    lf = project.pytest("three.yaml", "--lf")
    assert "1 failed" in lf.stdout and "passed" not in lf.stdout.split("=")[-2]
    variants, run = _variants_of_newest(project)
    assert variants == ["beta"]
    assert sorted(p.name for p in (run.root / "results").iterdir()) == ["beta"]

    k = project.pytest("three.yaml", "-k", "gamma or alpha")
    assert k.returncode == 0 and "2 passed" in k.stdout
    assert _variants_of_newest(project)[0] == ["alpha", "gamma"]

    d = project.pytest("three.yaml", "--deselect", "three.yaml::alpha", "--axp-variant", "alpha",
                       "--axp-variant", "gamma")
    assert d.returncode == 0 and "1 passed" in d.stdout
    assert _variants_of_newest(project)[0] == ["gamma"]
    assert len(project.runs()) == 4
