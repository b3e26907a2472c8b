"""Geometry of the patch contrast: two overlapping crops of one image and where their features meet.

    pair = sample_crop_pair(image_hw=(512, 512), crop_hw=(384, 384), iou_range=(0.1, 1.0),
                            flip_prob=0.5, align=4)              # align = the feature stride
    crop1 = apply_crop(images, box=pair.box1, flip=pair.flip1)  # (B, 3, 384, 384); same for labels
    crop2 = apply_crop(images, box=pair.box2, flip=pair.flip2)
    corr = overlap_correspondence(pair, stride=4, feat_hw=(96, 96))

or, when the first view is the whole image that the student has already seen::

    pair = sample_crop_in_view(image_hw=(512, 512), crop_hw=(256, 256), iou_range=(0.1, 1.0),
                               flip_prob=0.5, align=4)
    view_cells = crop_feature_map(view_features, box=pair.box2, flip=pair.flip2, stride=4)
    # view_cells[..., i, j] and the crop's own features [..., i, j] look at the same image cell

``corr.idx1[j]`` and ``corr.idx2[j]`` are flat positions in the (h*w) feature grids of crop 1 and crop 2
that look at the same image cell, wherever ``corr.valid[j]``. The match is computed in image
coordinates of feature cells from the boxes and the stride, undoing each crop's flip, so it is exact
when box corners are multiples of the stride (``align``), which ``overlap_correspondence`` checks.
Box sampling runs on the CPU with Python numbers (geometry, not a loss), so it never touches the GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class CropBox:
    """A crop in image pixels: rows [top, top + height), columns [left, left + width)."""

    top: int
    left: int
    height: int
    width: int

    def intersection(self, other: "CropBox") -> int:
        rows = min(self.top + self.height, other.top + other.height) - max(self.top, other.top)
        cols = min(self.left + self.width, other.left + other.width) - max(self.left, other.left)
        return max(rows, 0) * max(cols, 0)

    def iou(self, other: "CropBox") -> float:
        inter = self.intersection(other)
        return inter / (self.height * self.width + other.height * other.width - inter)


@dataclass(frozen=True)
class CropPair:
    """Two crops of the same image, each with its own horizontal flip."""

    box1: CropBox
    box2: CropBox
    flip1: bool
    flip2: bool

    @property
    def iou(self) -> float:
        return self.box1.iou(self.box2)


class Correspondence(NamedTuple):
    """Matching feature positions of two crops; all (h*w,), indexed by crop 1's flat grid."""

    idx1: Tensor  # long, flat position in crop 1's grid (simply 0 .. h*w-1)
    idx2: Tensor  # long, flat position of the same image cell in crop 2's grid (0 where invalid)
    valid: Tensor  # bool, the cell lies in both crops


def sample_crop_pair(
    *,
    image_hw: tuple[int, int],
    crop_hw: tuple[int, int],
    iou_range: tuple[float, float],
    flip_prob: float,
    generator: torch.Generator | None = None,
    align: int = 1,
    max_tries: int = 100,
) -> CropPair:
    """Two ``crop_hw`` boxes inside ``image_hw`` whose IoU lies in ``iou_range`` (inclusive).

    Corners are multiples of ``align`` (pass the feature stride so features of the two crops line up
    cell for cell). ``generator`` is a CPU torch generator (default: the global one). Raises
    ``ValueError`` when no pair in range is found in ``max_tries`` draws.
    """
    _check_crop("sample_crop_pair", image_hw, crop_hw, align)
    (img_h, img_w), (crop_h, crop_w) = image_hw, crop_hw
    lo, hi = iou_range
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"sample_crop_pair: iou_range {iou_range} must satisfy 0 <= low <= high <= 1")
    for _ in range(max_tries):
        box1 = _random_box(img_h, img_w, crop_h, crop_w, align, generator)
        box2 = _random_box(img_h, img_w, crop_h, crop_w, align, generator)
        if lo <= box1.iou(box2) <= hi:
            flips = torch.rand(2, generator=generator) < flip_prob
            return CropPair(box1=box1, box2=box2, flip1=bool(flips[0]), flip2=bool(flips[1]))
    raise ValueError(f"sample_crop_pair: no pair of {crop_hw} crops of a {image_hw} image with IoU in "
                     f"{iou_range} after {max_tries} tries (align={align}); widen the range or change crop_ratio")


def sample_crop_in_view(
    *,
    image_hw: tuple[int, int],
    crop_hw: tuple[int, int],
    iou_range: tuple[float, float],
    flip_prob: float,
    generator: torch.Generator | None = None,
    align: int = 1,
) -> CropPair:
    """View 1 is the whole image (unflipped); view 2 is one ``crop_hw`` crop of it with its own flip.

    The views' IoU is the crop's share of the image, fixed by ``crop_hw``; it must lie in ``iou_range``.
    The overlap is the whole crop: take view 1's features there with ``crop_feature_map``.
    """
    _check_crop("sample_crop_in_view", image_hw, crop_hw, align)
    (img_h, img_w), (crop_h, crop_w) = image_hw, crop_hw
    view = CropBox(top=0, left=0, height=img_h, width=img_w)
    crop = _random_box(img_h, img_w, crop_h, crop_w, align, generator)
    lo, hi = iou_range
    if not lo <= view.iou(crop) <= hi:
        raise ValueError(f"sample_crop_in_view: a {crop_hw} crop covers {view.iou(crop):.3f} of a {image_hw} image, "
                         f"outside iou_range {iou_range}; change crop_ratio or the range")
    flip = bool(torch.rand(1, generator=generator)[0] < flip_prob)
    return CropPair(box1=view, box2=crop, flip1=False, flip2=flip)


