"""--agent-network gateway: setup has the network; the agent reaches the gateway only."""

from __future__ import annotations

import http.server
import shutil
import threading
from pathlib import Path

import pytest

from pytest_axp.sandbox.docker import client
from pytest_axp.sandbox.docker_network import ensure_agent_network

from .conftest import summary

EXAMPLES = Path(__file__).resolve().parents[2] / "example_experiments"


@pytest.fixture
def host_server():
    """A server on the host's agent-network address, where the model gateway would be."""
    address = ensure_agent_network(client())
    server = http.server.ThreadingHTTPServer((address, 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield address, server.server_address[1]
    server.shutdown()


def test_setup_has_network_and_the_agent_only_the_host(project, host_server):
    address, port = host_server
    project.write("net.yaml", f"""
schema_version: 2
id: net
name: Network
agents:
  - name: command
    script: |
      # (`! cmd` would not stop a `set -e` script: each check exits on its own.)
      if getent hosts deb.debian.org; then echo "resolved an outside name"; exit 11; fi
      if curl -s -m 3 -o /dev/null http://172.17.0.1:{port}/; then exit 12; fi
      curl -s -m 5 -o /dev/null -w '%{{http_code}}' http://{address}:{port}/ > host.txt
prompts: [go]
environments:
  - name: online
    setup: getent hosts deb.debian.org
tests:
  application:
    - name: reached-the-host
      script: test "$(cat host.txt)" = 200
limits: {{max_time_seconds: 60}}
""")
    res = project.axp("local", "run", "net.yaml", "--agent-network", "gateway")
    assert res.returncode == 0, res.stdout + res.stderr
    s = summary(project.only_run(), "default")
    assert s["status"] == "pass" and s["agent"]["exit_code"] == 0
    # The same experiment without the mode: the agent still has setup's network.
    res = project.axp("local", "run", "net.yaml")
    assert res.returncode == 1
    newest = max(project.runs(), key=lambda r: r.run_id)
    assert summary(newest, "default")["agent"]["exit_code"] == 11


def test_claude_reaches_its_gateway_when_isolated(project):
    shutil.copy(EXAMPLES / "claude-hello.yaml", project.root)
    shutil.copy(EXAMPLES / "claude-hello.model.yaml", project.root)
    res = project.axp("local", "run", "claude-hello.yaml", "--agent-network", "gateway",
                      "--model-script", "claude-hello.model.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert summary(project.only_run(), "default")["agent"]["turns"] == 3
