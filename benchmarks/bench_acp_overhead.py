"""The `claude` agent's harness overhead for a one-tool ACP session, start-up to result.

Harness: `axp local run` of a one-tool experiment (scripted model); its cost is the agent
command's duration in commands.jsonl (adapter start, the ACP session through our client,
frames traced, limits watched, adapter stopped). Adapter alone: the same adapter in a
container of the same image, `docker exec -i` with the same frames written by a bare loop,
against a gateway with the same script; timed from exec to the prompt's result.

    python benchmarks/bench_acp_overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from pytest_axp.agents.claude_acp import ADAPTER_BIN, ClaudeAcpAgent
from pytest_axp.agents.registry import agent_image
from pytest_axp.gateway import ModelGateway, ModelScript
from pytest_axp.sandbox.docker_image import ensure_image

SCRIPT = """
turns:
  - tool_use: {name: Bash, input: {command: "echo hi > /workspace/out.txt", description: w}}
  - text: done
usage: {input_tokens: 100, output_tokens: 20}
"""
EXPERIMENT = """
schema_version: 2
id: bench-acp
name: Bench ACP
agents: [{name: claude, model: claude-sonnet-4-5}]
prompts: [{id: go, prompt: write out.txt}]
tests: {}
limits: {max_time_seconds: 300}
"""


def harness_once(folder: Path) -> float:
    subprocess.run([sys.executable, "-m", "axp_cli", "local", "run", "exp.yaml",
                    "--model-script", "model.yaml"], cwd=folder, check=True,
                   capture_output=True)
    runs = sorted((folder / ".axp" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    index = runs[-1] / "results" / "default" / "commands.jsonl"
    for line in index.read_text().splitlines():
        record = json.loads(line)
        if record["phase"] == "agent" and record["name"] == "claude":
            return float(record["duration_seconds"])
    raise RuntimeError("no agent command recorded")


def adapter_once(image: str, gateway: ModelGateway, host: str, tmp: Path) -> float:
    handle = gateway.open_run(f"bench/{time.time_ns()}", bodies_dir=tmp / "bodies",
                              traces_dir=tmp / "traces", trace_id="0" * 32,
                              max_cost_usd=None)
    box = docker.from_env().containers.run(
        image, ["sleep", "infinity"], detach=True, init=True, user="agent",
        extra_hosts={"host.docker.internal": "host-gateway"}, working_dir="/workspace")
    try:
        env = {"ANTHROPIC_BASE_URL": f"http://{host}:{gateway.port}",
               "ANTHROPIC_API_KEY": handle.token, "IS_SANDBOX": "1", "HOME": "/home/agent",
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
        argv = ["docker", "exec", "-i", "-u", "agent"]
        for k, v in env.items():
            argv += ["-e", f"{k}={v}"]
        start = time.perf_counter()
        proc = subprocess.Popen([*argv, box.id, ADAPTER_BIN], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdin is not None and proc.stdout is not None

        def send(msg: dict) -> None:
            proc.stdin.write((json.dumps(msg) + "\n").encode())
            proc.stdin.flush()

        def until(request_id: int) -> dict:
            for line in proc.stdout:
                msg = json.loads(line)
                if msg.get("method") == "session/request_permission":
                    option = next(o for o in msg["params"]["options"]
                                  if o["kind"] == "allow_always")
                    send({"jsonrpc": "2.0", "id": msg["id"], "result": {"outcome": {
                        "outcome": "selected", "optionId": option["optionId"]}}})
                elif msg.get("id") == request_id and "method" not in msg:
                    return msg
            raise RuntimeError("adapter exited")

        send({"jsonrpc": "2.0", "id": 0, "method": "initialize",
              "params": {"protocolVersion": 1, "clientCapabilities": {}}})
        until(0)
        send({"jsonrpc": "2.0", "id": 1, "method": "session/new",
              "params": {"cwd": "/workspace", "mcpServers": []}})
        sid = until(1)["result"]["sessionId"]
        send({"jsonrpc": "2.0", "id": 2, "method": "session/set_mode",
              "params": {"sessionId": sid, "modeId": "default"}})
        until(2)
        send({"jsonrpc": "2.0", "id": 3, "method": "session/prompt", "params": {
            "sessionId": sid, "prompt": [{"type": "text", "text": "write out.txt"}]}})
        until(3)
        proc.stdin.close()
        proc.wait(30)
        return time.perf_counter() - start
    finally:
        gateway.close_run(handle)
        box.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "exp.yaml").write_text(EXPERIMENT)
        (tmp / "model.yaml").write_text(SCRIPT)
        image = agent_image(ensure_image(None, tmp), ClaudeAcpAgent(), tmp)
        host = docker.from_env().networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
        gateway = ModelGateway(script=ModelScript.from_yaml(SCRIPT))
        gateway.start()
        try:
            harness_once(tmp)  # warm-up: images, caches
            adapter_once(image, gateway, host, tmp)
            harness = [harness_once(tmp) for _ in range(args.rounds)]
            alone = [adapter_once(image, gateway, host, tmp) for _ in range(args.rounds)]
        finally:
            gateway.stop()
    h, a = statistics.median(harness), statistics.median(alone)
    print(f"claude over ACP, one-tool session, start-up to result ({args.rounds} rounds, "
          f"median): harness {h:.2f} s, adapter alone {a:.2f} s, overhead {h - a:+.2f} s "
          f"({h / a:.2f}x)")


if __name__ == "__main__":
    main()
