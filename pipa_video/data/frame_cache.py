"""Frame cache at the training resolution: every frame and label resized once, at prepare time.

The DAFormer recipe trains on Cityscapes frames resized from 2048x1024 to 1024x512 before anything
else, and decoding the 2048x1024 PNG is most of the loader's CPU time per clip (about 85 of 105 ms
for a two-frame clip). ``cache_frames`` (``--cache-size WxH`` of the prepare tools) writes each frame
once at the training size, so the loader decodes a quarter of the pixels. Layout under the index dir:

- ``frames/<image path>.png``: the frame resized with ``cv2.INTER_LINEAR``, which is
  ``mmcv.imresize(..., interpolation='bilinear')``, the resampling of DAFormer's ``Resize``;
  ``meta.root`` points at ``frames/`` and ``index.csv``'s ``image`` column at the cached files.
  A video frame becomes ``frames/<video path>/<frame:06d>.png``.
- ``labels_<W>x<H>/...``: the train-id labels resized with ``cv2.INTER_NEAREST`` (mmseg's label
  resize); the ``label`` column points there. The full-resolution labels stay in ``labels/``.
- ``meta.json`` gains ``cache``: the size, both resamplings, the format, the original data root and
  the original frame sizes with their counts. ``px_<class>`` columns keep the full-resolution counts
  (rare-class sampling statistics, as DAFormer computes them on the original labels).

PNG (lossless) is the format: the cached pixels are exactly ``cv2.resize`` of the original, and the
loader's ``Resize`` to the same size is then the identity. With a random rescale after the resize
(``ratio_range``), the frame is resampled twice (cache, then rescale) where the uncached loader
resamples once from the original; the disk cost and the loss are measured by
``benchmarks/frame_cache.py``. A cached index is for training only: evaluation scores full-resolution
labels, and ``check_not_cached`` refuses a cache there.
"""
from __future__ import annotations

import multiprocessing
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import cv2
import pandas as pd
from tqdm import tqdm

from pipa_video.data import io as data_io
from pipa_video.data.index import DatasetError, FrameIndex, IndexMeta

FRAMES_DIR = "frames"
FRAME_RESAMPLING = "bilinear (cv2.INTER_LINEAR, as mmcv.imresize in DAFormer's Resize)"
LABEL_RESAMPLING = "nearest (cv2.INTER_NEAREST)"
CACHE_FORMAT = "png"


def parse_size(text: str) -> tuple[int, int]:
    """``'1024x512'`` -> (1024, 512) = (w, h); a ValueError naming the expected form otherwise."""
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"cache size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1024x512")
    return int(parts[0]), int(parts[1])


def label_dir_name(size: tuple[int, int]) -> str:
    return f"labels_{size[0]}x{size[1]}"


def cached_frame_path(image: str, frame: int) -> str:
    """Where a frame goes under ``frames/``: the image path as PNG, or ``<video>/<frame:06d>.png``."""
    path = PurePosixPath(image)
    if data_io.is_video(image):
        return str(path / f"{int(frame):06d}.png")
    return str(path.with_suffix(".png"))


def cached_label_path(label: str, size: tuple[int, int]) -> str:
    """``labels/a/b.png`` -> ``labels_<W>x<H>/a/b.png`` (relative to the index dir)."""
    parts = PurePosixPath(label).parts
    return str(PurePosixPath(label_dir_name(size), *parts[1:]))


@dataclass(frozen=True)
class FrameResizer:
    """Resizes one frame (and its label) into the cache; picklable for a process pool."""

    data_root: Path
    out_dir: Path
    size: tuple[int, int]
    label_root: Path  # the index directory the table's label paths are relative to

    def __call__(self, task: tuple[str, int, str]) -> tuple[str, str, tuple[int, int]]:
        image, frame, label = task
        source = data_io.read_frame(self.data_root / image, frame)
        original = (source.shape[1], source.shape[0])
        cached_image = cached_frame_path(image, frame)
        rgb = cv2.resize(source, self.size, interpolation=cv2.INTER_LINEAR)
        data_io.write_png(self.out_dir / FRAMES_DIR / cached_image, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cached_label = ""
        if label:
            train_ids = data_io.read_train_ids(self.label_root / label)
            if train_ids.shape[:2] != source.shape[:2]:
                raise DatasetError(f"{self.label_root / label}: label is {train_ids.shape[1]}x{train_ids.shape[0]}, "
                                   f"frame {self.data_root / image} is {original[0]}x{original[1]}")
            cached_label = cached_label_path(label, self.size)
            data_io.write_png(self.out_dir / cached_label,
                              cv2.resize(train_ids, self.size, interpolation=cv2.INTER_NEAREST))
        return cached_image, cached_label, original


def cache_frames(table: pd.DataFrame, meta: IndexMeta, *, out_dir: str | Path, size: tuple[int, int],
                 workers: int = 1, quiet: bool = False,
                 label_root: str | Path | None = None) -> tuple[pd.DataFrame, IndexMeta]:
    """Write the cache of an index (``table``, ``meta``) into the index directory ``out_dir``.

    The table's labels are relative to ``label_root`` (default ``out_dir``: prepare's case).
    Returns the table and meta that point at the cache (write them to ``out_dir`` with
    ``index.write_index``). ``size`` is (w, h). Raises DatasetError when a frame cannot be read or
    disagrees with its label.
    """
    if meta.cache:
        raise DatasetError(f"{out_dir}: the index is already a {meta.cache['size']} frame cache; cache the "
                           f"original index instead")
    out_dir = Path(out_dir)
    resizer = FrameResizer(data_root=Path(meta.root), out_dir=out_dir, size=(int(size[0]), int(size[1])),
                           label_root=Path(label_root) if label_root is not None else out_dir)
    tasks = list(zip(table["image"], table["frame"].astype(int), table["label"].fillna("")))
    progress = dict(total=len(tasks), desc=f"cache frames at {size[0]}x{size[1]}", unit="frame", disable=quiet,
                    dynamic_ncols=True)
    if workers <= 1 or len(tasks) < 2:
        results = [resizer(t) for t in tqdm(tasks, **progress)]
    else:
        with multiprocessing.Pool(workers) as pool:
            chunksize = max(1, min(64, len(tasks) // (workers * 8)))
            results = list(tqdm(pool.imap(resizer, tasks, chunksize=chunksize), **progress))
    cached = table.copy()
    cached["image"] = [r[0] for r in results]
    cached["label"] = [r[1] for r in results]
    originals = Counter(f"{w}x{h}" for _, _, (w, h) in results)
    cache = dict(size=list(resizer.size), frame_resampling=FRAME_RESAMPLING, label_resampling=LABEL_RESAMPLING,
                 format=CACHE_FORMAT, original_root=meta.root, original_sizes=dict(originals),
                 pixel_counts="full-resolution labels (as before caching)")
    return cached, replace(meta, root=str(out_dir / FRAMES_DIR), cache=cache)


def check_not_cached(index: FrameIndex, *, key: str) -> None:
    """Evaluation needs full-resolution labels: refuse a training frame cache, naming the index."""
    if index.meta.cache:
        w, h = index.meta.cache["size"]
        raise DatasetError(f"{key} = {str(index.index_dir)!r} is a training frame cache (frames and labels resized "
                           f"to {w}x{h}); evaluation scores full-resolution labels: point it at an index "
                           f"prepared without --cache-size")
