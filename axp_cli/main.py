"""`axp`: AXP's local commands, run on pytest-axp.

Exit codes: 0 every variant passed (or the command succeeded), 1 a variant did not pass,
2 invalid input or usage, 3 the sandbox engine is unusable, 4 the run is being written by
another process, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import time
from pathlib import Path

from .query_cmds import no_runs
from .query_cmds import register as register_query_cmds
from .table import render

EXIT_OK, EXIT_NOT_PASSED, EXIT_INVALID, EXIT_ENGINE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
RUNS_DIR_HELP = "folder of run folders (default: $AXP_RUNS_DIR or ./.axp/runs)"


# The run folders of the run under way and whether the interrupt line was printed: a second
# Ctrl-C may land anywhere, and the line must be printed once whatever it cut short.
_active_runs: list[Path] = []
_interrupt_reported = False

EXIT_BUSY = 4  # pytest's own exit code for a usage error, which is what pytest says then


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


def _check_sources(variants, bindings=(), slots_bound_later: bool = False) -> None:
    """Host-path sources must exist and slots be bound: an input error, said up front."""
    from pytest_axp.staging import plan_entries

    bound = {name: path for kind, name, path in bindings if kind == "slot"}
    for v in variants:
        for p in plan_entries(v.files, Path(v.source_file).parent, bindings):
            where = p.entry.where or v.source_file
            if p.state == "SYMLINK":
                raise CliError(f"{where}: files: source {p.entry.source or p.source}: "
                               f"{p.problem}")
            if p.state == "MISSING" and p.entry.name in bound:
                raise CliError(f"--file {p.entry.name}=...: {p.source} does not exist")
            if p.state == "MISSING" and not p.entry.where:  # an ad-hoc --file SRC::DEST
                raise CliError(f"--file {p.source}::{p.entry.dest}: {p.source} does not exist")
            if p.state == "MISSING":
                raise CliError(f"{where}: files: source {p.entry.source} does not exist "
                               f"(looked for {p.source})")
            if p.state == "UNBOUND" and not slots_bound_later:
                raise CliError(f"{where}: files: slot {p.entry.name!r} has no source: bind it "
                               f"with --file {p.entry.name}=PATH")


def _check_agents(variants) -> None:
    """An agent name this installation has no adapter for: invalid input, said up front."""
    from pytest_axp.agents import AgentNotAvailable, get_agent

    for v in variants:
        try:
            get_agent(v.agent.name)
        except AgentNotAvailable as e:
            raise CliError(f"{v.source_file}: variant {v.id}: {e}") from None


def _secret_names(variants) -> list[str]:
    return list(dict.fromkeys(n for v in variants for n in v.secrets))


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
    if args.jobs < 1:
        raise CliError("--jobs must be at least 1")
    for flag, value in (("--test-timeout", args.test_timeout),
                        ("--setup-timeout", args.setup_timeout)):
        if value is not None and not 0 < value < float("inf"):
            raise CliError(f"{flag} {value:g}: give a positive number of seconds")
    if args.retries < 0:
        raise CliError("--retries must be 0 or more")
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
    _check_sources(variants, bindings)
    _check_secret_lengths(args, variants)
    from pytest_axp.session import new_ulids

    return _execute(args, Path(args.file), variants, new_ulids(args.repeat), args.repeat)


# pytest's default norecursedirs, less the dot rule checked apart.
_SKIPPED_DIRS = {"build", "dist", "node_modules", "venv", "CVS", "_darcs", "{arch}"}


def experiment_files(folder: Path) -> list[Path]:
    """The experiment files pytest would collect under `folder`, in path order."""
    from pytest_axp.experiment import sniff_experiment

    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if any(p.startswith(".") or p in _SKIPPED_DIRS or p.endswith(".egg")
               for p in rel[:-1]) or rel[-1].startswith("."):
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file() and sniff_experiment(path):
            found.append(path)
    return found


def _run_folder(args: argparse.Namespace) -> int:
    """Every experiment file in a folder, each as its own run. All are checked before the
    first one starts."""
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
            _check_sources(variants, bindings)
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
        for ulid, name in zip(ulids, names):
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
    as `error`; earlier attempts move to results/<id>/attempts/<n>/. An index.json that does
    not parse or disagrees with the summaries is rebuilt from them."""
    from pytest_axp.record.layout import RunPaths
    from pytest_axp.runs import split_run_id

    run = RunPaths(_runs_dir(args) / args.resume)
    experiment_id, ulid = split_run_id(args.resume)
    selected = run.selected_variants()
    if not selected or ulid is None:
        raise CliError(f"--resume {args.resume}: no such run under {_runs_dir(args)}")
    with _holding(_runs_dir(args), [ulid], [run.run_id]):
        return _resume_held(args, run, selected, ulid)


