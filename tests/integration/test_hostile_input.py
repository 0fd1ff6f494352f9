"""Hostile experiment inputs: amplified files, long names, symlinked sources, lost test
records and a dry run over a large source."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

from .conftest import summary

EXPERIMENT = """
schema_version: 2
id: hostile
name: Hostile
agents: [{name: command, script: "cat {read} > /tmp/seen || true"}]
prompts: [{id: p, prompt: go}]
files:
{files}
tests:
  application:
    - name: {test}
      script: "true"
limits: {max_turns: 1}
"""


def _experiment(files: str = "  []", test: str = "t", read: str = "/dev/null") -> str:
    return (EXPERIMENT.replace("{files}", files).replace("{test}", test)
            .replace("{read}", read))


def _one_error_line(res) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0].removeprefix("axp: ")


# -- bounds on what a file expands to ----------------------------------------------------

def test_alias_amplification_is_one_line_and_exit_2(project):
    big = "x" * (4 * 1024 * 1024)
    refs = ", ".join(["*big"] * 20)
    project.write("amp.yaml", _experiment().replace(
        "prompts: [{id: p, prompt: go}]",
        f"prompts:\n  - id: p\n    prompt: &big {big}\n    tags: [{refs}]"))
    for argv in (("experiment", "validate", "amp.yaml"), ("local", "run", "amp.yaml")):
        res = project.axp(*argv)
        assert res.returncode == 2, (argv, res.stderr)
        line = _one_error_line(res)
        assert line.startswith("amp.yaml:") and "expands to more than 8 MB" in line
    assert not (project.root / ".axp").exists()
    # Under pytest: a collection error that says the same, no traceback, nothing run.
    res = project.pytest("amp.yaml")
    assert res.returncode != 0
    assert "expands to more than 8 MB" in res.stdout and "Traceback" not in res.stdout
    assert not (project.root / ".axp").exists()


@pytest.mark.parametrize("where", ["extension", "test"])
def test_a_300_character_name_is_refused_before_any_run(project, where):
    long = "n" * 300
    text = _experiment(test=long if where == "test" else "t")
    if where == "extension":
        text = text.replace("files:", f"extensions: [{{id: {long}}}]\nfiles:")
    project.write("long.yaml", text)
    for argv in (("experiment", "validate", "long.yaml"), ("local", "run", "long.yaml")):
        res = project.axp(*argv)
        assert res.returncode == 2, (argv, res.stdout, res.stderr)
        assert "too long: 300 characters, at most 100" in _one_error_line(res)
    assert not (project.root / ".axp").exists()


# -- symlinked sources -------------------------------------------------------------------

@pytest.fixture
def outside(project, tmp_path_factory):
    """A secret outside the project, and links to it from inside."""
    out = tmp_path_factory.mktemp("outside")
    (out / "dir").mkdir()
    (out / "secret.txt").write_text("OUTSIDE-SECRET-CONTENT\n")
    (out / "dir" / "f.txt").write_text("OUTSIDE-SECRET-CONTENT\n")
    os.symlink(out / "secret.txt", project.root / "filelink")
    os.symlink(out / "dir", project.root / "dirlink")
    os.symlink(out, project.root / "parentlink")
    return out


@pytest.mark.parametrize("source, link", [
    ("filelink", "filelink"), ("dirlink", "dirlink"),
    ("parentlink/secret.txt", "parentlink"),
])
def test_a_yaml_source_through_a_symlink_is_refused(project, outside, source, link):
    project.write("exp.yaml", _experiment(f"  - {{source: {source}, dest: x}}"))
    for argv in (("experiment", "validate", "exp.yaml"), ("local", "run", "exp.yaml"),
                 ("local", "run", "exp.yaml", "--dry-run")):
        res = project.axp(*argv)
        assert res.returncode == 2, (argv, res.stdout, res.stderr)
        line = res.stderr.strip().splitlines()[-1].removeprefix("axp: ")
        assert line.startswith("exp.yaml:8:5: files: source ")
        assert f"{project.root / link} is a symlink (to {outside}" in line
        assert "give the real path" in line
    assert not (project.root / ".axp").exists()


@pytest.mark.parametrize("binding", ["filelink::x", "slot=filelink", "slot=parentlink/dir",
                                     "dirlink::x"])
def test_a_command_line_path_through_a_symlink_is_refused(project, outside, binding):
    project.write("exp.yaml", _experiment("  - {name: slot, dest: x}"))
    res = project.axp("local", "run", "exp.yaml", "--file", binding)
    assert res.returncode == 2, (res.stdout, res.stderr)
    line = _one_error_line(res)
    assert line.startswith(f"--file {binding}: {project.root}/") and "is a symlink (to" in line
    assert "pass the real path" in line
    assert not (project.root / ".axp").exists()
    res = project.pytest("exp.yaml", "--axp-file", binding)
    assert res.returncode == 4 and "is a symlink (to" in res.stderr, (res.stdout, res.stderr)
    assert not (project.root / ".axp").exists()


def test_under_pytest_the_target_reaches_neither_sandbox_nor_run_folder(project, outside):
    # The command agent would copy the source into the workspace if it were staged.
    project.write("exp.yaml", _experiment("  - {source: filelink, dest: x}",
                                          read="/workspace/x"))
    res = project.pytest("exp.yaml")
    assert res.returncode == 1, res.stdout
    assert "filelink is a symlink" in res.stdout
    run = project.only_run()
    s = summary(run, "default")
    assert s["status"] == "error" and s["error"]["phase"] == "staging"
    assert "is a symlink" in s["error"]["message"]
    # Refused before any container: nothing ran, nothing was copied back.
    results = run.results("default")
    assert not results.commands_index.exists()
    for path in run.root.rglob("*"):
        if path.is_file():
            assert b"OUTSIDE-SECRET-CONTENT" not in path.read_bytes(), path


def test_real_folders_and_dotdot_stage(project):
    project.write("data/a.txt", "inside\n")
    project.write("sub/exp.yaml", _experiment("  - {source: ../data/../data/a.txt, dest: a.txt}",
                                              read="/workspace/a.txt"))
    res = project.axp("local", "run", "sub/exp.yaml", "--file", "data/a.txt::b.txt")
    assert res.returncode == 0, res.stdout + res.stderr
    ws = project.only_run().results("default").workspace
    assert (ws / "a.txt").read_text() == "inside\n" and (ws / "b.txt").read_text() == "inside\n"


# -- a test whose record fails never rolls up as pass -----------------------------------

CONFTEST = """
import errno
import pytest_axp.runner as runner

