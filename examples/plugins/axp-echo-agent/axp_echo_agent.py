"""An example pytest-axp plugin: the `echo` agent.

It writes the experiment's prompt to /workspace/prompt.txt and prints it. It needs no
model and nothing beyond the base sandbox image.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from pytest_axp.agents import AgentContext
from pytest_axp.record.summary import AgentOutcome
from pytest_axp.sandbox.base import AGENT_USER, ImageLayer

# The prompt is the shell's "$1", an argument: never part of the script's text.
WRITE_AND_PRINT = 'printf "%s\\n" "$1" > /workspace/prompt.txt && cat /workspace/prompt.txt'


class EchoAgent:
    name = "echo"
    model_api: str | None = None  # it calls no model

    def image_layer(self) -> ImageLayer | None:
        return None  # the base image has `sh` and `cat`

    def validate(self, agent_spec: Any) -> list[str]:
        if getattr(agent_spec, "script", None) is not None:
            return ["script: the echo agent takes no script (it echoes the prompt)"]
        return []

    def run(self, ctx: AgentContext) -> AgentOutcome:
        result = ctx.sandbox.exec(
            argv=["sh", "-c", WRITE_AND_PRINT, "echo", ctx.variant.prompt.prompt],
            phase="agent", name="echo", user=AGENT_USER, env=ctx.env, timeout=ctx.timeout)
        shutil.copyfile(result.stdout_path, ctx.paths.agent_raw)
        shutil.copyfile(result.stderr_path, ctx.paths.agent_log)
        text = result.stdout_path.read_text(errors="replace")
        if text:
            ctx.trace.agent_text(text)
        return AgentOutcome(name=self.name, exit_code=result.exit_code,
                            timed_out=result.timed_out)


@pytest.hookimpl
def pytest_axp_agent(name: str, config: pytest.Config | None) -> EchoAgent | None:
    return EchoAgent() if name == "echo" else None


@pytest.hookimpl
def pytest_axp_agent_names(config: pytest.Config | None) -> list[str]:
    return ["echo"]
