"""Checkpoint files on disk, without torch: find, hash, list and download them.

Kept apart from :mod:`sr_bench.weights` (which reads and loads checkpoints with torch) so that listings such as
``srbench weights list`` start instantly.

Search order for a model's checkpoint (first hit wins):
1. an explicit path (``--weights FILE``),
2. ``$SRBENCH_WEIGHTS/<file>``,
3. ``./weights/<file>``,
4. the user cache (``~/.cache/srbench/weights/<file>``), where ``srbench weights pull`` puts downloads,
5. the checkpoints built into srbench (``sr_bench/assets/weights``: LGVAN and RFDN, MIT-licensed).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sr_bench import paths
from sr_bench.errors import CheckpointError, DownloadError
from sr_bench.files import DownloadProgressFn, default_file_mode, download, missing_dirs, remove_empty_dirs, sha256_file
from sr_bench.zoo.registry import CheckpointSpec

URL_BASE_ENV = "SRBENCH_WEIGHTS_URL"
OFFLINE_ADVICE = (
    "without the network: pass --weights FILE, put the file in $SRBENCH_WEIGHTS or ./weights/, "
    f"or set {URL_BASE_ENV}=<mirror URL>"
)

ProgressFn = DownloadProgressFn  # (bytes done, total bytes or None)


@dataclass(frozen=True)
class CheckpointStatus:
    """What is on disk for one model checkpoint, for listings and records."""

    path: Path | None
    sha256: str | None
    verified: bool | None  # None: nothing to compare against (unknown official hash, or no file)

    @property
    def builtin(self) -> bool:
        """True when the file is the copy shipped inside srbench."""
        return self.path is not None and is_builtin(self.path)


def is_builtin(path: Path) -> bool:
    return Path(path).resolve().parent == paths.builtin_weights_dir().resolve()


def find_checkpoint(spec: CheckpointSpec | None, explicit: Path | None = None) -> Path | None:
    """The checkpoint to use, following the search order above; ``None`` when there is none."""
    if explicit is not None:
        if not explicit.is_file():
            raise CheckpointError(f"checkpoint not found: {explicit} (check the --weights path)")
        return explicit
    if spec is None:
        return None
    for folder in paths.weights_search_dirs():
        candidate = folder / spec.file
        if candidate.is_file():
            return candidate
    return None


def checkpoint_status(spec: CheckpointSpec | None, explicit: Path | None = None) -> CheckpointStatus:
    path = find_checkpoint(spec, explicit)
    if path is None:
        return CheckpointStatus(None, None, None)
    digest = sha256_file(path)
    verified = None if spec is None or spec.sha256 is None else digest == spec.sha256
    return CheckpointStatus(path, digest, verified)


def status_word(status: CheckpointStatus) -> str:
    """``verified`` (official hash matches), ``mismatch``, ``found`` (no official hash known) or ``missing``."""
    if status.path is None:
        return "missing"
    return {True: "verified", False: "mismatch", None: "found"}[status.verified]


def status_label(row: dict) -> str:
    """The status as listings show it: ``built-in (verified)`` for the shipped copies, else the status word."""
    return f"built-in ({row['status']})" if row.get("builtin") else row["status"]


def checkpoint_label(path: str | Path | None, verified: bool | None, key: str | None = None,
                     official_key: str | None = None) -> str:
    """:func:`status_label` for a checkpoint a run used (a record's ``checkpoint`` block); ``verified`` is about the
    file, so a run that loaded another entry than the official one (``key`` vs ``official_key``) says so."""
    status = CheckpointStatus(Path(path) if path else None, None, verified)
    label = status_label({"status": status_word(status), "builtin": status.builtin})
    if status.path is not None and official_key is not None and key != official_key:
        label = f"file {label}, entry {key or 'top level'} (official: {official_key})"
    return label


def hash_mismatch_warning(path: Path, actual: str, expected: str) -> str:
    return (
        f"checkpoint {path} has sha256 {actual}, the official file has {expected}; "
        "numbers from it are not the official model's"
    )


def catalogue(names: list[str] | None = None) -> list[dict]:
    """One row per (model, scale): what the zoo knows and what is on disk, for listings (no network is built).

    ``status`` is as :func:`status_word`; ``builtin`` says the file found is the copy shipped with srbench.
    """
    from sr_bench.zoo import get_spec, list_models

    rows = []
    for name in names or list_models():
        spec = get_spec(name)
        for scale in spec.scales:
            ckpt = spec.checkpoint(scale)
            status = checkpoint_status(ckpt)
            rows.append(
                {
                    "model": spec.name,
                    "scale": scale,
                    "data_range": spec.data_range,
                    "file": ckpt.file if ckpt else None,
                    "url": download_url(ckpt) if ckpt else None,
                    "expected_sha256": ckpt.sha256 if ckpt else None,
                    "path": str(status.path) if status.path else None,
                    "sha256": status.sha256,
                    "status": status_word(status),
                    "builtin": status.builtin,
                    "note": ckpt.note if ckpt else None,
                    "description": spec.description,
                }
            )
    return rows


def download_url(spec: CheckpointSpec) -> str | None:
    """The URL to fetch; ``$SRBENCH_WEIGHTS_URL`` replaces everything before the file name (mirrors, tests)."""
    if base := os.environ.get(URL_BASE_ENV):
        return f"{base.rstrip('/')}/{spec.file}"
    return spec.url


def pull(spec: CheckpointSpec, dest_dir: Path | None = None, progress: ProgressFn | None = None) -> Path:
    """Download an official checkpoint, verify its sha256, then move it into place (mode as the umask says).

    The bytes go to a temporary file in the destination folder first; a failed or wrong download is
    deleted, so the destination never holds a half-written or unverified file — and a folder this call
    created is removed again when nothing was saved into it.
    """
    url = download_url(spec)
    if url is None:
        raise DownloadError(f"no download URL for {spec.file}: {spec.note or 'get the file from its authors'}")
    dest_dir = dest_dir or paths.weights_cache_dir()
    target = dest_dir / spec.file
    created = missing_dirs(dest_dir)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.file}.", suffix=".part", dir=dest_dir)
    except OSError as exc:
        raise DownloadError(f"cannot write to {dest_dir}: {exc.strerror or exc}; choose another --dir") from None
    os.close(fd)  # download() reopens the file by name
    tmp = Path(tmp_name)
    saved = False
    try:
        # No resume: a failed download must leave nothing behind, so there is never a partial file to continue.
        digest = download(url, tmp, progress, resume=False, advice=f"nothing was saved; {OFFLINE_ADVICE}")
        if spec.sha256 is not None and digest != spec.sha256:
            raise DownloadError(
                f"download of {spec.file} from {url} has sha256 {digest[:16]}…, expected {spec.sha256[:16]}…; "
                "nothing was saved — check the URL or mirror"
            )
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, target)
        saved = True
    finally:
        tmp.unlink(missing_ok=True)
        if not saved:
            remove_empty_dirs(created)
    return target

