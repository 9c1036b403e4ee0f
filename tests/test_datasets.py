"""Dataset registry, layouts, pairing, validation, generated LR cache and pull (against a local HTTP server)."""

from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import require_dataset

from sr_bench import datasets as ds_mod
from sr_bench.datasets import (
    ALIASES,
    Archive,
    check_pairs,
    custom_dataset,
    dataset_status,
    get_dataset_spec,
    list_datasets,
    load_pair,
    pull_dataset,
    resolve_dataset,
)
from sr_bench.errors import DatasetError, DownloadError
from sr_bench.imresize import imresize

SET5 = ("baby", "bird", "butterfly", "head", "woman")


@pytest.fixture(scope="module")
def set5(data_dir: Path) -> Path:
    return data_dir / "Set5"


def _div2k_tree(root: Path, set5: Path, hr: str, lr: str | None, names: tuple[str, ...], suffix: str = "x4") -> None:
    """Set5 copied under DIV2K-style names (0801, 0802, ...)."""
    (root / hr).mkdir(parents=True)
    if lr:
        (root / lr).mkdir(parents=True)
    for name, new in zip(SET5, names):
        shutil.copy(set5 / "HR" / f"{name}.png", root / hr / f"{new}.png")
        if lr:
            shutil.copy(set5 / "LR_bicubic" / "X4" / f"{name}x4.png", root / lr / f"{new}{suffix}.png")


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


# --------------------------------------------------------------------------------------------- registry


def test_registry_holds_every_named_set_and_aliases_point_into_it() -> None:
    expected = {"div2k-valid", "div2k-test", "lsdir-valid", "lsdir-test", "ntire2023-hybrid-test", "ntire-valid",
                "ntire-test", "set5", "set14", "b100", "urban100", "manga109"}
    assert set(list_datasets()) == expected
    assert all(target in expected for targets in ALIASES.values() for target in targets)
    assert get_dataset_spec("ntire-valid").count == 200
    assert get_dataset_spec("Set14").name == "set14"


def test_unknown_dataset_lists_known_and_present_ones(data_dir: Path) -> None:
    require_dataset(data_dir, "Set14"), require_dataset(data_dir, "B100")
    with pytest.raises(DatasetError, match=r"unknown dataset 'set15'; known: .*manga109.*present under .*: set5, set14, b100"):
        resolve_dataset("set15", data_dir, 4)


def test_missing_dataset_says_where_it_looked_and_how_to_pull(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"'div2k' not found under .*DIV2K_test_HR.*DIV2K_valid_HR.*srbench datasets pull div2k-valid"):
        resolve_dataset("div2k", tmp_path, 4)


# ---------------------------------------------------------------------------------------------- layouts


def test_set5_pairs_shipped_lr_files(data_dir: Path) -> None:
    ds = resolve_dataset("set5", data_dir, 4)
    assert [p.name for p in ds.pairs] == list(SET5)
    assert ds.lr_source == "files" and ds.pairs[0].lr_path.name == "babyx4.png"
    assert ds.notices == []


def test_set14_without_lr_folder_generates_lr(data_dir: Path) -> None:
    require_dataset(data_dir, "Set14")
    ds = resolve_dataset("set14", data_dir, 4)
    assert len(ds.pairs) == 14 and ds.lr_dir is None and ds.lr_source == "generated"
    assert any("generated" in n for n in ds.notices)


def test_set5_at_another_scale_falls_back_to_generated_lr(data_dir: Path) -> None:
    assert resolve_dataset("set5", data_dir, 2).lr_dir is None


