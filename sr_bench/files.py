"""File helpers shared by checkpoints and datasets, kept free of torch so light commands stay fast."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from sr_bench.errors import DownloadError

DownloadProgressFn = Callable[[int, int | None], None]  # (bytes done, total bytes or None)


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give (0644 under the usual umask 022).

    ``tempfile.mkstemp`` creates files 0600; files srbench writes through a temp file and rename get this mode
    instead, so other users and tools can read records, images and checkpoints as they would any other file.
    """
    umask = os.umask(0o022)  # reading the umask means setting it; put the old value straight back
    os.umask(umask)
    return 0o666 & ~umask


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (checkpoints and archives can be large)."""
    return _sha256(path).hexdigest()


def _sha256(path: Path) -> hashlib._Hash:
    """The running hash of a file's bytes, so a resumed download can keep hashing where the file ends."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest


def download(url: str, part: Path, progress: DownloadProgressFn | None, *, resume: bool, advice: str) -> str:
    """Stream ``url`` into ``part`` and return the sha256 of the whole file; the caller verifies and renames.

    With ``resume`` and a non-empty ``part``, only the missing tail is asked for (HTTP Range): a 206 answer is
    appended, a 200 answer starts over, and a 416 answer means ``part`` already holds everything. A body shorter
    than its Content-Length is an interrupted download, not a finished one. Every network or write failure becomes
    one ``DownloadError`` line naming the URL and ending with ``advice`` (what the user should do next).
    """
    import http.client  # the HTTP stack (~0.1 s to import) only when something is downloaded
    import urllib.error
    import urllib.request

    have = part.stat().st_size if resume and part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = have > 0 and response.status == 206
            digest = _sha256(part) if resumed else hashlib.sha256()
            done = have if resumed else 0
            length = response.headers.get("Content-Length")
            total = done + int(length) if length is not None and length.isdigit() else None
            with part.open("ab" if resumed else "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return sha256_file(part)  # nothing left to fetch: the part file is complete (or wrong: caller checks)
        raise DownloadError(
            f"download from {url} failed: HTTP {exc.code} {exc.reason} (check the URL or mirror); {advice}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            reason = "disk full"
        raise DownloadError(f"download from {url} failed: {reason}; {advice}") from None
    if total is not None and done != total:
        raise DownloadError(f"download from {url} stopped after {done} of {total} bytes; {advice}")
    return digest.hexdigest()


def missing_dirs(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first (what ``mkdir(parents=True)`` makes)."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


def remove_empty_dirs(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that are still empty; a folder someone filled meanwhile stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
