"""Workspace snapshots on a 10,000-file workspace, against one plain full get_archive.

    python benchmarks/bench_fsdiff.py [--rounds N]

Prints the time of a first snapshot (listing plus the in-sandbox state tar), of a later
snapshot after 10 files changed (listing, fetch of those 10 and their old versions, patches),
of one with no change, and of reading the whole workspace with get_archive once.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pytest_axp.record.commands import CommandLog
from pytest_axp.record.fsdiff import WorkspaceDiffer
from pytest_axp.record.layout import VariantPaths
from pytest_axp.sandbox.docker import DockerSandbox
from pytest_axp.sandbox.docker_image import ensure_image

FILES = 10_000
MAKE_TREE = (f"cd /workspace && python3 -c \"import os\n"
             f"for i in range({FILES}):\n"
             f"    d = f'pkg{{i // 100:03d}}'\n"
             f"    os.makedirs(d, exist_ok=True)\n"
             f"    open(f'{{d}}/mod{{i:05d}}.py', 'w').write(f'value = {{i}}\\\\n' * 20)\"")
CHANGE_TEN = (
    "cd /workspace && for i in 0 1 2 3 4 5 6 7 8 9; do echo changed >> pkg000/mod0000$i.py; done"
)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        image = ensure_image(None, Path(tmp))
        first, changed, unchanged, archive = [], [], [], []
        for r in range(args.rounds):
            paths = VariantPaths(Path(tmp) / f"r{r}")
            sandbox = DockerSandbox.create(image=image, labels={"axp.run_id": "bench-fsdiff"},
                                           commands=CommandLog(paths))
            try:
                assert sandbox.exec(MAKE_TREE, phase="bench", name="tree").exit_code == 0
                differ = WorkspaceDiffer(sandbox, paths)
                first.append(timed(lambda d=differ: d.snapshot("before_agent")))
                sandbox.exec(CHANGE_TEN, phase="bench", name="change")
                records = []
                changed.append(
                    timed(lambda d=differ, r=records: r.append(d.snapshot("after_agent")))
                )
                assert len(records[0]["changes"]) == 10, records[0]
                unchanged.append(
                    timed(lambda d=differ: d.snapshot("after_tests", keep_state=False))
                )
                archive.append(timed(lambda s=sandbox: [None for _ in s.get_archive("/workspace")]))
                record = differ.snapshot("check", keep_state=False)
                assert record is not None and record["file_count"] == FILES
            finally:
                sandbox.remove()
    m = {k: statistics.median(v) for k, v in (("first", first), ("changed", changed),
                                               ("unchanged", unchanged), ("archive", archive))}
    print(f"{FILES} files, medians of {args.rounds}")
    print(f"full get_archive('/workspace'):       {m['archive']:.3f} s")
    print(
        f"first snapshot (list + state tar):    {m['first']:.3f} s  "
        f"ratio {m['first'] / m['archive']:.2f}"
    )
    print(
        f"snapshot after 10 files changed:      {m['changed']:.3f} s  "
        f"ratio {m['changed'] / m['archive']:.2f}"
    )
    print(
        f"snapshot with no change (last point): {m['unchanged']:.3f} s  "
        f"ratio {m['unchanged'] / m['archive']:.2f}"
    )
    print("target: a snapshot under 0.3 s")


if __name__ == "__main__":
    main()
