"""Load: 200 trivial variant runs through `axp local run --jobs 4`.

    python benchmarks/bench_load.py [--variants N] [--jobs J]

Reports wall time, the peak resident memory of the axp/pytest process tree (summed over
the processes alive at the same moment, and the largest single process), the run's
statuses, and the containers left afterwards (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += _children(p)
    return found


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=4)
    args = ap.parse_args()
    prompts = ", ".join(f"{{id: p{i:03d}, prompt: go}}" for i in range(args.variants))
    experiment = f"""
schema_version: 2
id: load
name: Load
agents: [{{name: command, script: "echo hi > out.txt"}}]
prompts: [{prompts}]
tests: {{application: [{{name: out, script: "test -f out.txt"}}]}}
limits: {{max_time_seconds: 60}}
"""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "load.yaml").write_text(experiment)
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "axp_cli", "local", "run", "load.yaml",
                                 "--jobs", str(args.jobs)], cwd=workdir,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak_total = peak_single = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak_total, peak_single
            while not done.is_set():
                sizes = [_rss_kb(p) for p in _tree(proc.pid)]
                peak_total = max(peak_total, sum(sizes))
                peak_single = max(peak_single, max(sizes, default=0))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = proc.communicate()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        run = next((workdir / ".axp" / "runs").iterdir())
        statuses: dict[str, int] = {}
        for summary in run.glob("results/*/run-summary.json"):
            status = json.loads(summary.read_text())["status"]
            statuses[status] = statuses.get(status, 0) + 1
        left = docker.from_env().containers.list(
            all=True, filters={"label": f"axp.run_id={run.name}"}, sparse=True)
        indexed = (run / "index.json").exists()
    print(f"{args.variants} variants, --jobs {args.jobs}: exit {proc.returncode}")
    print(f"wall time:          {wall:.1f} s ({wall / args.variants * 1000:.0f} ms per variant)")
    print(f"peak memory:        {peak_total / 1024:.0f} MiB for the process tree, "
          f"{peak_single / 1024:.0f} MiB the largest process")
    print(f"statuses:           {statuses}")
    print(f"index.json written: {indexed}")
    print(f"containers left:    {len(left)}")
    if proc.returncode != 0:
        print(err[-2000:], file=sys.stderr)


if __name__ == "__main__":
    main()
