"""`axp local query`, `axp results` and `axp report` over real runs (real sandboxes, the real
Claude Code CLI answered by the scripted model gateway, a real headless Chromium)."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from .conftest import summary

EXAMPLES = Path(__file__).resolve().parents[2] / "example_experiments"

CLAUDE_FAIL = """
schema_version: 2
id: claude-fail
name: Claude writes a file, then a test fails
agents:
  - name: claude-code
    model: claude-sonnet-4-5
prompts:
  - id: greet
    prompt: Create /workspace/hello.txt containing the word hello, then show it with cat.
tests:
  application:
    - name: file-written
      script: grep -q hello hello.txt
    - name: says-goodbye
      script: grep -q goodbye hello.txt
limits:
  max_turns: 10
  max_time_seconds: 120
  max_cost_usd: 1.0
"""

# steady always passes; flaky passes exactly when the staged mode file says so, which the
# test sets per invocation: 3 repeats passing, then 3 failing.
COIN = """
schema_version: 2
id: coin
name: Coin
agents:
  - name: command
    script: echo done > out.txt
prompts:
  - id: p
    prompt: write out.txt
files:
  - name: mode
    source: mode
    dest: mode
tests:
  application:
    - name: out-written
      script: test -f out.txt
    - name: mode-ok
      script: '[ "$AXP_VARIANT_ID" = steady ] || grep -qx pass mode/mode.txt'
limits:
  max_turns: 1
  max_time_seconds: 30
extensions:
  - id: steady
  - id: flaky
