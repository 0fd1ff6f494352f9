"""The pytest plugin: options, collection of experiment YAML, run folders, index.json.

Importing this module must stay cheap: pytest loads it in every session of every user who
has the package installed. Docker, pydantic and the engine load only when an experiment
is collected or run.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from .session import (
    INI_DEFAULTS,
    SESSION_KEY,
    AxpSession,
    apply_options,
    new_ulids,
    runs_dir_from,
)

if TYPE_CHECKING:
    from .sandbox.base import SandboxBackend

def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs
    from .agents import builtin

    pluginmanager.add_hookspecs(hookspecs)
    # The built-in agents answer the same hook as a third-party plugin's, last.
    if pluginmanager.get_plugin("pytest_axp.agents.builtin") is None:
        pluginmanager.register(builtin, "pytest_axp.agents.builtin")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("axp", "AXP agent experiments")
    group.addoption("--axp-repeat", type=int, default=1, metavar="N",
                    help="run every selected variant N times (one run folder per repeat)")
    group.addoption("--axp-variant", action="append", default=[], metavar="ID",
                    help="run only this variant id (repeatable)")
    group.addoption("--axp-runs-dir", default=None, metavar="DIR",
                    help="where run folders are written (default: ./.axp/runs)")
    group.addoption("--axp-image", default=None, metavar="IMAGE",
                    help="sandbox image to use instead of the bundled base image")
    group.addoption("--axp-max-patch-bytes", type=int, default=None, metavar="N",
                    help="fs-diff: files larger than this are noted, not diffed (256 KiB)")
    group.addoption("--axp-max-workspace-bytes", type=int, default=None, metavar="N",
                    help="copy at most this much of the final workspace (512 MiB)")
    group.addoption("--axp-env", action="append", default=[], metavar="NAME[=VALUE]",
                    help="a value for a declared secret (highest precedence; repeatable)")
    group.addoption("--axp-env-file", action="append", default=[], metavar="PATH",
                    help="dotenv file of secret values, after ./.env (repeatable)")
    group.addoption("--axp-file", action="append", default=[], metavar="NAME=PATH|SRC::DEST",
                    help="bind a file slot, replace a named entry's source, or stage more")
    group.addoption("--axp-model-script", default=None, metavar="FILE",
                    help="answer the claude agent from this scripted model (offline runs)")
    group.addoption("--axp-test-timeout", default=None, metavar="SECONDS",
                    help="stop a test after this long; it fails (ini axp_test_timeout, 900)")
    group.addoption("--axp-setup-timeout", default=None, metavar="SECONDS",
                    help="stop a setup step or check after this long; the variant is an "
                         "error (ini axp_setup_timeout, 1800)")
    group.addoption("--axp-docker-host", action="append", default=[], metavar="URL",
                    help="run sandboxes on this Docker engine (repeatable: a pool placed by "
                         "free capacity; also AXP_DOCKER_HOSTS, comma separated)")
    group.addoption("--axp-gateway-host", default=None, metavar="ADDRESS",
                    help="the address of this machine that tcp:// engines' sandboxes reach "
                         "the model gateway at")
    group.addoption("--axp-retries", type=int, default=0, metavar="N",
                    help="run a variant again, up to N times, when it ends in an "
                         "infrastructure error (never a failure, timeout or agent exit)")
    parser.addini("axp_agent_network", "open: the agent keeps setup's network; gateway: "
                  "it reaches the model gateway only", default=INI_DEFAULTS["axp_agent_network"])
    parser.addini("axp_memory", "memory limit of each sandbox (docker syntax)",
                  default=INI_DEFAULTS["axp_memory"])
    parser.addini("axp_cpus", "CPU limit of each sandbox", default=INI_DEFAULTS["axp_cpus"])
    parser.addini("axp_pids_limit", "process limit of each sandbox",
                  default=INI_DEFAULTS["axp_pids_limit"])
    parser.addini("axp_output_limit_bytes", "bytes kept per output stream of a command",
                  default=INI_DEFAULTS["axp_output_limit_bytes"])
    parser.addini("axp_test_timeout", "seconds a test may run",
                  default=INI_DEFAULTS["axp_test_timeout"])
    parser.addini("axp_setup_timeout", "seconds each setup step or setup check may run",
                  default=INI_DEFAULTS["axp_setup_timeout"])
    # For `axp local run`, which names the runs itself so it can report them.
    group.addoption("--axp-run-ulids", default=None, help=argparse.SUPPRESS)
    # For `axp local run`, which creates the first sandboxes while pytest starts: items
    # may adopt them by name (SandboxBackend.take).
    group.addoption("--axp-created-ahead", action="store_true", default=False,
                    help=argparse.SUPPRESS)


@pytest.hookimpl(trylast=True)
def pytest_axp_sandbox_backend(config: pytest.Config) -> SandboxBackend:
    """The built-in backend: Docker (its SDK loads here, the engine on first use)."""
    from .sandbox import builtin_backend

    docker_backend = builtin_backend()
    docker_backend.adopt_by_name = bool(config.getoption("axp_created_ahead"))
    return docker_backend


def sandbox_backend(config: pytest.Config) -> SandboxBackend:
    """This session's SandboxBackend, asked of the hook once, when first needed (not at
    start-up: collecting and --collect-only never load a backend)."""
    axp = config.stash[SESSION_KEY]
    if axp.backend is None:
        from .sandbox import load_backend

        axp.backend = load_backend(config)
        axp.services.sandbox_backend = axp.backend  # the gateway binds where it says
    return axp.backend


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "axp: an AXP experiment variant run")
    repeat = config.getoption("axp_repeat")
    if repeat < 1:
        raise pytest.UsageError("--axp-repeat must be at least 1")
    if config.getoption("axp_retries") < 0:
        raise pytest.UsageError("--axp-retries must be 0 or more")
    from .sandbox.pool import HOSTS_ENV, configure, hosts_from_env

    try:
        configure(config.getoption("axp_docker_host"), config.getoption("axp_gateway_host"))
    except ValueError as e:
        raise pytest.UsageError(f"--axp-docker-host: {e}") from None
    try:
        hosts_from_env()
    except ValueError as e:
        raise pytest.UsageError(f"{HOSTS_ENV}: {e}") from None
    workerinput = getattr(config, "workerinput", None)
    given = config.getoption("axp_run_ulids")
    if workerinput:
        ulids = workerinput["axp_ulids"]
    elif given:
        ulids = given.split(",")
        if len(ulids) != repeat:
            raise pytest.UsageError("--axp-run-ulids needs one ULID per repeat")
    else:
        ulids = new_ulids(repeat)
    session = AxpSession(
        ulids=list(ulids), runs_dir=runs_dir_from(config),
        variant_filter=tuple(config.getoption("axp_variant")),
        image=config.getoption("axp_image"),
        max_patch_bytes=config.getoption("axp_max_patch_bytes"),
        max_workspace_bytes=config.getoption("axp_max_workspace_bytes"))
    try:
        apply_options(session, config.getoption, config.getini, config.invocation_params.dir)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    from .agents.registry import AgentRegistry

    session.agents = AgentRegistry.for_config(config)
    # Model APIs of plugins: the gateway asks the hook for a name it does not know.
    session.services.find_model_api = (
        lambda name: config.hook.pytest_axp_model_api(name=name))
    config.stash[SESSION_KEY] = session
    if given and not workerinput:
        _hold_runs(session)  # a run id chosen ahead may be another process's run
    _sigterm_as_interrupt()


def _hold_runs(session: AxpSession) -> None:
    """One writer per run: this process (an xdist controller, for its workers) holds the
    runs of its ULIDs until it ends. Another holder is a usage error (exit 4)."""
    from .runlock import RunBusy, acquire

    if session.services.runs_held:
        return
    for ulid in session.ulids:
        try:
            acquire(session.runs_dir, ulid, _run_name(session, ulid))
        except RunBusy as e:
            _release_runs(session)
            raise pytest.UsageError(str(e)) from None
        session.services.runs_held.append(ulid)


def _run_name(session: AxpSession, ulid: str) -> str:
    found = sorted(p.name for p in session.runs_dir.glob(f"*-{ulid}") if p.is_dir()) \
        if session.runs_dir.is_dir() else []
    return ", ".join(found) or f"*-{ulid}"


def _release_runs(session: AxpSession) -> None:
    from .runlock import release

    held, session.services.runs_held = session.services.runs_held, []
    for ulid in held:
        release(session.runs_dir, ulid)


def pytest_unconfigure(config: pytest.Config) -> None:
    axp = config.stash.get(SESSION_KEY, None)
    if axp is not None and "pytest_axp.runlock" in sys.modules:
        _release_runs(axp)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: Sequence[str]) -> None:
    # Fresh ULIDs: no other process can hold them yet; hold them once experiments show up.
    if any(i.split("::", 1)[0].endswith((".yaml", ".yml")) for i in ids):
        _hold_fresh(node.config)


def _hold_fresh(config: pytest.Config) -> None:
    axp = config.stash.get(SESSION_KEY, None)
    if axp is None or hasattr(config, "workerinput") or axp.services.runs_held:
        return
    try:
        _hold_runs(axp)
    except pytest.UsageError as e:
        pytest.exit(str(e), returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    # Workers must share each repeat's run id: the controller hands them out.
    node.workerinput["axp_ulids"] = node.config.stash[SESSION_KEY].ulids


def _sigterm_as_interrupt() -> None:
    """SIGTERM would kill pytest with no teardown; make it a KeyboardInterrupt instead."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    from .experiment import sniff_experiment

    if not sniff_experiment(file_path):
        return None
    from .collect import ExperimentFile

    return ExperimentFile.from_parent(parent, path=file_path)


