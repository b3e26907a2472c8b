"""ACDC (Sakaridis et al., ICCV 2021): fog, night, rain and snow, 1920x1080, as one-frame clips.

Published layout (``rgb_anon_trainvaltest.zip``, ``gt_trainval.zip``)::

    rgb_anon/{condition}/{split}/{GOPRxxxx}/{GOPRxxxx}_frame_{n:06d}_rgb_anon.png
    rgb_anon/{condition}/{split}_ref/...       reference images of the same places in good weather
    gt/{condition}/{split}/{GOPRxxxx}/..._gt_labelTrainIds.png | _gt_labelIds.png (train, val)

The ``*_ref`` folders are not frames of the split and are never listed. The test split has no
labels (scored by the ACDC server only). Each frame's ``condition`` is recorded in the index; its
``sequence`` is ``{condition}_{GOPRxxxx}``, the recording (ACDC's frames of one recording are not
consecutive video frames, so clips with reference frames do not apply).

HRDA's README flattens the tree (``rsync -a rgb_anon/*/train/*/* rgb_anon/train/``; the
labelTrainIds likewise into ``gt/train/``): ``rgb_anon/{split}/*_rgb_anon.png``. That layout is
read when no condition folder exists; the condition is then ``unknown``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipa_video.data.index import DatasetError
from pipa_video.data.sources import adverse
from pipa_video.data.sources.base import Layout, LayoutOption, require_dir, split_option
from pipa_video.data.sources.layouts import (
    ACDC_CONDITIONS, ACDC_UNKNOWN_CONDITION, ADVERSE_GT_DIR, ADVERSE_IMG_DIR,
)

NAME = "acdc"
ID_SPACE = "cityscapes"
ALL_CONDITIONS = ",".join(ACDC_CONDITIONS)
EXPECTED = ("ROOT/rgb_anon/<condition>/<split>/<GOPRxxxx>/<GOPRxxxx>_frame_<n>_rgb_anon.png with "
            "ROOT/gt/<condition>/<split>/<GOPRxxxx>/..._gt_labelTrainIds.png or _gt_labelIds.png "
            "(condition fog, night, rain, snow; or HRDA's flattened ROOT/rgb_anon/<split>/ and ROOT/gt/<split>/)")


def is_flattened(root: Path) -> bool:
    """True when ROOT holds HRDA's flattened tree and no condition folder."""
    return not any((root / ADVERSE_IMG_DIR / c).is_dir() for c in ACDC_CONDITIONS)


def labelled(split: str, unannotated: bool) -> bool:
    return split not in adverse.UNLABELLED_SPLITS and not unannotated


def check_root(root: Path, *, split: str, conditions: str, unannotated: bool) -> None:
    adverse.check_split(split, dataset="ACDC")
    chosen = adverse.parse_choices(conditions, ACDC_CONDITIONS, option="conditions")
    if is_flattened(root):
        require_dir(root / ADVERSE_IMG_DIR / split, expected=EXPECTED)
        if chosen != ACDC_CONDITIONS:
            raise DatasetError(f"{root}: HRDA's flattened layout (rgb_anon/{split}/) has no condition folders, so "
                               f"--conditions {conditions} cannot select frames; expected {EXPECTED}")
        dirs = [f"{ADVERSE_GT_DIR}/{split}"]
    else:
        present = [c for c in ACDC_CONDITIONS if (root / ADVERSE_IMG_DIR / c / split).is_dir()]
        for condition in chosen:
            if condition not in present:
                raise DatasetError(f"{root / ADVERSE_IMG_DIR / condition / split} not found: expected {EXPECTED} "
                                   f"(present: {present or 'none'}; --conditions selects some)")
        dirs = [f"{ADVERSE_GT_DIR}/{c}/{split}" for c in chosen]
    if labelled(split, unannotated):
        for folder in dirs:
            if not (root / folder).is_dir():
                raise DatasetError(f"{root / folder} not found: expected {EXPECTED} (for images without labels "
                                   f"pass --unannotated; the test split is always unlabelled)")


def scan(root: Path, *, split: str, conditions: str, unannotated: bool) -> pd.DataFrame:
    label_args = dict(with_labels=labelled(split, unannotated), expected=EXPECTED,
                      hint="for images without labels pass --unannotated")
    if is_flattened(root):
        base, label_base = root / ADVERSE_IMG_DIR / split, f"{ADVERSE_GT_DIR}/{split}"
        folders = [(base, label_base), *adverse.recordings(base, label_base)]
        return pd.DataFrame(adverse.frame_rows(root, folders, condition=ACDC_UNKNOWN_CONDITION, prefix="",
                                               **label_args))
    rows = []
    for condition in adverse.parse_choices(conditions, ACDC_CONDITIONS, option="conditions"):
        folders = adverse.recordings(root / ADVERSE_IMG_DIR / condition / split,
                                     f"{ADVERSE_GT_DIR}/{condition}/{split}")
        rows += adverse.frame_rows(root, folders, condition=condition, prefix=f"{condition}_", **label_args)
    return pd.DataFrame(rows)


read_raw_label = adverse.read_raw_label  # ACDC and Dark Zurich ship the same two label kinds

LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    id_space=ID_SPACE,
    read_raw_label=read_raw_label,
    options=(
        split_option("ACDC split (train, val, test; test is unlabelled)"),
        LayoutOption("conditions", str, ALL_CONDITIONS,
                     "comma-separated conditions to list (fog, night, rain, snow)"),
        LayoutOption("unannotated", bool, False, "list train/val images without their labels"),
    ),
    default_class_set="cityscapes19",
    doc="ACDC (adverse conditions: fog, night, rain, snow) as one-frame clips; each frame's condition is recorded.",
)
