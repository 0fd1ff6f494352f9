"""Broken experiment files: one clear line, exit 2, never a traceback, nothing written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "broken"

# What each file's one line must say (after "file:line:column: ").
EXPECTED = {
    "syntax-error.yaml": "YAML syntax error",
    "wrong-type.yaml": "limits.max_turns: expected an integer",
    "unknown-top.yaml": "limitz: unknown field (did you mean 'limits'?)",
    "unknown-model.yaml": "agents[0].model.efort: unknown field (did you mean 'effort'?)",
    "unknown-prompt.yaml": "prompts[0].tag: unknown field (did you mean 'tags'?)",
    "unknown-setup-step.yaml": (
        "environments[0].setup[0].scrpt: unknown field (did you mean 'script'?)"
    ),
    "unknown-file-field.yaml": "files[0].mode: unknown field",
    "unknown-test-field.yaml": "tests.application[0].timeout: unknown field",
    "unknown-extension-field.yaml": "extensions[0].agent: unknown field (did you mean 'agents'?)",
    "unknown-v1-override.yaml": (
        "matrix.variant[0].overrides.promt: unknown field (did you mean 'prompt'?)"
    ),
    "duplicate-variant-ids-v1.yaml": "duplicate variant id 'a'",
    "duplicate-variant-ids-v2.yaml": "two variants resolve to the id 'same'",
    "anchor-cycle.yaml": "recursive alias",
    "dest-escapes.yaml": "files[0].dest: dest escapes /workspace",
    "missing-source.yaml": "files: source no-such-folder does not exist",
    "non-utf8.yaml": "not valid UTF-8",
    "missing-limits.yaml": "limits: field required",
}
POSITION = re.compile(r"^\S+\.yaml:\d+:\d+: ")


def test_the_corpus_is_complete():
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_clear_line_and_exit_2(project, name):
    shutil.copy(CORPUS / name, project.root / name)
    for argv in (("experiment", "validate", name), ("local", "run", name)):
        res = project.axp(*argv)
        assert res.returncode == 2, (argv, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        line = lines[0].removeprefix("axp: ")
        assert POSITION.match(line), line
        assert EXPECTED[name] in line, line
        assert "Traceback" not in res.stderr
    assert not (project.root / ".axp").exists()


def test_huge_file(project):
    (project.root / "huge.yaml").write_text("schema_version: 2\n" + "#" * (6 * 1024 * 1024))
    res = project.axp("experiment", "validate", "huge.yaml")
    assert res.returncode == 2 and "file too large" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["syntax-error.yaml", "non-utf8.yaml", "unknown-top.yaml"])
def test_pytest_collection_reports_broken_experiments(project, name):
    shutil.copy(CORPUS / name, project.root / name)
    res = project.pytest(name)
    assert res.returncode == 2, res.stdout
    assert f"ERROR {name}" in res.stdout
    assert EXPECTED[name] in res.stdout
    assert "Traceback" not in res.stdout
