"""SYNTHIA-Seq (source video): ``SYNTHIA-SEQS-*/RGB/Stereo_Left/Omni_F/{frame:06d}.png`` + ``GT/LABELS``.

ROOT is one sequence folder or a folder holding several; image paths are relative to the folder
that holds the sequences. Labels are 16-bit PNGs with the class id in the first (R) channel; OpenCV
returns channels in BGR order, so the class is channel index 2.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipa_video.data import io as data_io
from pipa_video.data.index import DatasetError
from pipa_video.data.sources.base import Layout, LayoutOption, require_dir
from pipa_video.data.sources.layouts import SYNTHIA_SEQ_CAMERA, synthia_seq_image, synthia_seq_label

NAME = "synthia_seq"
ID_SPACE = "synthia_seq"
SEQUENCE_PREFIX = "SYNTHIA-SEQS-"
FRAME_RE = re.compile(r"^(?P<frame>\d{6})\.png$")
EXPECTED = ("ROOT/SYNTHIA-SEQS-<nn>-<NAME>/RGB/<camera>/<frame:06d>.png and .../GT/LABELS/<camera>/"
            "<frame:06d>.png (16-bit, class in R), or ROOT being one such sequence folder")
R_CHANNEL_OF_BGR = 2


def read_raw_label(path: Path) -> np.ndarray:
    """Class ids (H, W) uint16 of a SYNTHIA 16-bit label (Seq and RAND): the R channel (first in RGB order)."""
    label = data_io.read_unchanged(path)
    if label.dtype != np.uint16:
        raise DatasetError(
            f"{path} is {label.dtype.itemsize * 8}-bit; SYNTHIA labels are 16-bit PNGs with the class "
            f"in the R channel; an 8-bit reader/copy destroyed it (re-extract the original archive)")
    if label.ndim != 3 or label.shape[2] < 3:
        raise DatasetError(f"{path}: SYNTHIA labels have 3 or 4 channels (class in R), got shape {label.shape}")
    return label[..., R_CHANNEL_OF_BGR]


def image_dir(seq_dir: Path, camera: str) -> Path:
    """``<seq>/RGB/<camera>``, from the layout template."""
    return seq_dir.parent / Path(synthia_seq_image(seq_dir.name, 0, camera)).parent


def label_dir(seq_dir: Path, camera: str) -> Path:
    return seq_dir.parent / Path(synthia_seq_label(seq_dir.name, 0, camera)).parent


def is_sequence_dir(path: Path, camera: str) -> bool:
    return image_dir(path, camera).is_dir()


def sequence_dirs(root: Path, camera: str) -> list[Path]:
    """The sequence folders ROOT names: itself, or its sub-folders that hold RGB/<camera>."""
    if is_sequence_dir(root, camera):
        return [root]
    found = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if is_sequence_dir(sub, camera):
            found.append(sub)
        elif sub.name.startswith(SEQUENCE_PREFIX):
            raise DatasetError(f"{image_dir(sub, camera)} not found: expected {EXPECTED}")
    return found


def resolve_root(root: Path, *, camera: str) -> Path:
    return root.parent if is_sequence_dir(root, camera) else root


def check_root(root: Path, *, camera: str) -> None:
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder: expected {EXPECTED}")
    seqs = sequence_dirs(root, camera)
    if not seqs:
        raise DatasetError(f"no SYNTHIA-Seq sequence in {root} (no {root}/*/RGB/{camera}): expected {EXPECTED}")
    for seq in seqs:
        require_dir(label_dir(seq, camera), expected=EXPECTED)


def scan(root: Path, *, camera: str) -> pd.DataFrame:
    data_root = resolve_root(root, camera=camera)
    rows = []
    for seq_dir in sequence_dirs(root, camera):
        seq = seq_dir.name
        for path in sorted(image_dir(seq_dir, camera).iterdir()):
            match = FRAME_RE.match(path.name)
            if match is None:
                continue
            frame = int(match["frame"])
            image, label = synthia_seq_image(seq, frame, camera), synthia_seq_label(seq, frame, camera)
            if not (data_root / label).is_file():
                raise DatasetError(f"{data_root / label} not found: every SYNTHIA-Seq frame has a label; "
                                   f"expected {EXPECTED}")
            rows.append(dict(sequence=seq, frame=frame, image=image, raw_label=label))
    return pd.DataFrame(rows)


LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    id_space=ID_SPACE,
    read_raw_label=read_raw_label,
    resolve_root_fn=resolve_root,
    options=(LayoutOption("camera", str, SYNTHIA_SEQ_CAMERA, "camera folder under RGB/ and GT/LABELS/"),),
    default_class_set="synthiaseq12",
    doc="SYNTHIA-Seq video frames with 16-bit labels (source domain).",
)
