"""SYNTHIA-RAND-CITYSCAPES (source images): ``RGB/{id:07d}.png`` + 16-bit ``GT/LABELS/{id:07d}.png``.

Every image is its own one-frame sequence; labels are read like SYNTHIA-Seq's (class in R).
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pipa_video.data.index import DatasetError
from pipa_video.data.sources.base import Layout, require_dir
from pipa_video.data.sources.layouts import synthia_image, synthia_label
from pipa_video.data.sources.synthia_seq import read_synthia_label

NAME = "synthia"
ID_SPACE = "synthia_rand"
FRAME_RE = re.compile(r"^(?P<frame>\d{7})\.png$")
EXPECTED = "ROOT/RGB/<id:07d>.png with ROOT/GT/LABELS/<id:07d>.png (16-bit, class in R)"


IMAGE_DIR, LABEL_DIR = Path(synthia_image(0)).parent, Path(synthia_label(0)).parent  # RGB, GT/LABELS


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
        label = synthia_label(frame)
        if not (root / label).is_file():
            raise DatasetError(f"{root / label} not found: label of {path}; expected {EXPECTED}")
        rows.append(dict(sequence=f"{frame:07d}", frame=frame, image=synthia_image(frame), raw_label=label))
    return pd.DataFrame(rows)


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