"""

TABLES = ["agent_events", "api_requests", "artifacts", "commands", "experiment_runs",
          "file_changes", "harness_spans", "messages", "runs", "tests", "tool_calls"]


def query(project, run_id: str, sql: str) -> list[dict]:
    res = project.axp("local", "query", run_id, sql, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def count(project, run_id: str, table: str) -> int:
    return query(project, run_id, f"SELECT count(*) AS n FROM {table}")[0]["n"]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def test_tables_join_and_cache_over_a_claude_run(project):
    project.write("exp.yaml", CLAUDE_FAIL)
    shutil.copy(EXAMPLES / "claude-hello.model.yaml", project.root / "model.yaml")
    res = project.axp("local", "run", "exp.yaml", "--model-script", "model.yaml")
    assert res.returncode == 1, res.stdout + res.stderr  # a test failed, by design
    run = project.only_run()
    rid = run.run_id
    v = run.results("default")
    assert summary(run, "default")["status"] == "fail"

    # SHOW TABLES and DESCRIBE.
    shown = query(project, rid, "SHOW TABLES")
    assert sorted(r["name"] for r in shown) == TABLES
    cols = {r["column_name"]: r["column_type"]
            for r in query(project, rid, "DESCRIBE tool_calls")}
    assert {"run_id": "VARCHAR", "variant_id": "VARCHAR", "tool_call_id": "VARCHAR",
            "tool_name": "VARCHAR", "input": "JSON", "status": "VARCHAR",
            "output": "VARCHAR"}.items() <= cols.items()

    # Exact row counts. Fixed by the scripted model: a Write and a Bash call (each a
    # tool_call and one update), the prompt and the final text, three model requests.
    spans = json.loads(next(p for p in v.traces.glob("*.otlp.json")
                            if not p.name.endswith(".agent.otlp.json")).read_text())
    n_spans = len(spans["resourceSpans"][0]["scopeSpans"][0]["spans"])
    n_commands = len(v.commands_index.read_text().splitlines())
    expected = {
        "runs": 1, "experiment_runs": 1, "tests": 2,
        "agent_events": 7, "tool_calls": 2, "messages": 2, "api_requests": 3,
        "file_changes": 1,  # hello.txt added, seen at after_agent
        "harness_spans": n_spans, "commands": n_commands,
        "artifacts": len(_files(run.root)),
    }
    assert len(v.agent_trace.read_text().splitlines()) == 7
    assert len(list(v.api_bodies.glob("*.request.json"))) == 3
    assert n_spans >= 5 and n_commands >= 5
    got = query(project, rid, " UNION ALL ".join(
        f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in TABLES))
    assert {r["t"]: r["n"] for r in got} == expected

    runs = query(project, rid, "SELECT * FROM runs")[0]
    assert runs["run_id"] == rid and runs["experiment_id"] == "claude-fail"
    assert runs["variant_id"] == "default" and runs["status"] == "fail"
    assert runs["agent_name"] == "claude-code" and runs["model"] == "claude-sonnet-4-5"
    assert (runs["turns"], runs["input_tokens"], runs["output_tokens"]) == (3, 360, 90)
    assert runs["repeat"] == 1 and runs["tests_total"] == 2 and runs["tests_passed"] == 1
    assert query(project, rid, "SELECT status, variants FROM experiment_runs") == [
        {"status": "fail", "variants": 1}]
    assert query(project, rid, "SELECT role, text FROM messages ORDER BY seq") == [
        {"role": "user", "text": "Create /workspace/hello.txt containing the word hello, "
                                 "then show it with cat."},
        {"role": "agent", "text": "Created hello.txt and showed it."}]
    assert query(project, rid, "SELECT seq, model, status, input_tokens, output_tokens "
                               "FROM api_requests ORDER BY seq") == [
        {"seq": i, "model": "claude-sonnet-4-5", "status": 200, "input_tokens": 120,
         "output_tokens": 30} for i in (1, 2, 3)]
    change = query(project, rid, "SELECT point, path, change, size, patch_path "
                                 "FROM file_changes")[0]
    assert change == {"point": "after_agent", "path": "hello.txt", "change": "added",
                      "size": 6, "patch_path": "results/default/fs-diff/2/hello.txt.patch"}
    assert (run.root / change["patch_path"]).is_file()
    assert query(project, rid, "SELECT count(*) AS n FROM harness_spans "
                               "WHERE parent_span_id IS NULL AND name = 'variant_run'") == [
        {"n": 1}]
    assert query(project, rid, "SELECT count(*) AS n FROM artifacts "
                               "WHERE variant_id IS NULL") == [{"n": 1}]  # index.json

    # The join: failed tests with the tool calls of the same variant run.
    joined = query(project, rid, """
        SELECT t.name AS test, c.tool_name, c.input->>'command' AS command, c.status
          FROM tests t JOIN tool_calls c USING (run_id, variant_id)
         WHERE t.status = 'fail' ORDER BY c.seq""")
    assert joined == [
        {"test": "says-goodbye", "tool_name": "Write", "command": None, "status": "completed"},
        {"test": "says-goodbye", "tool_name": "Bash", "command": "cat /workspace/hello.txt",
         "status": "completed"}]
    bash = query(project, rid, "SELECT output, title FROM tool_calls WHERE tool_name = 'Bash'")
    assert bash == [{"output": "hello", "title": "cat /workspace/hello.txt"}]

    # Other output formats.
    res = project.axp("local", "query", rid, "SELECT name, status FROM tests ORDER BY name",
                      "--csv")
    assert res.returncode == 0, res.stderr
    assert list(csv.reader(io.StringIO(res.stdout))) == [
        ["name", "status"], ["file-written", "pass"], ["says-goodbye", "fail"]]
    res = project.axp("local", "query", rid, "SELECT name, status FROM tests ORDER BY name")
    assert res.returncode == 0 and "says-goodbye  fail" in res.stdout and "(2 rows)" in res.stdout

    # Errors: one line, exit 2.
    res = project.axp("local", "query", rid, "SELECT * FROM no_such_table")
    assert res.returncode == 2 and res.stderr.startswith("axp: query failed:")
    assert len(res.stderr.strip().splitlines()) == 1
    res = project.axp("local", "query", "nope-01ABC", "SELECT 1")
    assert res.returncode == 2 and "no run nope-01ABC" in res.stderr

    # The cache: Parquet per table plus a manifest; reused while the run is unchanged ...
    derived = project.root / ".axp" / "derived" / rid
    assert sorted(p.name for p in derived.glob("*.parquet")) == [f"{t}.parquet" for t in TABLES]
    manifest = json.loads((derived / "manifest.json").read_text())
    stamp = (derived / "commands.parquet").stat().st_mtime_ns
    assert count(project, rid, "commands") == n_commands
    assert (derived / "commands.parquet").stat().st_mtime_ns == stamp
    # ... and derived again when a run file changes or appears.
    with open(v.commands_index, "a") as f:
        f.write(json.dumps({"id": "9999", "seq": 9999, "phase": "test", "name": "added"}) + "\n")
    (v.root / "notes.txt").write_text("a file added after the run\n")
    assert count(project, rid, "commands") == n_commands + 1
    assert count(project, rid, "artifacts") == expected["artifacts"] + 1
    assert json.loads((derived / "manifest.json").read_text())["digest"] != manifest["digest"]
    assert (derived / "commands.parquet").stat().st_mtime_ns != stamp


def _coin_runs(project) -> tuple[list[str], list[str]]:
    project.write("coin.yaml", COIN)
    batches = []
    for mode, code in (("pass", 0), ("fail", 1)):
        project.write("mode/mode.txt", mode + "\n")
        before = {r.run_id for r in project.runs()}
        res = project.axp("local", "run", "coin.yaml", "--repeat", "3", "-j", "4")
        assert res.returncode == code, res.stdout + res.stderr
        batches.append(sorted({r.run_id for r in project.runs()} - before))
    return batches[0], batches[1]


def test_results_statistics_all_and_report(project, tmp_path):
    passing, failing = _coin_runs(project)
    assert len(passing) == len(failing) == 3

    # `all` spans every run; one run id selects one.
    assert count(project, "all", "experiment_runs") == 6
    assert count(project, "all", "runs") == 12
    assert count(project, passing[0], "runs") == 2
    statuses = query(project, "all", "SELECT variant_id, status, count(*) AS n FROM runs "
                                     "GROUP BY ALL ORDER BY ALL")
    assert statuses == [{"variant_id": "flaky", "status": "fail", "n": 3},
                        {"variant_id": "flaky", "status": "pass", "n": 3},
                        {"variant_id": "steady", "status": "pass", "n": 6}]
    assert query(project, "all", "SELECT status, count(*) AS n FROM experiment_runs "
                                 "GROUP BY ALL ORDER BY ALL") == [
        {"status": "fail", "n": 3}, {"status": "pass", "n": 3}]
    assert count(project, "all", "tests") == 24
    assert count(project, "all", "file_changes") == 12  # out.txt added, once per variant run
    assert count(project, "all", "tool_calls") == 0 and count(project, "all", "api_requests") == 0

    res = project.axp("results", "--experiment", "coin", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert sorted(out["run_ids"]) == sorted(passing + failing)
    v = {x["variant_id"]: x for x in out["variants"]}
    # steady: 6/6. Wilson: upper 1; lower = 1 - (z^2/6) / (1 + z^2/6)
    #   = 1 - 0.6402431 / 1.6402431 = 0.6096655 (width 0.39 < 0.5, N = 6 >= 5: a verdict).
    s = v["steady"]
    assert (s["n"], s["passed"], s["pass_rate"]) == (6, 6, 1.0)
    assert s["ci_low"] == pytest.approx(0.609666, abs=1e-6) and s["ci_high"] == 1.0
    assert (s["k"], s["run_sets"], s["pass_k"]) == (3, 2, 1.0)
    assert s["verdict"] != "too few runs to tell"
    # flaky: 3/6, interval 0.187616 to 0.812384 (worked out in test_query_stats): wider than
    # 0.5, so no verdict. pass^3: of the two run sets only the first passed all three.
    f = v["flaky"]
    assert (f["n"], f["passed"], f["pass_rate"]) == (6, 3, 0.5)
    assert f["ci_low"] == pytest.approx(0.187616, abs=1e-6)
    assert f["ci_high"] == pytest.approx(0.812384, abs=1e-6)
    assert (f["k"], f["run_sets"], f["pass_k"]) == (3, 2, 0.5)
    assert f["verdict"] == "too few runs to tell"
    assert f["statuses"] == {"pass": 3, "fail": 3} and f["unfinished"] == 0
    tests = {(t["kind"], t["name"]): (t["n"], t["passed"]) for t in f["tests"]}
    assert tests == {("application", "mode-ok"): (6, 3), ("application", "out-written"): (6, 6)}
    assert f["metrics"]["tool_calls"] == {"median": 0.0, "mean": 0.0, "n": 6}
    assert f["metrics"]["duration_seconds"]["n"] == 6
    assert f["metrics"]["duration_seconds"]["median"] > 0
    # Fisher on [[3,3],[6,0]] (variants in id order): P(a), a = 3..6 of C(6,a)C(6,9-a)/220 =
    # 20, 90, 90, 20 -> p = 40/220. One side has too few runs: no verdict.
    c = out["comparison"]
    assert (c["a"], c["b"], c["table"]) == ("coin/flaky", "coin/steady", [[3, 3], [6, 0]])
    assert c["p_value"] == pytest.approx(40 / 220, rel=1e-9)
    assert c["verdict"] == "too few runs to tell"

    # One run set alone: N = 2 per variant, so "too few runs to tell", said in plain text.
    res = project.axp("results", *passing)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("too few runs to tell") >= 3  # two variants and the comparison
    assert "pass^k" in res.stdout and "k=3" in res.stdout
    res = project.axp("results", "--experiment", "coin", "--markdown")
    assert res.returncode == 0 and "| flaky | 6 | 3 | 50% |" in res.stdout
    res = project.axp("results", "--experiment", "coin", "--csv")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [(r["variant_id"], r["scope"], r["n"], r["passed"]) for r in rows] == [
        ("flaky", "variant", "6", "3"), ("flaky", "test", "6", "3"), ("flaky", "test", "6", "6"),
        ("steady", "variant", "6", "6"), ("steady", "test", "6", "6"),
        ("steady", "test", "6", "6")]
    res = project.axp("results", "--experiment", "nope")
    assert res.returncode == 1 and res.stderr.startswith("axp: no finished variant runs")

    # The report, rendered by a real headless Chromium.
    report = project.root / "out" / "report.html"
    res = project.axp("report", "-o", "out/report.html")
    assert res.returncode == 0, res.stdout + res.stderr
    page = report.read_text()
    # Offline: nothing is loaded from anywhere (scripts and styles are inline, allowed by
    # their hashes only).
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)  # Plotly.js's own text
    assert page.count("<script>") == 2  # Plotly.js and ours; the rest are JSON data blocks
    assert markup.count("<script") == markup.count('<script type="application/json"') == 3
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', markup)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    policy = html.unescape(csp.group(1)) if csp else ""
    assert "default-src 'none'" in policy and "unsafe" not in policy
    assert "<script src" not in page and "<link rel=\"stylesheet\"" not in page
    # Every link is a relative file link to a file of a run.
    hrefs = re.findall(r'href="([^"]+)"', markup)
    files = [h for h in hrefs if not h.startswith(("data:", "#"))]
    assert files and all(not h.startswith("/") for h in files)
    for h in files:
        assert (report.parent / unquote(h)).resolve().is_file(), h
    assert any(h.endswith(".patch") for h in files)
    assert any(h.endswith("mode-ok.stdout.log") for h in files)
    assert any(h.endswith(".otlp.json") for h in files)

    dom, log = _chromium(tmp_path, report, "--dump-dom", "--virtual-time-budget=10000")
    assert '<table class="stats">' in dom and "flaky" in dom and "steady" in dom
    # The three charts, drawn by the inlined Plotly.js.
    assert dom.count('class="main-svg"') >= 3 and dom.count('class="chart js-plotly-plot"') == 3
    assert "too few runs to tell" in dom
    _no_console_errors(log)
    shot = tmp_path / "report.png"
    _, log = _chromium(tmp_path, report, f"--screenshot={shot}", "--window-size=1280,1600")
    _no_console_errors(log)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1600)
    assert len(data) > 30_000  # a blank page of this size is a few KB


def _chromium(tmp_path: Path, page: Path, *mode: str) -> tuple[str, str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("Chromium is required: apt-get install -y chromium")
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    res = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", *mode, page.as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout, res.stderr


def _no_console_errors(log: str) -> None:
    # Console messages (errors, uncaught exceptions) are logged as ":CONSOLE" lines; a
    # resource the page could not load shows as net::ERR_.
    bad = [line for line in log.splitlines() if ":CONSOLE" in line or "net::ERR_" in line]
    assert not bad, bad
