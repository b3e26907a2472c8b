"""ClipDataset: a frame index, key/reference frame selection and a clip transform -> one sample.

A clip is a key frame t plus reference frames t + o for every configured offset o, all from the
same ``sequence`` of the index (frame-number arithmetic; a clip never leaves its sequence). Index 0
of every output is the key frame; ``offsets=[]`` gives one-frame clips (image datasets).

Key frames are the labelled rows (``keys='labelled'``) or every row (``keys='all'``). Near the ends
of a sequence the ``boundary`` rule decides:

- ``clamp``: a reference before the sequence's first frame (after its last frame) uses the first
  (last) frame, so every key frame stays a key and the clip repeats an end frame;
- ``skip``: key frames with a reference outside the sequence are not keys.

A reference frame number missing *inside* a sequence (a gap the prepare tool recorded in
``meta.json``) drops only the clips that need it, with one log line counting them and naming one:
substituting a neighbour would change the temporal offset, and one missing file must not block a
dataset.

A sample is the clip contract: ``img`` (T, 3, H, W) float32 normalised, ``label`` (T, H, W) int64
(255 where unknown or padded; only the key frame's label is read unless ``load_reference_labels``),
``valid`` (T, H, W) bool (True where the pixel lies inside the stored frame, False on the padding a
crop larger than the rescaled frame adds: padding is never a pseudo-label nor a contrast sample),
``pseudo_valid`` (H, W) bool (key frame; False inside the crop-aware pseudo-label margins and on padding),
``has_label`` (T,) bool and ``meta`` (dataset, sequence, and per frame its frame number and nominal
offset, the key's 0 first; ``frames`` shows any clamping); with an ``EvalTransform(keep_frames=True)``
also ``rgb`` (T, H, W, 3) uint8, the frames as read. ``dataset[i]`` draws its
randomness from fresh entropy; ``dataset[(i, seed)]`` from ``np.random.default_rng(seed)``, which is
how samplers make resumed runs and DataLoader workers deterministic. ``dataset[(i, seed, c)]`` comes
from rare-class sampling, which drew class ``c``: with ``class_crop_min_pixels`` set, the crop is
re-drawn (up to 10 times, as DAFormer) until the key label holds more than that many pixels of ``c``.
"""
from __future__ import annotations

import logging
import os
from enum import Enum
from typing import Any, Protocol, Sequence

import numpy as np
import pandas as pd
import torch

from pipa_video.data import io
from pipa_video.data.index import DatasetError, FrameIndex
from pipa_video.data.transforms import ClassRequirement, ClipTensors

logger = logging.getLogger(__name__)


class TransformFn(Protocol):
    """What a ClipDataset needs of its transform; ClipTransform and EvalTransform implement it."""

    def apply(self, frames: Sequence[np.ndarray], labels: Sequence[np.ndarray | None], rng: np.random.Generator,
              *, require: ClassRequirement | None = None) -> ClipTensors: ...


class KeyFrames(str, Enum):
    LABELLED = "labelled"  # key frames are the annotated frames
    ALL = "all"  # every frame is a key frame (unlabelled target video)


class Boundary(str, Enum):
    CLAMP = "clamp"  # references past a sequence end use the end frame
    SKIP = "skip"  # key frames whose references leave the sequence are dropped


def _enum(enum: type[Enum], value: Any, what: str) -> Enum:
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"{what}={value!r}; expected one of {[e.value for e in enum]}") from None


