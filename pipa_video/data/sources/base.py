"""What every layout reader shares: the ``Layout`` record, its options, the GTA5 / SYNTHIA-RAND scanner
and small file helpers.

A layout turns a dataset root into a frame table (``scan``) with the columns ``SCAN_COLUMNS``:
``sequence, frame, image, raw_label`` (paths relative to the layout's data root, ``raw_label`` empty
for unlabelled frames), sorted by sequence then frame, plus ``condition`` (``index.CONDITION_COLUMN``)
for datasets that record one per frame (ACDC's weather, Dark Zurich's time of day). ``read_raw_label`` gives a label file's raw
ids in the layout's id space (``classes.ID_SPACES``); ``classes.label_lut`` turns them into train ids.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from pipa_video.data.index import OPTIONAL_COLUMNS, DatasetError

SCAN_COLUMNS = ("sequence", "frame", "image", "raw_label")
SPLIT_OPTION = "split"


class SizeMismatch(str, Enum):
    """What a prepare run does with a frame whose image and label sizes differ."""

    ERROR = "error"
    SKIP = "skip"  # GTA5 ships a few such frames: warn, leave them out, report the count


@dataclass(frozen=True)
class LayoutOption:
    """A layout-specific option: a keyword of ``scan``/``check_root`` and a prepare flag."""

    name: str
    type: type
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _identity_root(root: Path, **_: Any) -> Path:
    return root


@dataclass(frozen=True)
class Layout:
    """One on-disk dataset layout: how to check a root, list its frames and read its labels."""

    name: str
    expected: str  # the layout in one line, quoted by every "wrong root" error
    check_root_fn: Callable[..., None]
    scan_fn: Callable[..., pd.DataFrame]
    id_space: str | None = None  # None: the layout has no labels (user footage)
    read_raw_label: Callable[[Path], np.ndarray] | None = None
    # Pixels of a raw label forced to ignore after the id map (VIPER's ego vehicle), or None.
    ignore_mask_fn: Callable[..., np.ndarray | None] | None = None
    # Where image paths are relative to, given the root the user named (a sequence folder, a file).
    resolve_root_fn: Callable[..., Path] = _identity_root
    options: tuple[LayoutOption, ...] = ()
    default_class_set: str | None = None  # None: prepare requires --class-set
    size_mismatch: SizeMismatch = SizeMismatch.ERROR
    frames_are_video: bool = False  # ``image`` is a video file and ``frame`` its decoded frame number
    doc: str = field(default="", compare=False)

    @property
    def has_labels(self) -> bool:
        return self.id_space is not None

    @property
    def uses_split(self) -> bool:
        return any(o.name == SPLIT_OPTION for o in self.options)

    def with_defaults(self, opts: Mapping[str, Any]) -> dict[str, Any]:
        """``opts`` completed with the defaults of every declared option; unknown keys are errors."""
        known = {o.name: o for o in self.options}
        unknown = sorted(set(opts) - set(known))
        if unknown:
            raise TypeError(
                f"layout {self.name!r} has no option(s) {unknown}; its options are {sorted(known)}"
            )
        return {name: opts.get(name, o.default) for name, o in known.items()}

    def resolve_root(self, root: str | os.PathLike, **opts: Any) -> Path:
        """The absolute folder that scanned paths are relative to (recorded as the index's root)."""
        return self.resolve_root_fn(absolute(root), **self.with_defaults(opts))

    def check_root(self, root: str | os.PathLike, **opts: Any) -> None:
        """Raise ``DatasetError`` naming the first missing folder/file and the expected layout."""
        root = absolute(root)
        if not root.exists():
            raise DatasetError(f"{root} not found: expected {self.expected}")
        self.check_root_fn(root, **self.with_defaults(opts))

    def scan(self, root: str | os.PathLike, **opts: Any) -> pd.DataFrame:
        """The frame table of ``root``, sorted; paths are relative to ``resolve_root(root)``."""
        self.check_root(root, **opts)
        opts = self.with_defaults(opts)
        frames = self.scan_fn(absolute(root), **opts)
        return finish_scan(frames, where=f"{root} ({self.name})", expected=self.expected)

    def ignore_mask(self, raw: np.ndarray, **opts: Any) -> np.ndarray | None:
        if self.ignore_mask_fn is None:
            return None
        return self.ignore_mask_fn(raw, **self.with_defaults(opts))


def finish_scan(frames: pd.DataFrame | list[dict], *, where: str, expected: str) -> pd.DataFrame:
    """Type, sort and sanity-check a scan result; an empty scan is an error naming the root.

    Columns are ``SCAN_COLUMNS`` plus those of ``index.OPTIONAL_COLUMNS`` the scan provides.
    """
    frames = pd.DataFrame(frames)
    optional = [c for c in OPTIONAL_COLUMNS if c in frames.columns]
    frames = frames.reindex(columns=[*SCAN_COLUMNS, *optional])
    if frames.empty:
        raise DatasetError(f"{where}: no frames found; expected {expected}")
    frames = frames.astype({"sequence": str, "frame": np.int64, "image": str, "raw_label": str,
                            **{c: str for c in optional}})
    frames = frames.sort_values(["sequence", "frame"], kind="stable").reset_index(drop=True)
    dup = frames.duplicated(["sequence", "frame"], keep=False)
    if dup.any():
        first = frames[dup].iloc[:2]
        raise DatasetError(
            f"{where}: frame {first['frame'].iat[0]} of sequence {first['sequence'].iat[0]} appears "
            f"twice ({first['image'].iat[0]}, {first['image'].iat[1]}); keep one file per frame"
        )
    return frames


# --- file helpers -------------------------------------------------------------------------------
def absolute(path: str | os.PathLike) -> Path:
    """``path`` made absolute and normalised (``..`` removed) without resolving symlinks."""
    return Path(os.path.abspath(os.path.expanduser(path)))


def require_dir(path: Path, *, expected: str) -> None:
    if not path.is_dir():
        raise DatasetError(f"{path} not found: expected {expected}")


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (index files are portable)."""
    return path.relative_to(root).as_posix()


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(name))


def list_files(folder: Path, suffixes: Iterable[str]) -> list[Path]:
    """Plain files of ``folder`` (not recursive) whose suffix is in ``suffixes`` (case-insensitive)."""
    suffixes = {s.lower() for s in suffixes}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except FileNotFoundError:
        raise DatasetError(f"image {path} not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from None
    return height, width


def read_pil(path: Path, *, what: str) -> tuple[str, np.ndarray]:
    """(PIL mode, pixel array) of an image file, or a ``DatasetError`` naming the file.

    PIL keeps palette PNGs as indices (mode ``P``); OpenCV would expand them to BGR colours.
    """
    try:
        with Image.open(path) as img:
            return img.mode, np.array(img)
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"cannot read {what} {path}: {err}") from None


# Modes whose pixel values are the stored indices (palette index or grey level), no colour lookup.
INDEX_MODES = ("P", "L")


def read_index_png(path: Path, *, what: str) -> np.ndarray:
    """An 8-bit single-channel or palette PNG as its stored indices (H, W) uint8."""
    mode, array = read_pil(path, what=what)
    if mode not in INDEX_MODES:
        raise DatasetError(
            f"{path}: {what} must be a single-channel or palette PNG of ids, got PIL mode {mode!r}"
        )
    return array.astype(np.uint8, copy=False)


@dataclass(frozen=True)
class NumberedPairs:
    """Image datasets named ``<id>.png`` with a label of the same id (GTA5, SYNTHIA-RAND).

    ``image_fn`` / ``label_fn`` give the paths of frame ``id`` (``layouts``); ``digits`` is the id's width.
    Every image is its own one-frame sequence; a missing label is an error naming both files.
    """

    image_fn: Callable[[int], str]
    label_fn: Callable[[int], str]
    digits: int
    expected: str

    def check_root(self, root: Path) -> None:
        for path_fn in (self.image_fn, self.label_fn):
            require_dir(root / Path(path_fn(0)).parent, expected=self.expected)

    def scan(self, root: Path) -> pd.DataFrame:
        frame_re = re.compile(rf"^(?P<frame>\d{{{self.digits}}})\.png$")
        rows = []
        for path in sorted((root / Path(self.image_fn(0)).parent).iterdir()):
            match = frame_re.match(path.name)
            if match is None:
                continue
            frame = int(match["frame"])
            label = self.label_fn(frame)
            if not (root / label).is_file():
                raise DatasetError(f"{root / label} not found: label of {path}; expected {self.expected}")
            rows.append(dict(sequence=f"{frame:0{self.digits}d}", frame=frame, image=self.image_fn(frame),
                             raw_label=label))
        return pd.DataFrame(rows)


# --- wiring a reader module into its Layout -------------------------------------------------------
def split_option(help: str) -> LayoutOption:
    """The ``split`` option of a dataset with splits; every such reader lists ``train`` by default."""
    return LayoutOption(SPLIT_OPTION, str, "train", help)
