"""SYNTHIA-RAND-CITYSCAPES (source images): ``RGB/{id:07d}.png`` + 16-bit ``GT/LABELS/{id:07d}.png``.

Every image is its own one-frame sequence; labels are read like SYNTHIA-Seq's (class in R).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipa_video.data.sources.base import Layout, require_dir, scan_numbered_pairs
from pipa_video.data.sources.layouts import synthia_image, synthia_label
from pipa_video.data.sources.synthia_seq import read_synthia_label

NAME = "synthia"
ID_SPACE = "synthia_rand"
EXPECTED = "ROOT/RGB/<id:07d>.png with ROOT/GT/LABELS/<id:07d>.png (16-bit, class in R)"


IMAGE_DIR, LABEL_DIR = Path(synthia_image(0)).parent, Path(synthia_label(0)).parent  # RGB, GT/LABELS


def check_root(root: Path) -> None:
    require_dir(root / IMAGE_DIR, expected=EXPECTED)
    require_dir(root / LABEL_DIR, expected=EXPECTED)


def scan(root: Path) -> pd.DataFrame:
    return scan_numbered_pairs(root, image_fn=synthia_image, label_fn=synthia_label, digits=7, expected=EXPECTED)


LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    id_space=ID_SPACE,
    read_raw_label=read_synthia_label,
    default_class_set="cityscapes19",
    doc="SYNTHIA-RAND-CITYSCAPES images with 16-bit labels (source domain), one-frame clips.",
)
