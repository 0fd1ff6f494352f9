"""48 trivial variants on one engine and on a pool of three (the machine's engine and two
more started on this machine, tests/engines.py), then `--jobs auto` on the pool: how many
sandboxes it admits over time against the engines' capacity.

All three engines share this machine's CPUs, so the figure shows the pool's overhead
(placement lock, listing, the gateway and image checks), not a speed-up.

    python benchmarks/bench_pool.py [--variants 48] [--jobs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_axp.sandbox.base import ResourceLimits  # noqa: E402
from pytest_axp.sandbox.pool import PoolBackend  # noqa: E402
from tests.engines import start_engine, stop_engine  # noqa: E402

MAIN = "unix:///var/run/docker.sock"


def experiment(n: int) -> str:
    prompts = ", ".join(f"{{id: p{i}, prompt: go}}" for i in range(n))
    return f"""
schema_version: 2
id: benchpool
name: Bench pool
agents: [{{name: command, script: "echo hi > out.txt"}}]
prompts: [{prompts}]
tests:
  application:
    - name: out
      script: test -f out.txt
limits: {{max_time_seconds: 60}}
"""


def run(workdir: Path, *args: str) -> float:
    start = time.perf_counter()
    env = {**os.environ, "AXP_NO_REAP": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "axp_cli", "local", "run", "exp.yaml", *args],
                         cwd=workdir, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"axp failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return took


def sample(pool: PoolBackend, stop: threading.Event, out: list[tuple[float, list[int]]]) -> None:
    """Active bench sandboxes per engine, every 0.25 s."""
    start = time.monotonic()
    while not stop.is_set():
        counts = []
        for engine in pool.engines:
            listed = engine.client.api.containers(all=True, filters={"label": "axp.run_id"})
            counts.append(sum(1 for c in listed
                              if (c.get("Labels") or {}).get("axp.run_id", "")
                              .startswith("benchpool-")
                              and c.get("State") in ("created", "running")))
        out.append((time.monotonic() - start, counts))
        stop.wait(0.25)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--variants", type=int, default=48)
    p.add_argument("--jobs", type=int, default=3)
    args = p.parse_args()
    engines = []
    try:
        for _ in range(2):
            engines.append(start_engine("axpb"))
        urls = [MAIN, *(e.url for e in engines)]
        pool = PoolBackend(urls)
        from pytest_axp.sandbox.docker_image import DEFAULT_BASE_IMAGE, default_image_tag

        pool.distribute([default_image_tag(os.environ.get("AXP_BASE_IMAGE",
                                                         DEFAULT_BASE_IMAGE))])
        hosts = [a for url in urls for a in ("--docker-host", url)]
        limits = ["--cpus", "1", "--memory", "1g"]
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "exp.yaml").write_text(experiment(args.variants))
            one = run(work, "--jobs", str(args.jobs), *limits)
            three = run(work, "--jobs", str(args.jobs), *limits, *hosts)
            print(f"{args.variants} variants, --jobs {args.jobs}: one engine {one:.1f} s, "
                  f"three engines {three:.1f} s (ratio {three / one:.2f})")
            capacity = pool.slots(ResourceLimits(cpus=1, memory="1g"))
            stop, timeline = threading.Event(), []
            watcher = threading.Thread(target=sample, args=(pool, stop, timeline))
            watcher.start()
            auto = run(work, "--jobs", "auto", *limits, *hosts)
            stop.set()
            watcher.join()
        print(f"--jobs auto on three engines: {auto:.1f} s; capacity {capacity} sandboxes "
              "(1 CPU, 1g each)")
        print("  t(s)  " + "  ".join(f"e{i}" for i in range(len(urls))) + "  total  capacity")
        peak = 0
        for t, counts in timeline[::4]:
            total = sum(counts)
            print(f"{t:6.1f}  " + "  ".join(f"{c:2d}" for c in counts)
                  + f"  {total:5d}  {capacity:8d}")
        peak = max((sum(c) for _, c in timeline), default=0)
        print(f"peak admitted {peak} of capacity {capacity}")
    finally:
        for engine in engines:
            stop_engine(engine)


if __name__ == "__main__":
    main()