@pytest.mark.parametrize(
    ("name", "hr", "lr", "names", "suffix"),
    [
        ("div2k-valid", "DIV2K_valid_HR", "DIV2K_valid_LR_bicubic/X4", ("0801", "0802"), "x4"),
        ("div2k-valid", "DIV2K/DIV2K_valid_HR", "DIV2K/DIV2K_valid_LR_bicubic/x4", ("0801", "0802"), "x4"),
        ("div2k-valid", "DIV2K_valid_HR", "DIV2K_valid_LR", ("0801", "0802"), "x4"),
        ("div2k-test", "DIV2K_test_HR", "DIV2K_test_LR", ("0901", "0902"), ""),  # 2022: LR without x4
        ("lsdir-valid", "LSDIR/val1/HR/val", "LSDIR/val1/X4/val", ("0000001", "0000002"), "x4"),
        ("lsdir-valid", "LSDIR_valid_HR", "LSDIR_valid_LR", ("0000001", "0000002"), "x4"),
        ("ntire2023-hybrid-test", "LSDIR_DIV2K_test_HR", "LSDIR_DIV2K_test_LR", ("0000001", "0901"), "x4"),
        ("ntire-valid", "DIV2K_LSDIR_valid_HR", "DIV2K_LSDIR_valid_LR", ("0000001", "0801"), "x4"),
        ("ntire-test", "DIV2K_LSDIR_test_HR", "DIV2K_LSDIR_test_LR", ("0000001", "0901"), "x4"),
        ("ntire-valid", "LSDIR_DIV2K_valid_HR", "LSDIR_DIV2K_valid_LR", ("0000001", "0801"), "x4"),  # 2024's names
        ("ntire-test", "LSDIR_DIV2K_test_HR", "LSDIR_DIV2K_test_LR", ("0000001", "0901"), "x4"),
        ("b100", "benchmark/BSD100/HR", "benchmark/BSD100/LR_bicubic/X4", ("3096", "8023"), "x4"),
        ("urban100", "urban100/hr", "urban100/LR_bicubic/X4", ("img_001", "img_002"), "x4"),
    ],
)
def test_layout_variants_resolve(tmp_path: Path, set5: Path, name: str, hr: str, lr: str, names: tuple[str, ...],
                                 suffix: str) -> None:
    _div2k_tree(tmp_path, set5, hr, lr, names, suffix)
    ds = resolve_dataset(name, tmp_path, 4)
    assert ds.name == name and [p.name for p in ds.pairs] == sorted(names)
    assert ds.lr_dir is not None and all(p.lr_path is not None for p in ds.pairs)
    checked, bad = check_pairs(ds.pairs, 4)
    assert len(checked) == 2 and not bad
    if ds.spec.count:
        assert any(f"the full set has {ds.spec.count}" in n for n in ds.notices)


def test_alias_prefers_the_test_split_when_present(tmp_path: Path, set5: Path) -> None:
    _div2k_tree(tmp_path, set5, "DIV2K_valid_HR", "DIV2K_valid_LR_bicubic/X4", ("0801",))
    valid = resolve_dataset("div2k", tmp_path, 4)
    assert (valid.name, valid.requested) == ("div2k-valid", "div2k")
    _div2k_tree(tmp_path, set5, "DIV2K_test_HR", "DIV2K_test_LR", ("0901",))
    assert resolve_dataset("div2k", tmp_path, 4).name == "div2k-test"


def test_dataset_status_reports_present_partial_and_missing(tmp_path: Path, set5: Path, data_dir: Path) -> None:
    _div2k_tree(tmp_path, set5, "DIV2K_valid_HR", "DIV2K_valid_LR_bicubic/X4", ("0801", "0802"))
    states = {s.spec.name: s for s in dataset_status(tmp_path)}
    assert states["div2k-valid"].state == "partial" and states["div2k-valid"].found == 2
    assert states["set5"].state == "built-in" and states["set5"].builtin  # srbench's own copy: never missing
    require_dataset(data_dir, "Set14"), require_dataset(data_dir, "B100")
    shared = {s.spec.name: s.state for s in dataset_status(data_dir)}
    assert shared["set5"] == shared["set14"] == shared["b100"] == "present"


# ---------------------------------------------------------------------------------------------- pairing


