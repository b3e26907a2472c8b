"""Clip transforms: one geometry per clip, photometric jitter per frame (numpy / OpenCV).

A clip is a list of RGB uint8 frames (H, W, 3) and one train-id label (H, W) uint8 or ``None``
per frame; index 0 is the key frame. Every op takes the clip and an ``np.random.Generator``.

Geometric ops (``Resize``, ``RandomRescale``, ``RandomCrop``, ``RandomFlip``) do not touch pixels:
they compose one affine map from the stored pixels to the output grid, drawn once per clip, so every
frame and label of a clip gets exactly the same geometry. The first op that needs pixels
(``PhotoMetricDistortion``) or the final ``Normalize`` resamples each frame once with
``cv2.warpAffine`` (bilinear for frames, nearest for labels, edges replicated like ``cv2.resize``;
outside the image: 0 for frames, 255 for labels, i.e. mmseg's pad values, at the bottom/right).
One resampling instead of resize-then-crop is what makes the loader fast: a 512x512 crop of a
2x-upscaled 1280x720 frame never builds the 2560x1440 image.

Coordinates are pixel indices with pixel centres on integers (OpenCV's convention), so a resize
from width w0 to w1 maps x to ``s * x + (s - 1) / 2`` with ``s = w1 / w0``, exactly as ``cv2.resize``.

``ClipTransform.apply`` returns ``ClipTensors``: besides image and label, ``valid`` marks the output
pixels that lie inside the stored frame (False on padding) and ``pseudo_valid`` the key-frame pixels
inside the frame shrunk by the crop-aware pseudo-label margins (HRDA's ``crop_pseudo_margins``, given
in stored-frame pixels and cropped with the frame; without margins it equals ``valid``). Both follow
from the clip geometry, so they cost no resampling.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol, Sequence

import cv2
import numpy as np
import torch

from pipa_video.data.classes import IGNORE_INDEX

# mmseg's RandomCrop retries this many crops while one class dominates the key label.
CROP_TRIES = 10
HUE_RANGE = 180  # OpenCV's 8-bit HSV stores hue as 0..179


@dataclass
class Clip:
    """Frames and labels of one clip plus the pending geometry (stored pixel -> output pixel)."""

    frames: list[np.ndarray]
    labels: list[np.ndarray | None]
    matrix: np.ndarray = field(default_factory=lambda: np.eye(3))
    size: tuple[int, int] = (0, 0)  # (w, h) of the output grid

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.labels):
            raise ValueError(f"a clip needs one label slot per frame: {len(self.frames)} frames, "
                             f"{len(self.labels)} labels")
        if self.size == (0, 0):
            h, w = self.frames[0].shape[:2]
            self.size = (w, h)

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def then(self, matrix: np.ndarray, size: tuple[int, int]) -> None:
        """Append a geometric step: ``matrix`` maps the current output grid to a new one of ``size``."""
        self.matrix = matrix @ self.matrix
        self.size = (int(size[0]), int(size[1]))

    @staticmethod
    def _valid_span(axis: int, src_span: tuple[int, int], out_extent: int, matrix: np.ndarray) -> tuple[int, int]:
        """[lo, hi) of output pixels along ``axis`` whose centre falls inside source pixels [src_span)."""
        scale, shift = matrix[axis, axis], matrix[axis, 2]
        src = (np.arange(out_extent) - shift) / scale
        inside = np.flatnonzero((src >= src_span[0] - 0.5) & (src < src_span[1] - 0.5))
        return (int(inside[0]), int(inside[-1]) + 1) if len(inside) else (0, 0)

    def inside_mask(self, margins: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
        """(h, w) bool of the output grid: True where the pixel's centre maps inside the stored frame
        shrunk by ``margins`` = (top, bottom, left, right) stored pixels. Call before ``materialise``."""
        top, bottom, left, right = margins
        h, w = self.frames[0].shape[:2]
        x0, x1 = self._valid_span(0, (left, w - right), self.size[0], self.matrix)
        y0, y1 = self._valid_span(1, (top, h - bottom), self.size[1], self.matrix)
        mask = np.zeros((self.size[1], self.size[0]), bool)
        mask[y0:y1, x0:x1] = True
        return mask

    def _warp(self, array: np.ndarray, matrix: np.ndarray, size: tuple[int, int], *, interpolation: int,
              pad_value: int) -> np.ndarray:
        # Replicate the edge for interpolation (as cv2.resize does: no dark fringe when upscaling),
        # then pad the area outside the image with ``pad_value`` (mmseg's Pad: 0 image, 255 label).
        if matrix[0, 1] != 0 or matrix[1, 0] != 0:
            raise ValueError(f"clip geometry must be axis-aligned (scale, crop, flip), got {matrix[:2]}")
        out = cv2.warpAffine(array, matrix[:2], size, flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
        h, w = array.shape[:2]
        x0, x1 = self._valid_span(0, (0, w), size[0], matrix)
        y0, y1 = self._valid_span(1, (0, h), size[1], matrix)
        if (x0, x1, y0, y1) != (0, size[0], 0, size[1]):
            out[:y0], out[y1:], out[:, :x0], out[:, x1:] = pad_value, pad_value, pad_value, pad_value
        return out

    def warp_label(self, label: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``label`` resampled (nearest) with ``matrix`` onto a grid of ``size``; 255 outside."""
        return self._warp(label, matrix, size, interpolation=cv2.INTER_NEAREST, pad_value=IGNORE_INDEX)

    def materialise(self) -> None:
        """Resample every frame and label with the pending geometry (once; repeated frames once)."""
        h, w = self.frames[0].shape[:2]
        if self.size == (w, h) and np.allclose(self.matrix, np.eye(3)):
            return
        # A clamped clip repeats the same array: warp it once. Keyed by id(), so the originals are
        # kept alive until the end (a freed array's id could be reused by a new one).
        originals = (list(self.frames), list(self.labels))
        warped: dict[int, np.ndarray] = {}
        for i, frame in enumerate(originals[0]):
            if id(frame) not in warped:
                warped[id(frame)] = self._warp(frame, self.matrix, self.size,
                                               interpolation=cv2.INTER_LINEAR, pad_value=0)
            self.frames[i] = warped[id(frame)]
        for i, label in enumerate(originals[1]):
            if label is not None:
                if id(label) not in warped:
                    warped[id(label)] = self.warp_label(label, self.matrix, self.size)
                self.labels[i] = warped[id(label)]
        self.matrix = np.eye(3)


