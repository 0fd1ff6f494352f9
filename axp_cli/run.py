"""`axp local run`: a run, a folder of experiments, --resume and --dry-run."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

from pytest_axp.render.table import render

from .common import _check_agents, _load, _runs_dir, refuse
from .errors import (
    EXIT_BUSY,
    EXIT_ENGINE,
    EXIT_INTERRUPTED,
    EXIT_NOT_PASSED,
    EXIT_OK,
    CliError,
)

# The run folders of the run under way and whether the interrupt line was printed: a second
# Ctrl-C may land anywhere, and the line must be printed once whatever it cut short.
_active_runs: list[Path] = []
_interrupt_reported = False

# Set when SIGINT/SIGTERM arrived: pytest also says "interrupted" after a collection error.
_signalled: set[int] = set()


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
    if args.repeat < 1:
        raise CliError("--repeat must be at least 1")
    if args.jobs != "auto" and args.jobs < 1:
        raise CliError("--jobs must be at least 1")
    _configure_pool(args)
    for flag, value in (("--test-timeout", args.test_timeout),
                        ("--setup-timeout", args.setup_timeout)):
        if value is not None and not 0 < value < float("inf"):
            raise CliError(f"{flag} {value:g}: give a positive number of seconds")
    if args.retries < 0:
        raise CliError("--retries must be 0 or more")
    if args.managed_model_access:
        _use_managed_model_access()
    if args.resume:
        return _resume(args)
    if not args.file:
        raise CliError("give an experiment file (or --resume RUN_ID)")
    if Path(args.file).is_dir():
        return _run_folder(args)
    variants = _select(_load(args.file), args.variant)
    _check_agents(variants)
    bindings = _file_bindings(args, variants)
    if args.dry_run:
        return _dry_run(args, variants, bindings)
    _check_inputs(args, variants, bindings)
    from pytest_axp.session import new_ulids

    ulids = [args.run_ulid] if args.run_ulid and args.repeat == 1 else new_ulids(args.repeat)
    return _execute(args, Path(args.file), variants, ulids, args.repeat)


def _run_folder(args: argparse.Namespace) -> int:
    """Every experiment file in a folder, each as its own run. All are checked before the
    first one starts."""
    from pytest_axp.collect import experiment_files

    folder = Path(args.file)
    files = experiment_files(folder)
    if not files:
        raise CliError(f"{args.file}: a folder with no experiment files in it (.yaml or .yml "
                       "files with a schema_version)")
    if args.variant:
        raise CliError(f"--variant selects within one experiment; {args.file} is a folder: "
                       "give the experiment file")
    plans = []
    for file in files:
        variants = _load(str(file))
        _check_agents(variants)
        plans.append((file, variants, _file_bindings(args, variants)))
    if not args.dry_run:
        for _, variants, bindings in plans:
            _check_inputs(args, variants, bindings)
    from pytest_axp.session import new_ulids

    worst = EXIT_OK
    for n, (file, variants, bindings) in enumerate(plans):
        print(("\n" if n else "") + f"== {file} ({n + 1} of {len(plans)})", flush=True)
        code = (_dry_run(args, variants, bindings) if args.dry_run else
                _execute(args, file, variants, new_ulids(args.repeat), args.repeat))
        if code == EXIT_INTERRUPTED:
            return code
        worst = max(worst, code)
    return worst


@contextlib.contextmanager
def _holding(runs_dir: Path, ulids: list[str], names: list[str]):
    """This process is the one writer of these runs while the block runs."""
    from pytest_axp.runlock import RunBusy, acquire, release

    held = []
    try:
        for ulid, name in zip(ulids, names, strict=True):
            try:
                acquire(runs_dir, ulid, name)
            except RunBusy as e:
                raise CliError(str(e), EXIT_BUSY) from None
            held.append(ulid)
        yield
    finally:
        for ulid in held:
            release(runs_dir, ulid)


def _resume(args: argparse.Namespace) -> int:
    """Run again, into the same folder, the variants of a run that have no summary or ended
    as `error` (see pytest_axp.resume)."""
    from pytest_axp.resume import ResumeError, find_run

    try:
        target = find_run(_runs_dir(args), args.resume)
    except ResumeError as e:
        raise CliError(str(e)) from None
    with _holding(_runs_dir(args), [target.ulid], [target.run.run_id]):
        return _resume_held(args, target)


def _resume_held(args: argparse.Namespace, target) -> int:
    from pytest_axp import resume

    run = target.run
    if resume.index_is_stale(run):
        # Derived from the summaries: rebuilt below, or when the resumed variants end.
        print(f"run {run.run_id}: index.json does not match the results; rebuilding it")
    source = args.file or resume.recorded_source(run, target.selected[0])
    if source is None:
        raise CliError(f"--resume: cannot tell which file {run.run_id} ran; give it: "
                       f"axp local run FILE --resume {run.run_id}")
    variants = {v.id: v for v in _load(source)}
    gone = [vid for vid in target.selected if vid not in variants]
    if gone:
        raise CliError(f"--resume: {source} no longer has variant(s) {', '.join(gone)}")
    todo = resume.variants_to_rerun(run, target.selected)
    if not todo:
        print(f"run {args.resume}: every variant has a result; nothing to resume")
        resume.repair_index(run)
        return _report_runs(run.root.parent, [args.resume], interrupted=False)
    chosen = [variants[v] for v in todo]
    bindings = _file_bindings(args, chosen)  # checked before anything moves
    _check_inputs(args, chosen, bindings, sources=False)
    resume.set_aside(run, todo)
    args.variant = todo
    return _execute(args, Path(source), chosen, [target.ulid], 1)


def _execute(args: argparse.Namespace, file: Path, variants, ulids: list[str],
             repeat: int) -> int:
    """Run the variants through pytest (xdist for --jobs) and report; one run per ULID."""
    from pytest_axp.agents.registry import agent_images
    from pytest_axp.sandbox.base import SandboxError
    from pytest_axp.sandbox.docker_image import ensure_image

    runs_dir = _runs_dir(args)
    _reap_orphans()
    # Build what the variants need now, with visible progress, rather than inside workers.
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        image = ensure_image(args.image, runs_dir.parent, log=log)
        built = agent_images(image, [v.agent.name for v in variants], runs_dir.parent,
                             given_image=bool(args.image), log=log)
        _distribute([image, *built.values()], log)
    except SandboxError as e:
        raise CliError(str(e), EXIT_ENGINE) from None
    experiment_id = variants[0].experiment_id
    run_ids = [f"{experiment_id}-{u}" for u in ulids]
    with _holding(runs_dir, ulids, run_ids):
        code = _execute_held(args, file, variants, ulids, repeat, image, run_ids)
    if code != EXIT_INTERRUPTED and not args.run_ulid:  # a server's own run stays there
        from .upload import upload_after_local_run

        upload_after_local_run(run_ids, runs_dir)
    return code


def _use_managed_model_access() -> None:
    """Model calls of this run go to the signed-in server's gateway, with the user's token
    as the key: the gateway here forwards there, and the model key stays on the server."""
    from pytest_axp.gateway.apis import REGISTRY
    from pytest_axp.gateway.messages import MESSAGES

    from .client import load_sign_in

    sign_in = load_sign_in()
    if sign_in is None:
        raise CliError("--managed-model-access needs a sign-in: axp auth login --server URL")
    for api in {MESSAGES.name: MESSAGES, **{a.name: a for a in REGISTRY.all()}}.values():
        os.environ[api.base_url_env] = sign_in.server.rstrip("/") + "/gateway"
        os.environ[api.key_env] = sign_in.token


def _execute_held(args: argparse.Namespace, file: Path, variants, ulids: list[str],
                  repeat: int, image: str, run_ids: list[str]) -> int:
    from pytest_axp.agents.registry import agent_images, pytest_plugin_args
    from pytest_axp.prewarm import CREATED_AHEAD_OPTION, Prewarm

    runs_dir = _runs_dir(args)
    live = sys.stdout.isatty()
    if not live:  # the live view's title says it on a terminal
        for rid in run_ids:
            print(f"run {rid}", flush=True)
    _print_viewer_urls(runs_dir, run_ids)
    if args.model_script:
        script = Path(args.model_script)
        if not script.is_file():
            raise CliError(f"--model-script {args.model_script}: no such file")
        _check_model_script(script)
    # What the plugin is told, by option dest and ini name; the same values give the
    # engine options of the sandboxes created ahead below.
    options = {
        "axp_runs_dir": str(runs_dir), "axp_repeat": repeat, "axp_run_ulids": ",".join(ulids),
        "axp_image": args.image, "axp_test_timeout": args.test_timeout,
        "axp_setup_timeout": args.setup_timeout, "axp_retries": args.retries or None,
        "axp_variant": args.variant, "axp_env": args.env,
        "axp_env_file": [str(Path(item).resolve()) for item in args.env_file],
        "axp_file": args.files,
        "axp_model_script": str(Path(args.model_script).resolve()) if args.model_script
        else None,
    }
    ini = {name: value for name, value in (
        ("axp_memory", args.memory), ("axp_cpus", args.cpus),
        ("axp_pids_limit", args.pids_limit), ("axp_agent_network", args.agent_network))
        if value is not None}
    pytest_args = [
        str(file.resolve()), "-q", "--no-header", "-p", "no:cacheprovider",
        "--rootdir", str(file.resolve().parent),
        CREATED_AHEAD_OPTION,  # the sandboxes created below are the items' to adopt
    ]
    # Only the plugins a run needs: every other installed pytest plugin would be imported
    # again by each xdist worker (seconds on a small machine). Conftest files still load.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    # pytest-axp and the installed plugins built on it.
    pytest_args += pytest_plugin_args() + _as_pytest_args(options, ini)
    jobs = _jobs(args, _engine_options(options, ini).limits)
    if jobs > 1:
        pytest_args += ["-p", "xdist.plugin", "-n",
                        str(min(jobs, len(variants) * repeat))]
    import pytest

    from pytest_axp.record.layout import RunPaths

    from .progress import ProgressWatcher

    def image_for(agent: str) -> str:
        return agent_images(image, [agent], runs_dir.parent, given_image=bool(args.image))[agent]

    runs = [RunPaths(runs_dir / rid) for rid in run_ids]
    prewarm = Prewarm()
    # A duplicate of stdout's descriptor: pytest's fd capture during items cannot take it.
    progress_out = open(os.dup(sys.stdout.fileno()), "w", buffering=1,
                        encoding="utf-8", errors="replace")
    watcher = ProgressWatcher(runs, [v.id for v in variants], out=progress_out, live=live)
    pytest_output = io.StringIO()
    started = time.monotonic()
    _signalled.clear()
    try:
        prewarm.start(variants, runs, min(jobs, len(variants) * repeat), image_for,
                      _engine_options(options, ini))
        watcher.start()
        _active_runs[:] = [r.root for r in runs]
        # axp shows its own progress and final table; pytest's report is kept for the
        # cases where it says more than the run folders do.
        with contextlib.redirect_stdout(pytest_output):
            try:
                code = pytest.main([*pytest_args, "-rfE", "--tb=no", "-p", "no:warnings"])
            except KeyboardInterrupt:
                # A second interrupt cut pytest's own clean-up short: do it here.
                code = pytest.ExitCode.INTERRUPTED
                swept = False
            else:
                swept = True
    finally:
        watcher.stop()
        progress_out.close()
        prewarm.finish()
    if not swept:
        _remove_run_containers(run_ids)
    interrupted = code == pytest.ExitCode.INTERRUPTED and bool(_signalled)
    if not interrupted:
        _print_pytest_summary(pytest_output.getvalue(), code, runs)
    return _report_runs(runs_dir, run_ids, interrupted=interrupted,
                        wall_seconds=time.monotonic() - started, order=[v.id for v in variants])


def _check_inputs(args: argparse.Namespace, variants, bindings, sources: bool = True) -> None:
    """Sources that are missing or linked, and secret values too short to redact safely,
    are refused before any container (a missing secret is the variant's own error)."""
    from pytest_axp.plan import PlanError, secret_problems, source_problems

    try:
        refuse((source_problems(variants, bindings) if sources else [])
               + secret_problems(variants, Path.cwd(), args.env_file, args.env))
    except PlanError as e:
        raise CliError(str(e)) from None


def _as_pytest_args(options: dict, ini: dict) -> list[str]:
    """--axp-NAME VALUE per option (repeated for a list, left out when unset) and
    -o NAME=VALUE per ini setting."""
    out: list[str] = []
    for dest, value in options.items():
        flag = "--" + dest.replace("_", "-")
        for one in value if isinstance(value, list) else [value]:
            if one is not None:
                out += [flag, repr(one) if isinstance(one, float) else str(one)]
    for name, value in ini.items():
        out += ["-o", f"{name}={value}"]
    return out


def _engine_options(options: dict, ini: dict):
    from pytest_axp.session import engine_options_from

    try:
        return engine_options_from(options, ini, Path.cwd())
    except ValueError as e:
        raise CliError(str(e)) from None


def _print_pytest_summary(output: str, code: int, runs) -> None:
    """pytest's own words, on stderr, only when the run folders cannot tell the story: a
    usage or internal error, an error during collection, a variant with no summary."""
    import pytest

    if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR,
                pytest.ExitCode.INTERRUPTED):
        print(output, file=sys.stderr)
        return
    unfinished = any(not run.results(vid).run_summary.is_file()
                     for run in runs for vid in run.selected_variants())
    if not unfinished:
        return
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "short test summary info" in line), None)
    if start is not None:
        for line in lines[start + 1:]:
            if line.startswith("=") or not line.strip():
                break
            print(f"pytest: {line}", file=sys.stderr)


