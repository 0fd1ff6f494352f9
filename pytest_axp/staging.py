"""Staging host files into /workspace: one tar per entry, recorded in staging.json."""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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
    tar_bytes: int = 0
    error: str | None = None
    commit: str | None = None  # the full commit id, for a source taken at a commit

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {}
        if self.name:
            rec["name"] = self.name
        rec.update(source=self.source, dest=self.dest, file_count=self.file_count,
                   skipped_symlinks=self.skipped_symlinks, size_bytes=self.size_bytes,
                   tar_sha256=self.tar_sha256)
        if self.commit:
            rec["commit"] = self.commit
        if self.error:
            rec["error"] = self.error
        return rec


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def resolve_source(source: str, base_dir: Path) -> Path:
    """`source` as written, from `base_dir`, made absolute without following any link: the
    caller has checked (symlink_in_path) that no component of it is one."""
    return Path(os.path.normpath(os.path.join(os.path.realpath(base_dir),
                                              os.path.expanduser(source))))


def symlink_in_path(source: str, base_dir: Path) -> tuple[str, str] | None:
    """The first component of `source` (as written, from `base_dir` on) that is a symlink,
    with its target; None when there is none. `..` is fine as long as it is a real folder."""
    typed = os.path.expanduser(source)
    current = "/" if os.path.isabs(typed) else os.path.realpath(base_dir)
    for part in Path(typed).parts:
        if part == "/":
            continue
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except OSError:
            return None  # missing: reported as such
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(current)
            except OSError:
                target = "?"
            return os.path.normpath(current), target
    return None


def symlink_message(link: tuple[str, str]) -> str:
    return (f"{link[0]} is a symlink (to {link[1]}); file sources are never followed "
            "through links: give the real path")


def _open_nofollow(path: Path) -> int:
    """An fd for `path`, opened one component at a time with O_NOFOLLOW: a link swapped in
    after the plan was checked is refused, not followed."""
    parts = Path(os.path.abspath(path)).parts
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for i, part in enumerate(parts[1:], start=1):
        last = i == len(parts) - 1
        flags = (os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
                 | (0 if last else os.O_DIRECTORY))
        try:
            nfd = os.open(part, flags, dir_fd=fd)
        except OSError as e:
            here = os.path.join(*parts[:i + 1])
            if e.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(here):
                raise StagingError(f"{here} is a symlink; file sources are never followed "
                                   "through links") from None
            if e.errno == errno.ENOENT:
                raise StagingError(f"source {path} does not exist") from None
            raise
        finally:
            os.close(fd)
        fd = nfd
    return fd


class _Digest:
    """A write-only file that hashes and counts what passes through to `sink` (if any):
    a tar is sized and hashed while it streams, never held in memory."""

    def __init__(self, sink: IO[bytes] | None) -> None:
        self.sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size


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
                source_label: str | None = None, sink: IO[bytes] | None = None) -> StagedEntry:
    """Pack one entry as a tar whose member names are relative to /workspace, streamed into
    `sink` (None: only counted and hashed, for --dry-run). Every component of `source_path`
    is opened without following links, and links inside a folder are skipped and counted."""
    entry = StagedEntry(source=source_label or str(source_path), dest=dest, name=name)
    dest = posixpath.normpath(dest.strip("/") or ".")
    fd = _open_nofollow(source_path)
    out = _Digest(sink)
    try:
        st = os.fstat(fd)
        # typeshed asks any fileobj for read/seek/close; mode "w" only calls write and tell.
        with tarfile.open(  # type: ignore[call-overload]
            fileobj=out, mode="w", format=tarfile.PAX_FORMAT
        ) as tar:
            def add_parents(path: str) -> None:
                parts = [] if path == "." else path.split("/")
                for i in range(1, len(parts) + 1):
                    tar.addfile(_tarinfo("/".join(parts[:i]), is_dir=True))

            if stat.S_ISREG(st.st_mode):
                target = source_path.name if dest == "." else dest
                add_parents(posixpath.dirname(target) or ".")
                _add_fd(tar, entry, fd, st, target)
            elif stat.S_ISDIR(st.st_mode):
                add_parents(dest)
                _add_tree(tar, entry, fd, dest)
            else:
                raise StagingError(f"source {source_path} is neither a file nor a folder")
    finally:
        os.close(fd)
    entry.tar_sha256 = out.sha256.hexdigest()
    entry.tar_bytes = out.size
    return entry


def _add_fd(tar: tarfile.TarFile, entry: StagedEntry, fd: int, st: os.stat_result,
            arcname: str) -> None:
    f = os.fdopen(os.dup(fd), "rb")
    with f:
        tar.addfile(_tarinfo(arcname, is_dir=False, size=st.st_size, mode=st.st_mode,
                             mtime=st.st_mtime), f)
    entry.file_count += 1
    entry.size_bytes += st.st_size


def _read_small(name: str, dir_fd: int, limit: int = 1 << 20) -> str | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read(limit).decode("utf-8", errors="replace")


def _add_tree(tar: tarfile.TarFile, entry: StagedEntry, root_fd: int, dest: str) -> None:
    # fwalk works on directory fds and never descends through a link, even one swapped in
    # while it walks; files are opened with O_NOFOLLOW for the same reason.
    stack: list[IgnoreRules] = []
    for rel_dir, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=root_fd,
                                                         follow_symlinks=False):
        rel_dir = "" if rel_dir == "." else rel_dir[2:].replace(os.sep, "/")
        if IGNORE_FILE in filenames:
            rules = _read_small(IGNORE_FILE, dir_fd)
            if rules is not None:
                stack.append(IgnoreRules(rules, rel_dir))
        keep_dirs = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            try:
                st = os.stat(d, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                entry.skipped_symlinks += 1
            elif d in ALWAYS_EXCLUDED or is_ignored(stack, rel, True):
                continue
            else:
                keep_dirs.append(d)
                tar.addfile(_tarinfo(_join(dest, rel), is_dir=True, mtime=st.st_mtime))
        dirnames[:] = keep_dirs
        for fname in sorted(filenames):
            rel = f"{rel_dir}/{fname}" if rel_dir else fname
            try:
                st = os.stat(fname, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                entry.skipped_symlinks += 1
                continue
            if fname == IGNORE_FILE or is_ignored(stack, rel, False):
                continue
            try:
                fd = os.open(fname, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=dir_fd)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    entry.skipped_symlinks += 1
                continue
            try:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    _add_fd(tar, entry, fd, st, _join(dest, rel))
            finally:
                os.close(fd)


def _join(dest: str, rel: str) -> str:
    return rel if dest == "." else f"{dest}/{rel}"


@dataclass(frozen=True)
class PlannedEntry:
    entry: Any                 # the experiment's FileEntry (or an ad-hoc one)
    source: str | None         # absolute host path or URL; None for an unbound slot
    label: str
    state: str                 # OK, MISSING, UNBOUND, URL or SYMLINK
    problem: str = ""          # why, for SYMLINK


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
            link = symlink_in_path(source, base_dir)
            path = resolve_source(source, base_dir)
            if link is not None:
                planned.append(PlannedEntry(entry, str(path), label, "SYMLINK",
                                            symlink_message(link)))
                continue
            planned.append(PlannedEntry(entry, str(path), label,
                                        "OK" if path.exists() else "MISSING"))
    return planned


def unknown_bindings(files: list[Any], bindings: tuple[tuple[str, str, str], ...]) -> list[str]:
    names = {f.name for f in files if f.name}
    return sorted(name for kind, name, _ in bindings if kind == "slot" and name not in names)
