"""Workspace diffs at before_agent, after_agent and after_tests (seed 004: File Diffs).

Cheap by construction: one exec lists the tree (path, size, mtime, mode, type); only paths
that changed are fetched. The previous state lives inside the sandbox as a tar (no transfer)
from which the old versions of changed files come; later points append their changed files to
it (on extraction the last copy of a path wins) instead of rebuilding it, so no unchanged byte
crosses the API and a later snapshot costs one listing plus O(changes).
Best effort (seed 004): a failed point is logged and recorded (its JSON has `error`, so the
gap is visible), and the run goes on.

What the harness acts on (the listing, the hashes, the fetched names) comes raw, through
get_archive, never from a command's recorded output, which has secrets redacted; redaction
applies to what is written: records, patch names and patch text.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import logging
import re
import tarfile
import time
from dataclasses import dataclass
from typing import Any

from ..secrets import Redactor
from .jsonio import write_atomic, write_json
from .layout import VariantPaths

log = logging.getLogger("pytest_axp")

STATE_DIR = "/axp/fsdiff"
DEFAULT_MAX_PATCH_BYTES = 256 * 1024
_LIST = ("find . -xdev -mindepth 1 \\( -type f -o -type l \\) "
         "-printf '%P\\0%s\\0%T@\\0%m\\0%y\\0'")


@dataclass(frozen=True)
class Entry:
    size: int
    mtime: str
    mode: int
    kind: str  # 'f' file, 'l' symlink


def parse_listing(raw: bytes) -> dict[str, Entry]:
    """`find -printf` output, NUL-separated so any file name survives."""
    fields = raw.split(b"\0")
    entries: dict[str, Entry] = {}
    for i in range(0, len(fields) - 4, 5):
        path = fields[i].decode("utf-8", "surrogateescape")
        try:
            entries[path] = Entry(int(fields[i + 1]), fields[i + 2].decode(),
                                  int(fields[i + 3], 8), fields[i + 4].decode())
        except ValueError:
            continue
    return entries


def classify(old: dict[str, Entry], new: dict[str, Entry]) -> dict[str, str]:
    """path -> added | modified | deleted."""
    changes = {p: "deleted" for p in old.keys() - new.keys()}
    changes.update({p: "added" for p in new.keys() - old.keys()})
    changes.update({p: "modified" for p in old.keys() & new.keys() if old[p] != new[p]})
    return dict(sorted(changes.items()))


# A patch's file name is its flattened path; deep paths would pass the 255-byte limit of a
# file name, so past this many bytes the name is cut and ends with '~' and a hash of the path.
MAX_FLAT_BYTES = 200


def flatten(path: str) -> str:
    """src/model.py -> src_model.py (seed 004's patch file names); a name longer than
    MAX_FLAT_BYTES keeps its start and gets `~<16 hex of sha256(path)>`."""
    flat = path.replace("/", "_")
    if len(flat.encode("utf-8", "surrogateescape")) <= MAX_FLAT_BYTES:
        return flat
    return _with_hash(path)


def _with_hash(path: str) -> str:
    raw = path.replace("/", "_").encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    head = raw[:MAX_FLAT_BYTES - len(digest) - 1].decode("utf-8", "ignore")
    return f"{head}~{digest}"


def patch_name(path: str, taken: set[str]) -> str:
    """`flatten(path)`, made unique among `taken` (a/b_c and a_b/c flatten alike)."""
    name = flatten(path)
    if name in taken:
        name = _with_hash(path)
    taken.add(name)
    return name


def is_text(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_UNESCAPE = {"n": "\n", "r": "\r"}


def parse_sums(raw: bytes) -> dict[str, str]:
    """sha256sum's output: path -> digest (a name with a newline or backslash comes
    escaped, the line marked with a leading backslash)."""
    sums = {}
    for line in raw.decode("utf-8", "surrogateescape").split("\n"):
        escaped = line.startswith("\\")
        digest, _, path = line[escaped:].partition("  ")
        if path:
            if escaped:
                path = re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m[1], m[1]), path)
            sums[path] = digest
    return sums


def unified_patch(path: str, old: bytes | None, new: bytes | None) -> str:
    a = (old or b"").decode("utf-8").splitlines(keepends=True)
    b = (new or b"").decode("utf-8").splitlines(keepends=True)
    lines = list(difflib.unified_diff(a, b, fromfile="/dev/null" if old is None else f"a/{path}",
                                      tofile="/dev/null" if new is None else f"b/{path}"))
    # A last line without a newline must not run into the next hunk line.
    return "".join(x if x.endswith("\n") else x + "\n\\ No newline at end of file\n"
                   for x in lines)


class WorkspaceDiffer:
    def __init__(self, sandbox: Any, paths: VariantPaths, *,
                 max_patch_bytes: int = DEFAULT_MAX_PATCH_BYTES,
                 workspace: str = "/workspace", redactor: Redactor | None = None) -> None:
        self.sandbox = sandbox
        self.redactor = redactor or Redactor(())  # records never carry a secret value
        self.paths = paths
        self.max_patch_bytes = max_patch_bytes
        self.workspace = workspace
        self._paths_env = {"W": workspace, "S": STATE_DIR}  # never spliced into a script
        self.seq = 0
        self._previous: dict[str, Entry] | None = None
        self._previous_point: str | None = None

    def snapshot(self, point: str, *, keep_state: bool = True) -> dict[str, Any] | None:
        """Record this point; `keep_state=False` on the last one saves the state tar."""
        try:
            return self._snapshot(point, keep_state)
        except Exception as e:
            # A lost exit code too: seed 004 says a snapshot never stops the run.
            log.warning("fs-diff snapshot %s failed: %s", point, e)
            return self._failed(point, e)

    def _failed(self, point: str, error: Exception) -> dict[str, Any]:
        """A failed point still gets its record (with `error`), so the gap is visible; the
        next point diffs against the last one that succeeded."""
        self.seq += 1
        record: dict[str, Any] = {
            "seq": self.seq, "point": point, "time_epoch": round(time.time(), 3),
            "previous_point": self._previous_point, "file_count": None,
            "total_bytes": None, "changes": [], "error": str(error) or type(error).__name__,
        }
        try:
            write_json(self.paths.fs_diff / f"{self.seq}.json", record)
        except OSError as e:
            log.warning("fs-diff record %s not written: %s", point, e)
        return record

    def _snapshot(self, point: str, keep_state: bool) -> dict[str, Any]:
        previous = self._previous
        # The listing and, on the first point, the state tar come from one exec.
        save = ('rm -rf "$S" && mkdir -p "$S" && '
                'tar -cf "$S/prev.tar" . 2>/dev/null; ' if previous is None and keep_state else "")
        res = self.sandbox.exec(f'mkdir -p "$S" && cd "$W" && {save}{_LIST} > "$S/listing"',
                                phase="snapshot", name=point, env=self._paths_env)
        if res.exit_code != 0:
            raise RuntimeError(f"listing exited {res.exit_code}")
        current = parse_listing(self._read(f"{STATE_DIR}/listing"))
        seq = self.seq + 1
        record: dict[str, Any] = {
            "seq": seq, "point": point, "time_epoch": round(time.time(), 3),
            "previous_point": self._previous_point, "file_count": len(current),
            "total_bytes": sum(e.size for e in current.values()), "changes": [],
        }
        if previous is not None:
            record["changes"] = self._diff(seq, previous, current, keep_state)
        self.seq = seq
        self._previous, self._previous_point = current, point
        record = self.redactor.obj(record)
        write_json(self.paths.fs_diff / f"{self.seq}.json", record)
        return record

    def _read(self, path: str) -> bytes:
        """A file of the sandbox, as it is."""
        with tarfile.open(fileobj=io.BytesIO(b"".join(self.sandbox.get_archive(path)))) as tar:
            member = tar.next()
            f = tar.extractfile(member) if member is not None else None
            if f is None:
                raise RuntimeError(f"{path} is not a file")
            return f.read()

    def _diff(self, seq: int, old: dict[str, Entry], new: dict[str, Entry],
              keep_state: bool) -> list[dict[str, Any]]:
        changes = classify(old, new)
        cap = self.max_patch_bytes
        new_files = [p for p, c in changes.items() if c != "deleted" and new[p].kind == "f"]
        # Files over the cap are hashed in the sandbox, never fetched.
        big = [p for p in new_files if new[p].size > cap]
        new_paths = [p for p in new_files if new[p].size <= cap]
        old_paths = [p for p, c in changes.items()
                     if c != "added" and old[p].kind == "f" and old[p].size <= cap]
        present = [p for p, c in changes.items() if c != "deleted"]
        contents, big_hashes = self._fetch(new_paths, old_paths, big, present, keep_state)
        out: list[dict[str, Any]] = []
        taken: set[str] = set()
        for path, change in changes.items():
            entry = new.get(path) or old[path]
            new_data = contents.get(("new", path))
            old_data = contents.get(("old", path))
            data = new_data if change != "deleted" else old_data
            digest = hashlib.sha256(data).hexdigest() if data is not None else None
            shown = self.redactor.text(path)
            item: dict[str, Any] = {
                "path": shown, "change": change, "size": entry.size,
                "sha256": digest or (big_hashes.get(path) if change != "deleted" else None),
                "mode": format(entry.mode, "04o"), "patch": None, "note": None,
            }
            if entry.kind == "l":
                item["note"] = "symlink"
            elif entry.size > self.max_patch_bytes or (
                    change == "modified" and old[path].size > self.max_patch_bytes):
                item["note"] = "too large"
            elif not all(is_text(d) for d in (old_data, new_data) if d is not None):
                item["note"] = "binary"
            else:
                rel = f"{seq}/{patch_name(shown, taken)}.patch"
                patch = unified_patch(path, old_data if change != "added" else None,
                                      new_data if change != "deleted" else None)
                # Line by line, a multi-line value shows as its lines: the forms cover them.
                patch = self.redactor.text(patch)
                write_atomic(self.paths.fs_diff / rel, patch)
                item["patch"] = rel
            out.append(item)
        return out

    def _fetch(self, new_paths: list[str], old_paths: list[str], big: list[str],
               present: list[str], keep_state: bool,
               ) -> tuple[dict[tuple[str, str], bytes], dict[str, str]]:
        """New versions from the workspace, old ones from the state tar: one tar out.
        Also the sha256 of the files too large to fetch, computed in the sandbox; then the
        state tar gets this point's version of every changed path appended."""
        if not new_paths and not old_paths and not big and not (keep_state and present):
            return {}, {}
        lists = io.BytesIO()
        with tarfile.open(fileobj=lists, mode="w") as tar:
            for name, items in (("new.list", new_paths),
                                ("old.list", [f"./{p}" for p in old_paths]),
                                ("big.list", big),
                                ("new_state.list", [f"./{p}" for p in present])):
                data = b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in items)
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        # STATE_DIR exists: the first snapshot made it with the state tar.
        self.sandbox.put_archive(STATE_DIR, lists.getvalue())
        d = STATE_DIR
        # A fixed script; the two folders come in as $W (workspace) and $S (state).
        script = (
            'set -e; rm -rf "$S/out"; mkdir -p "$S/out/new" "$S/out/old"; '
            'if [ -s "$S/new.list" ]; then tar -C "$W" --null -T "$S/new.list" '
            '-cf - | tar -C "$S/out/new" -xf -; fi; '
            'if [ -s "$S/old.list" ]; then tar -C "$S/out/old" -xf "$S/prev.tar" --null '
            '-T "$S/old.list"; fi; '
            'if [ -s "$S/big.list" ]; then (cd "$W" && xargs -0 sha256sum -- '
            '< "$S/big.list" > "$S/out/big.sums"); fi; '
            + ('if [ -s "$S/new_state.list" ]; then tar -C "$W" -rf "$S/prev.tar" '
               '--null -T "$S/new_state.list"; fi' if keep_state else "true"))
        res = self.sandbox.exec(script, phase="snapshot", name="fetch-changed",
                                env=self._paths_env)
        if res.exit_code != 0:
            raise RuntimeError(f"collecting changed files exited {res.exit_code}")
        if not new_paths and not old_paths and not big:
            return {}, {}
        found: dict[tuple[str, str], bytes] = {}
        big_hashes: dict[str, str] = {}
        buf = io.BytesIO(b"".join(self.sandbox.get_archive(f"{d}/out")))
        with tarfile.open(fileobj=buf) as tar:
            for member in tar:
                parts = member.name.split("/", 2)  # out/<new|old>/<path>, out/big.sums
                f = tar.extractfile(member) if member.isfile() else None
                if f is None:
                    continue
                if len(parts) == 3 and parts[1] in ("new", "old"):
                    found[(parts[1], parts[2])] = f.read()
                elif parts[1:] == ["big.sums"]:
                    big_hashes = parse_sums(f.read())
        return found, big_hashes