def _configure_pool(args: argparse.Namespace) -> None:
    """--docker-host and --gateway-host for this process and the pytest workers it starts;
    --jobs auto makes the pool's sandboxes wait for room."""
    from pytest_axp.sandbox.pool import ADMIT_ENV, HOSTS_ENV, configure, hosts_from_env

    try:
        configure(args.docker_hosts, args.gateway_host)
    except ValueError as e:
        raise CliError(f"--docker-host: {e}") from None
    try:
        hosts_from_env()
    except ValueError as e:
        raise CliError(f"{HOSTS_ENV}: {e}") from None
    if args.jobs == "auto":
        os.environ[ADMIT_ENV] = "wait"


def _distribute(tags: list[str], log) -> None:
    """The images on every engine of the pool (none to copy without one)."""
    from pytest_axp.sandbox import builtin_backend
    from pytest_axp.sandbox.pool import PoolBackend

    backend = builtin_backend()
    if isinstance(backend, PoolBackend):
        backend.distribute(tags, log)


def _jobs(args: argparse.Namespace, limits) -> int:
    """--jobs as a number: auto is how many sandboxes of these limits the engines hold."""
    if args.jobs != "auto":
        return int(args.jobs)
    from pytest_axp.sandbox import builtin_backend
    from pytest_axp.sandbox.base import SandboxError
    from pytest_axp.sandbox.pool import PoolBackend, Room, pool_slots

    backend = builtin_backend()
    try:
        if isinstance(backend, PoolBackend):
            return backend.slots(limits)
        from pytest_axp.sandbox.docker import client

        info = client().info()
        return pool_slots([Room(float(info.get("NCPU") or 1), int(info.get("MemTotal") or 0))],
                          limits)
    except (SandboxError, ValueError) as e:
        raise CliError(f"--jobs auto: {e}", EXIT_ENGINE) from None


