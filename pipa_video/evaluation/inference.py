"""Whole-image and sliding-window inference, with optional flip and multi-scale averaging.

``model_fn`` is any callable image (B, 3, h, w) -> logits (B, C, h', w'); logits at a lower
resolution are upsampled to the input size. Sliding windows follow mmseg's ``slide_inference``:
a regular grid of windows whose last row/column is shifted back to end at the image border, logits
summed and divided by a count matrix. After the test-time augmentations, the result is resized to
``out_size`` (the label size: DA-VSN predicts at 1024x512 and upsamples to 2048x1024).
"""
from __future__ import annotations

from enum import Enum
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from pipa_video.evaluation.metrics import parse_enum

ModelFn = Callable[[torch.Tensor], torch.Tensor]


class InferenceMode(str, Enum):
    WHOLE = "whole"
    SLIDE = "slide"

    @classmethod
    def parse(cls, value: "InferenceMode | str") -> "InferenceMode":
        return parse_enum(cls, value, what="inference mode")


def _resize(x: torch.Tensor, size: Sequence[int], *, align_corners: bool) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


def whole_inference(model_fn: ModelFn, img: torch.Tensor, *, align_corners: bool = False) -> torch.Tensor:
    """Logits (B, C, H, W) of the whole image at its own size."""
    return _resize(model_fn(img), img.shape[-2:], align_corners=align_corners)


def slide_windows(size: Sequence[int], *, window: Sequence[int],
                  stride: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """(y1, y2, x1, x2) of every window covering an image of ``size`` (h, w): mmseg's grid, the one
    HRDA's training slides over (``models.hrda.window_grid``)."""
    # Imported here: importing pipa_video.models loads timm, which scoring alone does not need.
    from pipa_video.models.hrda.geometry import window_grid

    return [(b.top, b.bottom, b.left, b.right) for b in window_grid(size, window=window, stride=stride)]


def slide_inference(model_fn: ModelFn, img: torch.Tensor, *, window: Sequence[int], stride: Sequence[int],
                    align_corners: bool = False) -> torch.Tensor:
    """Logits (B, C, H, W) averaged over overlapping windows (window/stride given as (h, w))."""
    h, w = img.shape[-2:]
    logits = count = None
    for y1, y2, x1, x2 in slide_windows((h, w), window=window, stride=stride):
        crop_logits = whole_inference(model_fn, img[..., y1:y2, x1:x2], align_corners=align_corners)
        if logits is None:
            logits = img.new_zeros((img.shape[0], crop_logits.shape[1], h, w), dtype=crop_logits.dtype)
            count = img.new_zeros((1, 1, h, w), dtype=crop_logits.dtype)
        logits[..., y1:y2, x1:x2] += crop_logits
        count[..., y1:y2, x1:x2] += 1
    return logits / count


def predict_logits(model_fn: ModelFn, img: torch.Tensor, *, mode: InferenceMode | str = InferenceMode.WHOLE,
                   window: Sequence[int] = (1024, 1024), stride: Sequence[int] = (512, 512),
                   flip: bool = False, scales: Sequence[float] = (1.0,), out_size: Sequence[int] | None = None,
                   align_corners: bool = False) -> torch.Tensor:
    """Class scores (B, C, *out_size) of a normalised image batch (B, 3, H, W).

    With one pass (no flip, one scale) these are the logits; with several, the mean of their
    softmax probabilities (mmseg's test-time augmentation). Either way argmax gives the prediction.
    ``out_size`` defaults to the input size.
    """
    mode = InferenceMode.parse(mode)
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"expected a normalised image batch (B, 3, H, W), got shape {tuple(img.shape)}")
    if not scales:
        raise ValueError("scales must hold at least one scale, e.g. [1.0]")
    out_size = tuple(out_size) if out_size is not None else tuple(img.shape[-2:])
    in_size = img.shape[-2:]
    passes = [(scale, flipped) for scale in scales for flipped in ((False, True) if flip else (False,))]
    total = None
    for scale, flipped in passes:
        x = img if scale == 1.0 else _resize(img, [round(s * scale) for s in in_size], align_corners=align_corners)
        x = x.flip(-1) if flipped else x
        if mode is InferenceMode.SLIDE:
            scores = slide_inference(model_fn, x, window=window, stride=stride, align_corners=align_corners)
        else:
            scores = whole_inference(model_fn, x, align_corners=align_corners)
        scores = scores.flip(-1) if flipped else scores
        scores = _resize(scores, out_size, align_corners=align_corners)
        if len(passes) > 1:
            scores = scores.softmax(dim=1)
        total = scores if total is None else total + scores
    return total / len(passes)


def predict_labels(model_fn: ModelFn, img: torch.Tensor, **kwargs) -> torch.Tensor:
    """Arg-max train ids (B, *out_size), int64; keyword arguments as for ``predict_logits``."""
    # max(dim).indices: same first-maximum rule as argmax, several times faster on CPU for (B, C, H, W).
    return predict_logits(model_fn, img, **kwargs).max(dim=1).indices
