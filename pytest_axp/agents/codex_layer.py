"""What the `codex` agent adds to the base sandbox image: the pinned codex-acp binary (Zed's
ACP adapter, codex built in), and the codex configuration that points it at the gateway."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..sandbox.base import ImageLayer
from ..sandbox.npm_fetch import cache_dir, given_file, npm_arch, packed_file

# The codex-acp release the `codex` agent runs (codex 0.137 inside); pinned so runs are
# comparable.
CODEX_ACP_VERSION = "0.16.0"
# Not under /tmp (codex warns about that), owned by the agent user (the Dockerfile makes it).
CODEX_HOME = "/axp/codex-home"
# The provider's name in config.toml, and the variable its key (the run token) is read from.
PROVIDER = "axp"
TOKEN_ENV = "OPENAI_API_KEY"


def _dockerfile() -> bytes:
    return (resources.files("pytest_axp.agents") / "codex_docker" / "Dockerfile").read_bytes()


def codex_layer(version: str = CODEX_ACP_VERSION) -> ImageLayer:
    """The layer: keyed by the Dockerfile and the version, so the binary is fetched only when
    an image with that key does not exist yet."""
    dockerfile = _dockerfile()

    def context(log: Callable[[str], None] | None) -> dict[str, bytes | Path]:
        return {"Dockerfile": dockerfile, "codex-acp": codex_acp_binary(version, log=log)}

    return ImageLayer(name="codex", key=f"{version}\0{dockerfile.decode()}", context=context)


def codex_acp_binary(version: str = CODEX_ACP_VERSION,
                     log: Callable[[str], None] | None = None) -> Path:
    """The codex-acp binary for this machine: $AXP_CODEX_ACP_BINARY, else a cached copy, else
    `npm pack` of the platform package on the host."""
    given = given_file("AXP_CODEX_ACP_BINARY")
    if given is not None:
        return given
    arch = npm_arch()
    target = cache_dir() / f"codex-acp-{version}-linux-{arch}" / "codex-acp"
    return packed_file(f"@zed-industries/codex-acp-linux-{arch}@{version}", "bin/codex-acp",
                       target, needed_by="the codex agent (or AXP_CODEX_ACP_BINARY=/path/to/"
                       "codex-acp)", log=log)


def _toml(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes), whatever the value holds.
    return json.dumps(value, ensure_ascii=False)


def codex_config(gateway_url: str, model: str | None, *, token_env: str = TOKEN_ENV,
                 reasoning_effort: str | None = None) -> str:
    """`$CODEX_HOME/config.toml`: codex asks `model` through the gateway's Responses API
    (`<gateway>/v1`, key from `token_env`), runs commands without asking and without its
    bubblewrap sandbox (which cannot start inside Docker: the sandbox is the container), and
    makes no other network calls it can be told not to make."""
    lines = [f"model = {_toml(model)}"] if model else []  # none: codex's default
    lines += [
        f"model_provider = {_toml(PROVIDER)}",
        'approval_policy = "never"',
        'sandbox_mode = "danger-full-access"',
        "check_for_update_on_startup = false",
    ]
    if reasoning_effort:
        lines.append(f"model_reasoning_effort = {_toml(reasoning_effort)}")
    lines += [
        "",
        "[analytics]",
        "enabled = false",
        "",
        f"[model_providers.{PROVIDER}]",
        'name = "axp gateway"',
        f"base_url = {_toml(gateway_url.rstrip('/') + '/v1')}",
        f"env_key = {_toml(token_env)}",
        'wire_api = "responses"',
        # the gateway refuses for good with a 402; other failures are the agent's to retry
        "request_max_retries = 2",
        "stream_max_retries = 2",
    ]
    return "\n".join(lines) + "\n"
