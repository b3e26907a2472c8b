"""Pseudo-labels from the teacher's softmax, with a confidence weight and ignore margins."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import Tensor


class PseudoWeight(str, Enum):
    IMAGE = "image"  # DAFormer: one weight per image, the share of confident pixels
    PIXEL = "pixel"  # each pixel weighted 1 if confident, else 0


@dataclass
class PseudoLabels:
    label: Tensor  # (B, H, W) long, the teacher's argmax
    weight: Tensor  # (B, H, W) float, 0 in the ignore margins
    prob: Tensor  # (B, H, W) float, the teacher's max probability


def make_pseudo_labels(teacher_logits: Tensor, *, size: tuple[int, int], threshold: float,
                       weight_mode: PseudoWeight | str, ignore_top: int = 0,
                       ignore_bottom: int = 0) -> PseudoLabels:
    """Upsample teacher logits to ``size`` and turn them into labels and weights.

    Stays on the device: the per-image weight is a tensor mean, never a Python number.
    """
    logits = F.interpolate(teacher_logits.float(), size=size, mode="bilinear", align_corners=False)
    prob, label = torch.softmax(logits, dim=1).max(dim=1)
    confident = (prob > threshold).float()
    if PseudoWeight(weight_mode) is PseudoWeight.IMAGE:
        weight = confident.mean(dim=(1, 2), keepdim=True).expand_as(confident).clone()
    else:
        weight = confident
    if ignore_top > 0:
        weight[:, :ignore_top] = 0
    if ignore_bottom > 0:
        weight[:, weight.shape[1] - ignore_bottom:] = 0
    return PseudoLabels(label=label, weight=weight, prob=prob)
