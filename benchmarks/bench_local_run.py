"""8 trivial variants through `axp local run --jobs 4`, against the same container steps
driven straight through the docker SDK with 4 threads. Prints both times and the ratio.

    python benchmarks/bench_local_run.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

VARIANTS = 8
JOBS = 4
AGENT = "echo hi > out.txt"
TEST = "test -f out.txt"

EXPERIMENT = f"""
schema_version: 2
id: bench
name: Bench
agents: [{{name: command, script: "{AGENT}"}}]
prompts: [{", ".join(f"{{id: p{i}, prompt: go}}" for i in range(VARIANTS))}]
tests:
  application:
    - name: out
      script: {TEST}
limits: {{max_time_seconds: 60}}
"""


def baseline_once(client: docker.DockerClient, image: str) -> float:
    """The minimum any harness must do per variant: create, exec agent, exec test, copy
    the workspace out, remove."""

    def one(_: int) -> None:
        c = client.containers.run(image, ["sleep", "infinity"], detach=True, init=True,
                                  working_dir="/workspace")
        try:
            c.exec_run(["bash", "-c", f"chown -R agent /workspace"])
            c.exec_run(["bash", "-c", AGENT], user="agent", workdir="/workspace")
            c.exec_run(["bash", "-c", TEST], user="agent", workdir="/workspace")
            stream, _ = c.get_archive("/workspace")
            for _chunk in stream:
                pass
        finally:
            c.remove(force=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(one, range(VARIANTS)))
    return time.perf_counter() - start


def axp_once(workdir: Path) -> float:
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "axp_cli", "local", "run", "bench.yaml",
                          "--jobs", str(JOBS)], cwd=workdir, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"axp local run failed:\n{res.stdout}\n{res.stderr}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from pytest_axp.sandbox.image import ensure_image

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "bench.yaml").write_text(EXPERIMENT)
        image = ensure_image(None, workdir / ".axp")
        client = docker.from_env()
        baseline_once(client, image)  # warm the engine and page cache
        base, ours = [], []
        for _ in range(args.rounds):
            base.append(baseline_once(client, image))
            ours.append(axp_once(workdir))
    b, o = statistics.median(base), statistics.median(ours)
    print(f"docker SDK baseline ({VARIANTS} variants, {JOBS} threads): {b:.2f} s (median of {args.rounds})")
    print(f"axp local run --jobs {JOBS}:                        {o:.2f} s (median of {args.rounds})")
    print(f"ratio: {o / b:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
