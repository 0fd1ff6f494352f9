"""Each ACP agent's harness overhead for a one-tool session, start-up to result.

Harness: `axp local run` of a one-tool experiment for one agent (scripted model); its cost is
the agent command's duration in commands.jsonl (adapter start, the ACP session through our
client, frames traced, limits watched, adapter stopped). Adapter alone: the same adapter in a
ready container of the same image, `docker exec -i` with the same frames written by a bare
loop, against a gateway with the same script; timed from exec to the adapter's exit after the
prompt's result. The adapter alone is set up from the agent's own hooks (argv, env, files,
session mode and config options, model API), called with a context made from the same
experiment's resolved variant, so the two sides start the same program the same way.

One neutral model script serves every agent: `shell` becomes each agent's own shell tool.
Rounds alternate harness and adapter alone (each first in every other round), so load from
other users of the machine falls on both sides alike; the figures are medians. Each line also
gives the medians from start to the prompt's result: the rest is the adapter's exit after its
stdin closes (both sides wait the agent's exit_grace_seconds for it, then kill it).

    python benchmarks/bench_acp_overhead.py [--rounds N] [--agents claude,codex,gemini]
"""

from __future__ import annotations

import argparse
import io
import json
import posixpath
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import docker
from docker.models.containers import Container

from pytest_axp.agents.acp import AcpAgent, GatewayAccess, permission_answer
from pytest_axp.agents.acp_client import PROTOCOL_VERSION
from pytest_axp.agents.base import AgentContext
from pytest_axp.agents.registry import agent_image, installed_registry
from pytest_axp.experiment import ResolvedVariant, load_and_resolve
from pytest_axp.gateway import ModelGateway, ModelScript
from pytest_axp.sandbox.base import AGENT_UID, AGENT_USER, WORKSPACE
from pytest_axp.sandbox.docker_image import ensure_image

# The models of example_experiments/three-agents.yaml.
MODELS = {"claude": "claude-sonnet-4-5", "codex": "gpt-5.2", "gemini": "gemini-2.5-flash"}
GATEWAY_HOST = "host.docker.internal"   # what the harness gives a sandbox on the open network
SCRIPT = """
turns:
  - tool_use: {name: shell, input: {command: "echo hi > /workspace/out.txt"}}
  - text: done
usage: {input_tokens: 100, output_tokens: 20}
"""
EXPERIMENT = """
schema_version: 2
id: bench-acp
name: Bench ACP
agents: [{{name: {agent}, model: {model}}}]
prompts: [{{id: go, prompt: Write hi into /workspace/out.txt using the shell.}}]
tests: {{}}
limits: {{max_time_seconds: 300}}
"""


def hook_context(variant: ResolvedVariant) -> AgentContext:
    """A context for the agent's set-up hooks, which read only the variant; anything else a
    hook touched would fail loudly here, not be faked."""
    none = cast(Any, None)
    return AgentContext(variant=variant, sandbox=none, paths=none, env={}, timeout=None,
                        trace=none, run_id="bench", repeat=1, services=none,
                        gateway_host=GATEWAY_HOST)


