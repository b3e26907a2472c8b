"""Dark Zurich (Sakaridis et al., ICCV 2019): day, twilight and night, 1920x1080, as one-frame clips.

Published layout (``Dark_Zurich_train_anon.zip``, ``Dark_Zurich_val_anon.zip``,
``Dark_Zurich_test_anon_withoutGt.zip``)::

    rgb_anon/{split}/{day,twilight,night}/{GOPRxxxx}/{GOPRxxxx}_frame_{n:06d}_rgb_anon.png
    rgb_anon/{split}_ref/day/{GOPRxxxx}_ref/..._ref_rgb_anon.png    day references: not frames of the split
    gt/val/night/{GOPRxxxx}/..._gt_labelTrainIds.png | _gt_labelIds.png   (the 50 val images)

Only ``val`` has labels; ``train`` is the unlabelled target (UDA methods train on its 2,416 night
images, the default ``time``), ``test`` is scored by the benchmark server. Each frame's time of day
is recorded as its ``condition``; its ``sequence`` is ``{time}_{GOPRxxxx}``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipa_video.data.index import DatasetError
from pipa_video.data.sources import adverse
from pipa_video.data.sources.base import Layout, LayoutOption, require_dir, split_option
from pipa_video.data.sources.layouts import ADVERSE_GT_DIR, ADVERSE_IMG_DIR, DARK_ZURICH_TIMES

NAME = "dark_zurich"
ID_SPACE = "cityscapes"
LABELLED_SPLIT = "val"
DEFAULT_TIME = "night"
EXPECTED = ("ROOT/rgb_anon/<split>/<day|twilight|night>/<GOPRxxxx>/<GOPRxxxx>_frame_<n>_rgb_anon.png with "
            "ROOT/gt/val/night/<GOPRxxxx>/..._gt_labelTrainIds.png or _gt_labelIds.png for the val split")


def check_root(root: Path, *, split: str, time: str) -> None:
    adverse.check_split(split, dataset="Dark Zurich")
    for t in adverse.parse_choices(time, DARK_ZURICH_TIMES, option="time"):
        require_dir(root / ADVERSE_IMG_DIR / split / t, expected=EXPECTED)
        if split == LABELLED_SPLIT and not (root / ADVERSE_GT_DIR / split / t).is_dir():
            raise DatasetError(f"{root / ADVERSE_GT_DIR / split / t} not found: expected {EXPECTED} "
                               f"(Dark Zurich labels only the night images of val)")


def scan(root: Path, *, split: str, time: str) -> pd.DataFrame:
    rows = []
    for t in adverse.parse_choices(time, DARK_ZURICH_TIMES, option="time"):
        folders = adverse.recordings(root / ADVERSE_IMG_DIR / split / t, f"{ADVERSE_GT_DIR}/{split}/{t}")
        rows += adverse.frame_rows(root, folders, condition=t, prefix=f"{t}_",
                                   with_labels=split == LABELLED_SPLIT, expected=EXPECTED)
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
        split_option("Dark Zurich split (train, val, test; only val is labelled)"),
        LayoutOption("time", str, DEFAULT_TIME, "time(s) of day to list, comma-separated (day, twilight, night)"),
    ),
    default_class_set="cityscapes19",
    doc="Dark Zurich (night-time driving; day and twilight too) as one-frame clips; each frame's time is recorded.",
)
