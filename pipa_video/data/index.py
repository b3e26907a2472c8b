"""The frame index: what a prepare tool writes and what every reader takes.

An index directory holds
- ``index.csv``: one row per frame, columns ``sequence, frame, image, label, labelled``, then
  ``condition`` for datasets that record one per frame (ACDC: fog/night/rain/snow; Dark Zurich:
  day/twilight/night), then one pixel-count column per class (``px_<class name>``, see
  ``ClassSet.column_names``);
- ``meta.json``: the dataset ``layout``, the ``root`` the image paths are relative to, the
  ``class_set`` and the ``rider`` rule the labels were converted with, the ``split`` and the
  ``conditions`` present (empty for datasets without conditions);
  unlabelled footage has ``class_set`` null and no pixel-count columns, so it serves any class set;
  ``videos`` records, per video file (keyed by its ``image`` value), how its frames are read
  (``reading``: ``random_access`` through decord, checked at prepare time, or ``extracted``: exact
  PNG frames under ``frames_dir``, relative to the index directory), its frame count and frame rate;
  ``gaps``: per sequence, the runs ``[first, last]`` of frame numbers missing inside it (at the
  sequence's frame spacing: a video indexed every 2nd frame has no gaps);
  for a frame cache (``--cache-size``) also ``cache``, see ``data.frame_cache``;
- ``labels/``: the converted train-id PNGs (uint8, 255 = ignore).

``image`` is relative to ``meta.root`` (so a moved dataset only needs its root changed); for a video
file it is the video's path and ``frame`` is the decoded frame number. ``label`` is relative to the
index directory and empty for unlabelled frames. Training never re-scans a dataset tree.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from pipa_video.atomic import atomic_write_text
from pipa_video.data.classes import ClassSet, get_class_set
from pipa_video.errors import DatasetError  # noqa: F401  (re-exported, the data layer's error)

INDEX_FILE = "index.csv"
META_FILE = "meta.json"
LABEL_DIR = "labels"
BASE_COLUMNS = ("sequence", "frame", "image", "label", "labelled")
CONDITION_COLUMN = "condition"
# Written after BASE_COLUMNS, before the pixel counts, by the datasets that have them.
OPTIONAL_COLUMNS = (CONDITION_COLUMN,)
EXTRACTED = "extracted"  # meta.videos[...]["reading"]: frames decoded once, in order, to PNG files
RANDOM_ACCESS = "random_access"  # decord random access, checked against a sequential decode
FRAME_FILE = "{frame:06d}.png"  # an extracted frame under its video's frames_dir


@dataclass
class IndexMeta:
    layout: str
    root: str
    class_set: str | None  # None: no labels, no pixel-count columns; any class set may read it
    rider: str = "person"
    split: str = "train"
    conditions: list[str] = field(default_factory=list)  # values of the condition column, sorted
    videos: dict[str, dict] = field(default_factory=dict)  # per video file: reading, frames, fps
    gaps: dict[str, list[list[int]]] = field(default_factory=dict)  # sequence -> missing [first, last] runs
    cache: dict | None = None  # a training frame cache: size, resampling, original root and sizes


def write_index(out_dir: str | os.PathLike, frames: pd.DataFrame, meta: IndexMeta) -> Path:
    """Validate and atomically write ``index.csv`` and ``meta.json`` under ``out_dir``."""
    check_index_columns(frames, _class_set(meta.class_set), where=str(out_dir))
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / INDEX_FILE, frames.to_csv(index=False))
    atomic_write_text(out_dir / META_FILE, json.dumps(asdict(meta), indent=2))
    return out_dir / INDEX_FILE


def _class_set(name: str | None) -> ClassSet | None:
    return None if name is None else get_class_set(name)


def check_index_columns(frames: pd.DataFrame, class_set: ClassSet | None, *, where: str) -> None:
    """``BASE_COLUMNS``, the optional columns present, then the class set's pixel counts (none for a
    class-set-free index)."""
    optional = [c for c in OPTIONAL_COLUMNS if c in frames.columns]
    expected = list(BASE_COLUMNS) + optional + (class_set.column_names() if class_set is not None else [])
    if list(frames.columns) != expected:
        missing = [c for c in expected if c not in frames.columns]
        extra = [c for c in frames.columns if c not in expected]
        raise DatasetError(
            f"{where}: index columns do not match class set "
            f"{class_set.name if class_set is not None else None!r}: "
            f"missing {missing}, unexpected {extra} (expected, in order: {expected})"
        )


@dataclass
class FrameIndex:
    """A loaded index: the frame table plus where its files live."""

    frames: pd.DataFrame
    meta: IndexMeta
    index_dir: Path

    @property
    def class_set(self) -> ClassSet | None:
        """The labels' class set; None for unlabelled footage, which any class set may read."""
        return _class_set(self.meta.class_set)

    def image_path(self, row: int) -> Path:
        return Path(self.meta.root) / self.frames["image"].iat[row]

    def frame_source(self, row: int) -> tuple[Path, int]:
        """(file, frame number) to read row ``row`` from: the image, the video, or an extracted frame."""
        image, frame = self.frames["image"].iat[row], int(self.frames["frame"].iat[row])
        video = self.meta.videos.get(image)
        if video is not None and video.get("reading") == EXTRACTED:
            return self.index_dir / video["frames_dir"] / FRAME_FILE.format(frame=frame), frame
        return Path(self.meta.root) / image, frame

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
    frames = pd.read_csv(index_dir / INDEX_FILE, keep_default_na=False,
                         dtype={"sequence": str, "image": str, "label": str, CONDITION_COLUMN: str})
    return frame_index(frames, meta, index_dir, where=str(index_dir / INDEX_FILE))


def frame_index(frames: pd.DataFrame, meta: IndexMeta, index_dir: str | os.PathLike, *,
                where: str | None = None) -> FrameIndex:
    """A ``FrameIndex`` from a frame table, exactly as ``load_index`` gives it: columns checked,
    ``labelled`` boolean, rows sorted by (sequence, frame). Also how an index is built in memory (footage
    given to ``predict``); ``index_dir`` is where its relative paths (labels, extracted frames) live."""
    check_index_columns(frames, _class_set(meta.class_set), where=where or str(index_dir))
    frames = frames.copy()
    frames["labelled"] = frames["labelled"].astype(bool)
    frames = frames.sort_values(["sequence", "frame"], kind="stable").reset_index(drop=True)
    return FrameIndex(frames=frames, meta=meta, index_dir=Path(index_dir))
