"""GTA5 (source images): ``images/{id:05d}.png`` + ``labels/{id:05d}.png`` in Cityscapes labelIds.

Labels are palette PNGs whose index is the labelId (read with PIL: OpenCV would expand the palette).
A few real GTA5 frames have an image and a label of different sizes: prepare warns, names them and
leaves them out (``SizeMismatch.SKIP``). Every image is its own one-frame sequence.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipa_video.data.sources.base import Layout, SizeMismatch, require_dir, scan_numbered_pairs
from pipa_video.data.sources.cityscapes_seq import read_raw_label
from pipa_video.data.sources.layouts import gta_image, gta_label

NAME = "gta"
ID_SPACE = "cityscapes"
EXPECTED = "ROOT/images/<id:05d>.png with ROOT/labels/<id:05d>.png (Cityscapes labelIds)"


IMAGE_DIR, LABEL_DIR = Path(gta_image(0)).parent, Path(gta_label(0)).parent  # images, labels


def check_root(root: Path) -> None:
    require_dir(root / IMAGE_DIR, expected=EXPECTED)
    require_dir(root / LABEL_DIR, expected=EXPECTED)


def scan(root: Path) -> pd.DataFrame:
    return scan_numbered_pairs(root, image_fn=gta_image, label_fn=gta_label, digits=5, expected=EXPECTED)


LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    id_space=ID_SPACE,
    read_raw_label=read_raw_label,
    size_mismatch=SizeMismatch.SKIP,
    default_class_set="cityscapes19",
    doc="GTA5 images with Cityscapes labelIds (source domain), one-frame clips.",
)
