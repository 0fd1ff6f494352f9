"""Where every artifact of a run lives (seed 004). The only place that spells paths."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_SAFE_NAME = 120  # leaves room for suffixes such as `.stdout.log` within 255 bytes


def safe_name(name: str) -> str:
    """A file-name-safe form of a test or command name; a long one is cut and ends with a
    hash of the whole name (validation already bounds names; this is the last guard)."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "unnamed"
    if len(cleaned) > _MAX_SAFE_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        cleaned = f"{cleaned[:_MAX_SAFE_NAME - 17]}~{digest}"
    return cleaned


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def index(self) -> Path:
        return self.root / "index.json"

    def variant_dir(self, variant_id: str) -> Path:
        return self.root / "variants" / variant_id

    def results(self, variant_id: str) -> VariantPaths:
        return VariantPaths(self.root / "results" / variant_id)

    def resolved_variant(self, variant_id: str) -> Path:
        return self.variant_dir(variant_id) / "resolved-variant.yaml"

    def staging(self, variant_id: str) -> Path:
        return self.variant_dir(variant_id) / "staging.json"

    def selected_variants(self) -> list[str]:
        """Variants of this run, known from their resolved-variant.yaml."""
        vdir = self.root / "variants"
        if not vdir.is_dir():
            return []
        return sorted(p.name for p in vdir.iterdir() if (p / "resolved-variant.yaml").is_file())


@dataclass(frozen=True)
class VariantPaths:
    root: Path

    @property
    def run_summary(self) -> Path:
        return self.root / "run-summary.json"

    @property
    def layout(self) -> Path:
        return self.root / "layout.json"

    @property
    def agent_raw(self) -> Path:
        return self.root / "agent-raw.json"

    @property
    def agent_log(self) -> Path:
        return self.root / "agent.log"

    @property
    def agent_session(self) -> Path:
        return self.root / "agent-session.jsonl"

    @property
    def agent_trace(self) -> Path:
        # Ours: the AXP_TRACE_PATH events the tests read, kept for later analysis.
        return self.root / "agent-trace.jsonl"

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def traces(self) -> Path:
        return self.root / "traces"

    @property
    def api_bodies(self) -> Path:
        return self.root / "api-bodies"

    @property
    def commands_index(self) -> Path:
        return self.root / "commands.jsonl"

    @property
    def commands(self) -> Path:
        return self.root / "commands"

    @property
    def fs_diff(self) -> Path:
        return self.root / "fs-diff"

    def test_log(self, kind: str, test_name: str, stream: str) -> Path:
        return self.root / kind / f"{safe_name(test_name)}.{stream}.log"