def crop_feature_map(feat: Tensor, *, box: CropBox, flip: bool, stride: int) -> Tensor:
    """The cells of a whole-image feature map (..., H/stride, W/stride) under ``box``, laid out (and
    flipped) like the features of the crop itself, so the two grids match cell for cell."""
    if any(v % stride for v in (box.top, box.left, box.height, box.width)):
        raise ValueError(f"crop_feature_map: {box} is not aligned to stride {stride}; sample crops with align=stride")
    cell_box = CropBox(top=box.top // stride, left=box.left // stride, height=box.height // stride,
                       width=box.width // stride)
    return apply_crop(feat, box=cell_box, flip=flip)


def crop_size(image_hw: tuple[int, int], *, ratio: float, align: int = 1) -> tuple[int, int]:
    """Crop side = ``ratio`` x image side, rounded down to a multiple of ``align`` (at least ``align``)."""
    return tuple(max(align, int(side * ratio) // align * align) for side in image_hw)  # type: ignore[return-value]


def apply_crop(tensor: Tensor, *, box: CropBox, flip: bool) -> Tensor:
    """Crop the last two dims of ``tensor`` (..., H, W) to ``box``, then flip horizontally if ``flip``.

    Use it for the images (B, 3, H, W) and for any per-pixel map (pseudo-labels (B, H, W)) alike.
    """
    h, w = tensor.shape[-2:]
    if box.top < 0 or box.left < 0 or box.top + box.height > h or box.left + box.width > w:
        raise ValueError(f"apply_crop: {box} does not fit in a {h}x{w} tensor")
    crop = tensor[..., box.top:box.top + box.height, box.left:box.left + box.width]
    return crop.flip(-1) if flip else crop


def overlap_correspondence(pair: CropPair, *, stride: int, feat_hw: tuple[int, int],
                           device: torch.device | str | None = None) -> Correspondence:
    """For each cell of crop 1's (h, w) feature grid, the cell of crop 2's grid at the same image place.

    ``stride`` is the number of image pixels per feature cell; both crops must be ``feat_hw * stride``
    pixels and their corners multiples of ``stride``, else the mapping would be off by a fraction of
    a cell (PiPa defect 2 sliced the overlap with the wrong stride) and this raises ``ValueError``.
    """
    fh, fw = feat_hw
    for name, box in (("box1", pair.box1), ("box2", pair.box2)):
        if (box.height, box.width) != (fh * stride, fw * stride):
            raise ValueError(f"overlap_correspondence: {name} is {box.height}x{box.width} px but feat_hw {feat_hw} "
                             f"x stride {stride} = {fh * stride}x{fw * stride}")
        if box.top % stride or box.left % stride:
            raise ValueError(f"overlap_correspondence: {name} corner ({box.top}, {box.left}) is not a multiple of "
                             f"stride {stride}; sample crops with align=stride")
    rows = torch.arange(fh, device=device)[:, None].expand(fh, fw)
    cols = torch.arange(fw, device=device)[None, :].expand(fh, fw)
    # Crop 1 cell -> image cell (units of stride): undo crop 1's flip, add its corner.
    image_row = rows + pair.box1.top // stride
    image_col = _unflip(cols, fw, pair.flip1) + pair.box1.left // stride
    # Image cell -> crop 2 cell: subtract crop 2's corner, apply crop 2's flip.
    rows2 = image_row - pair.box2.top // stride
    cols2_unflipped = image_col - pair.box2.left // stride
    valid = (rows2 >= 0) & (rows2 < fh) & (cols2_unflipped >= 0) & (cols2_unflipped < fw)
    cols2 = _unflip(cols2_unflipped, fw, pair.flip2)
    idx2 = torch.where(valid, rows2 * fw + cols2, torch.zeros_like(rows2))
    idx1 = torch.arange(fh * fw, device=device)
    return Correspondence(idx1=idx1, idx2=idx2.reshape(-1), valid=valid.reshape(-1))


def _unflip(cols: Tensor, width: int, flip: bool) -> Tensor:
    """Column in the flipped grid <-> column in the unflipped grid (the map is its own inverse)."""
    return width - 1 - cols if flip else cols


def _check_crop(caller: str, image_hw: tuple[int, int], crop_hw: tuple[int, int], align: int) -> None:
    (img_h, img_w), (crop_h, crop_w) = image_hw, crop_hw
    if not (0 < crop_h <= img_h and 0 < crop_w <= img_w):
        raise ValueError(f"{caller}: crop_hw {crop_hw} must fit in image_hw {image_hw}")
    if align <= 0 or crop_h % align or crop_w % align:
        raise ValueError(f"{caller}: crop_hw {crop_hw} must be a multiple of align={align}")


def _random_box(img_h: int, img_w: int, crop_h: int, crop_w: int, align: int,
                generator: torch.Generator | None) -> CropBox:
    top = int(torch.randint((img_h - crop_h) // align + 1, (1,), generator=generator)) * align
    left = int(torch.randint((img_w - crop_w) // align + 1, (1,), generator=generator)) * align
    return CropBox(top=top, left=left, height=crop_h, width=crop_w)
