"""Validation: every pair's file headers read before any model work, so a bad file or a wrong ``--scale`` fails
in a second, not after an hour.

``check_pairs`` returns :class:`CheckedPair` (sizes from the headers) for the eval loop and, under
``--skip-bad``, :class:`BadImage` for each unreadable file, kept in the record. A size mismatch always fails: it
means a wrong folder or scale, not one damaged file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sr_bench.datasets.pairing import ImagePair
from sr_bench.errors import DatasetError

SKIP_BAD_HINT = "; replace the file or rerun with --skip-bad"  # dropped from the message once --skip-bad is on


@dataclass(frozen=True)
class CheckedPair:
    """A pair whose headers were read: sizes are (H, W); ``hr_size`` is after mod-crop."""

    pair: ImagePair
    lr_size: tuple[int, int]
    hr_size: tuple[int, int]
    sixteen_bit: bool = False  # a file of the pair has 16-bit samples (read as their high byte, see images.py)


@dataclass(frozen=True)
class BadImage:
    """An image that could not be read, kept in the record when ``--skip-bad`` lets the run go on."""

    name: str
    path: Path
    error: str


def _header_size(path: Path) -> tuple[int, int, bool]:
    """(H, W, 16-bit) from the file header, after checking the file's structure (PNG chunk CRCs) without decoding."""
    from sr_bench.images import READ_ERRORS, is_sixteen_bit, read_failure

    try:
        with Image.open(path) as im:
            w, h = im.size
            deep = is_sixteen_bit(im)
            im.verify()
    except (*READ_ERRORS, UnidentifiedImageError) as exc:
        raise DatasetError(f"cannot read image {path}: {read_failure(exc)}{SKIP_BAD_HINT}") from None
    return h, w, deep


def _mismatch(pair: ImagePair, lr: tuple[int, int], hr_raw: tuple[int, int], scale: int) -> str:
    hr_mod = (hr_raw[0] - hr_raw[0] % scale, hr_raw[1] - hr_raw[1] % scale)
    msg = (
        f"LR/HR size mismatch for {pair.name}: LR {pair.lr_path} is {lr[0]}x{lr[1]}, "
        f"x{scale} = {lr[0] * scale}x{lr[1] * scale}, but HR {pair.hr_path.name} mod-cropped is "
        f"{hr_mod[0]}x{hr_mod[1]} (HxW)"
    )
    for k in range(1, 9):
        if k != scale and lr[0] * k == hr_raw[0] - hr_raw[0] % k and lr[1] * k == hr_raw[1] - hr_raw[1] % k:
            return msg + f"; the LR looks like x{k}: pass --scale {k}"
    return msg + "; check that the LR folder belongs to this HR folder"


def bad_image(pair: ImagePair, exc: DatasetError) -> BadImage:
    """A skipped image for the record and the warning, without advice to turn on the --skip-bad that is on."""
    return BadImage(pair.name, pair.hr_path, str(exc).removesuffix(SKIP_BAD_HINT))


def check_pairs(
    pairs: list[ImagePair], scale: int, *, skip_bad: bool = False
) -> tuple[list[CheckedPair], list[BadImage]]:
    """Read every pair's headers before the run: unreadable files and size mismatches fail here, named.

    With ``skip_bad`` an unreadable file is returned in the second list instead of raising; a size
    mismatch always raises, since it means a wrong folder or scale rather than one damaged file.
    """
    checked: list[CheckedPair] = []
    bad: list[BadImage] = []
    for pair in pairs:
        try:
            hr_h, hr_w, hr_deep = _header_size(pair.hr_path)
            lr_h, lr_w, lr_deep = _header_size(pair.lr_path) if pair.lr_path else (hr_h // scale, hr_w // scale, False)
        except DatasetError as exc:
            if not skip_bad:
                raise
            bad.append(bad_image(pair, exc))
            continue
        hr_raw, lr = (hr_h, hr_w), (lr_h, lr_w)
        hr = (hr_raw[0] - hr_raw[0] % scale, hr_raw[1] - hr_raw[1] % scale)
        if min(lr) < 1 or (lr[0] * scale, lr[1] * scale) != hr:
            raise DatasetError(_mismatch(pair, lr, hr_raw, scale))
        checked.append(CheckedPair(pair, lr, hr, sixteen_bit=hr_deep or lr_deep))
    return checked, bad


def sixteen_bit_warning(checked: list[CheckedPair], dataset: str) -> str | None:
    """The one warning a dataset gets when some of its files are 16-bit: how srbench reads them and why that
    is not the official reader's result (see ``images``)."""
    names = [c.pair.name for c in checked if c.sixteen_bit]
    if not names:
        return None
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (f"{len(names)} image(s) of {dataset} are 16-bit ({shown}): srbench reads the high byte of each sample; "
            "the official reader would keep uint16 and scale it as 8-bit, so no official number exists for them")