def _resume_held(args: argparse.Namespace, run, selected: list[str], ulid: str) -> int:
    from pytest_axp.record.attempts import archive_attempt
    from pytest_axp.record.index import index_matches, rebuild_index
    from pytest_axp.record.jsonio import read_json

    if run.index.exists() and not index_matches(run):
        # Derived from the summaries: rebuilt below, or when the resumed variants end.
        print(f"run {run.run_id}: index.json does not match the results; rebuilding it")
    source = args.file or _recorded_source(run, selected[0])
    variants = {v.id: v for v in _load(source)}
    gone = [vid for vid in selected if vid not in variants]
    if gone:
        raise CliError(f"--resume: {source} no longer has variant(s) {', '.join(gone)}")
    todo = [vid for vid in selected
            if (read_json(run.results(vid).run_summary) or {}).get("status") in (None, "error")]
    if not todo:
        print(f"run {args.resume}: every variant has a result; nothing to resume")
        if not index_matches(run):
            rebuild_index(run)
        return _report_runs(run.root.parent, [args.resume], interrupted=False)
    _check_secret_lengths(args, [variants[v] for v in todo])  # before anything moves
    for vid in todo:
        archive_attempt(run, vid)
    run.index.unlink(missing_ok=True)  # rebuilt from the summaries when the run completes
    args.variant = todo
    _file_bindings(args, [variants[v] for v in todo])
    return _execute(args, Path(source), [variants[v] for v in todo], [ulid], 1)


