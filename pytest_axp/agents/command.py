"""The `command` agent (ours): a bash script run as the agent, e.g. an oracle or a CLI agent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..record.summary import AgentOutcome
from ..sandbox.base import AGENT_USER, ImageLayer
from .base import AgentContext

if TYPE_CHECKING:
    from ..experiment import Agent as AgentSpec

_TRACE_TEXT_LIMIT = 1 << 20


class CommandAgent:
    name = "command"
    model_api: str | None = None

    def image_layer(self) -> ImageLayer | None:
        return None

    def validate(self, agent_spec: AgentSpec) -> list[str]:
        if not getattr(agent_spec, "script", None):
            return ["script: the 'command' agent needs a 'script' (the bash it runs)"]
        if getattr(agent_spec, "command", None) is not None:
            return ["command: only the 'acp' agent takes a command"]
        return []

    def run(self, ctx: AgentContext) -> AgentOutcome:
        script = ctx.variant.agent.script or ""
        result = ctx.sandbox.exec(script, phase="agent", name="command", user=AGENT_USER,
                                  env=ctx.env, timeout=ctx.timeout)
        link_or_copy(result.stdout_path, ctx.paths.agent_raw)
        link_or_copy(result.stderr_path, ctx.paths.agent_log)
        with open(result.stdout_path, "rb") as f:
            text = f.read(_TRACE_TEXT_LIMIT).decode("utf-8", errors="replace")
        if text:
            ctx.trace.agent_text(text)
        return AgentOutcome(name=self.name, exit_code=result.exit_code,
                            timed_out=result.timed_out)


def link_or_copy(src: Path, dst: Path) -> None:
    """Artifacts that duplicate a command capture share its bytes on disk."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