def _reap_orphans() -> None:
    """Sandboxes left by an axp or pytest process that died uncleanly go first
    (AXP_NO_REAP=1 leaves them to `axp sandbox clean`)."""
    if os.environ.get("AXP_NO_REAP"):
        return
    from pytest_axp.sandbox import reap_orphans

    reap_orphans()


def _check_model_script(path: Path) -> None:
    from pytest_axp.gateway import ModelScript, ScriptError

    try:
        ModelScript.load(path)
    except ScriptError as e:
        raise CliError(str(e)) from None


def _report_runs(runs_dir: Path, run_ids: list[str], interrupted: bool,
                 wall_seconds: float | None = None, order: list[str] | None = None) -> int:
    """The last thing a run prints: one row per variant (and repeat), a total line and
    the run folder(s). Interrupted: one line, the folders kept."""
    from pytest_axp.record.jsonio import read_json
    from pytest_axp.record.layout import RunPaths
    from pytest_axp.render.table import terminal_width

    from . import final

    folders = [RunPaths(runs_dir / rid) for rid in run_ids]
    if interrupted:
        _report_interrupt([r.root for r in folders])
        return EXIT_INTERRUPTED
    def in_file_order(vids: list[str]) -> list[str]:
        rank = {v: i for i, v in enumerate(order or [])}
        return sorted(vids, key=lambda v: (rank.get(v, len(rank)), v))

    rows = [final.Row(vid, n, read_json(run.results(vid).run_summary))
            for n, run in enumerate(folders, 1)
            for vid in in_file_order(run.selected_variants())]
    if wall_seconds is None:
        ends = [r.summary.get("ended_at_epoch", 0) for r in rows if r.summary]
        starts = [r.summary.get("started_at_epoch", 0) for r in rows if r.summary]
        wall_seconds = max(ends) - min(starts) if ends else 0.0
    print()
    print(final.table(rows, repeats=len(folders), width=terminal_width()))
    print()
    print(final.total_line(rows, wall_seconds))
    for n, run in enumerate(folders, 1):
        state = "" if run.index.exists() else "  (partial: no index.json)"
        label = "run folder" if len(folders) == 1 else f"run folder (repeat {n})"
        print(f"{label}: {run.root}{state}")
    _print_viewer_urls(runs_dir, run_ids)
    return EXIT_OK if rows and all(r.status == "pass" for r in rows) else EXIT_NOT_PASSED


