"""Agents that speak ACP (Agent Client Protocol): the harness is the client.

`AcpAgent.run` starts the adapter in the sandbox as the agent user (stdio through the
sandbox backend), then drives one session: `initialize` -> `session/new` (cwd /workspace,
the experiment's MCP servers) -> `session/set_mode` / `session/set_config_option` when the
agent asks for them -> `session/prompt`. Permission requests are answered allow. Every frame,
both ways, is appended to the trace as it happens, under `raw_json`. Limits: max_time_seconds
(session/cancel, then kill), max_turns (model turns the gateway counted) and max_cost_usd
(the gateway refuses; the session is cancelled).

A subclass sets its hooks: `adapter_argv`, `adapter_env`, `sandbox_files`, `session_mode`,
`session_config`, `model_name`, `image_layer`, `validate`; `model_api` names the gateway API.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..record.jsonio import write_atomic
from ..record.summary import AgentOutcome
from ..sandbox.base import AGENT_UID, AGENT_USER, WORKSPACE, ImageLayer, SandboxError
from ..secrets import Redactor
from .acp_client import (
    FROM_AGENT,
    PROTOCOL_VERSION,
    AcpClosed,
    AcpConnection,
    AcpError,
    MethodNotFound,
    PendingCall,
)
from .base import AgentContext, model_fields
from .command import link_or_copy

if TYPE_CHECKING:
    from ..experiment import Agent as AgentSpec
    from ..experiment import ResolvedVariant
    from ..gateway.runs import RunHandle
    from ..record.trace import TraceWriter
    from ..sandbox.base import SandboxProcess

DEFAULT_MAX_TIME = 3600.0
CANCEL_GRACE_SECONDS = 10.0   # after session/cancel, how long the prompt may take to end
EXIT_GRACE_SECONDS = 5.0      # after stdin closes, how long the adapter may take to exit
_POLL = 0.2


@dataclass(frozen=True)
class GatewayAccess:
    """How the adapter reaches the model gateway: its address and this run's token (the
    only credential the sandbox ever gets)."""

    base_url: str
    token: str
    handle: RunHandle


# -- pure parts: frames -> trace events, and the outcome -----------------------------------


def frame_kind(direction: str, frame: Mapping[str, Any],
               methods: Mapping[Any, str]) -> tuple[str, str | None]:
    """(trace `kind`, tool call id) of a JSON-RPC frame. A session/update is named by its
    `sessionUpdate`, another request or notification by its method, an answer `response`
    (`methods` maps a request id to its method, per direction of the request)."""
    method = frame.get("method")
    params = frame.get("params")
    params = params if isinstance(params, dict) else {}
    if "axp_stdout" in frame:
        return "agent_stdout", None
    if isinstance(method, str):
        if method == "session/update":
            update = params.get("update")
            if isinstance(update, dict):
                call_id = update.get("toolCallId")
                return (str(update.get("sessionUpdate") or "session/update"),
                        call_id if isinstance(call_id, str) else None)
        tool = params.get("toolCall")
        call_id = tool.get("toolCallId") if isinstance(tool, dict) else None
        return method, call_id if isinstance(call_id, str) else None
    return "response", None


@dataclass
class FrameTracer:
    """Writes each frame to the trace with its envelope: direction and, for an answer, the
    method it answers."""

    trace: TraceWriter
    _sent: dict[Any, str] = field(default_factory=dict)      # our request ids
    _received: dict[Any, str] = field(default_factory=dict)  # the agent's request ids

    def __call__(self, direction: str, frame: dict[str, Any]) -> None:
        method = frame.get("method")
        is_request = isinstance(method, str) and "id" in frame
        if is_request:
            (self._sent if direction != FROM_AGENT else self._received)[frame["id"]] = \
                str(method)
        kind, call_id = frame_kind(direction, frame, {})
        envelope: dict[str, Any] = {"direction": direction}
        if kind == "response":
            answered = (self._received if direction != FROM_AGENT else self._sent).get(
                frame.get("id"))
            if answered:
                envelope["method"] = answered
        self.trace.add(kind, frame, tool_call_id=call_id, **envelope)


@dataclass
class SessionState:
    """What the session said that the outcome needs."""

    session_id: str | None = None
    prompt_result: dict[str, Any] | None = None
    cost_usd: float | None = None       # the last usage_update's cost
    stopped_reason: str | None = None
    timed_out: bool = False
    error: str | None = None
    stopping: bool = False
    killed: bool = False  # the harness stopped the adapter: its exit code is not its own

    def note_update(self, params: Mapping[str, Any]) -> None:
        update = params.get("update")
        if not isinstance(update, dict) or update.get("sessionUpdate") != "usage_update":
            return
        cost = update.get("cost")
        if isinstance(cost, dict) and isinstance(cost.get("amount"), (int, float)):
            self.cost_usd = float(cost["amount"])


def permission_answer(params: Mapping[str, Any], stopping: bool) -> dict[str, Any]:
    """Allow (always, else once); cancelled once the harness is stopping the session."""
    options = [o for o in params.get("options") or [] if isinstance(o, dict)]
    if not stopping:
        for kind in ("allow_always", "allow_once"):
            for option in options:
                if option.get("kind") == kind and option.get("optionId") is not None:
                    return {"outcome": {"outcome": "selected",
                                        "optionId": option["optionId"]}}
    return {"outcome": {"outcome": "cancelled"}}


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def fill_outcome(outcome: AgentOutcome, state: SessionState,
                 handle: RunHandle | None) -> None:
    """Turns, tokens and cost: the prompt result's `usage` and the last usage_update's cost
    when the agent gave them, else the gateway's own counts; turns are the gateway's."""
    usage = (state.prompt_result or {}).get("usage")
    if isinstance(usage, dict):
        outcome.input_tokens = _int(usage.get("inputTokens"))
        outcome.output_tokens = _int(usage.get("outputTokens"))
        outcome.cache_read_input_tokens = _int(usage.get("cachedReadTokens"))
        outcome.cache_creation_input_tokens = _int(usage.get("cachedWriteTokens"))
    elif handle is not None:
        outcome.input_tokens = handle.input_tokens
        outcome.output_tokens = handle.output_tokens
        outcome.cache_read_input_tokens = handle.cache_read_input_tokens
        outcome.cache_creation_input_tokens = handle.cache_creation_input_tokens
    if state.cost_usd is not None:
        outcome.cost_usd = round(state.cost_usd, 6)
    elif handle is not None:
        outcome.cost_usd = round(handle.cost_usd, 6)
    if handle is not None:
        outcome.turns = handle.turns


def api_error_status(handle: RunHandle) -> int | None:
    """The model API error the session ended on: the last main-conversation call failed,
    and not because the gateway stopped the run or had no model to ask."""
    status = handle.last_turn_status
    if status is None or status < 400 or handle.stopped_reason or handle.unreachable:
        return None
    return status


def exit_code_of(state: SessionState, process_code: int | None) -> int | None:
    """0 when the prompt ended by itself (`end_turn`) and nothing stopped it, else 1 (or
    the adapter's own non-zero exit code when it died without answering)."""
    result = state.prompt_result
    if state.stopped_reason or state.error or result is None:
        died = result is None and not state.killed and process_code not in (None, 0)
        return process_code if died else 1
    return 0 if result.get("stopReason") == "end_turn" else 1


def acp_mcp_servers(variant: ResolvedVariant, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The experiment's MCP servers in ACP's `session/new` shape."""
    servers: list[dict[str, Any]] = []
    for server in variant.mcp_servers:
        kind = server.type or ("stdio" if server.command else "http")
        if kind == "stdio":
            servers.append({
                "name": server.name, "command": server.command, "args": list(server.args or []),
                "env": [{"name": e.name, "value": env.get(e.from_ or e.name, "")}
                        for e in server.env or []]})
        else:
            servers.append({"type": kind, "name": server.name, "url": server.url,
                            "headers": [{"name": h.name, "value": h.value}
                                        for h in server.headers or []]})
    return servers


# -- the base class --------------------------------------------------------------------------


class AcpAgent:
    """An agent run as an ACP adapter in the sandbox. Subclasses set the hooks."""

    name = "acp"
    # The gateway API the adapter's model calls use (None: the adapter gets no gateway).
    model_api: str | None = None
    # No fs/terminal offered: the adapter uses the sandbox's own files and shells.
    client_capabilities: ClassVar[dict[str, Any]] = {
        "fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False}

    # After the prompt's result and stdin's end, how long the adapter may take to exit before
    # it is stopped (an adapter that never exits on its own sets it short).
    exit_grace_seconds: ClassVar[float] = EXIT_GRACE_SECONDS

    # -- hooks ---------------------------------------------------------------------------

    def image_layer(self) -> ImageLayer | None:
        return None

    def validate(self, agent_spec: AgentSpec) -> list[str]:
        problems = []
        if getattr(agent_spec, "script", None) is not None:
            problems.append("script: only the 'command' agent takes a script")
        if getattr(agent_spec, "command", None) is not None and not isinstance(
                self, CommandAcpAgent):
            problems.append("command: only the 'acp' agent takes a command")
        return problems

    def adapter_argv(self, ctx: AgentContext) -> list[str]:
        """The adapter's command line in the sandbox (an argv, never run by a shell)."""
        raise NotImplementedError

    def adapter_env(self, ctx: AgentContext, gateway: GatewayAccess | None) -> dict[str, str]:
        """Variables for the adapter beyond the variant's own (gateway address, run token)."""
        return {}

    def sandbox_files(self, ctx: AgentContext,
                      gateway: GatewayAccess | None) -> dict[str, bytes]:
        """Files put into the sandbox before the adapter starts: path -> content (owned
        by the agent user, mode 0600)."""
        return {}

    def session_mode(self, ctx: AgentContext, session: Mapping[str, Any]) -> str | None:
        """The mode to set after session/new (one that runs unattended), or None."""
        return None

    def session_config(self, ctx: AgentContext,
                       session: Mapping[str, Any]) -> dict[str, str]:
        """session/set_config_option values to set after session/new (configId -> value)."""
        return {}

    def model_name(self, ctx: AgentContext) -> str | None:
        return model_fields(ctx.variant.agent.model)[0]

    def after_session(self, ctx: AgentContext, session_id: str | None) -> None:
        """Best-effort collection once the adapter has stopped (e.g. its session file)."""
        return None

    # -- the driver ----------------------------------------------------------------------

    def run(self, ctx: AgentContext) -> AgentOutcome:
        gateway = None
        access = None
        handle = None
        if self.model_api is not None:
            from ..gateway_service import gateway_for

            gateway = gateway_for(ctx.services)
            limits = ctx.variant.limits
            handle = gateway.open_run(
                f"{ctx.run_id}/{ctx.variant.id}", bodies_dir=ctx.paths.api_bodies,
                traces_dir=ctx.paths.traces, trace_id=ctx.trace_id,
                max_cost_usd=limits.max_cost_usd,
                max_turns=int(limits.max_turns) if limits.max_turns is not None else None,
                secrets=list(ctx.secret_values), attempt=ctx.attempt, model_api=self.model_api)
            access = GatewayAccess(f"http://{ctx.gateway_host}:{gateway.port}", handle.token,
                                   handle)
        redactor = Redactor(ctx.secret_values)
        ctx.trace.stream_to(ctx.paths.agent_trace, redactor.bytes)
        state = SessionState()
        process: SandboxProcess | None = None
        try:
            self._put_files(ctx, self.sandbox_files(ctx, access))
            env = {**ctx.env, **self.adapter_env(ctx, access)}
            process = ctx.sandbox.start(self.adapter_argv(ctx), phase="agent",
                                        name=self.name, user=AGENT_USER, env=env)
            self._session(ctx, process, state, handle)
        finally:
            ctx.trace.close_stream()
            if gateway is not None and handle is not None:
                gateway.close_run(handle)
        code = process.wait(0) if process is not None else None
        outcome = AgentOutcome(name=self.name, timed_out=state.timed_out)
        session_error = state.error  # what the adapter said, kept in agent-raw.json
        if handle is not None:
            assert gateway is not None
            outcome.model_source = gateway.model_source(handle)
            # An adapter may end its turn normally after a failed model call: the gateway
            # knows better.
            if handle.unreachable:
                outcome.api_unreachable = handle.unreachable
                state.error = state.error or f"model API unreachable: {handle.unreachable}"
            elif handle.stopped_reason:
                state.stopped_reason = state.stopped_reason or handle.stopped_reason
            else:
                status = api_error_status(handle)
                if status is not None:
                    outcome.api_error_status = status
                    state.error = f"api_error: upstream status {status}"
        outcome.exit_code = exit_code_of(state, code)
        outcome.stopped_reason = state.stopped_reason
        if outcome.stopped_reason is None and state.error:
            outcome.stopped_reason = state.error
        fill_outcome(outcome, state, handle)
        model = self.model_name(ctx)
        if model:
            outcome.model = model
        if process is not None:
            link_or_copy(process.stderr_path, ctx.paths.agent_log)
            self.after_session(ctx, state.session_id)
        raw = {"sessionId": state.session_id, "result": state.prompt_result,
               "error": session_error,
               "exit_code": outcome.exit_code, "timed_out": outcome.timed_out,
               "stopped_reason": outcome.stopped_reason, "turns": outcome.turns,
               "cost_usd": outcome.cost_usd, "input_tokens": outcome.input_tokens,
               "output_tokens": outcome.output_tokens,
               "cache_read_input_tokens": outcome.cache_read_input_tokens,
               "cache_creation_input_tokens": outcome.cache_creation_input_tokens}
        write_atomic(ctx.paths.agent_raw,
                     redactor.bytes(json.dumps(raw, indent=2).encode() + b"\n"))
        return outcome

    def _put_files(self, ctx: AgentContext, files: Mapping[str, bytes]) -> None:
        if not files:
            return
        parents = sorted({posixpath.dirname(p) or "/" for p in files})
        # Made by the agent user, so the folders the adapter writes in are its own.
        made = ctx.sandbox.exec(argv=["mkdir", "-p", "--", *parents], phase="agent",
                                name=f"{self.name}-files", user=AGENT_USER)
        if made.exit_code != 0:
            raise SandboxError(f"cannot make {', '.join(parents)} for the {self.name} "
                               "agent's files")
        for path, content in files.items():
            ctx.sandbox.put_file(path, content, mode=0o600, uid=AGENT_UID)

    def _session(self, ctx: AgentContext, process: SandboxProcess, state: SessionState,
                 handle: RunHandle | None) -> None:
        deadline = time.monotonic() + float(ctx.timeout or DEFAULT_MAX_TIME)

        def on_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
            if method == "session/request_permission":
                return permission_answer(params, state.stopping)
            raise MethodNotFound(method)

        def on_notification(method: str, params: dict[str, Any]) -> None:
            if method == "session/update":
                state.note_update(params)

        conn = AcpConnection(process, FrameTracer(ctx.trace), on_request, on_notification)
        conn.start()

        def limit_reached() -> str | None:
            if handle is not None:
                if handle.stopped_reason:
                    return handle.stopped_reason
            return None

        def wait(call: PendingCall) -> dict[str, Any] | None:
            """The call's result, or None once a limit or the deadline stopped the session."""
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    state.timed_out = True
                    state.stopped_reason = (f"max_time_seconds exceeded: {ctx.timeout}"
                                            if ctx.timeout else
                                            f"default time limit exceeded: {DEFAULT_MAX_TIME}")
                    return None
                try:
                    return call.result(min(_POLL, left))
                except TimeoutError:
                    pass
                reason = limit_reached()
                if reason is not None:
                    state.stopped_reason = reason
                    return None

        try:
            init = wait(conn.call("initialize", {
                "protocolVersion": PROTOCOL_VERSION,
                "clientCapabilities": self.client_capabilities,
                "clientInfo": {"name": "pytest-axp", "version": _version()}}))
            if init is None:
                return self._stop(conn, process, state, None)
            session = wait(conn.call("session/new", {
                "cwd": WORKSPACE, "mcpServers": acp_mcp_servers(ctx.variant, ctx.env)}))
            if session is None:
                return self._stop(conn, process, state, None)
            state.session_id = str(session.get("sessionId") or "")
            mode = self.session_mode(ctx, session)
            if mode is not None:
                if wait(conn.call("session/set_mode", {"sessionId": state.session_id,
                                                       "modeId": mode})) is None:
                    return self._stop(conn, process, state, None)
            for config_id, value in self.session_config(ctx, session).items():
                try:
                    if wait(conn.call("session/set_config_option", {
                            "sessionId": state.session_id, "configId": config_id,
                            "value": value})) is None:
                        return self._stop(conn, process, state, None)
                except AcpError:
                    pass  # an option the model refuses: its answer is in the trace
            prompt = conn.call("session/prompt", {
                "sessionId": state.session_id,
                "prompt": [{"type": "text", "text": ctx.variant.prompt.prompt}]})
            result = wait(prompt)
            if result is None:
                return self._stop(conn, process, state, prompt)
            state.prompt_result = result
            if handle is not None and handle.stopped_reason:
                state.stopped_reason = handle.stopped_reason
        except (AcpError, AcpClosed) as e:
            state.error = str(e)
            if isinstance(e, AcpClosed):
                process.wait(EXIT_GRACE_SECONDS)
                return None
        except SandboxError as e:
            state.error = str(e)
        process.close_stdin()
        if process.wait(self.exit_grace_seconds) is None and not conn.closed.is_set():
            state.killed = True
            process.kill(timed_out=False)
            process.wait(EXIT_GRACE_SECONDS)
        return None

    def _stop(self, conn: AcpConnection, process: SandboxProcess, state: SessionState,
              prompt: PendingCall | None) -> None:
        """A limit or the deadline: cancel the prompt, give it a moment, then kill."""
        state.stopping = True
        if prompt is not None and state.session_id:
            conn.notify("session/cancel", {"sessionId": state.session_id})
            try:
                state.prompt_result = prompt.result(CANCEL_GRACE_SECONDS)
            except (TimeoutError, AcpError, AcpClosed):
                pass
        if state.timed_out or state.prompt_result is None:
            state.killed = True
            process.kill(timed_out=state.timed_out)
        else:
            process.close_stdin()
            if process.wait(self.exit_grace_seconds) is None:
                state.killed = True
                process.kill(timed_out=False)
        process.wait(EXIT_GRACE_SECONDS)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("pytest-axp")
    except Exception:
        return "0"


class CommandAcpAgent(AcpAgent):
    """`acp`: any ACP adapter the image or the setup installed, `command` split like a
    shell would (never run by one). The adapter gets every gateway address and the run
    token in the usual variables of each model API."""

    name = "acp"
    model_api: str | None = "anthropic-messages"

    def validate(self, agent_spec: AgentSpec) -> list[str]:
        problems = super().validate(agent_spec)
        command = getattr(agent_spec, "command", None)
        if not command or not str(command).strip():
            return [*problems, "command: the 'acp' agent needs a 'command' (the adapter to "
                               "start, e.g. \"my-agent --acp\")"]
        try:
            shlex.split(str(command))
        except ValueError as e:
            return [*problems, f"command: cannot be split into arguments: {e}"]
        return problems

    def adapter_argv(self, ctx: AgentContext) -> list[str]:
        return shlex.split(str(getattr(ctx.variant.agent, "command", "") or ""))

    def adapter_env(self, ctx: AgentContext, gateway: GatewayAccess | None) -> dict[str, str]:
        env: dict[str, str] = {}
        if gateway is not None:
            # The run token is good for every API the gateway speaks: an adapter finds its
            # own provider's variables, whichever it reads.
            env.update(ANTHROPIC_BASE_URL=gateway.base_url, ANTHROPIC_API_KEY=gateway.token,
                       OPENAI_BASE_URL=f"{gateway.base_url}/v1", OPENAI_API_KEY=gateway.token,
                       GOOGLE_GEMINI_BASE_URL=gateway.base_url, GEMINI_API_KEY=gateway.token,
                       AXP_MODEL_BASE_URL=gateway.base_url, AXP_MODEL_TOKEN=gateway.token)
        model = self.model_name(ctx)
        if model:
            env["AXP_MODEL"] = model
        return env
