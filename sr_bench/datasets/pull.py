"""``srbench datasets pull``: download, verify and unpack a catalogued set's official archives.

Downloads resume (``files.download``); a finished archive is checked (size, SHA-256 where published, image count)
in a staging folder before it is merged into the data root, and the set is resolved afterwards to confirm it is
complete. ``$SRBENCH_DATA_URL`` points every archive at a mirror.
"""

from __future__ import annotations

import functools
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from sr_bench.datasets.catalogue import Archive, DatasetSpec
from sr_bench.datasets.folders import IMAGE_EXTS
from sr_bench.datasets.resolve import Dataset, resolve_dataset
from sr_bench.errors import DatasetError, DownloadError
from sr_bench.files import download, missing_dirs, remove_empty_dirs, sha256_file

DATA_URL_ENV = "SRBENCH_DATA_URL"  # overrides the base URL of every archive (mirrors, tests)

ProgressFn = Callable[[str, int, "int | None"], None]  # (label, done, total) for long work such as downloads


def archive_url(archive: Archive, base_url: str | None = None) -> str:
    """The archive's URL, or ``base_url/<file>`` when a base is given (argument, else ``$SRBENCH_DATA_URL``)."""
    base = base_url or os.environ.get(DATA_URL_ENV)
    return f"{base.rstrip('/')}/{archive.file}" if base else archive.url


def pull_dataset(
    spec: DatasetSpec,
    data_root: Path,
    *,
    base_url: str | None = None,
    progress: ProgressFn | None = None,
) -> Dataset:
    """Download, verify and unpack ``spec``'s archives into ``data_root``; return the resolved set.

    Downloads go to ``<data_root>/.downloads/<file>.part`` and resume with an HTTP range request when
    interrupted; a finished archive is checked (size, SHA-256 where published, image count) before it is
    unpacked, and deleted once its images are in place. A set already complete is not downloaded again.
    """
    if not spec.archives:
        raise DatasetError(f"dataset {spec.name!r} has no public download; place it under the data root by hand")
    scale = 4  # the archives ship x4 LR
    if not _complete(spec, data_root, scale):
        downloads = data_root / ".downloads"
        created = missing_dirs(downloads)
        try:
            downloads.mkdir(parents=True, exist_ok=True)
            for archive in spec.archives:
                path = _download(archive, downloads, base_url, progress, spec.name)
                _unpack(archive, path, data_root)
                path.unlink()
        except OSError as exc:  # a full disk or an unwritable data root, while downloading or unpacking
            raise DownloadError(
                f"pulling {spec.name} into {data_root} failed: {exc.strerror or exc}; free space or fix the folder's "
                "permissions, then pull again (an interrupted download resumes)"
            ) from None
        finally:  # a partial download stays (it resumes); folders left empty, by success or failure, do not
            remove_empty_dirs(created or [downloads])
    ds = resolve_dataset(spec.name, data_root, scale)
    if spec.count is not None and len(ds.pairs) != spec.count:
        raise DownloadError(
            f"{spec.name}: {len(ds.pairs)} images after unpacking, expected {spec.count}; "
            f"delete {ds.hr_dir} and pull again"
        )
    return ds


def _complete(spec: DatasetSpec, data_root: Path, scale: int) -> bool:
    """True when the set is already there in full, HR and LR, so pulling again would change nothing."""
    try:
        ds = resolve_dataset(spec.name, data_root, scale)
    except DatasetError:
        return False
    return ds.lr_dir is not None and spec.count is not None and len(ds.pairs) == spec.count


def _download(archive: Archive, folder: Path, base_url: str | None, progress: ProgressFn | None, name: str) -> Path:
    """Fetch one archive into ``folder`` (resuming a ``.part`` file) and verify it; return the final path."""
    final = folder / archive.file
    if final.is_file() and _verified(archive, final):
        return final
    part = folder / f"{archive.file}.part"
    digest = download(
        archive_url(archive, base_url),
        part,
        functools.partial(progress, archive.file) if progress else None,
        resume=True,
        advice=f"rerun 'srbench datasets pull {name}' to resume; without the network, put the set under a folder "
        f"and pass --data-root DIR (or set {DATA_URL_ENV}=<mirror URL>)",
    )
    if not _verified(archive, part, digest):
        part.unlink()
        raise DownloadError(
            f"{archive.file} failed verification (size or SHA-256 differs from the published one); "
            "the partial file was removed, pull again"
        )
    os.replace(part, final)
    return final


def _verified(archive: Archive, path: Path, digest: str | None = None) -> bool:
    """Size and published SHA-256 match; ``digest`` is the file's hash when the caller already has it."""
    if archive.size is not None and path.stat().st_size != archive.size:
        return False
    return archive.sha256 is None or (digest or sha256_file(path)) == archive.sha256.lower()


def _unpack(archive: Archive, path: Path, data_root: Path) -> None:
    """Extract into a staging folder, check the image count, then merge into the data root."""
    staging = data_root / f".unpack-{archive.file}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _extract(path, staging)
        images = sum(1 for p in staging.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        if archive.images is not None and images != archive.images:
            path.unlink()
            raise DownloadError(
                f"{archive.file} holds {images} images, expected {archive.images}; the archive was removed, pull again"
            )
        target = data_root / archive.into
        target.mkdir(parents=True, exist_ok=True)
        for entry in staging.iterdir():
            _merge_move(entry, target / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract(path: Path, dest: Path) -> None:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                root = dest.resolve()
                for member in zf.namelist():
                    if not (dest / member).resolve().is_relative_to(root):
                        raise DownloadError(f"{path.name} has an unsafe member path {member!r}; not unpacking it")
                zf.extractall(dest)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                tf.extractall(dest, filter="data")
        else:
            raise DownloadError(f"{path.name} is neither a zip nor a tar archive; delete it and pull again")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{path.name} is corrupt ({exc}); it was removed, pull again") from None


def _merge_move(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, merging folders (an LR archive adds ``X4/`` beside an existing ``X2/``)."""
    if src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge_move(child, dst / child.name)
    else:
        if dst.exists() and not dst.is_dir():
            dst.unlink()
        shutil.move(str(src), str(dst))