real = runner.link_or_copy

def failing(src, dst):
    # The disk refuses the test's log, as it did for a 300-character name.
    if dst.parent.name == "application":
        raise OSError(errno.ENAMETOOLONG, "File name too long", str(dst))
    return real(src, dst)

runner.link_or_copy = failing
"""


def test_a_test_whose_logs_cannot_be_written_does_not_pass(project):
    project.write("exp.yaml", _experiment())
    project.write("conftest.py", CONFTEST)
    res = project.pytest("exp.yaml", "-p", "conftest")
    assert res.returncode == 1, res.stdout
    s = summary(project.only_run(), "default")
    assert s["status"] != "pass"
    assert [(t["name"], t["status"]) for t in s["tests"]] == [("t", "fail")]
    assert s["error"]["phase"] == "test" and "application/t" in s["error"]["name"]


def test_an_exec_whose_output_cannot_be_written_fails_cleanly(tmp_path, docker_client):
    from pytest_axp.record.commands import CommandLog
    from pytest_axp.record.layout import VariantPaths
    from pytest_axp.sandbox.base import SandboxError
    from pytest_axp.sandbox.docker import DockerSandbox

    box = DockerSandbox.create(image="debian:bookworm",
                               labels={"axp.test": "hostile-exec", "axp.run_id": "hostile"})
    try:
        paths = VariantPaths(tmp_path / "results")
        box.commands = CommandLog(paths)
        paths.commands.rmdir()
        paths.commands.write_text("a file where the folder should be")
        with pytest.raises(SandboxError, match="cannot record the output"):
            box.exec("echo hi", phase="test", name="t")
    finally:
        box.remove()


# -- dry run over a large source ---------------------------------------------------------

def test_dry_run_of_a_1_gib_source_stays_small(project):
    project.write("data/keep.txt", "x\n")
    with open(project.root / "data" / "big.bin", "wb") as f:
        f.truncate(1 << 30)  # sparse: no disk, but 1 GiB to read, pack and hash
    project.write("exp.yaml", _experiment("  - {source: data, dest: data}"))
    # The dry run's own peak RSS, measured by a parent that runs nothing else.
    probe = textwrap.dedent("""
        import resource, subprocess, sys
        res = subprocess.run([sys.executable, "-m", "axp_cli", "local", "run", "exp.yaml",
                              "--dry-run"], capture_output=True, text=True)
        print(res.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        print(res.stdout)
    """)
    res = project._run([sys.executable, "-c", probe], timeout=300)
    code, max_rss_kib = map(int, res.stdout.splitlines()[0].split())
    assert code == 0, res.stdout + res.stderr
    assert str((1 << 30) + 2) in res.stdout  # both files counted, by streaming
    assert max_rss_kib * 1024 < 200 * 1024 * 1024, max_rss_kib


def test_a_deep_workspace_file_gets_a_patch_with_a_short_name(project):
    deep = "/".join(f"directory-level-{i:02d}" for i in range(20)) + "/notes.txt"
    project.write("exp.yaml", _experiment().replace(
        'script: "cat {read} > /tmp/seen || true"'.replace("{read}", "/dev/null"),
        f'script: "mkdir -p $(dirname {deep}) && echo hello > {deep}"'))
    res = project.axp("local", "run", "exp.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    results = project.only_run().results("default")
    record = json.loads((results.fs_diff / "2.json").read_text())
    (change,) = [c for c in record["changes"] if c["path"] == deep]
    patch = results.root / "fs-diff" / change["patch"]
    assert len(patch.name.encode()) < 255 and "~" in patch.name
    assert "+hello" in patch.read_text()


def test_names_at_their_limits_run_end_to_end(project):
    # Every name at 100 characters and a 200-character variant id: each becomes a path
    # (run folder, results/<id>/, the test's logs) and a container name, and all fit.
    text = (_experiment(test="t" * 100).replace("id: hostile", "id: " + "k" * 100)
            .replace("{id: p,", "{id: " + "p" * 100 + ",")
            .replace("files:", f"extensions:\n  - id: {'a' * 99}\n    extensions: "
                               f"[{{id: {'b' * 100}}}]\nfiles:"))
    project.write("exp.yaml", text)
    res = project.axp("local", "run", "exp.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    vid = "a" * 99 + "." + "b" * 100
    assert run.selected_variants() == [vid]
    s = summary(run, vid)
    assert s["status"] == "pass" and [t["name"] for t in s["tests"]] == ["t" * 100]
    assert run.results(vid).test_log("application", "t" * 100, "stdout").is_file()
