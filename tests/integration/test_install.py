"""scripts/install.sh sets up a stock Debian 12 python3 (PEP 668, no pip, no venv) and refuses
an interpreter older than 3.11."""

from __future__ import annotations

import ast
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STOCK_IMAGE = "debian:bookworm"
LABEL = "pytest-axp.test"
CA_IN_CONTAINER = "/opt/axp-test/ca.pem"
# Folders of a checkout that are never part of what a user copies or clones.
NOT_SOURCE = {"__pycache__", "build", "dist"}
# pip settings that concern the network; everything else in the machine's pip configuration
# (find-links, constraints, local indexes) names paths that do not exist in the container.
NETWORK_SETTINGS = ("index-url", "extra-index-url", "trusted-host", "proxy", "timeout",
                    "default-timeout", "retries")
PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def pip_config(listing: str) -> dict[str, str]:
    """`pip config list` output as {setting: value}; environment variables win over files."""
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in listing.splitlines():
        m = re.match(r"^(:env:|global|install)\.([\w-]+)=(.*)$", line.strip())
        if not m:
            continue
        try:
            value = ast.literal_eval(m.group(3))
        except (ValueError, SyntaxError):
            continue
        (env if m.group(1) == ":env:" else files)[m.group(2)] = str(value)
    return {**files, **env}


def container_pip_env(config: dict[str, str], environ: dict[str, str],
                      ) -> tuple[dict[str, str], Path | None]:
    """The environment that lets pip in a container reach what pip reaches here, and the CA
    bundle to copy in (None where pip needs none, as on a user's machine)."""
    env = {f"PIP_{key.upper().replace('-', '_')}": " ".join(
               v for v in config[key].split() if "://" not in v or v.startswith("http"))
           for key in NETWORK_SETTINGS if key in config}
    env = {k: v for k, v in env.items() if v}
    env.update({k: environ[k] for k in PROXY_VARS if environ.get(k)})
    ca = None
    for candidate in (config.get("cert"), environ.get("REQUESTS_CA_BUNDLE"),
                      environ.get("SSL_CERT_FILE")):
        if candidate and Path(candidate).is_file():
            ca = Path(candidate)
            env["PIP_CERT"] = CA_IN_CONTAINER
            break
    return env, ca


def machine_pip_config() -> dict[str, str]:
    res = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                         text=True)
    return pip_config(res.stdout) if res.returncode == 0 else {}


def source_tar(ca: Path | None) -> bytes:
    """The checkout as a user has it (no VCS data, environments or run folders) under src/,
    and the CA bundle at its own path."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = sorted(d for d in dirnames if not (
                d.startswith(".") or d in NOT_SOURCE or d.endswith(".egg-info")))
            for name in sorted(f for f in filenames if f != ".git"):  # a worktree's pointer
                path = Path(dirpath, name)
                tar.add(path, arcname=f"src/{path.relative_to(ROOT)}", recursive=False)
        if ca is not None:
            tar.add(ca, arcname=CA_IN_CONTAINER.lstrip("/"))
    return buf.getvalue()


def run_in(container, script: str, timeout: int = 1200) -> tuple[int, str]:
    code, out = container.exec_run(["timeout", str(timeout), "bash", "-c", script])
    return code, out.decode(errors="replace")


@pytest.mark.docker
def test_install_on_stock_debian_python(docker_client):
    import docker

    config = machine_pip_config()
    env, ca = container_pip_env(config, dict(os.environ))
    env["DEBIAN_FRONTEND"] = "noninteractive"
    # Downloads take minutes with no output on the exec's socket: a client that waits.
    client = docker.from_env(timeout=1500)
    container = client.containers.run(STOCK_IMAGE, ["sleep", "infinity"], detach=True,
                                      labels={LABEL: "install"}, environment=env)
    try:
        assert container.put_archive("/", source_tar(ca))

        code, out = run_in(container, "apt-get update -qq && apt-get install -y -qq python3")
        assert code == 0, out
        # The distribution's interpreter as a new user finds it: pip refused or absent.
        code, out = run_in(container, "python3 -m pip install pyyaml")
        assert code != 0 and ("externally-managed-environment" in out
                              or "No module named pip" in out), out

        code, out = run_in(container, "cd /src && bash scripts/install.sh")
        assert code == 0, out
        assert re.search(r"installing python3\.\d+-venv", out), out
        assert "pytest-axp installed in /src/.venv" in out, out

        code, out = run_in(container, "cd /src && .venv/bin/axp --help")
        assert code == 0 and out.startswith("usage: axp"), out
        code, out = run_in(container, "cd /src && .venv/bin/axp experiment validate "
                                      "example_experiments/hello.yaml")
        assert code == 0, out
        assert "example_experiments/hello.yaml: valid (2 variant(s))" in out, out

        # Nothing went into the system interpreter, and a second run changes nothing.
        code, out = run_in(container, "cd / && python3 -c 'import pytest_axp'")
        assert code != 0 and "No module named 'pytest_axp'" in out, out
        code, out = run_in(container, "cd /src && bash scripts/install.sh")
        assert code == 0, out
        assert out.strip() == "pytest-axp already installed in /src/.venv", out
    finally:
        container.remove(force=True)


def test_install_refuses_python_older_than_3_11(tmp_path):
    # A copy of the script beside a pyproject, so that nothing can reach this checkout.
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "install.sh", tmp_path / "scripts" / "install.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shims = tmp_path / "bin"
    shims.mkdir()
    # Answers the version question the script asks, as a Debian 11 python3 would.
    (shims / "python3").write_text("#!/bin/sh\necho 3.9.2\n")
    (shims / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHON")}
    env["PATH"] = f"{shims}{os.pathsep}{env['PATH']}"

    res = subprocess.run(["bash", str(tmp_path / "scripts" / "install.sh")], env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert "needs Python >= 3.11" in lines[0] and "python3 is 3.9.2" in lines[0], lines[0]
    assert not (tmp_path / ".venv").exists()
