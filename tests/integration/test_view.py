"""`axp view` in a real headless Chromium (Debian's, driven by Playwright) over real runs:
command agent runs that pass, fail and err (two repeats), the scripted Claude example, and a
run followed live while it is written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "example_experiments"
CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 120_000

MIX = """
schema_version: 2
id: mix
name: Mix
agents:
  - name: command
    script: "printf 'line one\\nadded-by-agent\\n' > out.txt"
prompts:
  - id: p
    prompt: write out.txt
tests:
  application:
    - name: out-exists
      script: test -f out.txt
    - name: has-marker
      script: >-
        grep -q added-by-agent out.txt ||
        { echo 'marker missing <b>from</b> out.txt' >&2; exit 1; }
limits:
  max_turns: 1
  max_time_seconds: 60
extensions:
  - id: passes
  - id: fails
    agents: [{name: command, script: "echo nothing-here > out.txt"}]
  - id: broken-setup
    environments:
      - name: broken
        setup: "echo setting up; echo oops-setup-broke >&2; exit 3"
"""

# `slow` waits for a file the test creates in its sandbox: the page is seen before and
# after it finishes, whatever the machine's speed.
LIVE = """
schema_version: 2
id: live
name: Live
agents:
  - name: command
    script: "touch done.txt"
prompts:
  - id: p
    prompt: wait
tests:
  application:
    - name: done
      script: test -f done.txt
limits:
  max_turns: 1
  max_time_seconds: 300
extensions:
  - id: fast
  - id: slow
    agents: [{name: command, script: "while [ ! -f /tmp/go ]; do sleep 0.2; done; touch done.txt"}]