class ClipOp(Protocol):
    """One transform step. ``geometric`` ops only compose the clip's geometry (no pixels touched), so a
    transform can re-draw them cheaply (rare-class re-crop); they must all come before the pixel ops."""

    geometric: ClassVar[bool]

    def __call__(self, clip: Clip, rng: np.random.Generator) -> Clip: ...


def scale_matrix(sx: float, sy: float) -> np.ndarray:
    """Resize by (sx, sy) with pixel centres kept aligned (cv2.resize's mapping)."""
    return np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2], [0.0, 0.0, 1.0]])


def translate_matrix(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def hflip_matrix(width: int) -> np.ndarray:
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class FrameCrop:
    """Cut ``(top, bottom, left, right)`` rows/columns off every stored frame and label, before any
    other op (DA-VSN and TPS train on SYNTHIA-Seq's 1280x760 frames without the bottom 120 rows:
    ``davsn/dataset/SynthiaSeq.py``, ``image[:-120]``). Views, not copies; a repeated frame stays one array."""

    borders: tuple[int, int, int, int]
    geometric: ClassVar[bool] = True

    def __call__(self, clip: Clip, rng: np.random.Generator) -> Clip:
        if not np.allclose(clip.matrix, np.eye(3)) or clip.size != (clip.frames[0].shape[1], clip.frames[0].shape[0]):
            raise ValueError("FrameCrop must be the first op of a clip transform")
        top, bottom, left, right = self.borders
        h, w = clip.frames[0].shape[:2]
        if top + bottom >= h or left + right >= w:
            raise ValueError(f"frame_crop {self.borders} (top, bottom, left, right) leaves nothing of a {w}x{h} frame")
        views: dict[int, np.ndarray] = {}

        def cut(array: np.ndarray) -> np.ndarray:
            return views.setdefault(id(array), array[top:h - bottom, left:w - right])

        cropped = Clip([cut(f) for f in clip.frames], [None if lab is None else cut(lab) for lab in clip.labels])
        return cropped


def rescale_size(size: tuple[int, int], target: tuple[float, float]) -> tuple[int, int]:
    """mmcv.rescale_size: (w, h) scaled, aspect kept, to fit ``target`` = (w, h) by long and short side."""
    w, h = size
    long_side, short_side = max(target), min(target)
    factor = min(long_side / max(w, h), short_side / min(w, h))
    return int(w * factor + 0.5), int(h * factor + 0.5)


@dataclass(frozen=True)
class Resize:
    """Resize every frame to ``size`` = (w, h): exactly, or with ``keep_ratio`` as mmseg's
    ``Resize(img_scale=size)`` (keep_ratio=True, its default): the largest size that fits ``size``."""

    size: tuple[int, int]
    keep_ratio: bool = False
    geometric: ClassVar[bool] = True

    def __call__(self, clip: Clip, rng: np.random.Generator) -> Clip:
        w, h = rescale_size(clip.size, self.size) if self.keep_ratio else self.size
        clip.then(scale_matrix(w / clip.width, h / clip.height), (w, h))
        return clip


@dataclass(frozen=True)
class RandomRescale:
    """DAFormer/mmseg ``Resize(img_scale, ratio_range, keep_ratio=True)``.

    Draws r ~ U(ratio_range) and rescales, keeping the aspect ratio, to fit ``base_size * r``
    (``base_size`` = (w, h); ``None`` means the clip's current size, i.e. plain scaling by r).
    """

    base_size: tuple[int, int] | None
    ratio_range: tuple[float, float]
    geometric: ClassVar[bool] = True

    def __call__(self, clip: Clip, rng: np.random.Generator) -> Clip:
        ratio = rng.uniform(*self.ratio_range)
        base_w, base_h = self.base_size or clip.size
        w, h = clip.size
        new_w, new_h = rescale_size((w, h), (base_w * ratio, base_h * ratio))
        clip.then(scale_matrix(new_w / w, new_h / h), (new_w, new_h))
        return clip


def max_class_share(label: np.ndarray, ignore_index: int = IGNORE_INDEX) -> float:
    """Share of the labelled pixels taken by the most frequent class (1.0 when < 2 classes)."""
    counts = np.bincount(label.ravel(), minlength=256)
    counts[ignore_index] = 0
    counts = counts[counts > 0]
    return float(counts.max() / counts.sum()) if len(counts) > 1 else 1.0


@dataclass(frozen=True)
class RandomCrop:
    """A random ``crop_size`` = (h, w) window; padded at the bottom/right when the image is smaller.

    As mmseg: while one class fills at least ``cat_max_ratio`` of the key label's crop (or the crop
    holds fewer than two classes), draw again, up to 10 tries. Unlike mmseg, when no try passes the
    crop with the smallest dominant share is kept rather than the last one.
    """

    crop_size: tuple[int, int]
    cat_max_ratio: float = 1.0
    ignore_index: int = IGNORE_INDEX
    geometric: ClassVar[bool] = True

    def _draw(self, clip: Clip, rng: np.random.Generator) -> np.ndarray:
        crop_h, crop_w = self.crop_size
        y0 = rng.integers(0, max(clip.height - crop_h, 0) + 1)
        x0 = rng.integers(0, max(clip.width - crop_w, 0) + 1)
        return translate_matrix(-float(x0), -float(y0))

    def __call__(self, clip: Clip, rng: np.random.Generator) -> Clip:
        crop_h, crop_w = self.crop_size
        key_label = clip.labels[0]
        crop = self._draw(clip, rng)
        if self.cat_max_ratio < 1.0 and key_label is not None:
            best_share = max_class_share(
                clip.warp_label(key_label, crop @ clip.matrix, (crop_w, crop_h)), self.ignore_index)
            for _ in range(CROP_TRIES - 1):
                if best_share < self.cat_max_ratio:
                    break
                candidate = self._draw(clip, rng)
                share = max_class_share(
                    clip.warp_label(key_label, candidate @ clip.matrix, (crop_w, crop_h)), self.ignore_index)
                if share < best_share:
                    crop, best_share = candidate, share
        clip.then(crop, (crop_w, crop_h))
        return clip


@dataclass(frozen=True)
class RandomFlip:
    """Horizontal flip of the whole clip with probability ``prob``."""

    prob: float = 0.5
    geometric: ClassVar[bool] = True

    def __call__(self, clip: Clip, rng: np.random.Generator) -> Clip:
        if rng.random() < self.prob:
            clip.then(hflip_matrix(clip.width), clip.size)
        return clip


def _linear_lut(alpha: float, beta: float) -> np.ndarray:
    # mmseg's convert(): float(img) * alpha + beta, clipped, truncated to uint8; as a lookup table.
    return np.clip(np.arange(256, dtype=np.float32) * alpha + beta, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class PhotoMetricDistortion:
    """mmseg's PhotoMetricDistortion, drawn independently for every frame of the clip.

    Each with probability 1/2: brightness shift, contrast scale (before or after the colour steps,
    by a coin), saturation scale, hue shift. Runs on materialised (already cropped) frames.
    """

    brightness_delta: int = 32
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: int = 18
    geometric: ClassVar[bool] = False

    def __call__(self, clip: Clip, rng: np.random.Generator) -> Clip:
        clip.materialise()
        clip.frames = [self.distort(frame, rng) for frame in clip.frames]
        return clip

    def _contrast(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            img = cv2.LUT(img, _linear_lut(rng.uniform(*self.contrast_range), 0.0))
        return img

    def distort(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            img = cv2.LUT(img, _linear_lut(1.0, rng.uniform(-self.brightness_delta, self.brightness_delta)))
        contrast_first = bool(rng.integers(2))
        if contrast_first:
            img = self._contrast(img, rng)
        saturation = rng.uniform(*self.saturation_range) if rng.integers(2) else None
        hue = int(rng.integers(-self.hue_delta, self.hue_delta + 1)) if rng.integers(2) else None
        if saturation is not None or hue is not None:
            identity = np.arange(256, dtype=np.uint8)
            hue_lut = ((identity.astype(np.int64) + (hue or 0)) % HUE_RANGE).astype(np.uint8)
            sat_lut = _linear_lut(saturation, 0.0) if saturation is not None else identity
            # One HSV round trip applies both (mmseg converts twice); H channel, S channel, V kept.
            lut = np.stack([hue_lut if hue is not None else identity, sat_lut, identity], axis=-1)
            hsv = cv2.LUT(cv2.cvtColor(img, cv2.COLOR_RGB2HSV), lut.reshape(1, 256, 3))
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if not contrast_first:
            img = self._contrast(img, rng)
        return img


@dataclass(frozen=True)
class Normalize:
    """Materialise the clip and return ``img`` (T, 3, H, W) float32 normalised, ``label`` (T, H, W) int64."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def images(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        h, w = frames[0].shape[:2]
        out = np.empty((len(frames), 3, h, w), np.float32)
        for t, frame in enumerate(frames):
            for c, plane in enumerate(cv2.split(frame)):
                # (x - mean) / std, uint8 -> float32 and HWC -> CHW in one pass per plane: 5x faster
                # than numpy's astype / subtract / multiply / transpose chain on 512x512 clips.
                cv2.addWeighted(plane, 1.0 / self.std[c], plane, 0.0, -self.mean[c] / self.std[c],
                                dst=out[t, c], dtype=cv2.CV_32F)
        return torch.from_numpy(out)

    def __call__(self, clip: Clip) -> tuple[torch.Tensor, torch.Tensor]:
        clip.materialise()
        return self.images(clip.frames), stack_labels(clip.labels, (clip.height, clip.width))


def stack_labels(labels: Sequence[np.ndarray | None], shape: tuple[int, int]) -> torch.Tensor:
    """(T, H, W) int64; a frame without a label is all ``IGNORE_INDEX``."""
    full = [np.full(shape, IGNORE_INDEX, np.uint8) if label is None else label for label in labels]
    return torch.from_numpy(np.stack(full)).long()


@dataclass(frozen=True)
class ClipTensors:
    """One transformed clip: the clip sample contract's tensors (see ``data.clips``)."""

    img: torch.Tensor  # (T, 3, H, W) float32, normalised
    label: torch.Tensor  # (T, H, W) int64, 255 where unknown or padded
    valid: torch.Tensor  # (T, H, W) bool, True where the pixel lies inside the stored frame (not padding)
    pseudo_valid: torch.Tensor  # (H, W) bool, key frame: False inside the crop-aware pseudo-label margins and on padding
    rgb: torch.Tensor | None = None  # (T, H, W, 3) uint8, the frames as read (EvalTransform(keep_frames=True))


@dataclass(frozen=True)
class ClassRequirement:
    """DAFormer's rare-class re-crop (``mmseg/datasets/uda_dataset.py``, ``get_rare_class_sample``): while
    the key label's crop holds no more than ``min_pixels`` pixels of ``class_id``, draw the geometry again,
    at most ``redraws`` times; the last draw is kept either way."""

    class_id: int
    min_pixels: float
    redraws: int = 10

    def met(self, clip: Clip) -> bool:
        key = clip.labels[0]
        if key is None:
            return True
        return int(np.count_nonzero(clip.warp_label(key, clip.matrix, clip.size) == self.class_id)) > self.min_pixels


class ClipTransform:
    """Geometric ops, then pixel ops, then ``normalize``: frames, labels, rng -> ``ClipTensors``.

    ``pseudo_margins`` = (top, bottom, left, right) stored-frame pixels whose key-frame pseudo-labels get
    no weight (HRDA's crop-aware margins, applied before the crop: only a crop at the frame's edge loses rows).
    """

    def __init__(self, ops: Sequence[ClipOp], *, normalize: Normalize,
                 pseudo_margins: tuple[int, int, int, int] | None = None) -> None:
        self.ops = list(ops)
        kinds = [op.geometric for op in self.ops]
        if kinds != sorted(kinds, reverse=True):
            raise ValueError(f"geometric ops must come before pixel ops, got {self.ops}")
        self.num_geometric = sum(kinds)
        self.normalize = normalize
        self.pseudo_margins = tuple(pseudo_margins) if pseudo_margins is not None else (0, 0, 0, 0)

    def _geometry(self, frames: Sequence[np.ndarray], labels: Sequence[np.ndarray | None],
                  rng: np.random.Generator) -> Clip:
        clip = Clip(list(frames), list(labels))
        for op in self.ops[:self.num_geometric]:
            clip = op(clip, rng)
        return clip

    def apply(self, frames: Sequence[np.ndarray], labels: Sequence[np.ndarray | None], rng: np.random.Generator,
              *, require: ClassRequirement | None = None) -> ClipTensors:
        clip = self._geometry(frames, labels, rng)
        for _ in range(require.redraws if require is not None else 0):
            if require.met(clip):
                break
            clip = self._geometry(frames, labels, rng)
        inside = torch.from_numpy(clip.inside_mask())
        pseudo_valid = torch.from_numpy(clip.inside_mask(self.pseudo_margins))
        for op in self.ops[self.num_geometric:]:
            clip = op(clip, rng)
        img, label = self.normalize(clip)
        return ClipTensors(img=img, label=label, valid=inside.expand(len(clip.frames), -1, -1).clone(),
                           pseudo_valid=pseudo_valid)

    def __call__(self, frames: Sequence[np.ndarray], labels: Sequence[np.ndarray | None],
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and label only (``apply`` without the masks)."""
        out = self.apply(frames, labels, rng)
        return out.img, out.label

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ops={self.ops}, normalize={self.normalize}, pseudo_margins={self.pseudo_margins})"


class EvalTransform(ClipTransform):
    """Evaluation: resize the frames to ``resize`` = (w, h) (or keep them), labels untouched.

    The DA-VSN protocol predicts at 1024x512 and scores at the label's 2048x1024, so the labels
    keep their original resolution and the evaluator upsamples the logits. ``valid`` is all True at
    the image's resolution (a resize pads nothing). ``keep_frames`` also returns the frames as read
    (``ClipTensors.rgb``), for what needs the original pixels (temporal consistency's optical flow,
    overlays).
    """

    def __init__(self, *, resize: tuple[int, int] | None, normalize: Normalize, keep_frames: bool = False) -> None:
        super().__init__([Resize(size=tuple(resize))] if resize else [], normalize=normalize)
        self.keep_frames = keep_frames

    def apply(self, frames: Sequence[np.ndarray], labels: Sequence[np.ndarray | None], rng: np.random.Generator,
              *, require: ClassRequirement | None = None) -> ClipTensors:
        out = super().apply(frames, [None] * len(frames), rng)
        kept = torch.from_numpy(np.stack(frames)) if self.keep_frames else None
        return ClipTensors(img=out.img, label=stack_labels(labels, frames[0].shape[:2]), valid=out.valid,
                           pseudo_valid=out.pseudo_valid, rgb=kept)
