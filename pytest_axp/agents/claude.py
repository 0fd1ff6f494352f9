"""The `claude-code` agent: the real Claude Code CLI run directly (`claude -p`), behind the
model gateway.

The sandbox never sees the model key: it gets the gateway's address and a per-run token.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from typing import TYPE_CHECKING, Any

from ..record.summary import AgentOutcome
from ..sandbox.base import AGENT_UID, AGENT_USER, ImageLayer, SandboxError
from ..secrets import Redactor
from .base import AgentContext, model_fields
from .claude_trace import parse_session, session_to_trace
from .command import link_or_copy

if TYPE_CHECKING:
    from ..experiment import Agent as AgentSpec
    from ..experiment import ResolvedVariant

CONFIG_DIR = "/axp/claude-config"
MODEL_API = "anthropic-messages"  # the gateway's name for the API Claude Code speaks
MCP_CONFIG = f"{CONFIG_DIR}/axp-mcp.json"
DEFAULT_MAX_TURNS = 100


def _mcp_config(variant: ResolvedVariant, env: dict[str, str]) -> dict[str, Any] | None:
    servers: dict[str, Any] = {}
    for server in variant.mcp_servers:
        spec: dict[str, Any] = {}
        kind = server.type or ("stdio" if server.command else "http")
        if kind == "stdio":
            spec.update(type="stdio", command=server.command, args=list(server.args or []))
            if server.env:
                spec["env"] = {e.name: env.get(e.from_ or e.name, "") for e in server.env}
        else:
            spec.update(type=kind, url=server.url)
            if server.headers:
                spec["headers"] = {h.name: h.value for h in server.headers}
        servers[server.name] = spec
    return {"mcpServers": servers} if servers else None


class ClaudeAgent:
    name = "claude-code"
    model_api: str | None = MODEL_API

    def image_layer(self) -> ImageLayer | None:
        from .claude_layer import claude_layer

        return claude_layer()

    def validate(self, agent_spec: AgentSpec) -> list[str]:
        if getattr(agent_spec, "script", None) is not None:
            return ["script: only the 'command' agent takes a script"]
        if getattr(agent_spec, "command", None) is not None:
            return ["command: only the 'acp' agent takes a command"]
        return []

    def run(self, ctx: AgentContext) -> AgentOutcome:
        from ..gateway_service import gateway_for

        gateway = gateway_for(ctx.services)
        variant = ctx.variant
        limits = variant.limits
        handle = gateway.open_run(
            f"{ctx.run_id}/{variant.id}", bodies_dir=ctx.paths.api_bodies,
            traces_dir=ctx.paths.traces, trace_id=ctx.trace_id,
            max_cost_usd=limits.max_cost_usd, secrets=list(ctx.secret_values),
            attempt=ctx.attempt, model_api=MODEL_API)
        session_id = str(uuid.uuid4())
        model, extra = model_fields(variant.agent.model)
        base_url = f"http://{ctx.gateway_host}:{gateway.port}"
        env = {
            **ctx.env,
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": handle.token,
            "CLAUDE_CONFIG_DIR": CONFIG_DIR,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "2",
            "API_TIMEOUT_MS": "600000",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "CLAUDE_CODE_ENHANCED_TELEMETRY_BETA": "1",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": base_url,
            "OTEL_EXPORTER_OTLP_HEADERS": f"x-axp-run-token={handle.token}",
            "OTEL_LOG_TOOL_DETAILS": "1",
            "OTEL_METRIC_EXPORT_INTERVAL": "5000",
            "OTEL_LOGS_EXPORT_INTERVAL": "2000",
        }
        thinking = extra.get("thinking")
        if isinstance(thinking, bool) and not thinking:
            env["MAX_THINKING_TOKENS"] = "0"
        elif isinstance(thinking, int) and not isinstance(thinking, bool):
            env["MAX_THINKING_TOKENS"] = str(thinking)
        # An argv, never a shell string: the prompt, model, effort and MCP servers come
        # from the experiment file and reach claude as they are written.
        argv = ["claude", "-p", variant.prompt.prompt, "--output-format", "json",
                "--max-turns", str(int(limits.max_turns or DEFAULT_MAX_TURNS)),
                "--session-id", session_id, "--dangerously-skip-permissions"]
        if model:
            argv += ["--model", model]
        if extra.get("effort"):
            argv += ["--effort", str(extra["effort"])]
        try:
            mcp = _mcp_config(variant, ctx.env)
            if mcp:
                # A file, not an argument: it may hold secret values, which a command
                # record must not carry (JSON escaping would hide them from redaction).
                ctx.sandbox.put_file(MCP_CONFIG, json.dumps(mcp).encode(), mode=0o600,
                                     uid=AGENT_UID)
                argv += ["--mcp-config", MCP_CONFIG]
            result = ctx.sandbox.exec(argv=argv, phase="agent", name="claude",
                                      user=AGENT_USER, env=env, timeout=ctx.timeout)
        finally:
            gateway.close_run(handle)
        link_or_copy(result.stdout_path, ctx.paths.agent_raw)
        link_or_copy(result.stderr_path, ctx.paths.agent_log)
        self._copy_session(ctx, session_id)
        outcome = AgentOutcome(name=self.name, exit_code=result.exit_code,
                               timed_out=result.timed_out,
                               stopped_reason=handle.stopped_reason or (
                                   f"model API unreachable: {handle.unreachable}"
                                   if handle.unreachable else None),
                               model_source=gateway.model_source(handle),
                               api_unreachable=handle.unreachable)
        if not _fill_from_cli_json(outcome, ctx.paths.agent_raw.read_bytes()):
            # Killed or silent: the gateway's own counts are what we know.
            outcome.turns = handle.requests
            outcome.cost_usd = round(handle.cost_usd, 6)
            outcome.input_tokens = handle.input_tokens
            outcome.output_tokens = handle.output_tokens
            outcome.cache_creation_input_tokens = handle.cache_creation_input_tokens
            outcome.cache_read_input_tokens = handle.cache_read_input_tokens
        if outcome.stopped_reason is None and result.timed_out:
            outcome.stopped_reason = f"max_time_seconds exceeded: {ctx.timeout}"
        if outcome.stopped_reason is None and outcome.subtype == "error_max_turns":
            outcome.stopped_reason = f"max_turns reached: {limits.max_turns}"
        if model:
            outcome.model = model
        return outcome

    def _copy_session(self, ctx: AgentContext, session_id: str) -> None:
        # Best effort (seed 004): a missing session file does not fail the run.
        path = f"{CONFIG_DIR}/projects/-workspace/{session_id}.jsonl"
        try:
            buf = io.BytesIO(b"".join(ctx.sandbox.get_archive(path)))
            with tarfile.open(fileobj=buf) as tar:
                member = tar.next()
                f = tar.extractfile(member) if member else None
                data = f.read() if f is not None else b""
        except (SandboxError, tarfile.TarError, AttributeError, OSError):
            return
        data = Redactor(ctx.secret_values).bytes(data)
        ctx.paths.agent_session.write_bytes(data)
        session_to_trace(parse_session(data.decode("utf-8", "replace").splitlines()),
                         ctx.trace)


def _fill_from_cli_json(outcome: AgentOutcome, raw: bytes) -> bool:
    try:
        result = json.loads(raw.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False
    if not isinstance(result, dict) or result.get("type") != "result":
        return False
    usage = result.get("usage") or {}
    outcome.turns = int(result.get("num_turns") or 0)
    outcome.cost_usd = float(result.get("total_cost_usd") or 0.0)
    outcome.input_tokens = int(usage.get("input_tokens") or 0)
    outcome.output_tokens = int(usage.get("output_tokens") or 0)
    outcome.cache_creation_input_tokens = int(usage.get("cache_creation_input_tokens") or 0)
    outcome.cache_read_input_tokens = int(usage.get("cache_read_input_tokens") or 0)
    outcome.subtype = result.get("subtype")
    if result.get("is_error"):
        reason = result.get("terminal_reason") or result.get("subtype")
        status = result.get("api_error_status")
        if reason == "api_error" and isinstance(status, int) and not isinstance(status, bool):
            outcome.api_error_status = status
        if reason == "api_error" and outcome.stopped_reason is None:
            outcome.stopped_reason = f"api_error: upstream status {status}"
    return True
