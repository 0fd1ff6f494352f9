"""Staging host files into /workspace: one tar per entry, recorded in staging.json."""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ignore import IgnoreRules, is_ignored
from .sandbox.base import AGENT_UID, AGENT_USER

IGNORE_FILE = ".axpignore"
ALWAYS_EXCLUDED = {".git"}


class StagingError(Exception):
    pass


@dataclass
class StagedEntry:
    """One staged entry: what staging.json records for it."""

    source: str
    dest: str
    name: str | None = None
    file_count: int = 0
    skipped_symlinks: int = 0
    size_bytes: int = 0
    tar_sha256: str = ""
    error: str | None = None
    tar: bytes = field(default=b"", repr=False)

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {}
        if self.name:
            rec["name"] = self.name
        rec.update(source=self.source, dest=self.dest, file_count=self.file_count,
                   skipped_symlinks=self.skipped_symlinks, size_bytes=self.size_bytes,
                   tar_sha256=self.tar_sha256)
        if self.error:
            rec["error"] = self.error
        return rec


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def resolve_source(source: str, base_dir: Path) -> Path:
    return (base_dir / os.path.expanduser(source)).resolve()


def _tarinfo(name: str, *, is_dir: bool, size: int = 0, mode: int = 0o644,
             mtime: float = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = size
    info.mode = (0o755 if is_dir else mode) & 0o7777
    info.mtime = int(mtime)
    info.uid = info.gid = AGENT_UID
    info.uname = info.gname = AGENT_USER
    return info


def build_entry(source_path: Path, dest: str, *, name: str | None = None,
                source_label: str | None = None) -> StagedEntry:
    """Pack one entry as a tar whose member names are relative to /workspace."""
    entry = StagedEntry(source=source_label or str(source_path), dest=dest, name=name)
    dest = posixpath.normpath(dest.strip("/") or ".")
    if source_path.is_symlink():
        raise StagingError(f"source {source_path} is a symlink; symlinks are not staged")
    if not source_path.exists():
        raise StagingError(f"source {source_path} does not exist")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add_parents(path: str) -> None:
            parts = [] if path == "." else path.split("/")
            for i in range(1, len(parts) + 1):
                tar.addfile(_tarinfo("/".join(parts[:i]), is_dir=True))

        if source_path.is_file():
            target = source_path.name if dest == "." else dest
            add_parents(posixpath.dirname(target) or ".")
            _add_file(tar, entry, source_path, target)
        else:
            add_parents(dest)
            _add_tree(tar, entry, source_path, dest)
    entry.tar = buf.getvalue()
    entry.tar_sha256 = hashlib.sha256(entry.tar).hexdigest()
    return entry


def _add_file(tar: tarfile.TarFile, entry: StagedEntry, path: Path, arcname: str) -> None:
    st = path.stat()
    with open(path, "rb") as f:
        tar.addfile(_tarinfo(arcname, is_dir=False, size=st.st_size, mode=st.st_mode,
                             mtime=st.st_mtime), f)
    entry.file_count += 1
    entry.size_bytes += st.st_size


def _add_tree(tar: tarfile.TarFile, entry: StagedEntry, root: Path, dest: str) -> None:
    stack: list[IgnoreRules] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        ignore_file = Path(dirpath) / IGNORE_FILE
        if ignore_file.is_file() and not ignore_file.is_symlink():
            stack.append(IgnoreRules(ignore_file.read_text(errors="replace"), rel_dir))
        keep_dirs = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            full = Path(dirpath) / d
            if full.is_symlink():
                entry.skipped_symlinks += 1
            elif d in ALWAYS_EXCLUDED or is_ignored(stack, rel, True):
                continue
            else:
                keep_dirs.append(d)
                tar.addfile(_tarinfo(_join(dest, rel), is_dir=True,
                                     mtime=full.stat().st_mtime))
        dirnames[:] = keep_dirs
        for fname in sorted(filenames):
            rel = f"{rel_dir}/{fname}" if rel_dir else fname
            full = Path(dirpath) / fname
            if full.is_symlink():
                entry.skipped_symlinks += 1
            elif fname == IGNORE_FILE or is_ignored(stack, rel, False):
                continue
            elif full.is_file():
                _add_file(tar, entry, full, _join(dest, rel))


def _join(dest: str, rel: str) -> str:
    return rel if dest == "." else f"{dest}/{rel}"


@dataclass(frozen=True)
class PlannedEntry:
    entry: Any                 # the experiment's FileEntry (or an ad-hoc one)
    source: str | None         # absolute host path or URL; None for an unbound slot
    label: str
    state: str                 # OK, MISSING, UNBOUND or URL


def plan_entries(files: list[Any], base_dir: Path,
                 bindings: tuple[tuple[str, str, str], ...] = ()) -> list[PlannedEntry]:
    """Every entry in delivery order with --file bindings applied: the experiment's entries
    (a bound name takes the given path), then the ad-hoc ones."""
    from .experiment.models import FileEntry

    bound = {name: path for kind, name, path in bindings if kind == "slot"}
    entries = list(files) + [FileEntry(source=path, dest=dest)
                             for kind, path, dest in bindings if kind == "adhoc"]
    planned = []
    for entry in entries:
        label = entry.name or entry.source or entry.dest
        source = (bound.get(entry.name) if entry.name else None) or entry.source
        if source is None:
            planned.append(PlannedEntry(entry, None, label, "UNBOUND"))
        elif is_url(source):
            planned.append(PlannedEntry(entry, source, label, "URL"))
        else:
            path = resolve_source(source, base_dir)
            planned.append(PlannedEntry(entry, str(path), label,
                                        "OK" if path.exists() else "MISSING"))
    return planned


def unknown_bindings(files: list[Any], bindings: tuple[tuple[str, str, str], ...]) -> list[str]:
    names = {f.name for f in files if f.name}
    return sorted(name for kind, name, _ in bindings if kind == "slot" and name not in names)
