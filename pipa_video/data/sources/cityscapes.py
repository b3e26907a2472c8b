"""Cityscapes (images): ``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with gtFine labelIds.

Every image is its own one-frame sequence, named ``{city}_{seq}_{frame}``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipa_video.data.index import DatasetError
from pipa_video.data.sources import cityscapes_seq
from pipa_video.data.sources.base import Layout, LayoutOption, split_option
from pipa_video.data.sources.cityscapes_seq import city_frames, check_split_dirs
from pipa_video.data.sources.layouts import (
    CS_IMG_DIR, CS_IMG_SUFFIX, cityscapes_image, cityscapes_label, cityscapes_stem,
)

NAME = "cityscapes"
ID_SPACE = "cityscapes"
EXPECTED = ("ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png with "
            "ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png")


def check_root(root: Path, *, split: str, unannotated: bool) -> None:
    check_split_dirs(root, CS_IMG_DIR, split=split, unannotated=unannotated, expected=EXPECTED)


def scan(root: Path, *, split: str, unannotated: bool) -> pd.DataFrame:
    rows = []
    img_root = root / CS_IMG_DIR / split
    for city_dir in sorted(p for p in img_root.iterdir() if p.is_dir()):
        for (city, seq), frames in sorted(city_frames(city_dir, CS_IMG_SUFFIX).items()):
            for frame in frames:
                label = "" if unannotated else cityscapes_label(split, city, seq, frame)
                if label and not (root / label).is_file():
                    raise DatasetError(
                        f"{root / label} not found: label of {root / cityscapes_image(split, city, seq, frame)}; "
                        f"expected {EXPECTED} (for a split without labels pass --unannotated)")
                rows.append(dict(sequence=cityscapes_stem(city, seq, frame), frame=frame,
                                 image=cityscapes_image(split, city, seq, frame), raw_label=label))
    return pd.DataFrame(rows)


read_raw_label = cityscapes_seq.read_raw_label  # the gtFine labelIds of Cityscapes-Seq's annotated frames

LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    id_space=ID_SPACE,
    read_raw_label=read_raw_label,
    options=(
        split_option("Cityscapes split (train, val, test, train_extra)"),
        LayoutOption("unannotated", bool, False,
                     "the split has no gtFine labels (train_extra, test): list the images unlabelled"),
    ),
    default_class_set="cityscapes19",
    doc="Cityscapes images as one-frame clips.",
)