def _sequence_keys(frames: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: sequence code, frame number, and a sortable int64 (sequence, frame) key."""
    codes = pd.factorize(frames["sequence"], sort=True)[0].astype(np.int64)
    numbers = frames["frame"].to_numpy(np.int64)
    span = int(numbers.max() - numbers.min()) + 1
    return codes, numbers, codes * span + (numbers - numbers.min())


class ClipDataset(torch.utils.data.Dataset):
    """Clips of an index; see the module docstring for key frames, boundaries and the sample contract."""

    def __init__(self, *, index: FrameIndex, offsets: Sequence[int], keys: KeyFrames | str,
                 boundary: Boundary | str, transform: TransformFn, name: str,
                 load_reference_labels: bool = False, class_crop_min_pixels: float = 0.0) -> None:
        bad = [o for o in offsets if isinstance(o, bool) or not isinstance(o, (int, np.integer))]
        if bad:
            raise ValueError(f"{name}: offsets must be integers (frame steps), got {list(offsets)}")
        self.index = index
        self.offsets = [int(o) for o in offsets]
        self.keys = _enum(KeyFrames, keys, f"{name}: keys")
        self.boundary = _enum(Boundary, boundary, f"{name}: boundary")
        self.transform = transform
        self.name = name
        self.load_reference_labels = load_reference_labels
        self.class_crop_min_pixels = float(class_crop_min_pixels)
        self.key_rows, self.reference_rows = self._select_clips()
        self._videos: io.VideoFrameReader | None = None
        self._videos_pid: int | None = None

    # --- construction ------------------------------------------------------------------------
    def _select_clips(self) -> tuple[np.ndarray, np.ndarray]:
        """Row of every key frame, and (num_keys, num_offsets) rows of its reference frames."""
        frames = self.index.frames
        where = self.index.index_dir
        if len(frames) == 0:
            raise DatasetError(f"{self.name}: index {where} has no frames")
        codes, numbers, sort_keys = _sequence_keys(frames)
        steps = np.diff(sort_keys)
        if np.any(steps < 0):
            raise DatasetError(f"{self.name}: index {where} is not sorted by (sequence, frame); "
                               f"load it with pipa_video.data.index.load_index")
        if np.any(steps == 0):
            dup = int(np.flatnonzero(steps == 0)[0])
            raise DatasetError(f"{self.name}: index {where} lists sequence "
                               f"{frames['sequence'].iat[dup]!r} frame {numbers[dup]} more than once")
        first = pd.Series(numbers).groupby(codes).transform("min").to_numpy()
        last = pd.Series(numbers).groupby(codes).transform("max").to_numpy()

        key_rows = (np.flatnonzero(frames["labelled"].to_numpy(bool)) if self.keys is KeyFrames.LABELLED
                    else np.arange(len(frames)))
        wanted = numbers[key_rows, None] + np.asarray(self.offsets, np.int64)[None, :]  # (K, O)
        lo, hi = first[key_rows, None], last[key_rows, None]
        if self.boundary is Boundary.SKIP:
            inside = np.all((wanted >= lo) & (wanted <= hi), axis=1)
            key_rows, wanted, lo, hi = key_rows[inside], wanted[inside], lo[inside], hi[inside]
        else:
            wanted = np.clip(wanted, lo, hi)
        span_keys = sort_keys[key_rows, None] + (wanted - numbers[key_rows, None])
        found = np.searchsorted(sort_keys, span_keys).clip(max=len(sort_keys) - 1)
        complete = np.all(sort_keys[found] == span_keys, axis=1)
        if not complete.all():
            self._log_gaps(key_rows, wanted, complete)
            key_rows, found = key_rows[complete], found[complete]
        if len(key_rows) == 0:
            raise DatasetError(
                f"{self.name}: no key frames in {where} (keys={self.keys.value}, offsets={self.offsets}, "
                f"boundary={self.boundary.value}{', every clip needs a missing frame' if not complete.any() else ''})")
        return key_rows, found.reshape(len(key_rows), len(self.offsets))

    def _log_gaps(self, key_rows: np.ndarray, wanted: np.ndarray, complete: np.ndarray) -> None:
        """One line: how many clips need a frame missing from their sequence, and one example."""
        frames = self.index.frames
        k = int(np.flatnonzero(~complete)[0])
        row = key_rows[k]
        present = set(frames["frame"].iloc[np.flatnonzero(frames["sequence"].to_numpy() ==
                                                          frames["sequence"].iat[row])].tolist())
        absent = next(int(f) for f in wanted[k] if int(f) not in present)
        logger.warning(f"{self.name}: skipping {int((~complete).sum())} of {len(complete)} clips that need a frame "
                       f"missing from their sequence (e.g. {frames['sequence'].iat[row]!r} frame {absent}, for key "
                       f"frame {int(frames['frame'].iat[row])}) in {self.index.index_dir}")

    # --- reading -----------------------------------------------------------------------------
    def _video_reader(self) -> io.VideoFrameReader:
        # One reader per process: a DataLoader worker forked from a parent that already opened
        # videos must not share the parent's decord handles.
        if self._videos is None or self._videos_pid != os.getpid():
            self._videos, self._videos_pid = io.VideoFrameReader(), os.getpid()
        return self._videos

    def _read_image(self, row: int) -> np.ndarray:
        path, frame = self.index.frame_source(row)  # a video's extracted frame where prepare made one
        videos = self._video_reader() if io.is_video(path) else None
        return io.read_frame(path, frame, videos)

    def _read_label(self, row: int, image_shape: tuple[int, ...]) -> np.ndarray | None:
        path = self.index.label_path(row)
        if path is None:
            return None
        label = io.read_train_ids(path)
        if label.shape != tuple(image_shape[:2]):
            raise DatasetError(f"{path}: label is {label.shape[1]}x{label.shape[0]} but its image "
                               f"{self.index.image_path(row)} is {image_shape[1]}x{image_shape[0]}")
        return label

    def __len__(self) -> int:
        return len(self.key_rows)

    def _requirement(self, class_id: int | None) -> ClassRequirement | None:
        if class_id is None or self.class_crop_min_pixels <= 0:
            return None
        return ClassRequirement(class_id=int(class_id), min_pixels=self.class_crop_min_pixels)

    def __getitem__(self, item: int | tuple[int, int] | tuple[int, int, int]) -> dict:
        key, seed, class_id = (tuple(item) + (None,))[:3] if isinstance(item, tuple) else (item, None, None)
        rows = [int(self.key_rows[key]), *map(int, self.reference_rows[key])]
        images: dict[int, np.ndarray] = {}  # a clamped clip repeats rows: read each once
        for row in rows:
            if row not in images:
                images[row] = self._read_image(row)
        frames = [images[row] for row in rows]
        shape = frames[0].shape
        for row, frame in zip(rows, frames):
            if frame.shape != shape:
                raise DatasetError(f"{self.name}: frames of one clip differ in size: "
                                   f"{self.index.image_path(rows[0])} is {shape[:2]}, "
                                   f"{self.index.image_path(row)} is {frame.shape[:2]}")
        labels = [self._read_label(row, shape) if t == 0 or self.load_reference_labels else None
                  for t, row in enumerate(rows)]
        out = self.transform.apply(frames, labels, np.random.default_rng(seed), require=self._requirement(class_id))
        table = self.index.frames
        sample = {
            "img": out.img,
            "label": out.label,
            "valid": out.valid,
            "pseudo_valid": out.pseudo_valid,
            "has_label": torch.tensor([lab is not None for lab in labels], dtype=torch.bool),
            "meta": {
                "dataset": self.name,
                "sequence": str(table["sequence"].iat[rows[0]]),
                "frames": [int(table["frame"].iat[row]) for row in rows],
                "offsets": [0, *self.offsets],  # nominal; ``frames`` holds the (clamped) frames read
            },
        }
        if out.rgb is not None:
            sample["rgb"] = out.rgb  # (T, H, W, 3) uint8 as read, when the transform keeps them
        return sample

    def key_frame_table(self) -> pd.DataFrame:
        """The index rows of the key frames, in dataset order (what samplers weigh)."""
        return self.index.frames.iloc[self.key_rows].reset_index(drop=True)

    def __repr__(self) -> str:
        return (f"ClipDataset(name={self.name!r}, clips={len(self)}, offsets={self.offsets}, "
                f"keys={self.keys.value}, boundary={self.boundary.value})")
