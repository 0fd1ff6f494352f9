"""File sources taken at a commit: the `commit` of an environment or a product applies to the
files its setup stages. A host path inside a git work tree is taken from that repository at
the commit, an http(s) URL is cloned as a git repository; either way on the host, into a
temporary checkout that is staged like any folder (.git left out, .axpignore applied)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .experiment.models import GitPin
from .staging import StagingError, is_url

GIT_TIMEOUT = 600.0
# Nothing may wait for a password or an editor on a run that nobody watches.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true",
            "GIT_EDITOR": "true", "LC_ALL": "C"}


class GitSourceError(StagingError):
    pass


def _git(*args: str, cwd: str | Path | None = None) -> str:
    where = ["-C", str(cwd)] if cwd is not None else []
    try:
        res = subprocess.run(["git", *where, *args], capture_output=True, text=True,
                             timeout=GIT_TIMEOUT, env={**os.environ, **_GIT_ENV},
                             stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise GitSourceError("git is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise GitSourceError(f"git {args[0]} took longer than {GIT_TIMEOUT:g} s") from None
    if res.returncode != 0:
        lines = [x for x in res.stderr.strip().splitlines() if x.strip()]
        raise GitSourceError(lines[-1] if lines else f"git {args[0]} exited {res.returncode}")
    return res.stdout.strip()


def _about(pin: GitPin) -> str:
    return f"{pin.where}: {pin.field}: " if pin.where else f"{pin.field}: "


def repository_of(path: Path, pin: GitPin) -> tuple[Path, str]:
    """The work tree holding `path` and `path` relative to it."""
    start = path if path.is_dir() else path.parent
    try:
        top = Path(_git("rev-parse", "--show-toplevel", cwd=start))
    except GitSourceError as e:
        raise GitSourceError(f"{_about(pin)}{path} is not in a git repository, so it cannot "
                             f"be taken at commit {pin.commit} ({e})") from None
    return top, os.path.relpath(path, top)


def _resolve(repo: Path, pin: GitPin, what: str) -> str:
    try:
        return _git("rev-parse", "--verify", "--quiet", "--end-of-options",
                    f"{pin.commit}^{{commit}}", cwd=repo)
    except GitSourceError:
        raise GitSourceError(f"{_about(pin)}commit {pin.commit} is not in {what}") from None


def commit_problem(source: str, pin: GitPin) -> str | None:
    """Why a host-path source cannot be taken at its commit, checked without a checkout
    (a URL is only known once cloned); None when it can."""
    if is_url(source):
        return None
    try:
        top, _ = repository_of(Path(source), pin)
        _resolve(top, pin, f"the git repository {top}")
    except GitSourceError as e:
        return str(e)
    return None


@contextmanager
def checked_out(source: str, pin: GitPin) -> Iterator[tuple[Path, str]]:
    """`source` as it is at the pinned commit, in a temporary checkout, and the full
    commit id. GitSourceError (positioned at the `commit` field) when it cannot be."""
    with tempfile.TemporaryDirectory(prefix="axp-git-") as tmp:
        clone = Path(tmp) / "checkout"
        if is_url(source):
            rel = "."
            what = f"the git repository at {source}"
            try:
                # Without blobs: only those of the one commit are fetched, at checkout.
                _git("clone", "--quiet", "--no-checkout", "--filter=blob:none", "--",
                     source, str(clone))
            except GitSourceError as e:
                raise GitSourceError(f"{_about(pin)}{source} could not be cloned as a git "
                                     f"repository: {e}") from None
        else:
            top, rel = repository_of(Path(source), pin)
            what = f"the git repository {top}"
            _resolve(top, pin, what)
            # --shared borrows the objects: nothing is copied but the checked-out files.
            _git("clone", "--quiet", "--no-checkout", "--shared", "--", str(top), str(clone))
        full = _resolve(clone, pin, what)
        _git("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", full,
             cwd=clone)
        path = clone / rel
        if not os.path.lexists(path):
            raise GitSourceError(f"{_about(pin)}{rel} does not exist at commit {pin.commit} "
                                 f"of {what}")
        yield path, full
