"""Both backends implement the protocols the engine relies on, and creating ahead hands a
sandbox over only to a taker that would have made the same one."""

from __future__ import annotations

from pytest_axp.sandbox.base import ResourceLimits, Sandbox, SandboxBackend
from pytest_axp.sandbox.docker import DockerBackend, DockerSandbox
from tests.fakes.local_backend import IMAGE, LocalBackend


def test_the_backends_implement_the_protocols():
    assert isinstance(DockerBackend(), SandboxBackend)
    assert isinstance(LocalBackend(), SandboxBackend)
    for method in ("exec", "put_archive", "get_archive", "put_file", "remove"):
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
