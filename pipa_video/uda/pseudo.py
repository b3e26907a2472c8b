"""Pseudo-labels from the teacher's softmax, with a confidence weight and ignore margins.

DAFormer (``mmseg/models/uda/dacs.py``): label = argmax of the teacher's softmax; a pixel is confident
when its maximum probability is ``>= threshold``; the weight of every pixel is the share of confident
pixels in the whole batch (``torch.sum(ps_large_p) / ps_size``). The margins then zero the weight of
the top and bottom rows of the crop (``pseudo_weight_ignore_top/bottom``); HRDA's crop-aware margins
arrive as a mask (``pseudo_valid``) built before the crop.

Padding is never a pseudo-label: pixels outside the stored frame (``valid`` False) get weight 0 and
do not count in the confident share, neither in its numerator nor in its denominator.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import Tensor


class PseudoWeight(str, Enum):
    BATCH = "batch"  # DAFormer: one weight for the batch, the share of confident pixels
    IMAGE = "image"  # one weight per image, the share of its confident pixels
    PIXEL = "pixel"  # each pixel weighted 1 if confident, else 0


@dataclass
class PseudoLabels:
    label: Tensor  # (B, H, W) long, the teacher's argmax
    weight: Tensor  # (B, H, W) float, 0 in the ignore margins and on padding
    prob: Tensor  # (B, H, W) float, the teacher's max probability


def confident_share(confident: Tensor, valid: Tensor, mode: PseudoWeight) -> Tensor:
    """(B, H, W) weight: the share of ``confident`` among ``valid`` pixels, per batch, per image or per pixel."""
    confident = confident & valid
    if mode is PseudoWeight.PIXEL:
        return confident.float()
    dims = (0, 1, 2) if mode is PseudoWeight.BATCH else (1, 2)
    share = confident.sum(dim=dims, keepdim=True).float() / valid.sum(dim=dims, keepdim=True).clamp_min(1).float()
    return share.expand_as(confident).clone()


def make_pseudo_labels(teacher_logits: Tensor, *, size: tuple[int, int], threshold: float,
                       weight_mode: PseudoWeight | str, ignore_top: int = 0, ignore_bottom: int = 0,
                       valid: Tensor | None = None, pseudo_valid: Tensor | None = None) -> PseudoLabels:
    """Upsample teacher logits (B, C, h, w) to ``size`` and turn them into labels and weights.

    ``valid`` (B, H, W) bool: pixels inside the stored frame (padding is False). ``pseudo_valid``
    (B, H, W) bool: False inside crop-aware margins. ``ignore_top/bottom``: rows of the crop with weight 0.
    Stays on the device: the weight is a tensor, never a Python number.
    """
    logits = F.interpolate(teacher_logits.float(), size=size, mode="bilinear", align_corners=False)
    prob, label = torch.softmax(logits, dim=1).max(dim=1)
    valid = torch.ones_like(label, dtype=torch.bool) if valid is None else valid.bool()
    weight = confident_share(prob >= threshold, valid, PseudoWeight(weight_mode)) * valid
    if pseudo_valid is not None:
        weight = weight * pseudo_valid
    if ignore_top > 0:
        weight[:, :ignore_top] = 0
    if ignore_bottom > 0:
        weight[:, weight.shape[1] - ignore_bottom:] = 0
    return PseudoLabels(label=label, weight=weight, prob=prob)
