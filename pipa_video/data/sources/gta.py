"""GTA5 (source images): ``images/{id:05d}.png`` + ``labels/{id:05d}.png`` in Cityscapes labelIds.

Labels are palette PNGs whose index is the labelId (read with PIL: OpenCV would expand the palette).
A few real GTA5 frames have an image and a label of different sizes: prepare warns, names them and
leaves them out (``SizeMismatch.SKIP``). Every image is its own one-frame sequence.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pipa_video.data.index import DatasetError
from pipa_video.data.sources.base import Layout, SizeMismatch, require_dir
from pipa_video.data.sources.cityscapes_seq import read_raw_label
from pipa_video.data.sources.layouts import gta_image, gta_label

NAME = "gta"
ID_SPACE = "cityscapes"
FRAME_RE = re.compile(r"^(?P<frame>\d{5})\.png$")
EXPECTED = "ROOT/images/<id:05d>.png with ROOT/labels/<id:05d>.png (Cityscapes labelIds)"


IMAGE_DIR, LABEL_DIR = Path(gta_image(0)).parent, Path(gta_label(0)).parent  # images, labels


def check_root(root: Path) -> None:
    require_dir(root / IMAGE_DIR, expected=EXPECTED)
    require_dir(root / LABEL_DIR, expected=EXPECTED)


def scan(root: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((root / IMAGE_DIR).iterdir()):
        match = FRAME_RE.match(path.name)
        if match is None:
            continue
        frame = int(match["frame"])
        label = gta_label(frame)
        if not (root / label).is_file():
            raise DatasetError(f"{root / label} not found: label of {path}; expected {EXPECTED}")
        rows.append(dict(sequence=f"{frame:05d}", frame=frame, image=gta_image(frame), raw_label=label))
    return pd.DataFrame(rows)


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
