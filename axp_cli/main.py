"""`axp`: AXP's local commands, run on pytest-axp.

Exit codes: 0 every variant passed (or the command succeeded), 1 a variant did not pass,
2 invalid input or usage, 3 the sandbox engine is unusable, 4 the run is being written by
another process, 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import run as run_cmd
from .common import RUNS_DIR_HELP
from .errors import (  # noqa: F401 (the exit codes and CliError are part of main's face)
    EXIT_BUSY,
    EXIT_ENGINE,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_NOT_PASSED,
    EXIT_OK,
    CliError,
)
from .experiment_cmds import cmd_resolve, cmd_schema, cmd_validate
from .image_cmds import cmd_image_build
from .listing import cmd_list, cmd_runs_list
from .query_cmds import register as register_query_cmds
from .remote import register as register_remote
from .sandbox_cmds import cmd_sandbox_clean
from .server_cmds import register as register_server
from .view_cmd import register as register_view_cmd

# -- parser -------------------------------------------------------------------------------

def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-axp")
    except PackageNotFoundError:
        return "unknown"


def _jobs(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number or auto") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="axp", description="Run AXP agent experiments locally, "
                                "or on a team's axp server.")
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
    run.add_argument("--jobs", "-j", type=_jobs, default=1, metavar="J",
                     help="sandboxes run at the same time (default 1); auto: as many as "
                          "the engines' CPUs and memory hold at the sandboxes' limits")
    run.add_argument("--docker-host", action="append", default=[], metavar="URL",
                     dest="docker_hosts",
                     help="a Docker engine to run sandboxes on (repeatable: a pool; also "
                          "AXP_DOCKER_HOSTS); unix://, tcp:// or ssh://user@host")
    run.add_argument("--gateway-host", default=None, metavar="ADDRESS",
                     help="the address of this machine that tcp:// engines' sandboxes "
                          "reach the model gateway at")
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
    run.add_argument("--managed-model-access", action="store_true",
                     help="signed in: model calls go through the axp server, with its key")
    # The server's workers name the run they queued (one repeat).
    run.add_argument("--run-ulid", default=None, help=argparse.SUPPRESS)
    run.set_defaults(func=run_cmd.cmd_local_run)

    def add_list(parser: argparse.ArgumentParser) -> None:
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--local", action="store_true", help="local runs (the default)")
        where.add_argument("--remote", action="store_true",
                           help="runs on the axp server you are signed in to")
        parser.add_argument("--status", choices=("pass", "fail", "timeout", "error", "partial"),
                            help="only runs with this status")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument("--runs-dir", default=None, metavar="DIR", help=RUNS_DIR_HELP)
        parser.set_defaults(func=cmd_list)

    add_list(sub.add_parser("list", help="list runs, newest first"))
    runs = sub.add_parser("runs", help="runs").add_subparsers(dest="runs_cmd", required=True)
    add_list(runs.add_parser("list", help="runs on the server when signed in (else local)"))
    runs.choices["list"].set_defaults(func=cmd_runs_list)
    register_remote(sub, runs)
    register_server(sub)

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
    clean.add_argument("--docker-host", action="append", default=[], metavar="URL",
                       dest="docker_hosts", help="an engine of the pool (repeatable; also "
                                                 "AXP_DOCKER_HOSTS)")
    clean.set_defaults(func=cmd_sandbox_clean)

    img = sub.add_parser("image", help="sandbox images").add_subparsers(dest="img_cmd",
                                                                         required=True)
    b = img.add_parser("build", help="build the bundled base image")
    b.add_argument("--base-image", default=None,
                   help="FROM image (default: debian:bookworm or $AXP_BASE_IMAGE)")
    b.add_argument("--tag", default=None, help="image tag (default: the bundled image's)")
    b.set_defaults(func=cmd_image_build)
    register_query_cmds(sub, local)
    register_view_cmd(sub)
    return p


def _interrupt(signum, frame):
    run_cmd._signalled.add(signum)
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
        # More interrupts would cut the report or the clean-up short and leave sandboxes
        # behind: from here on they are ignored, and the clean-up is bounded in time instead.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if run_cmd._active_runs:
            run_cmd._report_interrupt(run_cmd._active_runs)
            _sweep_within([f.name for f in run_cmd._active_runs], _SWEEP_SECONDS)
        elif not run_cmd._interrupt_reported:
            print("axp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


_SWEEP_SECONDS = 60.0


def _sweep_within(run_ids: list[str], seconds: float) -> None:
    """Remove the runs' sandboxes, waiting at most `seconds` for an engine in trouble."""
    sweeper = threading.Thread(target=run_cmd._remove_run_containers, args=(run_ids,),
                               name="axp-sweep", daemon=True)
    sweeper.start()
    sweeper.join(seconds)
    if sweeper.is_alive():
        print("axp: the sandbox engine did not answer in time; `axp sandbox clean --yes` "
              "removes what is left", file=sys.stderr)