def harness_once(folder: Path, agent: str) -> tuple[float, float]:
    """(the agent command's duration, from its start to the prompt's result)."""
    subprocess.run([sys.executable, "-m", "axp_cli", "local", "run", "exp.yaml",
                    "--model-script", "model.yaml"], cwd=folder, check=True,
                   capture_output=True)
    runs = sorted((folder / ".axp" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    for index in (runs[-1] / "results").glob("*/commands.jsonl"):
        for line in index.read_text().splitlines():
            record = json.loads(line)
            if record["phase"] == "agent" and record["name"] == agent:
                trace = index.parent / "agent-trace.jsonl"
                events = [json.loads(e) for e in trace.read_text().splitlines()]
                answered = [e["ts_ns"] / 1e9 for e in events
                            if e.get("kind") == "response" and e.get("method") == "session/prompt"]
                return (float(record["duration_seconds"]),
                        answered[-1] - float(record["started_at_epoch"]))
    raise RuntimeError(f"no {agent} command recorded in {runs[-1]}")


def put_files(box: Container, files: dict[str, bytes]) -> None:
    """The agent's sandbox files, as the harness puts them: folders made by the agent user,
    files owned by it, mode 0600."""
    if not files:
        return
    parents = sorted({posixpath.dirname(p) or "/" for p in files})
    made = box.exec_run(["mkdir", "-p", "--", *parents], user=AGENT_USER)
    if made.exit_code != 0:
        raise RuntimeError(f"mkdir {parents}: {made.output!r}")
    for path, content in files.items():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(posixpath.basename(path))
            info.size, info.mode, info.uid, info.gid = len(content), 0o600, AGENT_UID, AGENT_UID
            tar.addfile(info, io.BytesIO(content))
        box.put_archive(posixpath.dirname(path) or "/", buf.getvalue())


def adapter_once(agent: AcpAgent, variant: ResolvedVariant, image: str,
                 gateway: ModelGateway, tmp: Path) -> tuple[float, float]:
    """(exec to the adapter's exit, exec to the prompt's result)."""
    assert agent.model_api is not None
    ctx = hook_context(variant)
    handle = gateway.open_run(f"bench/{time.time_ns()}", bodies_dir=tmp / "bodies",
                              traces_dir=tmp / "traces", trace_id="0" * 32,
                              max_cost_usd=None, model_api=agent.model_api)
    access = GatewayAccess(f"http://{GATEWAY_HOST}:{gateway.port}", handle.token, handle)
    box = docker.from_env().containers.run(
        image, ["sleep", "infinity"], detach=True, init=True, user=AGENT_USER,
        extra_hosts={GATEWAY_HOST: "host-gateway"}, working_dir=WORKSPACE)
    proc: subprocess.Popen[bytes] | None = None
    try:
        put_files(box, agent.sandbox_files(ctx, access))
        argv = ["docker", "exec", "-i", "-u", AGENT_USER, "-w", WORKSPACE]
        for k, v in agent.adapter_env(ctx, access).items():
            argv += ["-e", f"{k}={v}"]
        start = time.perf_counter()
        proc = subprocess.Popen([*argv, str(box.id), *agent.adapter_argv(ctx)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout
        ids = iter(range(1_000_000))

        def send(msg: dict[str, Any]) -> None:
            stdin.write((json.dumps({"jsonrpc": "2.0", **msg}) + "\n").encode())
            stdin.flush()

        def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
            request_id = next(ids)
            send({"id": request_id, "method": method, "params": params})
            for line in stdout:
                msg = json.loads(line)
                if msg.get("method") == "session/request_permission":
                    send({"id": msg["id"], "result": permission_answer(msg["params"], False)})
                elif msg.get("id") == request_id and "method" not in msg:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return cast(dict[str, Any], msg["result"])
            raise RuntimeError(f"{agent.name}: the adapter exited during {method}")

        call("initialize", {"protocolVersion": PROTOCOL_VERSION,
                            "clientCapabilities": agent.client_capabilities,
                            "clientInfo": {"name": "bench", "version": "0"}})
        session = call("session/new", {"cwd": WORKSPACE, "mcpServers": []})
        sid = session["sessionId"]
        mode = agent.session_mode(ctx, session)
        if mode is not None:
            call("session/set_mode", {"sessionId": sid, "modeId": mode})
        for config_id, value in agent.session_config(ctx, session).items():
            call("session/set_config_option",
                 {"sessionId": sid, "configId": config_id, "value": value})
        result = call("session/prompt", {"sessionId": sid, "prompt": [
            {"type": "text", "text": variant.prompt.prompt}]})
        if result.get("stopReason") != "end_turn" or handle.turns != 2:
            raise RuntimeError(f"{agent.name}: the session did not run the script "
                               f"({result}, {handle.turns} model turns)")
        to_result = time.perf_counter() - start
        stdin.close()
        try:  # the harness also gives the adapter this long to exit, then kills it
            proc.wait(agent.exit_grace_seconds)
        except subprocess.TimeoutExpired:
            pass
        return time.perf_counter() - start, to_result
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        gateway.close_run(handle)
        box.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agents", default=",".join(MODELS),
                        help="comma-separated, of: " + ", ".join(MODELS))
    args = parser.parse_args()
    names = [n.strip() for n in args.agents.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        parser.error(f"--agents: unknown {', '.join(unknown) or '(none)'}; "
                     f"choose from {', '.join(MODELS)}")
    registry = installed_registry()
    lines = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = ensure_image(None, tmp)
        gateway = ModelGateway(script=ModelScript.from_yaml(SCRIPT))
        gateway.start()
        try:
            for name in names:
                folder = tmp / name
                folder.mkdir()
                (folder / "exp.yaml").write_text(EXPERIMENT.format(agent=name,
                                                                   model=MODELS[name]))
                (folder / "model.yaml").write_text(SCRIPT)
                variant = load_and_resolve(folder / "exp.yaml")[0]
                agent = registry.get(name)
                if not isinstance(agent, AcpAgent):
                    raise SystemExit(f"{name}: not an ACP agent here ({type(agent).__name__})")
                image = agent_image(base, agent, tmp)
                harness_once(folder, name)  # warm-up: images, caches
                adapter_once(agent, variant, image, gateway, folder)
                harness, alone = [], []
                for i in range(args.rounds):
                    # Each side goes first in every other round: the engine's clean-up
                    # after a run falls on both alike.
                    for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                        if side == 0:
                            harness.append(harness_once(folder, name))
                        else:
                            alone.append(adapter_once(agent, variant, image, gateway, folder))
                h, a = (statistics.median(t for t, _ in harness),
                        statistics.median(t for t, _ in alone))
                hr, ar = (statistics.median(r for _, r in harness),
                          statistics.median(r for _, r in alone))
                line = (f"{name:<7} harness {h:6.2f} s, adapter alone {a:6.2f} s, "
                        f"overhead {h - a:+.2f} s ({h / a:.2f}x); to the result "
                        f"{hr:.2f} s against {ar:.2f} s")
                lines.append(line)
                print(line, flush=True)
                # Per round, total/to-result: where the time went and how much it varied.
                print(f"        rounds: harness {_list(harness)}; alone {_list(alone)}",
                      flush=True)
        finally:
            gateway.stop()
    print(f"\nACP agents, one-tool session, start-up to result (medians of {args.rounds} "
          "rounds):")
    print("\n".join(lines))


def _list(rounds: list[tuple[float, float]]) -> str:
    return ", ".join(f"{total:.2f}/{to_result:.2f}" for total, to_result in rounds)


if __name__ == "__main__":
    main()