def test_custom_pairs_match_with_or_without_scale_suffix(tmp_path: Path, set5: Path) -> None:
    hr, lr = tmp_path / "hr", tmp_path / "lr"
    hr.mkdir(), lr.mkdir()
    shutil.copy(set5 / "HR/baby.png", hr / "baby.png")
    shutil.copy(set5 / "HR/bird.png", hr / "bird.png")
    shutil.copy(set5 / "LR_bicubic/X4/babyx4.png", lr / "babyx4.png")
    shutil.copy(set5 / "LR_bicubic/X4/birdx4.png", lr / "bird.png")
    ds = custom_dataset(hr, lr, 4)
    assert ds.name == "custom" and [p.lr_path.name for p in ds.pairs] == ["babyx4.png", "bird.png"]


def test_missing_lr_file_is_named(tmp_path: Path, set5: Path) -> None:
    _div2k_tree(tmp_path, set5, "hr", "lr", ("a", "b"))
    (tmp_path / "lr" / "bx4.png").unlink()
    with pytest.raises(DatasetError, match=r"no LR image for b\.png in .*lr \(expected bx4\.png or b\.png\)"):
        custom_dataset(tmp_path / "hr", tmp_path / "lr", 4)


def test_lr_folder_of_another_scale_is_a_scale_mismatch(tmp_path: Path, set5: Path) -> None:
    _div2k_tree(tmp_path, set5, "hr", "lr", ("a", "b"))
    with pytest.raises(DatasetError, match=r"holds x4 images \(e\.g\. ax4\.png\) but the scale is x2"):
        custom_dataset(tmp_path / "hr", tmp_path / "lr", 2)


def test_empty_folder_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "Set5" / "HR").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no images in .*Set5/HR"):
        resolve_dataset("set5", tmp_path, 4)
    with pytest.raises(DatasetError, match=r"--hr folder .*nope does not exist"):
        custom_dataset(tmp_path / "nope", None, 4)


# ------------------------------------------------------------------------------------------- validation


def test_size_mismatch_names_the_file_and_both_sizes(tmp_path: Path, set5: Path) -> None:
    _div2k_tree(tmp_path, set5, "hr", "lr", ("a", "b"))
    shutil.copy(set5 / "LR_bicubic/X4/birdx4.png", tmp_path / "lr" / "ax4.png")  # 72x72 for a 512x512 HR
    ds = custom_dataset(tmp_path / "hr", tmp_path / "lr", 4)
    with pytest.raises(DatasetError, match=r"LR/HR size mismatch for a: LR .*ax4\.png is 72x72, x4 = 288x288, but HR a\.png mod-cropped is 512x512"):
        check_pairs(ds.pairs, 4)


def test_lr_sizes_of_another_scale_suggest_it(tmp_path: Path, set5: Path) -> None:
    _div2k_tree(tmp_path, set5, "hr", "lr", ("a",), suffix="")  # x4 LR without a suffix
    ds = custom_dataset(tmp_path / "hr", tmp_path / "lr", 2)
    with pytest.raises(DatasetError, match=r"the LR looks like x4: pass --scale 4"):
        check_pairs(ds.pairs, 2)


