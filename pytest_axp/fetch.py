"""http(s) file sources: streamed, cached by sha256, verified when a sha256 is given."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .staging import StagingError

_CHUNK = 1 << 16


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "pytest-axp" / "downloads"


def fetch_url(url: str, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """A local copy of `url`'s content. With a known sha256 a cached copy is used as is."""
    import httpx

    folder = cache_dir()
    if sha256:
        cached = folder / sha256.lower()
        if cached.is_file():
            return cached
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, httpx.stream("GET", url, timeout=timeout,
                                                      follow_redirects=True) as resp:
            if resp.status_code != 200:
                raise StagingError(f"GET {url} answered HTTP {resp.status_code}")
            for chunk in resp.iter_bytes(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if sha256 and actual != sha256.lower():
            raise StagingError(f"{url}: sha256 is {actual}, the experiment expects {sha256}")
        target = folder / actual
        os.replace(tmp, target)
        return target
    except httpx.HTTPError as e:
        raise StagingError(f"GET {url} failed: {e}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