def _print_viewer_urls(runs_dir: Path, run_ids: list[str]) -> None:
    """Where `axp view`, if one serves these runs, shows them."""
    from pytest_axp.view.server import viewer_url

    url = viewer_url(runs_dir)
    if url:
        for rid in run_ids[:1]:  # the page of one run shows every repeat of the invocation
            print(f"view: {url}/runs/{rid}", flush=True)


def _report_interrupt(folders: list[Path]) -> None:
    global _interrupt_reported
    if _interrupt_reported:
        return
    _interrupt_reported = True
    where = ", ".join(str(f) for f in folders)
    print(f"axp: interrupted; partial run kept in {where}", file=sys.stderr)


def _remove_run_containers(run_ids: list[str]) -> None:
    """Best effort: the sandboxes of these runs, and any still being created here."""
    from pytest_axp.sandbox import remove_run_sandboxes

    remove_run_sandboxes(run_ids)


def _file_bindings(args: argparse.Namespace, variants):
    from pytest_axp.plan import PlanError, bind_files

    try:
        return bind_files(args.files, Path.cwd(), variants)
    except PlanError as e:
        raise CliError(str(e)) from None


def _dry_run(args: argparse.Namespace, variants, bindings) -> int:
    """The plan, written nowhere: variants, staging and secrets. Exit 1 if anything is
    missing, so CI can check an experiment's inputs before paying for a run."""
    from pytest_axp.plan import dry_run_plan
    from pytest_axp.secrets import MIN_SECRET_LENGTH

    plan = dry_run_plan(variants, bindings=bindings, repeat=args.repeat, image=args.image,
                        cwd=Path.cwd(), env_files=args.env_file, env_args=args.env,
                        scripted=bool(args.model_script))
    refuse(plan.problems)
    print(f"experiment {plan.experiment_id}: {len(plan.variants)} variant(s) x "
          f"{plan.repeat} repeat(s) = {plan.sandbox_runs} sandbox run(s)")
    print(f"image: {plan.image or 'bundled base image (built on first use)'}")
    print()
    print(render(("variant", "tag", "agent", "model", "prompt", "environment", "product"),
                 [(v.id, v.tag, v.agent.name, v.matrix.get("model", ""), v.prompt.id,
                   v.matrix.get("environment", ""), v.matrix.get("product", ""))
                  for v in plan.variants]))
    if plan.staging:
        print("\nstaging:")
        print(render(("name", "source", "dest", "files", "bytes", "state"),
                     [(r.name, r.source, r.dest, "" if r.files is None else r.files,
                       "" if r.size_bytes is None else r.size_bytes, r.state)
                      for r in plan.staging]))
    if plan.secrets:
        print("\nsecrets:")
        print(render(("name", "state"), [
            (r.name, f"too short (under {MIN_SECRET_LENGTH} characters)"
             if r.state == "too short" else r.state) for r in plan.secrets]))
    if plan.models:
        print("\nmodels:")
        print(render(("agent", "api", "answers"), [
            (r.agent, r.api, {"scripted": f"scripted ({args.model_script})", "live": "model API",
                              "none": f"none: {r.reason}"}[r.state]) for r in plan.models]))
    print("\ndry run: nothing was written" + (f"; missing: {', '.join(plan.missing)}"
                                                if plan.missing else ""))
    return EXIT_NOT_PASSED if plan.missing else EXIT_OK
