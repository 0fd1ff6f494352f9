"""A run folder as a manifest: every regular file with its size and sha256, every symbolic
link with its target. Client and server both use it: the client to say what it uploads or
to check what it downloaded, the server to refuse a path that leaves the folder."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any

MAX_FILES = 200_000
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class ManifestError(ValueError):
    pass


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise ManifestError(f"{run_id!r} is not a run id")
    return run_id


def check_rel_path(path: str) -> str:
    """A path inside the run folder, as the manifest spells it (POSIX, relative, no `..`)."""
    pure = PurePosixPath(path)
    if (not path or path.startswith("/") or "\\" in path or "\x00" in path
            or any(part in ("", ".", "..") for part in path.split("/"))
            or str(pure) != path or len(path) > 4096):
        raise ManifestError(f"{path!r} is not a path inside a run folder")
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build(root: Path) -> dict[str, Any]:
    """{"files": {path: {"size", "sha256"}}, "links": {path: target}} of a run folder."""
    files: dict[str, dict[str, Any]] = {}
    links: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames
                                         if os.path.islink(os.path.join(dirpath, d))]:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                links[rel] = os.readlink(full)
            elif stat.S_ISREG(st.st_mode):
                files[rel] = {"size": st.st_size, "sha256": file_sha256(full)}
    return {"files": files, "links": links}


def validate(manifest: Any) -> dict[str, Any]:
    """The manifest a client sent, checked: paths inside the folder, sizes and digests well
    formed, no path both a file and a link. Raises ManifestError."""
    if not isinstance(manifest, dict):
        raise ManifestError("the manifest is not a JSON object")
    files, links = manifest.get("files"), manifest.get("links", {})
    if not isinstance(files, dict) or not isinstance(links, dict):
        raise ManifestError("the manifest needs `files` and `links` objects")
    if len(files) + len(links) > MAX_FILES:
        raise ManifestError(f"more than {MAX_FILES} files")
    out_files: dict[str, dict[str, Any]] = {}
    for path, entry in files.items():
        check_rel_path(path)
        if (not isinstance(entry, dict) or not isinstance(entry.get("size"), int)
                or entry["size"] < 0 or not isinstance(entry.get("sha256"), str)
                or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
            raise ManifestError(f"{path}: give size (bytes) and sha256 (hex)")
        out_files[path] = {"size": entry["size"], "sha256": entry["sha256"]}
    out_links: dict[str, str] = {}
    for path, target in links.items():
        check_rel_path(path)
        if not isinstance(target, str) or not target or "\x00" in target:
            raise ManifestError(f"{path}: a link needs a target")
        if path in out_files:
            raise ManifestError(f"{path}: both a file and a link")
        out_links[path] = target
    prefixes = {p.rsplit("/", 1)[0] for p in [*out_files, *out_links] if "/" in p}
    clash = sorted(p for p in [*out_files, *out_links] if p in prefixes)
    if clash:
        raise ManifestError(f"{clash[0]}: both a file and a folder")
    return {"files": out_files, "links": out_links}


def digest(manifest: dict[str, Any]) -> str:
    """One digest of a whole manifest: the same run folder gives the same digest."""
    import json

    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


# The manifest of an upload under way lives beside the staging folders, in a folder no run id
# can name (run ids never start with a dot).
def _pending(staging: Path) -> Path:
    return staging.parent / ".pending" / f"{staging.name}.json"


def write_pending(staging: Path, manifest: dict[str, Any]) -> None:
    from ..record.jsonio import write_json

    path = _pending(staging)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, manifest)


def read_pending(staging: Path) -> dict[str, Any] | None:
    found = read_json_file(_pending(staging))
    return found if isinstance(found, dict) else None


def clear_pending(staging: Path) -> None:
    _pending(staging).unlink(missing_ok=True)


def read_json_file(path: Path) -> Any:
    from ..record.jsonio import read_json

    return read_json(path)