"""


def _shots(tmp_path: Path) -> Path:
    # AXP_VIEWER_SHOTS keeps the screenshots somewhere to look at them.
    out = Path(os.environ.get("AXP_VIEWER_SHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextmanager
def viewer(project, *args: str) -> Iterator[str]:
    """`axp view` on a free port; yields its URL; stopped (and its state file gone) after."""
    proc = project.start("axp_cli", "view", "--no-browser", "--port", "0", *args)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.match(r"axp view: (http://127\.0\.0\.1:\d+) ", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        yield m.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not (project.runs_dir / ".viewer.json").exists()


@contextmanager
def browser() -> Iterator[tuple[object, list[str]]]:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = b.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(WAIT_MS)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
            # A poll cut short by leaving the page is no failure; anything else is.
            page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "")
                    else errors.append(f"failed: {r.url}: {r.failure}"))
            yield page, errors
        finally:
            b.close()


def _visit(page, url: str, errors: list[str], charts: int = 0) -> None:
    resp = page.goto(url)
    assert resp is not None and resp.status == 200, (url, resp and resp.status)
    csp = resp.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    page.wait_for_load_state("networkidle")
    if charts:  # drawn by Plotly (a locator: the page's CSP forbids the eval of a function)
        page.locator(".chart .main-svg").nth(charts - 1).wait_for()
    assert not errors, (url, errors)


def test_every_page_over_real_runs(project, tmp_path):
    project.write("mix.yaml", MIX)
    res = project.axp("local", "run", "mix.yaml", "--repeat", "2", "-j", "2")
    assert res.returncode == 1, res.stdout + res.stderr
    shutil.copy(EXAMPLES / "claude-hello.yaml", project.root / "claude.yaml")
    shutil.copy(EXAMPLES / "claude-hello.model.yaml", project.root / "model.yaml")
    res = project.axp("local", "run", "claude.yaml", "--model-script", "model.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    mix = sorted(r.run_id for r in project.runs() if r.run_id.startswith("mix-"))
    claude = next(r.run_id for r in project.runs() if r.run_id.startswith("claude-hello-"))
    assert len(mix) == 2
    shots = _shots(tmp_path)

    with viewer(project) as url, browser() as (page, errors):
        # Every run, filterable.
        _visit(page, url + "/", errors)
        rows = page.locator("tr.run-row")
        assert rows.count() == 3
        assert page.locator("table.runs").inner_text().count("mix") >= 2
        _visit(page, url + "/?experiment=claude-hello", errors)
        assert page.locator("tr.run-row").count() == 1

        # The matrix: variants by repeat, each failed cell saying why.
        _visit(page, f"{url}/runs/{mix[0]}", errors, charts=3)
        matrix = page.locator("table.matrix")
        assert matrix.locator("thead th").count() == 3  # variant, repeat 1, repeat 2
        fails = matrix.locator("tr[data-variant=fails]").inner_text()
        assert fails.count("test application/has-marker failed (exit 1): marker missing "
                           "<b>from</b> out.txt") == 2
        broken = matrix.locator("tr[data-variant=broken-setup]").inner_text()
        assert "setup 'environment/setup' failed (exit 3)" in broken
        assert "oops-setup-broke" in broken
        assert matrix.locator("tr[data-variant=passes] .st-pass").count() == 2
        stats = page.locator("table.stats").inner_text()
        assert re.search(r"passes\s+2\s+2\s+100%", stats), stats
        page.screenshot(path=str(shots / "run.png"), full_page=True)

        # A failing variant: the test's stderr, the diff's added line, full logs on demand.
        _visit(page, f"{url}/runs/{mix[0]}/fails", errors, charts=1)
        assert "marker missing <b>from</b> out.txt" in page.locator("pre.stderr").inner_text()
        assert page.locator("b", has_text="from").count() == 0  # shown, never markup
        assert "+nothing-here" in page.locator("pre.diff .d-add").all_inner_texts()
        assert "echo nothing-here > out.txt" in page.locator("table.commands").inner_text()
        page.locator("a", has_text="full log").first.click()
        page.wait_for_load_state("networkidle")
        assert "marker missing <b>from</b> out.txt" in page.locator("pre.log").inner_text()
        assert not errors, errors

        # The erroring variant says why.
        _visit(page, f"{url}/runs/{mix[1]}/broken-setup", errors, charts=1)
        assert "setup 'environment/setup' failed (exit 3): non-zero exit" in \
            page.locator("#why").inner_text()
        assert "oops-setup-broke" in page.locator("#error").inner_text()

        # Claude's trajectory: prompt, tool calls with input and output, the diff.
        _visit(page, f"{url}/runs/{claude}/default", errors, charts=1)
        steps = page.locator("#trajectory")
        assert "Create /workspace/hello.txt" in steps.locator(".step-prompt").inner_text()
        bash = steps.locator(".step-tool", has_text="Bash")
        assert "cat /workspace/hello.txt" in bash.locator(".io").first.inner_text()
        assert bash.locator(".io").nth(1).inner_text().strip().endswith("hello")
        assert "+hello" in page.locator("pre.diff .d-add").all_inner_texts()
        api = page.locator("table.api tbody tr")
        # one row per recorded request (the adapter's side requests included)
        requests = list((project.runs_dir / claude).rglob("api-bodies/*.request.json"))
        assert api.count() == len(requests) >= 3
        assert "claude-sonnet-4-5" in api.first.inner_text()
        spans = page.locator("table.spans").inner_text()
        assert "agent" in spans and "sandbox_create" in spans
        page.screenshot(path=str(shots / "variant.png"), full_page=True)

        # Compare two variant runs, and two whole runs.
        a, b = f"{mix[0]}/passes", f"{mix[0]}/fails"
        _visit(page, f"{url}/compare?a={quote(a)}&b={quote(b)}", errors, charts=2)
        table = page.locator("table.compare").inner_text()
        assert a in table and b in table
        assert "p = 1" in page.locator("#fisher").inner_text()
        assert page.locator(".side-by-side .side").count() == 2
        page.screenshot(path=str(shots / "compare.png"), full_page=True)
        _visit(page, f"{url}/compare?a={mix[0]}&b={claude}", errors, charts=2)
        assert claude in page.locator("table.compare").inner_text()
        _visit(page, f"{url}/compare?a={mix[0]}&b={mix[1]}", errors, charts=2)
        assert page.locator("table.stats tbody tr").count() == 3  # per variant, A vs B

        # Bad addresses: a page that says so, not a traceback.
        resp = page.goto(f"{url}/runs/{mix[0]}/fails/log?path=../../index.json")
        assert resp is not None and resp.status == 404
        resp = page.goto(f"{url}/runs/no-such-run")
        assert resp is not None and resp.status == 404
        assert "no run no-such-run" in page.locator(".why").inner_text()

    # The report draws the same charts from the same templates, offline.
    res = project.axp("report", "-o", "report.html")
    assert res.returncode == 0, res.stderr
    with browser() as (page, errors):
        page.goto((project.root / "report.html").as_uri())
        page.locator(".chart .main-svg").nth(2).wait_for()
        assert "too few runs to tell" in page.locator("table.stats").inner_text()
        assert not errors, errors


def test_live_run_updates_without_reload(project, docker_client, tmp_path):
    project.write("live.yaml", LIVE)
    with viewer(project) as url, browser() as (page, errors):
        _visit(page, url + "/", errors)
        page.evaluate("window.__notReloaded = true")
        run = project.start("axp_cli", "local", "run", "live.yaml", "-j", "2")
        try:
            # The front page gains the run as it starts.
            page.wait_for_selector("tr.run-row")
            rid = page.locator("tr.run-row").get_attribute("data-run")
            assert rid and rid.startswith("live-")
            assert page.evaluate("window.__notReloaded") is True

            _visit(page, f"{url}/runs/{rid}", errors)
            page.evaluate("window.__notReloaded = true")
            slow = page.locator("tr[data-variant=slow]")
            page.wait_for_selector("tr[data-variant=fast] .st-pass")
            assert slow.locator(".st-running").count() == 1
            containers = docker_client.containers.list(filters={"label": [
                f"axp.run_id={rid}", "axp.variant_id=slow"]})
            assert len(containers) == 1
            containers[0].exec_run(["touch", "/tmp/go"])
            page.wait_for_selector("tr[data-variant=slow] .st-pass")
            assert page.evaluate("window.__notReloaded") is True
            assert page.locator("table.stats").count() == 1  # statistics joined in too
            out, err = run.communicate(timeout=300)
        finally:
            if run.poll() is None:
                run.terminate()
                run.wait(timeout=60)
        assert run.returncode == 0, out + err
        assert f"view: {url}/runs/{rid}" in out
        assert not errors, errors


def test_view_refuses_unknown_run(project):
    res = project.axp("view", "--no-browser", "nope-01ABC")
    assert res.returncode == 2
    assert res.stderr.startswith("axp: no run nope-01ABC under ")


def test_help_and_plugin_do_not_import_the_web_stack():
    code = ("import sys, axp_cli.main, pytest_axp.plugin; axp_cli.main.build_parser(); "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'jinja2', 'plotly') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(autouse=True)
def _chromium_present():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is required: apt-get install -y chromium (scripts/install.sh "
                    "--tests)")
