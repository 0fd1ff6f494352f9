"""One variant run, start to finish, in one straight line:

resolved-variant.yaml -> secrets and sources checked -> container -> staging -> setup ->
setup checks -> agent -> tests -> workspace copy -> run-summary.json -> container removed.

The runner knows nothing of pytest: the plugin drives it and maps outcomes to reports.
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from .agents import AgentContext, AgentNotAvailable
from .agents.command import link_or_copy
from .gitsource import checked_out, commit_problem
from .record.attempts import attempt_entry
from .record.commands import CommandLog
from .record.fsdiff import DEFAULT_MAX_PATCH_BYTES, WorkspaceDiffer
from .record.jsonio import write_atomic, write_json
from .record.layout import RunPaths
from .record.spans import VariantTracer
from .record.summary import (
    NO_TESTS_NOTE,
    AgentOutcome,
    Failure,
    TestOutcome,
    VariantOutcome,
    agent_failure,
    build_summary,
    rollup,
    tail,
)
from .record.trace import TraceWriter
from .sandbox.base import (
    AGENT_USER,
    DEFAULT_LIMITS,
    LABEL_REPEAT,
    LABEL_RUN_ID,
    LABEL_VARIANT_ID,
    WORKSPACE,
    ExecResult,
    ResourceLimits,
    SandboxError,
)
from .secrets import Redactor, too_short, too_short_message
from .services import Services
from .staging import (
    StagedEntry,
    StagingError,
    build_entry,
    is_url,
    plan_entries,
    unknown_bindings,
)

if TYPE_CHECKING:
    from .experiment import ResolvedVariant, TestSpec
    from .sandbox.base import Sandbox, SandboxBackend

TRACE_PATH_IN_SANDBOX = "/axp/trace.jsonl"
DEFAULT_TEST_TIMEOUT = 900.0
DEFAULT_SETUP_TIMEOUT = 1800.0
# Run as the agent user when its step ends: stops every other process of that user (TERM,
# a short grace, KILL), then counts again. Bash builtins and /proc only, so it works in any
# image; a constant, so nothing from an experiment reaches a shell.
_STOP_USER_PROCESSES = r"""
scan() {
  n=0
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$$" ] && continue
    [ -O "$d" ] || continue
    read -r s < "$d/stat" || continue
    s=${s##*) }
    [ "${s%% *}" = Z ] || n=$((n + 1))
  done 2>/dev/null
}
settle() {
  i=0
  while [ "$i" -lt "$1" ]; do
    scan
    [ "$n" -eq 0 ] && return
    sleep 0.1
    i=$((i + 1))
  done
}
scan
found=$n
if [ "$found" -gt 0 ]; then
  kill -TERM -1 2>/dev/null
  settle 20
  if [ "$n" -gt 0 ]; then
    kill -KILL -1 2>/dev/null
    # Only a process in uninterruptible sleep outlives KILL for long: on a loaded machine
    # that takes a while, and is not yet a survivor.
    settle 100
  fi
fi
echo "stopped=$found left=$n"
"""
_STOPPED = re.compile(rb"stopped=(\d+) left=(\d+)")
_SECRET_REF = re.compile(r"^axp://secrets/(?P<slug>.+)$")


@dataclass(frozen=True)
class EngineOptions:
    image: str | None = None
    test_timeout_seconds: float = DEFAULT_TEST_TIMEOUT
    setup_timeout_seconds: float = DEFAULT_SETUP_TIMEOUT  # each setup step and setup check
    network_mode: str = "bridge"
    max_patch_bytes: int = DEFAULT_MAX_PATCH_BYTES
    max_workspace_bytes: int = 512 * 1024 * 1024
    # Where declared secrets take their values (see secrets.layered_environment).
    host_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # --file bindings: ("slot", NAME, absolute path) or ("adhoc", absolute path, dest).
    file_bindings: tuple[tuple[str, str, str], ...] = ()
    limits: ResourceLimits = DEFAULT_LIMITS
    # "open": the agent has the network setup had; "gateway": it reaches the model
    # gateway and nothing else (see SandboxBackend.isolate).
    agent_network: str = "open"
    # Where agent adapters are found (agents.registry.AgentRegistry); None: the built-ins
    # and the installed plugins, as the CLI sees them.
    agents: Any = None


class VariantFailed(Exception):
    """Staging, setup or a setup check failed: the variant ends as `error`."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.one_line())
        self.failure = failure


def write_resolved_variant(run: RunPaths, variant: ResolvedVariant) -> None:
    path = run.resolved_variant(variant.id)
    if not path.exists():
        write_atomic(path, variant.resolved_yaml())


def has_tests(variant: ResolvedVariant) -> bool:
    """Whether the variant declares any application or introspection test."""
    return bool(variant.tests.application or variant.tests.introspection)


def secret_values(variant: ResolvedVariant, host_env: Mapping[str, str]) -> dict[str, str]:
    """Values of the declared secrets; a missing one is an error naming it."""
    missing = [name for name in variant.secrets if not host_env.get(name)]
    if missing:
        raise VariantFailed(Failure(
            phase="secrets", name=", ".join(missing),
            message=f"secret(s) {', '.join(missing)} have no value: set them in the "
                    "environment before running"))
    values = {name: host_env[name] for name in variant.secrets}
    short = too_short(values)
    if short:
        raise VariantFailed(Failure(phase="secrets", name=", ".join(short),
                                    message=too_short_message(short[0], values[short[0]])))
    return values


def _secret_for(slug: str, secrets: Mapping[str, str]) -> str | None:
    for name, value in secrets.items():
        if name == slug or name.lower().replace("_", "-") == slug.lower():
            return value
    return None


def base_environment(variant: ResolvedVariant, secrets: Mapping[str, str]) -> dict[str, str]:
    env: dict[str, str] = dict(secrets)
    for var in variant.environment_variables:
        m = _SECRET_REF.match(var.value or "")
        if m:
            value = _secret_for(m["slug"], secrets)
            if value is None:
                raise VariantFailed(Failure(
                    phase="secrets", name=var.name,
                    message=f"{var.name} refers to {var.value}, which is not a declared secret"))
            env[var.name] = value
        else:
            env[var.name] = var.value or ""
    return env


class VariantRun:
    def __init__(self, variant: ResolvedVariant, run: RunPaths, repeat: int,
                 options: EngineOptions, image: str, services: Services | None = None,
                 attempt: int = 1, backend: SandboxBackend | None = None) -> None:
        self.variant = variant
        self.run = run
        self.repeat = repeat
        self.options = options
        self.image = image
        self.services = services if services is not None else Services()
        self.paths = run.results(variant.id)
        self.outcome = VariantOutcome()
        self.backend = backend  # where sandboxes come from; needed from provision() on
        self.sandbox: Sandbox | None = None
        self.started_at = time.time()
        self.completed = False
        self.trace = TraceWriter(session_id=str(uuid.uuid4()))
        self.tracer = VariantTracer(run_id=run.run_id, variant_id=variant.id, repeat=repeat,
                                    experiment_id=variant.experiment_id)
        # One trace id for the harness spans and the agent's own telemetry files.
        self.trace_id = self.tracer.trace_id
        self.differ: WorkspaceDiffer | None = None
        self.workspace_copy: dict[str, Any] = {}
        self.notes: list[dict[str, Any]] = []  # for layout.json: what went missing, and why
        self._env: dict[str, str] = {}
        self._secrets: dict[str, str] = {}
        self.redactor = Redactor(())
        # Attempt n of this variant in this run; earlier ones are under attempts/ and
        # their `attempts` entries go into this one's summary.
        self.attempt = attempt
        self.prior_attempts: list[dict[str, Any]] = []

    # -- phases ---------------------------------------------------------------------------

    @property
    def sandbox_key(self) -> str:
        suffix = f"/a{self.attempt}" if self.attempt > 1 else ""
        return f"{self.run.run_id}/{self.variant.id}/{self.repeat}{suffix}"

    @property
    def container_name(self) -> str:
        # Readable in `docker ps`, and how a container created ahead is found again.
        # A retry gets a fresh container while the last one may still be going away.
        suffix = f"-a{self.attempt}" if self.attempt > 1 else ""
        return f"axp-{self.run.run_id}-{self.variant.id}-{self.repeat}{suffix}"

    def sandbox_args(self) -> dict[str, Any]:
        return {
            "name": self.container_name,
            "image": self.image,
            "network_mode": self.options.network_mode,
            "extra_hosts": {"host.docker.internal": "host-gateway"},
            "labels": {LABEL_RUN_ID: self.run.run_id, LABEL_VARIANT_ID: self.variant.id,
                       LABEL_REPEAT: str(self.repeat)},
            "limits": self.options.limits,
        }

    def create_ahead(self) -> None:
        """Have the backend start this run's sandbox now (another run's item is still
        running, or pytest is starting); provision() takes it if made alike. Call after a
        preflight that passed: a run that fails its host-side checks gets no sandbox."""
        assert self.backend is not None
        self.backend.create_ahead(self.sandbox_key, self.sandbox_args())

    def preflight(self) -> list[tuple[Any, str, str]]:
        """Host-side checks that must pass before any container starts: the agent exists,
        secrets have values, every file source is bound and present. The staging plan."""
        from .agents.registry import installed_registry

        try:
            self.agent = (self.options.agents or installed_registry()).adapter_for(
                self.variant)
        except AgentNotAvailable as e:
            self._fail(Failure(phase="agent", name=self.variant.agent.name, message=str(e)))
        self._secrets = secret_values(self.variant, self.options.host_env)
        self.redactor = Redactor(self._secrets.values())
        self.tracer.redact = self.redactor.obj
        self._env = base_environment(self.variant, self._secrets)
        return self._plan_staging()

    def check_model(self) -> None:
        """An agent that talks to a model needs a key or a script; without either it could
        only fail, so the variant ends as `error` now, before any sandbox (not retried:
        nothing outside the experiment is at fault)."""
        api = getattr(self.agent, "model_api", None)
        if api is None:
            return
        from .gateway_service import model_state

        _, reason = model_state(api, scripted=self.services.model_script is not None,
                                gateway=self.services.gateway,
                                find=self.services.find_model_api)
        if reason is not None:
            self._fail(Failure(phase="model_api", name=self.variant.agent.name,
                               message=f"{reason}: set the key in the environment, or answer "
                                       "from a model script (axp local run --model-script "
                                       "FILE; pytest --axp-model-script FILE)"))

    def provision(self) -> None:
        """Everything before the agent. Raises VariantFailed on staging/setup failure."""
        if self.backend is None:
            raise ValueError("VariantRun.provision needs a sandbox backend")
        write_resolved_variant(self.run, self.variant)
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self._write_layout()
        try:
            entries = self.preflight()
            self.check_model()
            with self.tracer.span("sandbox_create", image=self.image) as span:
                args = self.sandbox_args()
                ahead = self.backend.take(self.sandbox_key, args)
                self.sandbox = ahead or self.backend.create(**args)
                span.set("axp.created_ahead", ahead is not None)
                span.set("axp.container_id", self.sandbox.id[:12])
                if self.engine:
                    span.set("axp.engine", self.engine)
            self.sandbox.commands = CommandLog(self.paths, span_id=self.tracer.current_span_id,
                                               redactor=self.redactor)
            self._stage(entries)
            self._setup()
        except VariantFailed as e:
            self.outcome.failure = e.failure
            raise
        except SandboxError as e:
            self._fail(Failure(phase="sandbox", name=self.backend.name, message=str(e),
                               infrastructure=True))
        finally:
            self.tracer.export(self.paths.traces)
        self.differ = WorkspaceDiffer(self.sandbox, self.paths,
                                      max_patch_bytes=self.options.max_patch_bytes,
                                      redactor=self.redactor)
        self._snapshot("before_agent")

    def run_agent(self) -> AgentOutcome:
        assert self.sandbox is not None
        gateway_host = "host.docker.internal"
        if self.options.agent_network == "gateway":
            assert self.backend is not None
            with self.tracer.span("isolate_network"):
                # A pool's sandbox reaches the host on its own engine's network.
                own = getattr(self.sandbox, "host_address", None)
                gateway_host = own(True) if own else self.backend.host_address(isolated=True)
                self.backend.isolate(self.sandbox)
        if self.engine and self.agent.model_api is not None:
            self._check_gateway(gateway_host)
        env = {**self._env, "AXP_VARIANT_ID": self.variant.id, "AXP_RUN_ID": self.run.run_id}
        self.trace.meta(run_id=self.run.run_id, experiment_id=self.variant.experiment_id,
                        variant_id=self.variant.id, repeat=self.repeat,
                        agent=self.variant.agent.name, prompt_id=self.variant.prompt.id)
        ctx = AgentContext(variant=self.variant, sandbox=self.sandbox, paths=self.paths,
                           env=env, timeout=self.variant.limits.max_time_seconds,
                           trace=self.trace, run_id=self.run.run_id, repeat=self.repeat,
                           services=self.services, trace_id=self.trace_id,
                           gateway_host=gateway_host, attempt=self.attempt,
                           secret_values=tuple(v for v in self._secrets.values() if v))
        with self.tracer.span("agent", **{"axp.agent": self.variant.agent.name}) as span:
            try:
                outcome = self.agent.run(ctx)
            except SandboxError as e:
                self._fail(Failure(phase="agent", name=self.variant.agent.name,
                                   message=str(e), infrastructure=True))
            for key in ("exit_code", "timed_out", "turns", "cost_usd", "input_tokens",
                        "output_tokens", "stopped_reason"):
                span.set(f"axp.agent.{key}", getattr(outcome, key))
        self.outcome.agent = outcome
        # The model API or the engine failed the agent: `error`, and no tests are run.
        self.outcome.failure = agent_failure(outcome)
        try:
            # Whatever the agent left running must not write during the snapshot or tests.
            outcome.processes_stopped = self._stop_agent_processes()
            self._snapshot("after_agent")
        finally:
            self.tracer.export(self.paths.traces)
            trace_bytes = self.trace.jsonl()
            write_atomic(self.paths.agent_trace, self.redactor.bytes(trace_bytes))
        if not outcome.timed_out:
            try:
                self.sandbox.put_file(TRACE_PATH_IN_SANDBOX, trace_bytes, mode=0o644)
            except SandboxError as e:
                self._fail(Failure(phase="agent", name="trace", message=str(e),
                                   infrastructure=True))
        return outcome

    @property
    def engine(self) -> str | None:
        """The engine this variant's sandbox is on, when the backend is a pool of them."""
        return getattr(self.sandbox, "engine", None)

    def _check_gateway(self, host: str) -> None:
        """Before the agent: the model gateway answers a connection from inside the
        sandbox (its engine may be on another machine), else a clear infrastructure error."""
        from .gateway_service import gateway_for

        assert self.sandbox is not None
        try:
            port = gateway_for(self.services).port
            res = self.sandbox.exec(
                'timeout 10 bash -c \': > "/dev/tcp/$1/$2"\' check "$AXP_H" "$AXP_P"',
                phase="agent", name="gateway-check", env={"AXP_H": host, "AXP_P": str(port)},
                timeout=30)
        except SandboxError as e:
            self._fail(Failure(phase="agent", name="gateway", message=str(e),
                               infrastructure=True))
        if not res.ok:
            shown = host
            own = getattr(self.sandbox, "host_address", None)
            if own is not None and host == "host.docker.internal":
                try:
                    shown = f"{host} = {own(False)}"
                except SandboxError:
                    pass
            self._fail(Failure(
                phase="agent", name="gateway", infrastructure=True,
                message=f"the model gateway ({shown}, port {port}) cannot be reached from a "
                        f"sandbox on engine {self.engine}: give --gateway-host an address of "
                        "this machine that engine's containers reach"))

    def planned_tests(self) -> Iterator[tuple[str, TestSpec]]:
        """Tests to run, in order; none when the agent timed out (seed 004) or the
        infrastructure failed it (then the tests would measure nothing of the agent)."""
        outcome = self.outcome
        agent = outcome.agent
        if agent is None or agent.timed_out or outcome.failure is not None:
            return
        if not has_tests(self.variant):
            if NO_TESTS_NOTE not in outcome.notes:
                outcome.notes.append(NO_TESTS_NOTE)
            return
        for kind in ("application", "introspection"):
            for test in getattr(self.variant.tests, kind):
                # Read anew, not narrowed: a test run between two yields may have set it.
                if self.outcome.failure is not None:
                    return  # an infrastructure error: what follows cannot be judged
                yield kind, test

    def run_test(self, kind: str, test: TestSpec) -> TestOutcome:
        assert self.sandbox is not None
        env = {**self._env, "AXP_VARIANT_ID": self.variant.id, "AXP_RUN_ID": self.run.run_id,
               "AXP_TRACE_PATH": TRACE_PATH_IN_SANDBOX}
        timeout = self.options.test_timeout_seconds
        attributes = {"axp.test.kind": kind, "axp.test.name": test.name}
        with self.tracer.span("test", **attributes) as span:
            try:
                res = self.sandbox.exec(test.script, phase="test", name=f"{kind}/{test.name}",
                                        user=AGENT_USER, env=env, timeout=timeout)
            except SandboxError as e:  # a lost exit code is ours, not the test's
                self._fail(Failure(phase="test", name=f"{kind}/{test.name}", message=str(e),
                                   infrastructure=True))
            span.set("axp.exit_code", res.exit_code)
            span.set("axp.test.status", "pass" if res.ok else "fail")
        out = self.paths.test_log(kind, test.name, "stdout")
        err = self.paths.test_log(kind, test.name, "stderr")
        try:
            link_or_copy(res.stdout_path, out)
            link_or_copy(res.stderr_path, err)
        except OSError as e:
            # The command's own files still hold the output; a test whose logs cannot be
            # written is not a pass.
            self._record_test(kind, test, None, res.stdout_path, res.stderr_path)
            if self.outcome.failure is None:
                self.outcome.failure = Failure(
                    phase="test", name=f"{kind}/{test.name}",
                    message=f"the test's logs could not be written: {e}")
            raise
        return self._record_test(kind, test, res, out, err)

    def _record_test(self, kind: str, test: TestSpec, res: ExecResult | None,
                     out: Path, err: Path) -> TestOutcome:
        result = TestOutcome(name=test.name, kind=kind,
                             status="pass" if res is not None and res.ok else "fail",
                             exit_code=res.exit_code if res is not None else None,
                             duration_seconds=res.duration_seconds if res is not None else 0.0,
                             stdout_log=out, stderr_log=err,
                             timed_out=res is not None and res.timed_out,
                             reason=f"timed out after {self.options.test_timeout_seconds:g} s"
                             if res is not None and res.timed_out else None)
        self.outcome.tests.append(result)
        return result

    def complete(self) -> str:
        """Mark the variant as run to its end; the rolled-up status."""
        self._snapshot("after_tests", keep_state=False)
        self.completed = True
        recorded = {(t.kind, t.name) for t in self.outcome.tests}
        lost = [f"{kind}/{test.name}" for kind, test in self.planned_tests()
                if (kind, test.name) not in recorded]
        if lost and self.outcome.failure is None:
            # A test that raised before its result was recorded must not roll up as `pass`.
            self.outcome.failure = Failure(
                phase="test", name=", ".join(lost),
                message=f"no result could be recorded for {', '.join(lost)}")
        return rollup(self.outcome)

    def finish(self) -> dict[str, Any] | None:
        """Copy what is left out of the sandbox, write the summary, remove the container.

        An interrupted variant (neither completed nor failed) gets no summary, so its run
        stays partial, but everything recorded so far is kept.
        """
        summary = None
        try:
            if self.sandbox is not None and (self.completed or self.outcome.failure):
                with self.tracer.span("copy_workspace") as span:
                    self._copy_workspace()
                    span.set("axp.bytes", self.workspace_copy.get("bytes"))
                    span.set("axp.files", self.workspace_copy.get("files"))
            if self.sandbox is not None:
                with self.tracer.span("teardown"):
                    self.sandbox.remove(wait=False)
            status = rollup(self.outcome) if (self.completed or self.outcome.failure) else None
            self.tracer.end(**{"axp.status": status})
            self.tracer.export(self.paths.traces)
            if self.completed or self.outcome.failure is not None:
                summary = build_summary(
                    run_id=self.run.run_id, variant_id=self.variant.id,
                    variant_tag=self.variant.tag, experiment_id=self.variant.experiment_id,
                    repeat=self.repeat, fingerprint=self.variant.fingerprint,
                    outcome=self.outcome, started_at=self.started_at, ended_at=time.time())
                if self.engine:
                    summary["engine"] = self.engine
                if self.prior_attempts:
                    summary["attempts"] = [*self.prior_attempts,
                                           attempt_entry(self.attempt, summary, archived=False)]
                write_json(self.paths.run_summary, self.redactor.obj(summary))
        finally:
            if self.sandbox is not None:
                self.sandbox.remove(wait=False)  # again, harmless, should anything above fail
            self._write_layout()
        return summary

    # -- steps ----------------------------------------------------------------------------

    def _snapshot(self, point: str, keep_state: bool = True) -> None:
        if self.differ is None:
            return
        with self.tracer.span("snapshot", **{"axp.point": point}) as span:
            record = self.differ.snapshot(point, keep_state=keep_state)
            if record is not None:
                span.set("axp.files", record["file_count"])
                span.set("axp.changes", len(record["changes"]))
                if record.get("error"):
                    span.set("axp.error", record["error"])
                    self._note_snapshot(record["seq"], point, record["error"])

    def _note_snapshot(self, seq: int, point: str, error: str) -> None:
        self.notes.append({"kind": "snapshot_failed", "fs_diff": f"fs-diff/{seq}.json",
                           "point": point, "error": error})
        self._write_layout()

    def _stop_agent_processes(self) -> int:
        """Stop every process of the agent user; how many there were. One that survives
        SIGKILL leaves the tests unjudgeable: an infrastructure error."""
        assert self.sandbox is not None
        with self.tracer.span("stop_agent_processes") as span:
            try:
                res = self.sandbox.exec(_STOP_USER_PROCESSES, phase="agent",
                                        name="stop-processes", user=AGENT_USER)
            except SandboxError as e:
                self._fail(Failure(phase="agent", name="stop-processes", message=str(e),
                                   infrastructure=True))
            m = _STOPPED.search(res.stdout_path.read_bytes())
            if res.exit_code != 0 or m is None:
                self._fail(Failure(
                    phase="agent", name="stop-processes", exit_code=res.exit_code,
                    message="could not stop the agent's processes",
                    stdout_tail=tail(res.stdout_path), stderr_tail=tail(res.stderr_path),
                    infrastructure=True))
            stopped, left = int(m[1]), int(m[2])
            span.set("axp.stopped", stopped)
            if left:
                self._fail(Failure(
                    phase="agent", name="stop-processes", infrastructure=True,
                    message=f"{left} process(es) of the agent survived SIGKILL"))
        return stopped

    def _fail(self, failure: Failure) -> NoReturn:
        self.outcome.failure = failure
        raise VariantFailed(failure)

    def _plan_staging(self) -> list[tuple[Any, str, str]]:
        """Every file entry in delivery order, with --file bindings applied, as (entry, source,
        label); an unbound slot or a missing host path is an error before any container.
        URL sources are fetched when staged."""
        bindings = self.options.file_bindings
        unknown = unknown_bindings(self.variant.files, bindings)
        if unknown:
            self._fail(Failure(phase="staging", name=", ".join(unknown),
                               message="--file names no file entry of this variant: "
                                       f"{', '.join(unknown)}"))
        plan: list[tuple[Any, str, str]] = []
        for p in plan_entries(self.variant.files, Path(self.variant.source_file).parent,
                              bindings):
            if p.state == "UNBOUND":
                self._fail(Failure(
                    phase="staging", name=p.label,
                    message=f"file slot {p.entry.name!r} has no source: bind it with "
                            f"--file {p.entry.name}=PATH"))
            if p.state == "SYMLINK":
                where = f" ({p.entry.where})" if p.entry.where else ""
                self._fail(Failure(phase="staging", name=p.label, message=p.problem + where))
            if p.state == "MISSING":
                where = f" ({p.entry.where})" if p.entry.where else ""
                self._fail(Failure(phase="staging", name=p.label,
                                   message=f"source {p.source} does not exist{where}"))
            assert p.source is not None  # only an UNBOUND slot has none, and it failed above
            pin = getattr(p.entry, "pin", None)
            problem = commit_problem(p.source, pin) if pin is not None else None
            if problem is not None:
                self._fail(Failure(phase="staging", name=p.label, message=problem))
            plan.append((p.entry, p.source, p.label))
        return plan

    def _stage(self, plan: list[tuple[Any, str, str]]) -> None:
        assert self.sandbox is not None
        records: list[dict[str, Any]] = []
        for entry, source, label in plan:
            try:
                with self.tracer.span("stage", **{"axp.entry": label,
                                                  "axp.dest": entry.dest}) as span:
                    # Streamed through a temporary file: a large source is never in memory.
                    with tempfile.TemporaryFile() as tar:
                        staged = self._build(entry, source, tar)
                        tar.seek(0)
                        self.sandbox.put_archive(WORKSPACE, tar)
                    span.set("axp.files", staged.file_count)
                    span.set("axp.bytes", staged.size_bytes)
            except (StagingError, SandboxError, OSError) as e:
                failed = StagedEntry(source=source, dest=entry.dest, name=entry.name,
                                     error=str(e))
                records.append(failed.record())
                write_json(self.run.staging(self.variant.id), self.redactor.obj(records))
                self._fail(Failure(phase="staging", name=label, message=str(e)))
            records.append(staged.record())
        if records:
            write_json(self.run.staging(self.variant.id), self.redactor.obj(records))

    def _build(self, entry: Any, source: str, sink: IO[bytes]) -> StagedEntry:
        """The entry's tar, written to `sink`; a URL is fetched (cached by sha256), a sha256
        is checked."""
        from .fetch import fetch_url

        pin = getattr(entry, "pin", None)
        if pin is not None:
            with checked_out(source, pin) as (path, commit):
                if entry.sha256:
                    _check_sha256(path, entry.sha256, f"{source} at {commit}")
                staged = build_entry(path, entry.dest, name=entry.name, source_label=source,
                                     sink=sink)
            staged.commit = commit
            return staged
        if is_url(source):
            # Our own cache: its location may sit behind a link (a symlinked home).
            path = Path(os.path.realpath(fetch_url(source, entry.sha256)))
            dest = entry.dest if entry.dest != "." else (
                source.rstrip("/").rsplit("/", 1)[-1] or "download")
            return build_entry(path, dest, name=entry.name, source_label=source, sink=sink)
        path = Path(source)
        if entry.sha256:
            _check_sha256(path, entry.sha256, str(path))
        return build_entry(path, entry.dest, name=entry.name, sink=sink)

    def _setup(self) -> None:
        assert self.sandbox is not None
        # As on AXP: setup runs as root and what it makes stays root's (the agent may read
        # it, and write it only where setup made it writable); setup checks run as the
        # agent, so they catch exactly that before the agent starts.
        for step in self.variant.setup:
            self._step("setup", f"{step.phase}/{step.name}", step.script, env=self._env)
        for check in self.variant.setup_checks:
            self._step("setup_check", check.name, check.script, env=self._env,
                       user=AGENT_USER)

    def _step(self, phase: str, name: str, script: str, env: Mapping[str, str] | None = None,
              user: str = "root") -> None:
        """Run an experiment's bash script; a non-zero exit or a timeout fails the variant."""
        assert self.sandbox is not None
        timeout = self.options.setup_timeout_seconds
        with self.tracer.span(phase, **{"axp.name": name}) as span:
            try:
                res = self.sandbox.exec(script, phase=phase, name=name, env=env, user=user,
                                        timeout=timeout)
            except SandboxError as e:
                self._fail(Failure(phase=phase, name=name, message=str(e),
                                   infrastructure=True))
            span.set("axp.exit_code", res.exit_code)
        self._check(res, phase, name, timeout)

    def _check(self, res: ExecResult, phase: str, name: str, timeout: float) -> None:
        if not res.ok:
            self._fail(Failure(phase=phase, name=name, exit_code=res.exit_code,
                               message=f"timed out after {timeout:g} s" if res.timed_out
                               else "non-zero exit",
                               stdout_tail=tail(res.stdout_path),
                               stderr_tail=tail(res.stderr_path)))

    def _copy_workspace(self) -> None:
        assert self.sandbox is not None
        dest = self.paths.workspace
        dest.mkdir(parents=True, exist_ok=True)
        limit = self.options.max_workspace_bytes
        copied: dict[str, Any] = {"files": 0, "bytes": 0, "limit_bytes": limit, "omitted": [],
                  "omitted_count": 0, "omitted_bytes": 0}
        try:
            with tempfile.TemporaryFile(dir=self.paths.root) as tmp:
                for chunk in self.sandbox.get_archive(WORKSPACE):
                    tmp.write(chunk)
                tmp.seek(0)
                with tarfile.open(fileobj=tmp, mode="r|") as tar:
                    for member in tar:
                        parts = member.name.split("/", 1)
                        if len(parts) < 2 or not parts[1]:
                            continue
                        # The tar's own names are read raw; what lands in the run folder is
                        # named with secrets redacted (link targets too).
                        member.name = self.redactor.text(parts[1])
                        if member.linkname:
                            member.linkname = self.redactor.text(
                                member.linkname.split("/", 1)[-1] if member.islnk()
                                else member.linkname)
                        if member.isfile() and copied["bytes"] + member.size > limit:
                            # Over the bound: named in layout.json, not copied.
                            copied["omitted_count"] += 1
                            copied["omitted_bytes"] += member.size
                            if len(copied["omitted"]) < 100:
                                copied["omitted"].append(member.name)
                            continue
                        tar.extract(member, dest, filter="data")
                        if member.isfile():
                            copied["files"] += 1
                            copied["bytes"] += member.size
                            if self.redactor:
                                _redact_file(dest / member.name, self.redactor)
        except (SandboxError, tarfile.TarError, OSError) as e:
            copied["error"] = self.redactor.text(str(e))
        self.workspace_copy = copied

    def _write_layout(self) -> None:
        root = self.paths.root
        files = []
        if root.is_dir():
            for dirpath, _, filenames in os.walk(root):
                for fn in filenames:
                    if fn.startswith(".") and fn.endswith(".tmp"):
                        continue
                    full = Path(dirpath) / fn
                    rel = full.relative_to(root).as_posix()
                    if rel == "layout.json" or rel.startswith("workspace/"):
                        continue
                    files.append({"path": rel, "size": full.stat().st_size})
        write_json(self.paths.layout, self.redactor.obj({
            "schema_version": 1,
            "run_id": self.run.run_id,
            "variant_id": self.variant.id,
            "repeat": self.repeat,
            "artifacts": {
                "run_summary": "run-summary.json", "agent_raw": "agent-raw.json",
                "agent_log": "agent.log", "agent_session": "agent-session.jsonl",
                "agent_trace": "agent-trace.jsonl", "workspace": "workspace/",
                "application_logs": "application/", "introspection_logs": "introspection/",
                "traces": "traces/", "api_bodies": "api-bodies/",
                "commands_index": "commands.jsonl", "commands": "commands/",
                "fs_diff": "fs-diff/",
            },
            "files": sorted(files, key=lambda f: f["path"]),
            "workspace": self.workspace_copy or None,
            "notes": self.notes,
        }))


def _check_sha256(path: Path, expected: str, label: str) -> None:
    from .fetch import file_sha256

    if path.is_dir():
        raise StagingError(f"{label}: sha256 is given, but the source is a folder (a "
                           "sha256 checks a file's content)")
    actual = file_sha256(path)
    if actual != expected:
        raise StagingError(f"{label}: sha256 is {actual}, the experiment expects {expected}")


def _redact_file(path: Path, redactor: Redactor) -> None:
    """A secret the agent wrote into a workspace file does not reach the run folder."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    cleaned = redactor.bytes(data)
    if cleaned != data:
        path.write_bytes(cleaned)
