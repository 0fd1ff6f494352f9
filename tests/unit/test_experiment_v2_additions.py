"""AXP 0.5's v2 additions as parsed: `commit` on environments and products, `sha256` on
files, `setup_checks` on setup steps; unknown fields inside them stay positioned errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_axp.experiment import ExperimentError, load_and_resolve

HEAD = "schema_version: 2\nid: exp\nname: Experiment\nagents: command\nprompts: go\n"
TAIL = "tests: {}\nlimits: {}\n"


def _load(tmp_path: Path, body: str):
    path = tmp_path / "exp.yaml"
    path.write_text(HEAD + body + TAIL)
    return load_and_resolve(path)


def _problem(tmp_path: Path, body: str) -> str:
    with pytest.raises(ExperimentError) as err:
        _load(tmp_path, body)
    return str(err.value.problems[0]).replace(str(tmp_path) + "/", "")


@pytest.mark.parametrize("body, expected", [
    ("environments:\n  - {name: e, commit: '-x'}\n",
     "exp.yaml:7:23: environments[0].commit: a commit is a git commit id, tag or branch"),
    ("products:\n  - {name: p, commit: 'a..b'}\n",
     "exp.yaml:7:23: products[0].commit: a commit is a git commit id, tag or branch"),
    ("products:\n  - {name: p, commit: [abc]}\n",
     "exp.yaml:7:23: products[0].commit: expected a string"),
    ("environments:\n  - {name: e, comit: abc}\n",
     "exp.yaml:7:15: environments[0].comit: unknown field (did you mean 'commit'?)"),
    ("files: [{source: a, dest: a, sha256: abc}]\n",
     "exp.yaml:6:38: files[0].sha256: sha256 must be 64 hexadecimal characters"),
    ("files: [{source: a, dest: a, sha265: " + "0" * 64 + "}]\n",
     "exp.yaml:6:30: files[0].sha265: unknown field (did you mean 'sha256'?)"),
    ("environments:\n  - name: e\n    setup:\n      - name: s\n        script: 'true'\n"
     "        setup_checks: [{name: c, scirpt: 'true'}]\n",
     "exp.yaml:11:34: environments[0].setup[0].setup_checks[0].scirpt: unknown field "
     "(did you mean 'script'?)"),
    ("environments:\n  - name: e\n    setup:\n      - name: s\n        script: 'true'\n"
     "        setup_checks: [{name: c}]\n",
     "exp.yaml:11:24: environments[0].setup[0].setup_checks[0].script: field required"),
    ("environments:\n  - name: e\n    setup_checks: [{name: c, script: 'true'}]\n",
     "exp.yaml:8:5: environments[0].setup_checks: unknown field"),
])
def test_bad_additions_are_positioned_errors(tmp_path, body, expected):
    assert _problem(tmp_path, body).startswith(expected)


def test_commit_pins_the_files_of_its_own_setup_only(tmp_path):
    variants = _load(tmp_path, """\
files: [{source: top, dest: top}]
environments:
  - name: e
    commit: 1234567
    setup:
      - name: s
        script: 'true'
        files: [{source: env, dest: env}]
        setup_checks: [{name: c, script: 'true'}]
products:
  - name: p
    commit: v1.2
    setup: [{name: s, script: 'true', files: [{source: prod, dest: prod}]}]
  - name: q
    setup: [{name: s, script: 'true', files: [{source: prod, dest: prod}]}]
""")
    pinned = {v.id: [(f.source, f.pin.commit if f.pin else None, f.pin.field if f.pin else None)
                     for f in v.files] for v in variants}
    assert pinned == {
        "p": [("top", None, None), ("env", "1234567", "environments[0].commit"),
              ("prod", "v1.2", "products[0].commit")],
        "q": [("top", None, None), ("env", "1234567", "environments[0].commit"),
              ("prod", None, None)]}
    p = variants[0]
    assert p.files[1].pin.where.endswith("exp.yaml:9:13")
    assert [c.name for c in p.setup_checks] == ["c"]
    assert p.environment.commit == "1234567"  # a YAML number is text here


def test_commit_changes_the_fingerprint(tmp_path):
    # The commit is part of what the variant is.
    body = "environments:\n  - {name: e, commit: %s}\n"
    a = _load(tmp_path, body % "abc1234")[0].fingerprint
    b = _load(tmp_path, body % "abc1235")[0].fingerprint
    assert a != b
