"""Selecting variants with -k, --lf, --deselect and --axp-variant: only those are written."""

from __future__ import annotations

from .conftest import outcomes

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
    first = project.pytest("three.yaml", "-rA")
    assert first.returncode == 1
    assert outcomes(first) == {"three.yaml::alpha": "PASSED", "three.yaml::beta": "FAILED",
                               "three.yaml::gamma": "PASSED"}

    lf = project.pytest("three.yaml", "--lf", "-rA")
    assert outcomes(lf) == {"three.yaml::beta": "FAILED"}
    variants, run = _variants_of_newest(project)
    assert variants == ["beta"]
    assert sorted(p.name for p in (run.root / "results").iterdir()) == ["beta"]

    k = project.pytest("three.yaml", "-k", "gamma or alpha", "-rA")
    assert k.returncode == 0
    assert outcomes(k) == {"three.yaml::alpha": "PASSED", "three.yaml::gamma": "PASSED"}
    assert _variants_of_newest(project)[0] == ["alpha", "gamma"]

    d = project.pytest("three.yaml", "--deselect", "three.yaml::alpha", "--axp-variant", "alpha",
                       "--axp-variant", "gamma", "-rA")
    assert d.returncode == 0
    assert outcomes(d) == {"three.yaml::gamma": "PASSED"}
    assert _variants_of_newest(project)[0] == ["gamma"]
    assert len(project.runs()) == 4
