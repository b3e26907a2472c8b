"""ClassMix and the strong augmentation of the mixed image (DACS / DAFormer).

Randomness comes from torch's global generator, so a resumed run (which restores RNG states)
mixes exactly as an uninterrupted one would.

Published behaviour (DAFormer ``mmseg/models/utils/dacs_transforms.py`` and ``uda/dacs.py``):
``get_class_masks`` takes ``torch.unique`` over the WHOLE source batch (255 included) and draws, for
each image, ceil(n / 2) of those n classes; one ``random.uniform`` per batch decides whether colour
jitter and blur apply, with the jitter's factors and the blur's sigma drawn per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import Tensor

from pipa_video.data.classes import IGNORE_INDEX


class MixClasses(str, Enum):
    BATCH = "batch"  # DAFormer: half of the classes present in the whole source batch, 255 included
    IMAGE = "image"  # half of the image's own classes, 255 excluded


class AugDraw(str, Enum):
    BATCH = "batch"  # DAFormer: one draw per batch decides whether jitter / blur apply
    IMAGE = "image"  # each image decides on its own


def class_mix_masks(source_label: Tensor, *, classes: MixClasses | str = MixClasses.IMAGE,
                    ignore_index: int = IGNORE_INDEX) -> Tensor:
    """(B, H, W) bool: per image, the pixels of a random half of the candidate classes.

    Candidates: the image's own classes without ``ignore_index`` (``IMAGE``), or every id present in the
    batch, ``ignore_index`` included (``BATCH``, DAFormer). Vectorised: each candidate gets a random
    score per image and the lower ceil(n / 2) are pasted.
    """
    b = source_label.shape[0]
    n_ids = 256
    flat = source_label.reshape(b, -1).clamp(0, n_ids - 1)
    present = torch.zeros(b, n_ids, dtype=torch.bool, device=source_label.device)
    present.scatter_(1, flat, True)
    if MixClasses(classes) is MixClasses.BATCH:
        present = present.any(dim=0, keepdim=True).expand(b, n_ids)
    else:
        present[:, ignore_index] = False
    scores = torch.rand(b, n_ids, device=source_label.device).masked_fill(~present, 2.0)
    rank = scores.argsort(dim=1).argsort(dim=1)  # 0 = lowest score
    n_pick = (present.sum(dim=1, keepdim=True) + 1) // 2
    chosen = (rank < n_pick) & present
    return torch.gather(chosen, 1, flat).reshape(source_label.shape)


@dataclass
class MixedBatch:
    img: Tensor  # (B, 3, H, W) normalised
    label: Tensor  # (B, H, W) long
    weight: Tensor  # (B, H, W) float
    mask: Tensor  # (B, H, W) bool, True where the pixel comes from the source
    valid: Tensor  # (B, H, W) bool, False where the pixel is padding (of whichever image it comes from)


def class_mix(*, source_img: Tensor, source_label: Tensor, target_img: Tensor, pseudo_label: Tensor,
              pseudo_weight: Tensor, classes: MixClasses | str = MixClasses.IMAGE,
              source_valid: Tensor | None = None, target_valid: Tensor | None = None) -> MixedBatch:
    """Paste half of the source classes (see ``class_mix_masks``) onto the paired target image.

    Pasted pixels weigh 1 (DAFormer's ``gt_pixel_weight``), the others their pseudo-label weight;
    padding weighs 0 from either image. ``*_valid`` (B, H, W) bool default to all True.
    """
    mask = class_mix_masks(source_label, classes=classes)
    m = mask.unsqueeze(1).to(source_img.dtype)
    img = m * source_img + (1 - m) * target_img
    label = torch.where(mask, source_label, pseudo_label)
    all_in = torch.ones_like(mask)
    valid = torch.where(mask, all_in if source_valid is None else source_valid.bool(),
                        all_in if target_valid is None else target_valid.bool())
    weight = torch.where(mask, torch.ones_like(pseudo_weight), pseudo_weight) * valid
    return MixedBatch(img=img, label=label, weight=weight, mask=mask, valid=valid)


def _gray(x: Tensor) -> Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _uniform(b: int, low: float, high: float, like: Tensor) -> Tensor:
    return torch.empty(b, 1, 1, 1, device=like.device, dtype=like.dtype).uniform_(low, high)


def _rotate_hue(x: Tensor, angle: Tensor) -> Tensor:
    """Hue rotation in YIQ space by ``angle`` radians, per image (B, 1, 1, 1)."""
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    cos, sin = torch.cos(angle), torch.sin(angle)
    i, q = yiq[:, 1:2], yiq[:, 2:3]
    yiq = torch.cat([yiq[:, 0:1], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq)


def _apply_mask(b: int, prob: float, draw: AugDraw, like: Tensor) -> Tensor:
    """(B, 1, 1, 1) 0/1: whether each image gets the augmentation, one coin per batch or per image."""
    coins = torch.rand(1 if draw is AugDraw.BATCH else b, 1, 1, 1, device=like.device) < prob
    return coins.expand(b, 1, 1, 1).to(like.dtype)


def color_jitter(x: Tensor, *, strength: float, prob: float, draw: AugDraw | str = AugDraw.IMAGE) -> Tensor:
    """Brightness, contrast, saturation and hue jitter of [0, 1] images, applied with ``prob``."""
    b = x.shape[0]
    s = strength
    out = x * _uniform(b, 1 - s, 1 + s, x)
    mean = _gray(out).mean(dim=(2, 3), keepdim=True)
    out = (out - mean) * _uniform(b, 1 - s, 1 + s, x) + mean
    gray = _gray(out)
    out = (out - gray) * _uniform(b, 1 - s, 1 + s, x) + gray
    out = _rotate_hue(out, _uniform(b, -s, s, x) * math.pi).clamp(0, 1)
    apply = _apply_mask(b, prob, AugDraw(draw), x)
    return apply * out + (1 - apply) * x


def gaussian_blur(x: Tensor, *, prob: float = 0.5, sigma_range: tuple[float, float] = (0.15, 1.15),
                  draw: AugDraw | str = AugDraw.IMAGE) -> Tensor:
    """DAFormer's blur: kernel about 10% of the image side, sigma uniform in ``sigma_range``."""
    b, c, h, w = x.shape
    apply = _apply_mask(b, prob, AugDraw(draw), x).reshape(b).bool()
    sigma = torch.empty(b, device=x.device).uniform_(*sigma_range)
    out = x.clone()
    for axis, size in ((2, h), (3, w)):
        k = int(math.floor(math.ceil(0.1 * size) - 0.5 + math.ceil(0.1 * size) % 2))
        k = max(k, 1) | 1
        coords = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
        kernel = torch.exp(-(coords[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
        kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, k)
        shape = (b * c, 1, k, 1) if axis == 2 else (b * c, 1, 1, k)
        weight = kernel.repeat_interleave(c, dim=0).reshape(shape)
        pad = (0, 0, k // 2, k // 2) if axis == 2 else (k // 2, k // 2, 0, 0)
        padded = F.pad(out.reshape(1, b * c, h, w), pad, mode="reflect")
        out = F.conv2d(padded, weight, groups=b * c).reshape(b, c, h, w)
    return torch.where(apply[:, None, None, None], out, x)


def strong_augment(img: Tensor, *, mean: Tensor, std: Tensor, jitter_strength: float,
                   jitter_prob: float, blur: bool, draw: AugDraw | str = AugDraw.IMAGE) -> Tensor:
    """Colour jitter and blur on normalised images (denormalise, augment, renormalise)."""
    mean = mean.to(img).view(1, 3, 1, 1)
    std = std.to(img).view(1, 3, 1, 1)
    x = (img * std + mean) / 255.0
    x = color_jitter(x, strength=jitter_strength, prob=jitter_prob, draw=draw)
    if blur:
        x = gaussian_blur(x, draw=draw)
    return (x * 255.0 - mean) / std
