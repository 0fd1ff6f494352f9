"""`commit` on environments and products: the files their setup stages are taken from a git
repository at that commit (a local work tree or an http(s) git URL)."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import threading

from .conftest import summary


def _git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@example.com", *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def _repo(project):
    """A repository with two commits; its work tree has a change nobody committed."""
    repo = project.root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    project.write("repo/v.txt", "one\n")
    project.write("repo/gone-later.txt", "old\n")
    project.write("repo/sub/s.txt", "sub one\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    first = _git(repo, "rev-parse", "HEAD")
    project.write("repo/v.txt", "two\n")
    project.write("repo/sub/s.txt", "sub two\n")
    (repo / "gone-later.txt").unlink()
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "second")
    second = _git(repo, "rev-parse", "HEAD")
    project.write("repo/v.txt", "uncommitted\n")
    return repo, first, second


EXPERIMENT = """
schema_version: 2
id: pinned
name: Pinned sources
agents: [{name: command, script: "true"}]
prompts: [go]
environments:
  - name: old
    commit: {first}
    setup:
      - name: stage
        files: [{source: repo, dest: app}]
        script: "true"
  - name: tree
    setup:
      - name: stage
        files: [{source: repo, dest: app}]
        script: "true"
products:
  - name: prod
    commit: {second}
    setup:
      - name: stage-sub
        files: [{source: repo/sub, dest: sub}]
        script: "true"
tests:
  application:
    - name: show
      script: cat app/v.txt sub/s.txt; ls -a app
limits: {max_time_seconds: 60}
"""


def test_sources_of_an_environment_and_a_product_are_taken_at_their_commit(project):
    _, first, second = _repo(project)
    project.write("exp.yaml", EXPERIMENT.replace("{first}", first[:10])
                  .replace("{second}", second))
    dry = project.axp("local", "run", "exp.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"{project.root / 'repo'}@{first[:10]}" in dry.stdout
    res = project.pytest("exp.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    run = project.only_run()
    old = run.results("old").root / "application" / "show.stdout.log"
    assert old.read_text().splitlines()[:2] == ["one", "sub two"]
    listing = old.read_text().splitlines()[2:]
    assert "gone-later.txt" in listing and ".git" not in listing
    tree = (run.results("tree").root / "application" / "show.stdout.log").read_text()
    assert tree.splitlines()[:2] == ["uncommitted", "sub two"], "no commit: the work tree"
    assert "gone-later.txt" not in tree
    records = json.loads(run.staging("old").read_text())
    assert [(r["dest"], r.get("commit")) for r in records] == [("app", first),
                                                               ("sub", second)]
    assert records[0]["source"] == str((project.root / "repo").resolve())
    assert "commit" not in json.loads(run.staging("tree").read_text())[0]


MISSING = """
schema_version: 2
id: missing-commit
name: Missing commit
agents: [{name: command, script: "true"}]
prompts: [go]
environments:
  - name: env
    commit: 0123abcd0123abcd
    setup:
      - name: stage
        files: [{source: repo, dest: app}]
        script: "true"
tests: {}
limits: {max_time_seconds: 60}
"""


def test_a_commit_missing_from_the_repository_is_a_positioned_error(project, docker_client):
    repo, _, _ = _repo(project)
    project.write("exp.yaml", MISSING)
    expected = (":9:13: environments[0].commit: commit 0123abcd0123abcd is not in the git "
                f"repository {repo}")
    res = project.axp("local", "run", "exp.yaml")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip() == f"axp: exp.yaml{expected}"
    assert project.runs() == []
    res = project.pytest("exp.yaml", "-rA")
    assert res.returncode == 1
    s = summary(project.only_run(), "default")
    assert s["status"] == "error" and s["error"]["phase"] == "staging"
    assert s["error"]["message"] == f"{project.root / 'exp.yaml'}{expected}"
    assert not project.only_run().results("default").commands_index.exists(), \
        "said before any sandbox"


def test_a_source_outside_any_repository_cannot_take_a_commit(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("not-a-repo")
    (outside / "f.txt").write_text("x\n")
    project.write("exp.yaml", MISSING.replace("source: repo", f"source: {outside}"))
    res = project.axp("local", "run", "exp.yaml", "--dry-run")
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"environments[0].commit: {outside} is not in a git repository" in res.stderr


def test_a_git_url_is_cloned_at_the_commit(project):
    repo, first, _ = _repo(project)
    bare = project.root / "served" / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    _git(bare, "update-server-info")  # the dumb HTTP protocol: plain files
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(project.root / "served"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/repo.git"
        project.write("exp.yaml", MISSING.replace("source: repo", f"source: {url}")
                      .replace("0123abcd0123abcd", first[:12])
                      .replace("tests: {}", "tests: {application: [{name: v, script: "
                               "'test \"$(cat app/v.txt)\" = one && test -f "
                               "app/gone-later.txt'}]}"))
        res = project.pytest("exp.yaml")
    finally:
        server.shutdown()
        server.server_close()
    assert res.returncode == 0, res.stdout + res.stderr
    records = json.loads(project.only_run().staging("default").read_text())
    assert records[0]["source"] == url and records[0]["commit"] == first


SHA256 = """
schema_version: 2
id: sha
name: sha256 of host sources
agents: [{name: command, script: "true"}]
prompts: [go]
environments:
  - name: good
    setup: [{name: s, script: "true", files: [{source: repo/v.txt, dest: v.txt,
                                                sha256: "{uncommitted}"}]}]
  - name: bad
    setup: [{name: s, script: "true", files: [{source: repo/v.txt, dest: v.txt,
                                                sha256: "{one}"}]}]
  - name: folder
    setup: [{name: s, script: "true", files: [{source: repo/sub, dest: sub,
                                                sha256: "{one}"}]}]
  - name: pinned
    commit: {first}
    setup: [{name: s, script: "true", files: [{source: repo/v.txt, dest: v.txt,
                                                sha256: "{one}"}]}]
tests:
  application:
    - {name: v, script: cat v.txt}
limits: {max_time_seconds: 60}
"""


def test_sha256_checks_the_content_that_is_staged(project):
    import hashlib

    _, first, _ = _repo(project)
    digest = {k: hashlib.sha256(v).hexdigest() for k, v in
              (("one", b"one\n"), ("uncommitted", b"uncommitted\n"))}
    project.write("exp.yaml", SHA256.replace("{first}", first).replace(
        "{one}", digest["one"]).replace("{uncommitted}", digest["uncommitted"]))
    res = project.pytest("exp.yaml")
    assert res.returncode == 1, res.stdout + res.stderr
    run = project.only_run()
    status = {v: summary(run, v)["status"] for v in ("good", "bad", "folder", "pinned")}
    assert status == {"good": "pass", "bad": "error", "folder": "error", "pinned": "pass"}
    bad = summary(run, "bad")["error"]
    assert bad["phase"] == "staging" and bad["message"] == (
        f"{(project.root / 'repo' / 'v.txt').resolve()}: sha256 is {digest['uncommitted']}, "
        f"the experiment expects {digest['one']}")
    assert "sha256 is given, but the source is a folder" in summary(run, "folder")["error"][
        "message"]
    pinned = (run.results("pinned").root / "application" / "v.stdout.log").read_text()
    assert pinned == "one\n", "checked and staged at the commit, not the work tree"