def _recorded_source(run, variant_id: str) -> str:
    import yaml

    try:
        data = yaml.safe_load(run.resolved_variant(variant_id).read_text())
        return data["source_file"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise CliError(f"--resume: cannot tell which file {run.run_id} ran; give it: "
                       f"axp local run FILE --resume {run.run_id}") from None


def _execute(args: argparse.Namespace, file: Path, variants, ulids: list[str],
             repeat: int) -> int:
    """Run the variants through pytest (xdist for --jobs) and report; one run per ULID."""
    from pytest_axp.sandbox.base import SandboxError
    from pytest_axp.sandbox.image import ensure_claude_image, ensure_image

    runs_dir = _runs_dir(args)
    _reap_orphans()
    # Build what the variants need now, with visible progress, rather than inside workers.
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        image = ensure_image(args.image, runs_dir.parent, log=log)
        if not args.image and any(v.agent.name == "claude" for v in variants):
            ensure_claude_image(image, runs_dir.parent, log=log)
    except SandboxError as e:
        raise CliError(str(e), EXIT_ENGINE) from None
    experiment_id = variants[0].experiment_id
    run_ids = [f"{experiment_id}-{u}" for u in ulids]
    with _holding(runs_dir, ulids, run_ids):
        return _execute_held(args, file, variants, ulids, repeat, image, run_ids)


def _execute_held(args: argparse.Namespace, file: Path, variants, ulids: list[str],
                  repeat: int, image: str, run_ids: list[str]) -> int:
    from pytest_axp.sandbox.image import ensure_claude_image

    runs_dir = _runs_dir(args)
    live = sys.stdout.isatty()
    if not live:  # the live view's title says it on a terminal
        for rid in run_ids:
            print(f"run {rid}", flush=True)
    pytest_args = [
        str(file.resolve()), "-q", "--no-header", "-p", "no:cacheprovider",
        "--rootdir", str(file.resolve().parent),
        "--axp-runs-dir", str(runs_dir), "--axp-repeat", str(repeat),
        "--axp-run-ulids", ",".join(ulids), "--axp-created-ahead",
    ]
    if args.image:
        pytest_args += ["--axp-image", args.image]
    for option, value in (("--axp-test-timeout", args.test_timeout),
                          ("--axp-setup-timeout", args.setup_timeout)):
        if value is not None:
            pytest_args += [option, repr(value)]
    if args.retries:
        pytest_args += ["--axp-retries", str(args.retries)]
    # Only the plugins a run needs: every other installed pytest plugin would be imported
    # again by each xdist worker (seconds on a small machine). Conftest files still load.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    pytest_args += ["-p", "pytest_axp.plugin"]
    for v in args.variant:
        pytest_args += ["--axp-variant", v]
    for item in args.env:
        pytest_args += ["--axp-env", item]
    for item in args.env_file:
        pytest_args += ["--axp-env-file", str(Path(item).resolve())]
    for item in args.files:
        pytest_args += ["--axp-file", item]
    for ini, value in (("axp_memory", args.memory), ("axp_cpus", args.cpus),
                       ("axp_pids_limit", args.pids_limit),
                       ("axp_agent_network", args.agent_network)):
        if value is not None:
            pytest_args += ["-o", f"{ini}={value}"]
    if args.model_script:
        script = Path(args.model_script)
        if not script.is_file():
            raise CliError(f"--model-script {args.model_script}: no such file")
        _check_model_script(script)
        pytest_args += ["--axp-model-script", str(script.resolve())]
    if args.jobs > 1:
        pytest_args += ["-p", "xdist.plugin", "-n",
                        str(min(args.jobs, len(variants) * repeat))]
    import pytest

    from pytest_axp.prewarm import Prewarm
    from pytest_axp.record.layout import RunPaths

    from .progress import ProgressWatcher

    def image_for(agent: str) -> str:
        if args.image or agent != "claude":
            return image
        return ensure_claude_image(image, runs_dir.parent)

    runs = [RunPaths(runs_dir / rid) for rid in run_ids]
    prewarm = Prewarm()
    # A duplicate of stdout's descriptor: pytest's fd capture during items cannot take it.
    progress_out = open(os.dup(sys.stdout.fileno()), "w", buffering=1,  # noqa: SIM115
                        encoding="utf-8", errors="replace")
    watcher = ProgressWatcher(runs, [v.id for v in variants], out=progress_out, live=live)
    pytest_output = io.StringIO()
    started = time.monotonic()
    _signalled.clear()
    try:
        prewarm.start(variants, runs, min(args.jobs, len(variants) * repeat), image_for,
                      _engine_options(args))
        watcher.start()
        _active_runs[:] = [r.root for r in runs]
        # axp shows its own progress and final table; pytest's report is kept for the
        # cases where it says more than the run folders do.
        with contextlib.redirect_stdout(pytest_output):
            try:
                code = pytest.main(pytest_args + ["-rfE", "--tb=no", "-p", "no:warnings"])
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


def _check_secret_lengths(args: argparse.Namespace, variants) -> None:
    """A value too short to redact safely is refused before any container (a missing one is
    the variant's error, reported in its summary)."""
    from pytest_axp.secrets import EnvError, resolve_values, too_short, too_short_message

    names = list(dict.fromkeys(n for v in variants for n in v.secrets))
    try:
        values = resolve_values(names, cwd=Path.cwd(), env_files=args.env_file,
                                env_args=args.env)
    except EnvError as e:
        raise CliError(str(e)) from None
    short = too_short(values)
    if short:
        raise CliError(too_short_message(short[0], values[short[0]]))


def _engine_options(args: argparse.Namespace):
    """What the run's items will use, as far as the command line says (ini settings are
    the plugin's to read)."""
    from pytest_axp.runner import EngineOptions
    from pytest_axp.sandbox.base import ResourceLimits
    from pytest_axp.secrets import EnvError, layered_environment
    from pytest_axp.session import parse_file_bindings

    defaults = ResourceLimits()
    try:
        limits = ResourceLimits(
            memory=args.memory or defaults.memory,
            cpus=float(args.cpus) if args.cpus else defaults.cpus,
            pids=int(args.pids_limit) if args.pids_limit else defaults.pids)
        env = layered_environment(cwd=Path.cwd(), env_files=args.env_file, env_args=args.env)
        bindings = parse_file_bindings(args.files, Path.cwd())
    except (ValueError, EnvError) as e:
        raise CliError(str(e)) from None
    return EngineOptions(image=args.image, limits=limits, host_env=env,
                         file_bindings=bindings, agent_network=args.agent_network or "open")


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

    from . import final
    from .table import terminal_width

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
    return EXIT_OK if rows and all(r.status == "pass" for r in rows) else EXIT_NOT_PASSED


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
    from pytest_axp.session import parse_file_bindings
    from pytest_axp.staging import unknown_bindings

    try:
        bindings = parse_file_bindings(args.files, Path.cwd())
    except ValueError as e:
        raise CliError(str(e)) from None
    files = [f for v in variants for f in v.files]
    unknown = unknown_bindings(files, bindings)
    if unknown:
        named = sorted({f.name for f in files if f.name})
        raise CliError(f"--file {unknown[0]}=...: no file entry is named {unknown[0]!r} "
                       f"(named entries: {', '.join(named) or 'none'})")
    return bindings


def _dry_run(args: argparse.Namespace, variants, bindings) -> int:
    """The plan, written nowhere: variants, staging and secrets. Exit 1 if anything is
    missing, so CI can check an experiment's inputs before paying for a run."""
    from pytest_axp.secrets import MIN_SECRET_LENGTH, EnvError, resolve_values, too_short
    from pytest_axp.staging import StagingError, build_entry, plan_entries

    print(f"experiment {variants[0].experiment_id}: {len(variants)} variant(s) x "
          f"{args.repeat} repeat(s) = {len(variants) * args.repeat} sandbox run(s)")
    print(f"image: {args.image or 'bundled base image (built on first use)'}")
    print()
    print(render(("variant", "tag", "agent", "model", "prompt", "environment", "product"),
                 [(v.id, v.tag, v.agent.name, v.matrix.get("model", ""), v.prompt.id,
                   v.matrix.get("environment", ""), v.matrix.get("product", ""))
                  for v in variants]))
    rows, seen, missing = [], set(), []
    for v in variants:
        for p in plan_entries(v.files, Path(v.source_file).parent, bindings):
            key = (p.entry.name, p.source, p.entry.dest)
            if key in seen:
                continue
            seen.add(key)
            files = size = ""
            if p.state == "SYMLINK":
                raise CliError(f"{p.entry.where or v.source_file}: files: source "
                               f"{p.entry.source or p.source}: {p.problem}")
            if p.state == "OK":
                try:  # counted and hashed as it streams: nothing is held or written
                    staged = build_entry(Path(p.source), p.entry.dest)
                    files, size = staged.file_count, staged.size_bytes
                except (StagingError, OSError):
                    pass
            if p.state in ("MISSING", "UNBOUND"):
                missing.append(f"file {p.entry.name or p.source}")
            rows.append((p.entry.name or "", p.source or "", p.entry.dest, files, size, p.state))
    if rows:
        print("\nstaging:")
        print(render(("name", "source", "dest", "files", "bytes", "state"), rows))
    names = _secret_names(variants)
    if names:
        try:
            values = resolve_values(names, cwd=Path.cwd(), env_files=args.env_file,
                                    env_args=args.env)
        except EnvError as e:
            raise CliError(str(e)) from None
        short = set(too_short(values))
        print("\nsecrets:")
        print(render(("name", "state"), [
            (n, f"too short (under {MIN_SECRET_LENGTH} characters)" if n in short
             else "set" if values.get(n) else "missing") for n in names]))
        missing += [f"secret {n}" for n in names if not values.get(n)]
        missing += [f"secret {n} (too short)" for n in names if n in short and values.get(n)]
    print("\ndry run: nothing was written" + (f"; missing: {', '.join(missing)}"
                                                if missing else ""))
    return EXIT_NOT_PASSED if missing else EXIT_OK


# -- axp list -----------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    if args.remote:
        raise CliError("no AXP platform is configured: remote runs cannot be listed "
                       "(use --local)", EXIT_INVALID)
    from pytest_axp.runs import list_runs

    rows = list_runs(_runs_dir(args), status=args.status)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
    if not rows:
        raise no_runs(_runs_dir(args), f"{args.status} runs" if args.status else "runs")
    if args.json:
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
    try:
        _check_sources(variants, slots_bound_later=True)  # slots are bound at run time
        _check_agents(variants)
    except CliError as e:
        print(e, file=sys.stderr)
        return EXIT_INVALID
    from pytest_axp.runner import has_tests

    untested = [v.id for v in variants if not has_tests(v)]
    if untested:
        print(f"{args.file}: warning: no tests: variant(s) {', '.join(untested)} declare no "
              "application or introspection test; their status will reflect the agent's "
              "exit only", file=sys.stderr)
    print(f"{args.file}: valid ({len(variants)} variant(s))")
    # Secret values come at run time, so a missing one is not a fault of the file.
    from pytest_axp.secrets import EnvError, resolve_values

    names = _secret_names(variants)
    try:
        values = resolve_values(names, cwd=Path.cwd()) if names else {}
    except EnvError as e:
        raise CliError(str(e)) from None
    unset = [n for n in names if not values.get(n)]
    if unset:
        print(f"note: no value here for secret(s) {', '.join(unset)}: a run needs them "
              "(environment, ./.env, --env-file or --env)")
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


def cmd_sandbox_clean(args: argparse.Namespace) -> int:
    from pytest_axp.sandbox import builtin_backend
    from pytest_axp.sandbox.base import (
        LABEL_OWNER_PID, LABEL_RUN_ID, LABEL_VARIANT_ID, SandboxError,
    )

    backend = builtin_backend()
    try:
        orphans = backend.orphans()
    except SandboxError as e:
        raise CliError(str(e), EXIT_ENGINE) from None
    if not orphans:
        print("no orphaned sandboxes")
        return EXIT_OK
    def row(c):
        return (c.id[:12], c.name, c.labels.get(LABEL_RUN_ID, ""),
                c.labels.get(LABEL_VARIANT_ID, ""), c.labels.get(LABEL_OWNER_PID, ""), c.state)

    print(render(("container", "name", "run", "variant", "owner pid", "state"),
                 [row(c) for c in orphans]))
    if not args.yes:
        print(f"\n{len(orphans)} sandbox(es) whose owner process is gone; "
              "remove them with: axp sandbox clean --yes")
        return EXIT_OK
    removed = 0
    for c in orphans:
        try:
            backend.remove_sandbox(c.id)
            removed += 1
        except SandboxError as e:
            print(f"axp: {e}", file=sys.stderr)
    print(f"\nremoved {removed} sandbox(es)")
    return EXIT_OK if removed == len(orphans) else EXIT_ENGINE


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

def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-axp")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="axp", description="Run AXP agent experiments locally.")
    p.add_argument("--version", action="version", version=f"axp {_version()}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="local runs").add_subparsers(dest="local_cmd",
                                                                       required=True)
    run = local.add_parser("run", help="run an experiment in local Docker sandboxes")
    run.add_argument("file", nargs="?", metavar="FILE|FOLDER",
                     help="experiment file, or a folder: each experiment file in it is run")
    run.add_argument("--variant", action="append", default=[], metavar="ID",
                     help="run only this variant (repeatable; ids: axp experiment resolve)")
    run.add_argument("--resume", default=None, metavar="RUN_ID",
                     help="run again the variants of RUN_ID with no result or an error")
    run.add_argument("--repeat", type=int, default=1, metavar="N",
                     help="run every variant N times, one run folder per repeat (default 1)")
    run.add_argument("--retries", type=int, default=0, metavar="N",
                     help="run a variant again, up to N times, after an infrastructure error")
    run.add_argument("--jobs", "-j", type=int, default=1, metavar="J",
                     help="sandboxes run at the same time (default 1)")
    run.add_argument("--dry-run", action="store_true",
                     help="show variants, staging and secrets, run nothing; exit 1 if "
                          "something is missing")
    run.add_argument("--image", default=None,
                     help="sandbox image to use instead of the bundled one")
    run.add_argument("--runs-dir", default=None, metavar="DIR", help=RUNS_DIR_HELP)
    run.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]",
                     help="a value for a declared secret (wins over everything else)")
    run.add_argument("--env-file", action="append", default=[], metavar="PATH",
                     help="dotenv file of values, read after ./.env, in order")
    run.add_argument("--file", action="append", default=[], dest="files",
                     metavar="NAME=PATH|SRC::DEST",
                     help="bind a file slot or replace a named source; or stage SRC at DEST")
    run.add_argument("--agent-network", choices=("open", "gateway"), default=None,
                     help="gateway: after setup the agent reaches the model gateway only")
    run.add_argument("--memory", default=None, help="memory limit per sandbox (4g)")
    run.add_argument("--cpus", default=None, help="CPU limit per sandbox (2)")
    run.add_argument("--pids-limit", default=None, help="process limit per sandbox (2048)")
    run.add_argument("--model-script", default=None, metavar="FILE",
                     help="answer the claude agent from a scripted model (offline)")
    run.add_argument("--test-timeout", type=float, default=None, metavar="S",
                     help="seconds a test may run before it fails (900)")
    run.add_argument("--setup-timeout", type=float, default=None, metavar="S",
                     help="seconds each setup step may run before the variant errs (1800)")
    run.set_defaults(func=cmd_local_run)

    def add_list(parser: argparse.ArgumentParser) -> None:
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--local", action="store_true", help="local runs (the default)")
        where.add_argument("--remote", action="store_true",
                           help="runs on an AXP platform (none is configured)")
        parser.add_argument("--status", choices=("pass", "fail", "timeout", "error", "partial"),
                            help="only runs with this status")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument("--runs-dir", default=None, metavar="DIR", help=RUNS_DIR_HELP)
        parser.set_defaults(func=cmd_list)

    add_list(sub.add_parser("list", help="list runs, newest first"))
    runs = sub.add_parser("runs", help="runs").add_subparsers(dest="runs_cmd", required=True)
    add_list(runs.add_parser("list", help="alias of `axp list`"))

    exp = sub.add_parser("experiment", help="experiment files").add_subparsers(
        dest="exp_cmd", required=True)
    v = exp.add_parser("validate", help="check an experiment file")
    v.add_argument("file", help="experiment file (YAML)")
    v.set_defaults(func=cmd_validate)
    r = exp.add_parser("resolve", help="list the variants of an experiment file")
    r.add_argument("file", help="experiment file (YAML)")
    r.add_argument("--json", action="store_true", help="print the resolved variants as JSON")
    r.set_defaults(func=cmd_resolve)
    s = exp.add_parser("schema", help="print the JSON schema of experiment files")
    s.set_defaults(func=cmd_schema)

    sandbox = sub.add_parser("sandbox", help="sandbox containers").add_subparsers(
        dest="sandbox_cmd", required=True)
    clean = sandbox.add_parser("clean", help="remove sandboxes left by runs that died")
    clean.add_argument("--yes", action="store_true", help="remove them (default: list)")
    clean.set_defaults(func=cmd_sandbox_clean)

    img = sub.add_parser("image", help="sandbox images").add_subparsers(dest="img_cmd",
                                                                         required=True)
    b = img.add_parser("build", help="build the bundled base image")
    b.add_argument("--base-image", default=None,
                   help="FROM image (default: debian:bookworm or $AXP_BASE_IMAGE)")
    b.add_argument("--tag", default=None, help="image tag (default: the bundled image's)")
    b.set_defaults(func=cmd_image_build)
    register_query_cmds(sub, local)
    return p


# Set when SIGINT/SIGTERM arrived: pytest also says "interrupted" after a collection error.
_signalled: set[int] = set()


def _interrupt(signum, frame):
    _signalled.add(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C and SIGTERM both end a run cleanly (containers removed, artifacts kept), even
    # when the shell started us with SIGINT ignored, as it does for background jobs.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        print(f"axp: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        # Further interrupts would cut this report short; a third Ctrl-C after it still
        # ends the process at once.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if _active_runs:
            _report_interrupt(_active_runs)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _remove_run_containers([f.name for f in _active_runs])
        elif not _interrupt_reported:
            print("axp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
