"""`axp`: AXP's local commands, run on pytest-axp.

Exit codes: 0 every variant passed (or the command succeeded), 1 a variant did not pass,
2 invalid input or usage, 3 the sandbox engine is unusable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .table import render

EXIT_OK, EXIT_NOT_PASSED, EXIT_INVALID, EXIT_ENGINE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.code = code


def _runs_dir(args: argparse.Namespace) -> Path:
    return Path(args.runs_dir or os.environ.get("AXP_RUNS_DIR") or ".axp/runs").resolve()


def _load(path: str):
    from pytest_axp.experiment import ExperimentError, load_and_resolve

    if not Path(path).is_file():
        raise CliError(f"{path}: no such file")
    try:
        return load_and_resolve(path)
    except ExperimentError as e:
        raise CliError(str(e)) from None


def _select(variants, wanted: list[str]):
    if not wanted:
        return variants
    known = {v.id for v in variants}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise CliError(f"unknown variant id(s) {', '.join(unknown)}; "
                       f"this experiment has: {', '.join(sorted(known))}")
    return [v for v in variants if v.id in wanted]


# -- axp local run ------------------------------------------------------------------------

def cmd_local_run(args: argparse.Namespace) -> int:
    variants = _select(_load(args.file), args.variant)
    if args.repeat < 1:
        raise CliError("--repeat must be at least 1")
    if args.jobs < 1:
        raise CliError("--jobs must be at least 1")
    if args.dry_run:
        return _dry_run(args, variants)

    from pytest_axp.sandbox.base import SandboxError
    from pytest_axp.sandbox.image import ensure_claude_image, ensure_image
    from pytest_axp.session import new_ulids

    runs_dir = _runs_dir(args)
    # Build what the variants need now, with visible progress, rather than inside workers.
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        image = ensure_image(args.image, runs_dir.parent, log=log)
        if not args.image and any(v.agent.name == "claude" for v in variants):
            ensure_claude_image(image, runs_dir.parent, log=log)
    except SandboxError as e:
        raise CliError(str(e), EXIT_ENGINE) from None
    ulids = new_ulids(args.repeat)
    experiment_id = variants[0].experiment_id
    run_ids = [f"{experiment_id}-{u}" for u in ulids]
    for rid in run_ids:
        print(f"run {rid}")
    pytest_args = [
        str(Path(args.file).resolve()), "-q", "--no-header", "-p", "no:cacheprovider",
        "--rootdir", str(Path(args.file).resolve().parent),
        "--axp-runs-dir", str(runs_dir), "--axp-repeat", str(args.repeat),
        "--axp-run-ulids", ",".join(ulids),
    ]
    if args.image:
        pytest_args += ["--axp-image", args.image]
    # Only the plugins a run needs: every other installed pytest plugin would be imported
    # again by each xdist worker (seconds on a small machine). Conftest files still load.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    pytest_args += ["-p", "pytest_axp.plugin"]
    for v in args.variant:
        pytest_args += ["--axp-variant", v]
    if args.model_script:
        script = Path(args.model_script)
        if not script.is_file():
            raise CliError(f"--model-script {args.model_script}: no such file")
        _check_model_script(script)
        pytest_args += ["--axp-model-script", str(script.resolve())]
    if args.jobs > 1:
        pytest_args += ["-p", "xdist.plugin", "-n",
                        str(min(args.jobs, len(variants) * args.repeat))]
    import pytest

    from pytest_axp.prewarm import Prewarm
    from pytest_axp.record.layout import RunPaths

    def image_for(agent: str) -> str:
        if args.image or agent != "claude":
            return image
        return ensure_claude_image(image, runs_dir.parent)

    prewarm = Prewarm()
    try:
        prewarm.start(variants, [RunPaths(runs_dir / rid) for rid in run_ids],
                      min(args.jobs, len(variants) * args.repeat), image_for)
        code = pytest.main(pytest_args)
    finally:
        prewarm.finish()
    return _report_runs(runs_dir, run_ids, interrupted=code == pytest.ExitCode.INTERRUPTED)


def _check_model_script(path: Path) -> None:
    from pytest_axp.gateway import ModelScript, ScriptError

    try:
        ModelScript.load(path)
    except ScriptError as e:
        raise CliError(str(e)) from None


def _report_runs(runs_dir: Path, run_ids: list[str], interrupted: bool) -> int:
    from pytest_axp.record.jsonio import read_json
    from pytest_axp.record.layout import RunPaths

    rows, all_passed = [], True
    for rid in run_ids:
        run = RunPaths(runs_dir / rid)
        for vid in run.selected_variants():
            summary = read_json(run.results(vid).run_summary) or {}
            status = summary.get("status", "partial")
            all_passed &= status == "pass"
            rows.append((rid, vid, status, summary.get("duration_seconds", "")))
    print()
    print(render(("run", "variant", "status", "duration_s"), rows))
    for rid in run_ids:
        run = RunPaths(runs_dir / rid)
        state = "" if run.index.exists() else "  (partial: no index.json)"
        print(f"results: {run.root}{state}")
    if interrupted:
        print(f"interrupted: partial results kept in {runs_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if rows and all_passed else EXIT_NOT_PASSED


def _dry_run(args: argparse.Namespace, variants) -> int:
    from pytest_axp.staging import resolve_source

    print(f"experiment {variants[0].experiment_id}: {len(variants)} variant(s) x "
          f"{args.repeat} repeat(s) = {len(variants) * args.repeat} sandbox run(s)")
    print(f"image: {args.image or 'bundled base image (built on first use)'}")
    print()
    print(render(("variant", "tag", "agent", "model", "prompt", "environment", "product"),
                 [(v.id, v.tag, v.agent.name, v.matrix.get("model", ""), v.prompt.id,
                   v.matrix.get("environment", ""), v.matrix.get("product", ""))
                  for v in variants]))
    rows = []
    seen = set()
    for v in variants:
        base = Path(v.source_file).parent
        for f in v.files:
            key = (f.name, f.source, f.dest)
            if key in seen:
                continue
            seen.add(key)
            if f.source is None:
                state, src = "UNBOUND", ""
            elif f.source.startswith(("http://", "https://")):
                state, src = "URL", f.source
            else:
                path = resolve_source(f.source, base)
                state, src = ("OK" if path.exists() else "MISSING"), str(path)
            rows.append((f.name or "", src, f.dest, state))
    if rows:
        print()
        print(render(("file", "source", "dest", "state"), rows))
    print("\ndry run: nothing was written")
    return EXIT_OK


# -- axp list -----------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    if args.remote:
        raise CliError("no AXP platform is configured: remote runs cannot be listed "
                       "(use --local)", EXIT_INVALID)
    from pytest_axp.runs import list_runs

    rows = list_runs(_runs_dir(args), status=args.status)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
        return EXIT_OK
    if not rows:
        print(f"no runs under {_runs_dir(args)}")
        return EXIT_OK
    print(render(("run id", "experiment", "status", "type", "created"),
                 [(r.run_id, r.experiment_id, r.status, "local", r.to_json()["created"])
                  for r in rows]))
    return EXIT_OK


# -- axp experiment -----------------------------------------------------------------------

def cmd_validate(args: argparse.Namespace) -> int:
    from pytest_axp.experiment import ExperimentError, load_and_resolve

    try:
        variants = load_and_resolve(args.file)
    except ExperimentError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return EXIT_INVALID
    except OSError as e:
        raise CliError(f"{args.file}: {e.strerror}") from None
    print(f"{args.file}: valid ({len(variants)} variant(s))")
    return EXIT_OK


def cmd_resolve(args: argparse.Namespace) -> int:
    variants = _load(args.file)
    if args.json:
        print(json.dumps([v.model_dump(mode="json", exclude_none=True) for v in variants],
                         indent=2))
        return EXIT_OK
    print(render(("variant", "tags", "agent", "model", "prompt", "environment", "product",
                  "fingerprint"),
                 [(v.id, ",".join(v.tags) or v.tag, v.agent.name, v.matrix.get("model", ""),
                   v.prompt.id, v.matrix.get("environment", ""), v.matrix.get("product", ""),
                   v.fingerprint[:12]) for v in variants]))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from pytest_axp.experiment import experiment_json_schema

    print(json.dumps(experiment_json_schema(), indent=2))
    return EXIT_OK


def cmd_image_build(args: argparse.Namespace) -> int:
    from pytest_axp.sandbox.base import SandboxError
    from pytest_axp.sandbox.image import DEFAULT_BASE_IMAGE, build_image

    try:
        tag = build_image(args.tag, args.base_image or os.environ.get(
            "AXP_BASE_IMAGE", DEFAULT_BASE_IMAGE), log=print)
    except SandboxError as e:
        raise CliError(str(e), EXIT_ENGINE) from None
    print(f"built {tag}")
    return EXIT_OK


# -- parser -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="axp", description="Run AXP agent experiments locally.")
    sub = p.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="local runs").add_subparsers(dest="local_cmd",
                                                                       required=True)
    run = local.add_parser("run", help="run an experiment in local Docker sandboxes")
    run.add_argument("file")
    run.add_argument("--variant", action="append", default=[], metavar="ID")
    run.add_argument("--repeat", type=int, default=1, metavar="N")
    run.add_argument("--jobs", "-j", type=int, default=1, metavar="J")
    run.add_argument("--dry-run", action="store_true")
    run.add_argument("--image", default=None)
    run.add_argument("--runs-dir", default=None)
    run.add_argument("--model-script", default=None, metavar="FILE",
                     help="answer the claude agent from a scripted model (offline)")
    run.set_defaults(func=cmd_local_run)

    def add_list(parser: argparse.ArgumentParser) -> None:
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--local", action="store_true")
        where.add_argument("--remote", action="store_true")
        parser.add_argument("--status", choices=("pass", "fail", "timeout", "error", "partial"))
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--runs-dir", default=None)
        parser.set_defaults(func=cmd_list)

    add_list(sub.add_parser("list", help="list runs, newest first"))
    runs = sub.add_parser("runs", help="runs").add_subparsers(dest="runs_cmd", required=True)
    add_list(runs.add_parser("list", help="alias of `axp list`"))

    exp = sub.add_parser("experiment", help="experiment files").add_subparsers(
        dest="exp_cmd", required=True)
    v = exp.add_parser("validate", help="check an experiment file")
    v.add_argument("file")
    v.set_defaults(func=cmd_validate)
    r = exp.add_parser("resolve", help="list the variants of an experiment file")
    r.add_argument("file")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_resolve)
    s = exp.add_parser("schema", help="print the JSON schema of experiment files")
    s.set_defaults(func=cmd_schema)

    img = sub.add_parser("image", help="sandbox images").add_subparsers(dest="img_cmd",
                                                                         required=True)
    b = img.add_parser("build", help="build the bundled base image")
    b.add_argument("--base-image", default=None,
                   help="FROM image (default: debian:bookworm or $AXP_BASE_IMAGE)")
    b.add_argument("--tag", default=None)
    b.set_defaults(func=cmd_image_build)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        print(f"axp: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("axp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