def test_corrupt_image_stops_before_work_or_is_skipped(tmp_path: Path, set5: Path) -> None:
    _div2k_tree(tmp_path, set5, "hr", None, ("a", "b", "c"))
    data = (tmp_path / "hr" / "b.png").read_bytes()
    (tmp_path / "hr" / "b.png").write_bytes(data[: len(data) // 2])
    ds = custom_dataset(tmp_path / "hr", None, 4)
    with pytest.raises(DatasetError, match=r"cannot read image .*b\.png.*--skip-bad"):
        check_pairs(ds.pairs, 4)
    checked, bad = check_pairs(ds.pairs, 4, skip_bad=True)
    assert [c.pair.name for c in checked] == ["a", "c"] and [b.name for b in bad] == ["b"]


def test_checked_sizes_are_mod_cropped(data_dir: Path) -> None:
    require_dataset(data_dir, "Set14")
    ds = resolve_dataset("set14", data_dir, 4)
    checked = {c.pair.name: c for c in check_pairs(ds.pairs, 4)[0]}
    assert checked["comic"].hr_size == (360, 248) and checked["comic"].lr_size == (90, 62)  # 361x250 on disk


# ------------------------------------------------------------------------------------ loading and LR cache


@pytest.mark.parametrize("kind", ["gray", "rgba", "palette", "gray16"])
def test_unusual_png_modes_load_as_8bit_rgb(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    if kind == "gray":
        path = _png(tmp_path / "hr/x.png", rgb[..., 0])
    elif kind == "rgba":
        path = _png(tmp_path / "hr/x.png", np.dstack([rgb, rgb[..., :1]]))
    elif kind == "palette":
        path = tmp_path / "hr/x.png"
        path.parent.mkdir()
        Image.fromarray(rgb).convert("P").save(path)
    else:
        path = tmp_path / "hr/x.png"
        path.parent.mkdir()
        Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(path)
    ds = custom_dataset(tmp_path / "hr", None, 4)
    checked, _ = check_pairs(ds.pairs, 4)
    lr, hr = load_pair(ds.pairs[0], 4, tmp_path / "cache")
    assert hr.dtype == lr.dtype == np.uint8 and hr.shape == (36, 44, 3) and lr.shape == (9, 11, 3)
    assert checked[0].lr_size == lr.shape[:2]
    assert np.array_equal(lr, imresize(hr, 1 / 4))  # generated from the decoded 8-bit HR, every value


def test_generated_lr_is_cached_reused_and_invalidated(tmp_path: Path, set5: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    shutil.copy(set5 / "HR/bird.png", hr_dir / "bird.png")
    pair = custom_dataset(hr_dir, None, 4).pairs[0]
    cache = tmp_path / "cache"
    lr, hr = load_pair(pair, 4, cache)
    shipped = np.asarray(Image.open(set5 / "LR_bicubic/X4/birdx4.png").convert("RGB"))
    assert np.array_equal(lr, shipped)  # exact: one value off is a bug (e.g. half-to-even rounding)
    (entry,) = cache.rglob("*.png")
    assert np.array_equal(np.asarray(Image.open(entry).convert("RGB")), shipped)  # the cache file too

    import sr_bench.imresize

    def refuse(*args: object) -> None:
        raise AssertionError("LR was generated again instead of read from the cache")

    monkeypatch.setattr(sr_bench.imresize, "imresize", refuse)
    again, _ = load_pair(pair, 4, cache)
    assert np.array_equal(again, lr)
    monkeypatch.undo()

    Image.fromarray(255 - hr).save(hr_dir / "bird.png")  # an edited HR must not reuse the old LR
    changed, _ = load_pair(pair, 4, cache)
    assert np.array_equal(changed, imresize(255 - hr, 1 / 4)) and len(list(cache.rglob("*.png"))) == 2


# --------------------------------------------------------------------------------------------------- pull


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP range support (what the official servers do), logging each request's range."""

    requests: list[str | None] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).requests.append(self.headers.get("Range"))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if (rng := self.headers.get("Range")) and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    _RangeHandler.requests = []
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(root), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    thread.join()


def _zip(path: Path, files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _div2k_archives(www: Path, set5: Path, n: int = 2) -> None:
    names = [f"08{i:02d}" for i in range(1, n + 1)]
    _zip(www / "DIV2K_valid_HR.zip",
         {f"DIV2K_valid_HR/{new}.png": (set5 / "HR" / f"{old}.png").read_bytes() for old, new in zip(SET5, names)})
    _zip(www / "DIV2K_valid_LR_bicubic_X4.zip",
         {f"DIV2K_valid_LR_bicubic/X4/{new}x4.png": (set5 / "LR_bicubic/X4" / f"{old}x4.png").read_bytes()
          for old, new in zip(SET5, names)})


def _small_div2k(count: int = 2):
    spec = get_dataset_spec("div2k-valid")
    return replace(spec, count=count, archives=tuple(replace(a, images=count) for a in spec.archives))


def test_pull_downloads_verifies_and_unpacks_into_the_layout(tmp_path: Path, server: tuple[str, Path], set5: Path) -> None:
    url, www = server
    _div2k_archives(www, set5)
    seen: list[tuple[str, int, int | None]] = []
    ds = pull_dataset(_small_div2k(), tmp_path / "data", base_url=url, progress=lambda *a: seen.append(a))
    assert ds.name == "div2k-valid" and [p.name for p in ds.pairs] == ["0801", "0802"]
    assert ds.lr_dir == tmp_path / "data/DIV2K_valid_LR_bicubic/X4"
    assert {s[0] for s in seen} == {"DIV2K_valid_HR.zip", "DIV2K_valid_LR_bicubic_X4.zip"}
    assert not (tmp_path / "data/.downloads").exists()
    before = len(_RangeHandler.requests)
    pull_dataset(_small_div2k(), tmp_path / "data", base_url=url)  # complete: nothing is fetched again
    assert len(_RangeHandler.requests) == before


def test_pull_resumes_a_partial_download(tmp_path: Path, server: tuple[str, Path], set5: Path) -> None:
    url, www = server
    _div2k_archives(www, set5)
    data = (www / "DIV2K_valid_HR.zip").read_bytes()
    downloads = tmp_path / "data/.downloads"
    downloads.mkdir(parents=True)
    (downloads / "DIV2K_valid_HR.zip.part").write_bytes(data[:1000])
    pull_dataset(_small_div2k(), tmp_path / "data", base_url=url)
    assert _RangeHandler.requests[0] == "bytes=1000-"
    assert len(list((tmp_path / "data/DIV2K_valid_HR").iterdir())) == 2


def test_pull_rejects_a_wrong_checksum_and_a_wrong_count(tmp_path: Path, server: tuple[str, Path], set5: Path) -> None:
    url, www = server
    _div2k_archives(www, set5)
    spec = _small_div2k()
    bad_hash = replace(spec, archives=(replace(spec.archives[0], sha256="0" * 64),))
    with pytest.raises(DownloadError, match=r"DIV2K_valid_HR\.zip failed verification.*removed, pull again"):
        pull_dataset(bad_hash, tmp_path / "a", base_url=url)
    assert not (tmp_path / "a").exists()  # the failed pull removed the folders it made (nothing to resume)
    good_hash = hashlib.sha256((www / "DIV2K_valid_HR.zip").read_bytes()).hexdigest()
    wrong_count = replace(spec, archives=(replace(spec.archives[0], sha256=good_hash, images=3),))
    with pytest.raises(DownloadError, match=r"holds 2 images, expected 3"):
        pull_dataset(wrong_count, tmp_path / "b", base_url=url)


def test_pull_unpacks_the_lsdir_tarball_under_lsdir(tmp_path: Path, server: tuple[str, Path], set5: Path) -> None:
    url, www = server
    with tarfile.open(www / "val1.tar.gz", "w:gz") as tf:
        tf.add(set5 / "HR/bird.png", "val1/HR/val/0000001.png")
        tf.add(set5 / "LR_bicubic/X4/birdx4.png", "val1/X4/val/0000001x4.png")
    spec = replace(get_dataset_spec("lsdir-valid"), count=1)
    ds = pull_dataset(spec, tmp_path, base_url=url)
    assert ds.hr_dir == tmp_path / "LSDIR/val1/HR/val" and ds.lr_dir == tmp_path / "LSDIR/val1/X4/val"
    assert [p.name for p in ds.pairs] == ["0000001"]


def test_pull_of_a_missing_file_and_of_a_set_without_archives(tmp_path: Path, server: tuple[str, Path]) -> None:
    url, _ = server
    with pytest.raises(DownloadError, match=r"HTTP 404"):
        pull_dataset(_small_div2k(), tmp_path, base_url=url)
    with pytest.raises(DatasetError, match=r"'set14' has no public download"):
        pull_dataset(get_dataset_spec("set14"), tmp_path)


def test_archive_url_uses_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    archive = Archive("x.zip", "https://example.org/x.zip")
    assert ds_mod.archive_url(archive) == "https://example.org/x.zip"
    monkeypatch.setenv(ds_mod.DATA_URL_ENV, "http://mirror/base/")
    assert ds_mod.archive_url(archive) == "http://mirror/base/x.zip"
