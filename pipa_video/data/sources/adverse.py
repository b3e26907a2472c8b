"""What the ACDC and Dark Zurich readers share: file names, the two label kinds, option lists.

Both releases (ETH Zurich) name a frame ``{sequence}_frame_{frame:06d}_rgb_anon.png`` and ship its
label as ``..._gt_labelTrainIds.png`` (Cityscapes train ids, 255 = ignore) and/or
``..._gt_labelIds.png`` (Cityscapes labelIds). A reader takes the labelTrainIds file when there is
one, else the labelIds file. Both kinds are read into the ``cityscapes`` labelId space (train ids
through the inverse of the cityscapesscripts table, ``classes.cityscapes_trainid_to_labelid``), so
every label reaches train ids through the same ``classes.label_lut`` as Cityscapes and GTA5.
Reference images (``*_ref`` folders, ``*_rgb_ref_anon.png``) never match the frame name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pipa_video.data.classes import CITYSCAPES_TRAINIDS, cityscapes_trainid_to_labelid
from pipa_video.data.index import DatasetError
from pipa_video.data.sources.base import read_index_png, rel
from pipa_video.data.sources.layouts import (
    ADVERSE_LABEL_SUFFIXES, ADVERSE_NAME_RE, ADVERSE_TRAINIDS_SUFFIX, adverse_stem,
)

SPLITS = ("train", "val", "test")
UNLABELLED_SPLITS = ("test",)  # labels withheld: the benchmark servers score the test split
_TRAINID_TO_LABELID = cityscapes_trainid_to_labelid()


def check_split(split: str, *, dataset: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"{dataset} has no split {split!r}; expected one of {list(SPLITS)}")


def parse_choices(value: str | Sequence[str], allowed: Sequence[str], *, option: str) -> tuple[str, ...]:
    """``'fog,night'`` -> ``('fog', 'night')`` in ``allowed`` order; an unknown or empty entry is an error."""
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise DatasetError(f"--{option} {value!r}: expected a comma-separated subset of {','.join(allowed)}"
                           + (f"; unknown {unknown}" if unknown else ""))
    return tuple(v for v in allowed if v in items)


def frames_in(folder: Path) -> list[tuple[str, int, Path]]:
    """(sequence, frame, path) of every ``*_rgb_anon.png`` directly in ``folder``, sorted by name."""
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        match = ADVERSE_NAME_RE.match(path.name)
        if match is not None and path.is_file():
            found.append((match["seq"], int(match["frame"]), path))
    return found


def find_label(root: Path, label_dir: str, seq: str, frame: int) -> str:
    """The label of one frame relative to ``root``: labelTrainIds if present, else labelIds, else ""."""
    for suffix in ADVERSE_LABEL_SUFFIXES:
        candidate = f"{label_dir}/{adverse_stem(seq, frame)}{suffix}"
        if (root / candidate).is_file():
            return candidate
    return ""


def require_label(root: Path, label_dir: str, seq: str, frame: int, *, image: str, expected: str,
                  hint: str = "") -> str:
    """``find_label``, or a DatasetError naming the image and both label names that were looked for."""
    label = find_label(root, label_dir, seq, frame)
    if not label:
        names = " or ".join(f"{adverse_stem(seq, frame)}{s}" for s in ADVERSE_LABEL_SUFFIXES)
        raise DatasetError(f"{root / label_dir} has no {names}: label of {root / image}; expected {expected}"
                           + (f" ({hint})" if hint else ""))
    return label


def recordings(base: Path, label_base: str) -> list[tuple[Path, str]]:
    """(image folder, label folder) of every recording folder (``GOPRxxxx``) directly under ``base``."""
    return [(d, f"{label_base}/{d.name}") for d in sorted(base.iterdir()) if d.is_dir()]


def frame_rows(root: Path, folders: Iterable[tuple[Path, str]], *, condition: str, prefix: str,
               with_labels: bool, expected: str, hint: str = "") -> list[dict]:
    """Scan rows of the frames in each (image folder, label folder), sequence ``prefix + recording``.

    ``with_labels``: every frame must have a label (``require_label``); otherwise ``raw_label`` is empty.
    """
    rows = []
    for image_dir, label_dir in folders:
        for seq, frame, path in frames_in(image_dir):
            image = rel(path, root)
            label = (require_label(root, label_dir, seq, frame, image=image, expected=expected, hint=hint)
                     if with_labels else "")
            rows.append(dict(sequence=prefix + seq, frame=frame, image=image, raw_label=label,
                             condition=condition))
    return rows


def read_raw_label(path: Path) -> np.ndarray:
    """Cityscapes labelIds (H, W) uint8 of an ACDC / Dark Zurich label file of either kind.

    Raises ``DatasetError`` naming the file when a labelTrainIds file holds a value that is not a
    Cityscapes train id (0..18) or ignore (255).
    """
    ids = read_index_png(path, what="ACDC / Dark Zurich label")
    if not path.name.endswith(ADVERSE_TRAINIDS_SUFFIX):
        return ids
    present = np.flatnonzero(np.bincount(ids.ravel(), minlength=256))
    bad = present[~np.isin(present, CITYSCAPES_TRAINIDS)]
    if bad.size:
        raise DatasetError(f"{path}: values {bad.tolist()} are not Cityscapes train ids (expected 0..18 or "
                           f"255 in a *{ADVERSE_TRAINIDS_SUFFIX} file)")
    return _TRAINID_TO_LABELID[ids]
