"""`axp view` time to first paint: a variant page whose trace is 50 MB, and `/` over 500 runs.

    python benchmarks/bench_view.py [--trace-mb 50] [--runs 500] [--rounds 3]

Synthetic run folders (the layout of seed 004) are written to a temporary folder; the viewer
is served by `axp view` on a free port and read by headless Chromium (Playwright driving
/usr/bin/chromium). Prints, per page, the server's response time and the browser's first
contentful paint after navigation start (medians of the rounds; the first round, with cold
caches, apart).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ulid import ULID

TESTS = [("application", "builds"), ("application", "passes-suite")]


def _summary(run_id: str, vid: str, status: str, repeat: int = 1) -> dict:
    now = time.time()
    return {
        "schema_version": 1, "run_id": run_id, "variant_id": vid, "variant_tag": vid,
        "experiment_id": run_id.rsplit("-", 1)[0], "status": status,
        "agent": {"name": "claude", "model": "claude-sonnet-4-5", "model_source": "scripted",
                  "exit_code": 0, "turns": 12, "cost_usd": 0.0123, "input_tokens": 5821,
                  "output_tokens": 412},
        "started_at_epoch": int(now) - 40, "ended_at_epoch": int(now),
        "duration_seconds": 40, "duration_ms": 40_000, "repeat": repeat,
        "tests": [{"name": n, "kind": k, "status": "pass" if status == "pass" else "fail",
                   "exit_code": 0 if status == "pass" else 1, "duration_ms": 900,
                   "stdout_tail": "ok\n", "stderr_tail": "" if status == "pass"
                   else "AssertionError: expected 3, got 4\n"} for k, n in TESTS],
        "error": None,
    }


def make_run(runs: Path, experiment: str, statuses: dict[str, str]) -> str:
    run_id = f"{experiment}-{ULID()}"
    root = runs / run_id
    variants = {}
    for vid, status in statuses.items():
        (root / "variants" / vid).mkdir(parents=True)
        (root / "variants" / vid / "resolved-variant.yaml").write_text(f"id: {vid}\n")
        res = root / "results" / vid
        res.mkdir(parents=True)
        (res / "run-summary.json").write_text(json.dumps(_summary(run_id, vid, status)))
        variants[vid] = {"variant_tag": vid, "status": status, "cost_usd": 0.0123,
                         "duration_seconds": 40,
                         "paths": {"results_dir": f"results/{vid}",
                                   "run_summary": f"results/{vid}/run-summary.json"}}
    (root / "index.json").write_text(json.dumps({
        "schema_version": 1, "run_id": run_id, "experiment_id": experiment,
        "variants": variants}))
    return run_id


def write_trace(path: Path, megabytes: int) -> int:
    """ACP-shaped events (prompt, tool calls with input and output, messages, usage) until
    the file is `megabytes` long; returns the number of events."""
    ts = time.time_ns()
    seq = 0
    target = megabytes << 20
    with open(path, "w") as f:
        def event(kind: str, update: dict, call: str | None = None) -> None:
            nonlocal seq
            e = {"seq": seq, "ts_ns": ts + seq * 1_000_000, "kind": kind, "session_id": "s"}
            if call:
                e["tool_call_id"] = call
            e["raw_json"] = {"jsonrpc": "2.0", "method": "session/update", "params": {
                "sessionId": "s", "update": {"sessionUpdate": kind, **update}}}
            f.write(json.dumps(e) + "\n")
            seq += 1

        event("user_message_chunk", {"content": {"type": "text", "text": "Fix the bug."}})
        output = "\n".join(f"src/module_{i}.py:{i}: a line of grep output" for i in range(40))
        while f.tell() < target:
            call = f"toolu_{seq:08d}"
            event("tool_call", {"toolCallId": call, "title": "grep -rn bug src",
                                "kind": "execute", "status": "pending",
                                "rawInput": {"command": "grep -rn bug src"},
                                "_meta": {"claudeCode": {"toolName": "Bash"}}}, call)
            event("tool_call_update", {"toolCallId": call, "status": "completed",
                                       "rawOutput": output}, call)
            event("usage_update", {"used": seq * 40, "size": 200_000})
            event("agent_message_chunk", {"content": {"type": "text",
                                                      "text": "Looking further. " * 8}})
    return seq


def start_viewer(runs: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "axp_cli", "view", "--no-browser",
                             "--port", "0", "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.match(r"axp view: (http://\S+) ", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the viewer did not start: {line}{proc.stderr.read()}")
    return proc, m.group(1)


def measure(page, url: str) -> tuple[float, float]:
    """(response end, first contentful paint), ms after navigation start."""
    page.goto(url, wait_until="commit")
    # Polled from here: the page's CSP forbids the eval that wait_for_function needs.
    deadline = time.monotonic() + 120
    while not page.evaluate(
            "performance.getEntriesByName('first-contentful-paint').length > 0"):
        if time.monotonic() > deadline:
            raise SystemExit(f"{url}: no first paint within 120 s")
        time.sleep(0.02)
    return page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const fcp = performance.getEntriesByName('first-contentful-paint')[0];
        return [nav.responseEnd, fcp.startTime];
    }""")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace-mb", type=int, default=50)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / ".axp" / "runs"
        runs.mkdir(parents=True)
        big = make_run(runs, "bigtrace", {"default": "fail"})
        t = time.perf_counter()
        n_events = write_trace(runs / big / "results" / "default" / "agent-trace.jsonl",
                               args.trace_mb)
        size = (runs / big / "results" / "default" / "agent-trace.jsonl").stat().st_size
        print(f"trace: {size / 2**20:.1f} MiB, {n_events} events "
              f"(written in {time.perf_counter() - t:.1f} s)")
        for i in range(args.runs - 1):
            make_run(runs, f"exp{i % 7}", {"baseline": "pass", "candidate":
                                          ("fail", "pass", "error")[i % 3], "third": "pass"})
        print(f"runs: {len(os.listdir(runs))}")
        proc, url = start_viewer(runs)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                            args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                for name, target in ((f"variant page, {size / 2**20:.0f} MiB trace",
                                      f"{url}/runs/{big}/default"),
                                     (f"/ with {args.runs} runs", f"{url}/")):
                    times = [measure(page, target) for _ in range(args.rounds + 1)]
                    cold, warm = times[0], times[1:]
                    print(f"{name}: first paint {statistics.median(f for _, f in warm):.0f} ms "
                          f"(response {statistics.median(r for r, _ in warm):.0f} ms; "
                          f"cold {cold[1]:.0f} ms)")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
