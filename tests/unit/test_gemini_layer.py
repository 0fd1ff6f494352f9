"""The `gemini` image layer: keyed without fetching, its package fetched once with the host's
npm (a stand-in `npm` on PATH here) and cached, and the settings it bakes in."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest

from pytest_axp.agents.gemini_layer import GEMINI_CLI_VERSION, gemini_layer, gemini_package
from pytest_axp.sandbox.base import SandboxError
from pytest_axp.sandbox.docker_image import layer_tag

FAKE_NPM = """#!{python}
# Stands in for npm: records its arguments, packs a package whose files are under package/.
import io, os, sys, tarfile
with open({log!r}, "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
if os.environ.get("FAIL"):
    sys.exit("npm error 404 Not Found - " + sys.argv[-1])
dest = sys.argv[sys.argv.index("--pack-destination") + 1]
with tarfile.open(os.path.join(dest, "google-gemini-cli-0.tgz"), "w:gz") as tar:
    data = b"console.log(1)"
    info = tarfile.TarInfo("package/bundle/gemini.js")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
"""


@pytest.fixture
def no_npm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AXP_GEMINI_CLI_TGZ", raising=False)
    (tmp_path / "bin").mkdir()
    return tmp_path


def fake_npm(root: Path) -> Path:
    log = root / "npm.log"
    npm = root / "bin" / "npm"
    npm.write_text(FAKE_NPM.format(python=sys.executable, log=str(log)))
    npm.chmod(0o755)
    return log


def test_the_layer_is_keyed_by_its_version_without_fetching(no_npm: Path) -> None:
    layer = gemini_layer()
    assert layer.name == "gemini"
    assert layer_tag("b", layer) == layer_tag("b", gemini_layer(GEMINI_CLI_VERSION))
    assert layer_tag("b", gemini_layer("0.61.0")) != layer_tag("b", gemini_layer("0.61.1"))
    with pytest.raises(SandboxError, match="install npm"):
        layer.context(None)


def test_the_package_is_fetched_once_and_cached(no_npm: Path) -> None:
    log = fake_npm(no_npm)
    lines: list[str] = []
    layer = gemini_layer("0.61.0")
    context = layer.context(lines.append)
    tgz = context["gemini-cli.tgz"]
    assert isinstance(tgz, Path) and tgz.is_relative_to(no_npm / "cache")
    with tarfile.open(tgz) as tar:
        assert "package/bundle/gemini.js" in tar.getnames()
    assert lines == ["fetching @google/gemini-cli@0.61.0 with npm"]
    assert gemini_package("0.61.0") == tgz
    assert len(log.read_text().splitlines()) == 1  # the second time came from the cache
    assert set(context) == {"Dockerfile", "settings.json", "gemini-cli.tgz"}


def test_a_failed_fetch_says_what_npm_said(
        no_npm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_npm(no_npm)
    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(SandboxError, match=r"npm pack @google/gemini-cli@9\.9\.9 failed: "
                                           r"npm error 404 Not Found"):
        gemini_package("9.9.9")
    assert not (no_npm / "cache" / "pytest-axp" / "gemini-cli-9.9.9" / "gemini-cli.tgz").exists()


def test_a_given_package_is_used_as_it_is(no_npm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = no_npm / "mine.tgz"
    given.write_bytes(b"x")
    monkeypatch.setenv("AXP_GEMINI_CLI_TGZ", str(given))
    assert gemini_package() == given
    monkeypatch.setenv("AXP_GEMINI_CLI_TGZ", str(no_npm / "missing.tgz"))
    with pytest.raises(SandboxError, match=r"AXP_GEMINI_CLI_TGZ=.*missing\.tgz is not a file"):
        gemini_package()


def test_settings_keep_statistics_telemetry_and_updates_off(no_npm: Path) -> None:
    fake_npm(no_npm)
    context = gemini_layer().context(None)
    settings = context["settings.json"]
    assert isinstance(settings, bytes)
    assert json.loads(settings) == {
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    }
    dockerfile = context["Dockerfile"]
    assert isinstance(dockerfile, bytes)
    assert b"/etc/gemini-cli/settings.json" in dockerfile  # where the CLI reads system settings
