"""Both backends implement the protocols the engine relies on, and creating ahead hands a
sandbox over only to a taker that would have made the same one."""

from __future__ import annotations

from pytest_axp.sandbox.base import ResourceLimits, Sandbox, SandboxBackend
from pytest_axp.sandbox.docker import DockerBackend, DockerSandbox
from tests.fakes.local_backend import IMAGE, LocalBackend


def test_the_backends_implement_the_protocols():
    assert isinstance(DockerBackend(), SandboxBackend)
    assert isinstance(LocalBackend(), SandboxBackend)
    for method in ("exec", "start", "put_archive", "get_archive", "put_file", "remove"):
        assert callable(getattr(DockerSandbox, method))


def _args(name: str, memory: str = "4g") -> dict:
    return {"name": name, "image": IMAGE, "labels": {"axp.run_id": "r"},
            "network_mode": "bridge", "extra_hosts": {}, "limits": ResourceLimits(memory=memory)}


def test_a_sandbox_created_ahead_is_taken_once_and_only_if_made_alike():
    backend = LocalBackend()
    backend.create_ahead("k1", _args("one"))
    backend.create_ahead("k2", _args("two"))
    taken = backend.take("k1", _args("one"))
    assert isinstance(taken, Sandbox) and taken.root.is_dir()
    assert backend.take("k1", _args("one")) is None          # taken once
    assert backend.take("k2", _args("two", memory="8g")) is None   # made otherwise
    assert not backend.created[1].root.exists()              # ...and removed
    backend.create_ahead("k3", _args("three"))
    backend.finish()
    assert all(not box.root.exists() for box in backend.created)
    assert backend.live == {}


def test_a_started_process_talks_line_by_line_and_is_recorded(tmp_path):
    import json

    from pytest_axp.record.commands import CommandLog
    from pytest_axp.record.layout import VariantPaths
    from pytest_axp.secrets import Redactor

    backend = LocalBackend()
    box = backend.create(**_args("talk"))
    paths = VariantPaths(tmp_path / "v")
    box.commands = CommandLog(paths, redactor=Redactor(["s3cret-value"]))
    echo = ("import sys\nfor line in sys.stdin:\n"
            "    print('got ' + line.strip(), flush=True)\n"
            "    print('err s3cret-value', file=sys.stderr, flush=True)\n")
    proc = box.start(["python3", "-c", echo], phase="agent", name="talker", user="agent")
    try:
        proc.write(b"one\n")
        assert proc.read_line(10) == b"got one\n"
        proc.write(b"s3cret-value\n")
        assert proc.read_line(10) == b"got s3cret-value\n"  # the client sees what was said
        proc.close_stdin()
        assert proc.read_line(10) is None
        assert proc.wait(10) == 0
    finally:
        backend.finish()
    (record,) = [json.loads(x) for x in paths.commands_index.read_text().splitlines()]
    assert record["name"] == "talker" and record["exit_code"] == 0
    stdout = (paths.root / record["stdout_path"]).read_text()
    assert "got one" in stdout and "s3cret-value" not in stdout  # the files are redacted
    assert proc.stderr_path.read_text().count("[REDACTED]") == 2
