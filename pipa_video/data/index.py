"""The frame index: what a prepare tool writes and what every reader takes.

An index directory holds
- ``index.csv``: one row per frame, columns ``sequence, frame, image, label, labelled`` then one
  pixel-count column per class (``px_<class name>``, see ``ClassSet.column_names``);
- ``meta.json``: the dataset ``layout``, the ``root`` the image paths are relative to, the
  ``class_set`` and the ``rider`` rule the labels were converted with, and the ``split``; for a
  frame cache (``--cache-size``) also ``cache``, see ``data.frame_cache``;
- ``labels/``: the converted train-id PNGs (uint8, 255 = ignore).

``image`` is relative to ``meta.root`` (so a moved dataset only needs its root changed); for a video
file it is the video's path and ``frame`` is the decoded frame number. ``label`` is relative to the
index directory and empty for unlabelled frames. Training never re-scans a dataset tree.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from pipa_video.data.classes import ClassSet, get_class_set

INDEX_FILE = "index.csv"
META_FILE = "meta.json"
LABEL_DIR = "labels"
BASE_COLUMNS = ("sequence", "frame", "image", "label", "labelled")


class DatasetError(ValueError):
    """A dataset root, index or file is not what the layout expects; the message names it."""


@dataclass
class IndexMeta:
    layout: str
    root: str
    class_set: str
    rider: str = "person"
    split: str = "train"
    cache: dict | None = None  # a training frame cache: size, resampling, original root and sizes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the mode open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_index(out_dir: str | os.PathLike, frames: pd.DataFrame, meta: IndexMeta) -> Path:
    """Validate and atomically write ``index.csv`` and ``meta.json`` under ``out_dir``."""
    class_set = get_class_set(meta.class_set)
    check_index_columns(frames, class_set, where=str(out_dir))
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / INDEX_FILE, frames.to_csv(index=False))
    atomic_write_text(out_dir / META_FILE, json.dumps(asdict(meta), indent=2))
    return out_dir / INDEX_FILE


def check_index_columns(frames: pd.DataFrame, class_set: ClassSet, *, where: str) -> None:
    expected = list(BASE_COLUMNS) + class_set.column_names()
    if list(frames.columns) != expected:
        missing = [c for c in expected if c not in frames.columns]
        extra = [c for c in frames.columns if c not in expected]
        raise DatasetError(
            f"{where}: index columns do not match class set {class_set.name!r}: "
            f"missing {missing}, unexpected {extra} (expected, in order: {expected})"
        )


@dataclass
class FrameIndex:
    """A loaded index: the frame table plus where its files live."""

    frames: pd.DataFrame
    meta: IndexMeta
    index_dir: Path

    @property
    def class_set(self) -> ClassSet:
        return get_class_set(self.meta.class_set)

    def image_path(self, row: int) -> Path:
        return Path(self.meta.root) / self.frames["image"].iat[row]

    def label_path(self, row: int) -> Path | None:
        label = self.frames["label"].iat[row]
        return self.index_dir / label if isinstance(label, str) and label else None


def load_index(index_dir: str | os.PathLike, *, root: str | os.PathLike | None = None) -> FrameIndex:
    """Read ``index_dir/index.csv`` and ``meta.json``; ``root`` overrides the recorded data root."""
    index_dir = Path(index_dir)
    for name in (INDEX_FILE, META_FILE):
        if not (index_dir / name).is_file():
            raise DatasetError(
                f"{index_dir / name} not found: an index directory holds {INDEX_FILE} and "
                f"{META_FILE}, written by data_tools/prepare_<dataset>.py ROOT --out {index_dir}"
            )
    meta = IndexMeta(**json.loads((index_dir / META_FILE).read_text()))
    if root is not None:
        meta.root = str(root)
    frames = pd.read_csv(index_dir / INDEX_FILE, dtype={"sequence": str, "image": str, "label": str},
                         keep_default_na=False)
    check_index_columns(frames, get_class_set(meta.class_set), where=str(index_dir / INDEX_FILE))
    frames["labelled"] = frames["labelled"].astype(bool)
    frames = frames.sort_values(["sequence", "frame"], kind="stable").reset_index(drop=True)
    return FrameIndex(frames=frames, meta=meta, index_dir=index_dir)
