"""Padding is never a pseudo-label nor a contrast sample: validity masks on the feature grid.

A clip's ``valid`` mask (``data.clips``) is False on the padding a crop larger than the rescaled frame
adds. A feature cell (``stride`` x ``stride`` pixels) whose pixels are not all valid is excluded from
every contrast: its label becomes the ignore index on every one of its pixels, so that any
nearest-neighbour downsampling of the label, however the cell is sampled, sees the ignore index.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pipa_video.data.classes import IGNORE_INDEX


def clip_valid(clip: dict, frame: int) -> Tensor:
    """(B, H, W) bool validity of one frame of a batch of clips; all True when the batch carries none."""
    if "valid" in clip:
        return clip["valid"][:, frame].bool()
    img = clip["img"]
    return torch.ones(img.shape[0], *img.shape[-2:], dtype=torch.bool, device=img.device)


def cell_valid(valid: Tensor, stride: int) -> Tensor:
    """(B, ceil(H/stride), ceil(W/stride)) bool: True where every pixel of the cell is valid."""
    invalid = (~valid.bool()).float()[:, None]
    return F.max_pool2d(invalid, kernel_size=stride, stride=stride, ceil_mode=True)[:, 0] == 0


def mask_invalid_cells(label: Tensor, valid: Tensor, stride: int, *, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """``label`` (B, H, W) with ``ignore_index`` on every pixel of a cell that holds any invalid pixel."""
    cells = cell_valid(valid, stride)
    h, w = label.shape[-2:]
    pixel = cells.repeat_interleave(stride, dim=1).repeat_interleave(stride, dim=2)[:, :h, :w]
    return label.masked_fill(~pixel, ignore_index)