def pytest_collection_finish(session: pytest.Session) -> None:
    """resolved-variant.yaml for every selected variant, before any container starts.
    `--collect-only` runs nothing, so it writes nothing (no run folder)."""
    if not session.items or session.config.option.collectonly:
        return
    from .collect import SPEC_KEY
    from .runner import write_resolved_variant

    if any(SPEC_KEY in item.stash for item in session.items):
        _hold_fresh(session.config)

    for item in session.items:
        spec = item.stash.get(SPEC_KEY, None)
        if spec is not None:
            write_resolved_variant(spec.run, spec.variant)


@pytest.fixture
def _axp_variant_run(request: pytest.FixtureRequest) -> Generator[Any, None, None]:
    from .collect import SPEC_KEY
    from .record.summary import Failure
    from .retry import RetryingRun
    from .runner import VariantFailed, VariantRun
    from .sandbox.base import SandboxError

    item = request.node
    spec = item.stash[SPEC_KEY]
    axp = item.config.stash[SESSION_KEY]
    item.user_properties.append(("axp.run_id", spec.run.run_id))
    item.user_properties.append(("axp.results_dir", str(spec.run.results(spec.variant.id).root)))

    backend = sandbox_backend(item.config)

    def new_run(attempt: int) -> VariantRun:
        return VariantRun(spec.variant, spec.run, spec.repeat, axp.engine_options(),
                          image="", services=axp.services, attempt=attempt, backend=backend)

    def prepare(run: VariantRun) -> None:
        try:
            run.image = backend.ensure_image(spec.variant.agent.name, axp.resolve_image)
        except SandboxError as e:  # the engine or the image is unusable
            run.outcome.failure = Failure(phase="sandbox", name="image", message=str(e),
                                          infrastructure=True)
            raise VariantFailed(run.outcome.failure) from None
        run.provision()

    run = RetryingRun(spec.run.results(spec.variant.id).root, new_run, prepare,
                      item.config.getoption("axp_retries"))

    def finish() -> None:
        summary = run.finish()
        if summary is not None:  # its run-summary.json is written
            item.config.hook.pytest_axp_variant_finished(run=spec.run, summary=summary)

    try:
        provisioned = run.provision()
    except BaseException:
        finish()
        raise
    if not provisioned:
        finish()
        item.user_properties.append(("axp.status", "error"))
        raise AxpVariantError(f"{spec.variant.id}: error: {run.outcome.failure.one_line()}")
    _prefetch_next(axp, backend)
    try:
        yield run
    finally:
        finish()


