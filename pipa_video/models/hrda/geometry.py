"""HRDA crop geometry: boxes in input pixels, the detail-crop sampler and feature grids.

Every box is in pixels of the segmentor's INPUT (the full-resolution context crop that the data
pipeline delivers, e.g. 1024x1024), whatever scale a branch runs at. A feature grid states which
box of the input a feature or logit map covers and how many input pixels one cell spans, so that
labels, pseudo-labels and weights are always cut from the same crop at the same stride as the
features (PiPa's public HRDA code cut labels from the full image for features of a crop:
method.md, defect 2).

Source: Hoyer et al., "HRDA: Context-Aware High-Resolution Domain-Adaptive Semantic
Segmentation", ECCV 2022; lhoyer/HRDA ``mmseg/models/segmentors/hrda_encoder_decoder.py``
(``get_crop_bbox``, ``crop``, ``extract_slide_feat``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class Box:
    """Rows [top, top + height) and columns [left, left + width) of a 2-D map."""

    top: int
    left: int
    height: int
    width: int

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def right(self) -> int:
        return self.left + self.width

    @classmethod
    def whole(cls, size: Sequence[int]) -> "Box":
        """The box covering a whole (H, W) map."""
        return cls(top=0, left=0, height=int(size[0]), width=int(size[1]))

    def contains(self, other: "Box") -> bool:
        return (self.top <= other.top and self.left <= other.left and other.bottom <= self.bottom
                and other.right <= self.right)

    def crop(self, tensor: Tensor) -> Tensor:
        """The (..., height, width) slice of a (..., H, W) tensor; ValueError if the box leaves it."""
        h, w = tensor.shape[-2:]
        if self.top < 0 or self.left < 0 or self.bottom > h or self.right > w:
            raise ValueError(f"{self} does not fit in a {h}x{w} map")
        return tensor[..., self.top:self.bottom, self.left:self.right]

    def scaled_down(self, factor: int) -> "Box":
        """The same region in units of ``factor`` pixels (e.g. feature cells of stride ``factor``).

        Raises ``ValueError`` unless every coordinate is a multiple of ``factor``: a fractional cell
        would misalign features and labels.
        """
        if factor <= 0 or any(v % factor for v in (self.top, self.left, self.height, self.width)):
            raise ValueError(f"{self} is not aligned to {factor} px; HRDA needs crop coordinates divisible "
                             f"by {factor} (model.hrda crop_divisible)")
        return Box(top=self.top // factor, left=self.left // factor, height=self.height // factor,
                   width=self.width // factor)


@dataclass(frozen=True)
class FeatureGrid:
    """Where a feature or logit map lies in the input: ``region`` (input pixels), ``stride`` px per cell.

    Cell (i, j) of the map covers input pixels [region.top + i*stride, ... + stride) x
    [region.left + j*stride, ... + stride). The map's spatial size is ``shape``.
    """

    region: Box
    stride: int

    @property
    def shape(self) -> tuple[int, int]:
        cells = self.region.scaled_down(self.stride)
        return cells.height, cells.width

    def crop(self, pixel_map: Tensor) -> Tensor:
        """A per-pixel map over the whole input (..., H, W) cut to ``region`` (still per pixel).

        Use it for the targets of a loss on logits upsampled to the region (the detail loss).
        """
        return self.region.crop(pixel_map)

    def sample(self, pixel_map: Tensor) -> Tensor:
        """A per-pixel map over the whole input (..., H, W) -> (..., *shape): one value per cell.

        Each cell takes the value of its top-left pixel, the same pixel a nearest downsampling of
        the whole map (``F.interpolate(mode='nearest')``) takes, so contrast labels of a crop equal
        the whole image's labels at the same cells. Works for labels, pseudo-labels and weights.
        """
        self.region.scaled_down(self.stride)  # raises when the region is not aligned to the cells
        return self.region.crop(pixel_map)[..., ::self.stride, ::self.stride]

    def cells_of(self, box: Box) -> Box:
        """``box`` (input pixels, inside ``region``) as cells of this grid, e.g. to slice its features."""
        if not self.region.contains(box):
            raise ValueError(f"{box} is not inside the grid's region {self.region}")
        shifted = Box(top=box.top - self.region.top, left=box.left - self.region.left, height=box.height,
                      width=box.width)
        return shifted.scaled_down(self.stride)


def required_divisor(*, feature_stride: int, context_scale: float) -> int:
    """Input pixels per context logit cell, ``feature_stride / context_scale`` (4 / 0.5 = 8 for HRDA).

    Detail-crop coordinates must be multiples of it so the crop maps onto whole context cells (the
    attention mask) and whole detail cells (the insertion). HRDA's config sets
    ``crop_coord_divisible=8`` for this reason ("output stride = 4, downscale factor = 2").
    Raises ``ValueError`` when the ratio is not an integer.
    """
    ratio = feature_stride / context_scale
    if ratio != round(ratio):
        raise ValueError(f"feature stride {feature_stride} / context scale {context_scale} = {ratio} is not "
                         f"an integer; choose a context scale such as 0.5 or 0.25")
    return int(round(ratio))


def sample_detail_box(image_hw: Sequence[int], crop_hw: Sequence[int], *, divisible: int,
                      generator: torch.Generator | None = None) -> Box:
    """A random detail crop of ``crop_hw`` inside an ``image_hw`` input, corners multiples of ``divisible``.

    Units: input pixels. Draws from ``generator`` (default: torch's global CPU generator, which
    checkpoints restore, so resumed runs crop as uninterrupted ones). Sample ONE box per clip batch
    and pass it to every frame's forward to give all frames of a clip the same crops.

    Offsets are uniform over {0, d, 2d, ..., floor(margin / d) * d}. HRDA's ``get_crop_bbox`` draws
    ``randint(0, (margin + 1) // d) * d``, which never reaches the last aligned offset when
    ``margin`` is a multiple of ``d`` (e.g. 512 for a 512 crop of 1024: its largest offset is 504);
    here the crop can touch the bottom and right border. Raises ``ValueError`` when the crop does not
    fit or is not a multiple of ``divisible``.
    """
    (img_h, img_w), (crop_h, crop_w) = (int(v) for v in image_hw), (int(v) for v in crop_hw)
    if not (0 < crop_h <= img_h and 0 < crop_w <= img_w):
        raise ValueError(f"detail crop {crop_h}x{crop_w} must fit in the {img_h}x{img_w} input; "
                         f"lower model.hrda detail_crop or enlarge the training crop")
    if divisible <= 0 or crop_h % divisible or crop_w % divisible:
        raise ValueError(f"detail crop {crop_h}x{crop_w} must be a multiple of crop_divisible={divisible}")
    top = int(torch.randint((img_h - crop_h) // divisible + 1, (1,), generator=generator)) * divisible
    left = int(torch.randint((img_w - crop_w) // divisible + 1, (1,), generator=generator)) * divisible
    return Box(top=top, left=left, height=crop_h, width=crop_w)


def window_grid(size: Sequence[int], *, window: Sequence[int], stride: Sequence[int]) -> list[Box]:
    """Sliding windows over an (H, W) map, mmseg's grid (HRDA's ``extract_slide_feat``, ``slide_inference``).

    A regular grid of ``window`` boxes ``stride`` apart, the last row/column shifted back to end at
    the border; a window larger than the map is clipped to it, so all windows share one size.
    Raises ``ValueError`` for non-positive window or stride.
    """
    (h, w), (wh, ww), (sh, sw) = size, window, stride
    if min(wh, ww, sh, sw) <= 0:
        raise ValueError(f"slide window {tuple(window)} and stride {tuple(stride)} must be positive")
    rows = max(h - wh + sh - 1, 0) // sh + 1
    cols = max(w - ww + sw - 1, 0) // sw + 1
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + wh, h), min(c * sw + ww, w)
            y1, x1 = max(y2 - wh, 0), max(x2 - ww, 0)
            boxes.append(Box(top=y1, left=x1, height=y2 - y1, width=x2 - x1))
    return boxes
