"""Footage as image frames: ROOT is a folder of frames (one sequence) or a folder of such folders.

When ROOT itself holds image files it is one sequence (named after ROOT, sub-folders ignored);
otherwise each sub-folder holding images is a sequence. Frames are ordered by the natural sort of
their file names (``f2`` before ``f10``) and numbered by position from 0. No labels.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipa_video.data.index import DatasetError
from pipa_video.data.sources.base import Layout, list_files, natural_key, rel
from pipa_video.data.sources.layouts import IMAGE_EXTENSIONS

NAME = "frame_folder"
EXPECTED = (f"ROOT/<frame files ({', '.join(IMAGE_EXTENSIONS)})> (one sequence) or "
            "ROOT/<sequence>/<frame files> (one sequence per sub-folder)")


def sequence_dirs(root: Path) -> list[Path]:
    if list_files(root, IMAGE_EXTENSIONS):
        return [root]
    subs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    return [p for p in subs if list_files(p, IMAGE_EXTENSIONS)]


def check_root(root: Path) -> None:
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder: expected {EXPECTED}")
    if not sequence_dirs(root):
        raise DatasetError(f"no image frames in {root} or its sub-folders: expected {EXPECTED}")


def scan(root: Path) -> pd.DataFrame:
    rows = []
    for seq_dir in sequence_dirs(root):
        frames = sorted(list_files(seq_dir, IMAGE_EXTENSIONS), key=lambda p: natural_key(p.name))
        # ROOT is absolute (Layout.scan), so even "." has a name.
        rows += [dict(sequence=seq_dir.name, frame=i, image=rel(path, root), raw_label="")
                 for i, path in enumerate(frames)]
    return pd.DataFrame(rows)


LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    default_class_set="cityscapes19",
    doc="Your own footage as folders of image frames, unlabelled.",
)