def _prefetch_next(axp: AxpSession, backend: SandboxBackend) -> None:
    """Start the next item's sandbox while this item runs, if that item may start one."""
    from .collect import SPEC_KEY
    from .record.attempts import next_attempt
    from .runner import VariantFailed, VariantRun
    from .sandbox.base import SandboxError

    nxt = axp.services.next_item
    spec = nxt.stash.get(SPEC_KEY, None) if nxt is not None else None
    if spec is None:
        return
    try:
        image = backend.ensure_image(spec.variant.agent.name, axp.resolve_image)
        upcoming = VariantRun(spec.variant, spec.run, spec.repeat, axp.engine_options(),
                              image=image, backend=backend, services=axp.services,
                              attempt=next_attempt(spec.run.results(spec.variant.id).root))
        upcoming.preflight()
        upcoming.check_model()
    except (VariantFailed, SandboxError):
        return  # that item fails on its own, before any sandbox, when it runs
    upcoming.create_ahead()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item,
                            nextitem: pytest.Item | None) -> Generator[None, object, object]:
    axp = item.config.stash.get(SESSION_KEY, None)
    if axp is not None:
        axp.services.next_item = nextitem
    return (yield)


class AxpVariantError(Exception):
    """Raised at setup so the item's outcome is an error, with a one-line reason."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None],
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # An AXP setup error is one line (phase, name, reason), not a traceback.
    if call.excinfo is not None and call.excinfo.errisinstance(AxpVariantError):
        report.longrepr = str(call.excinfo.value)
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    axp = session.config.stash.get(SESSION_KEY, None)
    if axp is None:
        return
    if "pytest_axp.gateway_service" in sys.modules:
        from .gateway_service import stop_gateway

        stop_gateway(axp.services)
    if axp.backend is not None:
        axp.backend.finish()
    if hasattr(session.config, "workerinput"):
        return  # the controller (or the single process) writes the indexes
    runs = axp.runs_on_disk()
    if runs:
        # A worker that crashed or was killed leaves its sandbox: the controller removes
        # every sandbox of this session's runs, whoever started it.
        _remove_run_sandboxes(session.config, [r.run_id for r in runs])
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return  # an interrupted run has no index: it is partial
    from .record.index import finalize_run
    from .record.jsonio import read_json

    for run in runs:
        if finalize_run(run):
            session.config.hook.pytest_axp_run_finished(run_dir=run.root,
                                                       index=read_json(run.index))


def _remove_run_sandboxes(config: pytest.Config, run_ids: list[str]) -> None:
    from .sandbox.base import LABEL_RUN_ID

    try:
        backend = sandbox_backend(config)
        for run_id in run_ids:
            backend.remove_labelled({LABEL_RUN_ID: run_id})
    except Exception:
        pass  # engine unreachable: `axp sandbox clean` and the next start reap them


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    axp = config.stash.get(SESSION_KEY, None)
    if axp is None or hasattr(config, "workerinput"):
        return
    runs = axp.runs_on_disk()
    if not runs:
        return
    terminalreporter.section("axp runs")
    for run in runs:
        state = "complete" if run.index.exists() else "partial (no index.json)"
        terminalreporter.write_line(f"{run.run_id}: {run.root} [{state}]")
