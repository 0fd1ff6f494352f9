"""The bundled three-agent example: Claude Code, Codex and Gemini CLI, each over ACP and its
own model API, driven by one agent-neutral model script, offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_axp.gateway.pricing import TokenUsage, cost_of

from .conftest import summary

EXAMPLES = Path(__file__).resolve().parents[2] / "example_experiments"
VARIANTS = {"claude-claude-sonnet-4-5": ("claude", "claude-sonnet-4-5"),
            "codex-gpt-5-2": ("codex", "gpt-5.2"),
            "gemini-gemini-2-5-flash": ("gemini", "gemini-2.5-flash")}
TEXT_ONLY = "turns:\n  - text: I would rather not.\n"


@pytest.fixture
def three(project, monkeypatch):
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    shutil.copy(EXAMPLES / "three-agents.yaml", project.root / "exp.yaml")
    shutil.copy(EXAMPLES / "three-agents.model.yaml", project.root / "model.yaml")
    return project


def test_one_script_drives_all_three_agents(three):
    res = three.axp("local", "run", "exp.yaml", "--model-script", "model.yaml", "--jobs", "3")
    assert res.returncode == 0, res.stdout + res.stderr
    run = three.only_run()
    for vid, (agent, model) in VARIANTS.items():
        s = summary(run, vid)
        assert s["status"] == "pass", (vid, s)
        assert {t["name"]: t["status"] for t in s["tests"]} == {
            "file-written": "pass", "acp-session": "pass", "ran-the-shell": "pass"}, vid
        a = s["agent"]
        # two script turns of 100 fresh + 50 cached in, 20 out
        assert (a["name"], a["turns"], a["input_tokens"], a["cache_read_input_tokens"],
                a["output_tokens"]) == (agent, 2, 200, 100, 40), (vid, a)
        expected = 2 * cost_of(model, TokenUsage(input_tokens=100, output_tokens=20,
                                                 cache_read_tokens=50))
        # the summary keeps six decimals
        assert a["cost_usd"] == pytest.approx(expected, abs=1e-6), (vid, a)


def test_the_introspection_tests_fail_when_no_shell_ran(three):
    three.write("model.yaml", TEXT_ONLY)
    three.axp("local", "run", "exp.yaml", "--model-script", "model.yaml", "--jobs", "3")
    run = three.only_run()
    for vid in VARIANTS:
        s = summary(run, vid)
        assert s["status"] == "fail", (vid, s)
        assert {t["name"]: t["status"] for t in s["tests"]} == {
            "file-written": "fail", "acp-session": "pass", "ran-the-shell": "fail"}, vid
