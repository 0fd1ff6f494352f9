"""Sandboxes: where a variant runs. Docker is the one backend today."""

from .base import ExecResult, SandboxError

__all__ = ["ExecResult", "SandboxError"]
