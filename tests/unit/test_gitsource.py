"""Sources taken at a commit, on the host (real git, no Docker)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_axp.experiment.models import GitPin
from pytest_axp.gitsource import GitSourceError, checked_out, commit_problem


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@example.com", *args], check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "sub" / "a.txt").write_text("first\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "1")
    _git(repo, "tag", "v1")
    (repo / "sub" / "a.txt").write_text("second\n")
    (repo / "sub" / "b.txt").write_text("later\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "2")
    return repo


def _pin(commit: str) -> GitPin:
    return GitPin(commit, "exp.yaml:4:13", "products[0].commit")


def test_a_subfolder_and_a_file_are_taken_at_a_tag(repo):
    first = _git(repo, "rev-parse", "v1")
    with checked_out(str(repo / "sub"), _pin("v1")) as (path, commit):
        assert commit == first
        assert sorted(p.name for p in path.iterdir()) == ["a.txt"]
        assert (path / "a.txt").read_text() == "first\n"
    assert not path.exists(), "the checkout is temporary"
    with checked_out(str(repo / "sub" / "a.txt"), _pin(first[:8])) as (path, _):
        assert path.read_text() == "first\n"


def test_what_cannot_be_taken_is_said_at_the_commit_field(repo, tmp_path):
    assert commit_problem(str(repo / "sub"), _pin("v1")) is None
    assert commit_problem(str(repo), _pin("nope")) == (
        f"exp.yaml:4:13: products[0].commit: commit nope is not in the git repository {repo}")
    with pytest.raises(GitSourceError) as err:
        with checked_out(str(repo / "sub" / "b.txt"), _pin("v1")):
            pass
    assert str(err.value) == (f"exp.yaml:4:13: products[0].commit: sub/b.txt does not exist "
                              f"at commit v1 of the git repository {repo}")
    plain = tmp_path / "plain"
    plain.mkdir()
    problem = commit_problem(str(plain), _pin("v1"))
    assert problem is not None and problem.startswith(
        f"exp.yaml:4:13: products[0].commit: {plain} is not in a git repository")
