"""8 trivial variants through `axp local run --jobs 4`, against the same container steps
driven straight through the docker SDK with 4 threads. Prints both times and the ratio.

    python benchmarks/bench_local_run.py [--rounds N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from docker.models.containers import Container

from pytest_axp.runner import _STOP_USER_PROCESSES as STOP_USER_PROCESSES

VARIANTS = 8
JOBS = 4
AGENT = "echo hi > out.txt"
TEST = "test -f out.txt"

STATE = "/axp/fsdiff"
LIST = ("find . -xdev -mindepth 1 \\( -type f -o -type l \\) "
        "-printf '%P\\0%s\\0%T@\\0%m\\0%y\\0'")

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


def baseline_script(image: str) -> None:
    """Entry point of the baseline program (run as `python bench_local_run.py --baseline`)."""
    baseline_steps(docker.from_env(), image)


def baseline_once(image: str) -> float:
    """The baseline as a program of its own: interpreter and SDK start-up count, as for axp."""
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--baseline", image], check=True)
    return time.perf_counter() - start


def _one_file_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def baseline_steps(client: docker.DockerClient, image: str) -> None:
    """The container steps the harness makes for such a variant, and nothing else: create;
    the before_agent snapshot (listing and state tar, the listing read back raw); the agent;
    the agent user's processes stopped; the after_agent snapshot (listing read back, file
    lists in, changed files collected and read out); the trace file in; the test; the
    after_tests listing read back; the workspace out; remove."""
    trace = _one_file_tar("trace.jsonl", b'{"kind": "axp_meta"}\n')
    lists = _one_file_tar("new.list", b"out.txt\0")

    def listing(c: Container, prefix: str = "") -> None:
        # The harness reads its listing through the archive API, never from redacted output.
        c.exec_run(["bash", "-c", f"{prefix}cd /workspace && {LIST} > {STATE}/listing"])
        for _chunk in c.get_archive(f"{STATE}/listing")[0]:
            pass

    def one(_: int) -> None:
        c = client.containers.run(image, ["sleep", "infinity"], detach=True, init=True,
                                  working_dir="/workspace",
                                  extra_hosts={"host.docker.internal": "host-gateway"})
        try:
            listing(c, f"mkdir -p {STATE} && cd /workspace && tar -cf {STATE}/prev.tar . ; ")
            c.exec_run(["bash", "-c", AGENT], user="agent", workdir="/workspace")
            c.exec_run(["bash", "-c", STOP_USER_PROCESSES], user="agent")
            listing(c)
            c.put_archive(STATE, lists)
            c.exec_run(["bash", "-c", f"rm -rf {STATE}/out && mkdir -p {STATE}/out/new && "
                        f"tar -C /workspace --null -T {STATE}/new.list -cf - | "
                        f"tar -C {STATE}/out/new -xf - && tar -C /workspace -rf "
                        f"{STATE}/prev.tar --null -T {STATE}/new.list"])
            stream, _ = c.get_archive(f"{STATE}/out")
            for _chunk in stream:
                pass
            c.put_archive("/axp", trace)
            c.exec_run(["bash", "-c", TEST], user="agent", workdir="/workspace")
            listing(c)
            stream, _ = c.get_archive("/workspace")
            for _chunk in stream:
                pass
        finally:
            c.remove(force=True)

    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(one, range(VARIANTS)))


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
    ap.add_argument("--baseline", metavar="IMAGE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        return baseline_script(args.baseline)
    from pytest_axp.sandbox.docker_image import ensure_image

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "bench.yaml").write_text(EXPERIMENT)
        image = ensure_image(None, workdir / ".axp")
        baseline_once(image)  # warm the engine and the page cache
        base, ours = [], []
        for _ in range(args.rounds):
            base.append(baseline_once(image))
            ours.append(axp_once(workdir))
    b, o = statistics.median(base), statistics.median(ours)
    print(
        f"docker SDK script ({VARIANTS} variants, {JOBS} threads): {b:.2f} s "
        f"(median of {args.rounds})"
    )
    print(
        f"axp local run --jobs {JOBS}:                        {o:.2f} s (median of {args.rounds})"
    )
    print(f"ratio: {o / b:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
