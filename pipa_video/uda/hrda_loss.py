"""Segmentation cross-entropy of a plain or an HRDA output: one call for the source, mixed and MIC losses.

The step's cross-entropy is :func:`cross_entropy` (mmseg 0.x's averaging by default, the source
loss's mode from ``uda.source_ce_average``); every loss passes it as ``ce=``.

For HRDA the loss is ``(1 - w_d) * CE(fused) + w_d * CE(detail)`` with ``w_d = 0.1``: the fused logits
against the whole label, the detail logits against the label (and weight) cut to the detail crop.
The fused term is scaled by ``1 - w_d`` as in HRDA (``HRDAHead.losses``: ``loss_seg *= 1 - lr_loss_weight
- hr_loss_weight``, with ``lr_loss_weight=0``), not kept at 1.

Source: lhoyer/HRDA ``mmseg/models/decode_heads/hrda_head.py`` (``losses``),
``configs/hrda/gtaHR2csHR_hrda.py`` (``hr_loss_weight=0.1``).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

import torch.nn.functional as F
from torch import Tensor

from pipa_video.data.classes import IGNORE_INDEX
from pipa_video.models.hrda import HRDAOutput
from pipa_video.models.segmentor import SegOutput

DETAIL_LOSS_WEIGHT = 0.1  # HRDA hr_loss_weight (lambda_d in the paper)

CrossEntropy = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


class CEAverage(str, Enum):
    ALL_PIXELS = "all_pixels"  # mmseg 0.x: mean over every pixel, ignored ones contributing 0
    LABELLED_PIXELS = "labelled_pixels"  # mean over the labelled pixels (torch's default)


def cross_entropy(logits: Tensor, label: Tensor, weight: Tensor | None = None, *,
                  average: CEAverage = CEAverage.ALL_PIXELS) -> Tensor:
    """The step's cross-entropy: logits (B, C, h, w) upsampled (bilinear) to the label (B, H, W); ignore 255.

    ``ALL_PIXELS`` (DAFormer, HRDA, MIC through mmseg 0.x): the mean of ``CE * weight`` over every
    pixel, ignored ones counting 0 (never divided by the weight sum). ``LABELLED_PIXELS``: divided by
    the number of labelled pixels. Computed in float32 whatever the logits' precision (bf16 forwards).
    """
    logits = F.interpolate(logits.float(), size=label.shape[-2:], mode="bilinear", align_corners=False)
    pixel = F.cross_entropy(logits, label, ignore_index=IGNORE_INDEX, reduction="none")
    if weight is not None:
        pixel = pixel * weight
    if CEAverage(average) is CEAverage.LABELLED_PIXELS:
        return pixel.sum() / (label != IGNORE_INDEX).sum().clamp_min(1)
    return pixel.mean()


def step_cross_entropy(average: CEAverage | str = CEAverage.ALL_PIXELS) -> CrossEntropy:
    """:func:`cross_entropy` with ``average`` fixed, in the ``ce=`` form of :func:`segmentation_loss`."""
    mode = CEAverage(average)
    return lambda logits, label, weight=None: cross_entropy(logits, label, weight, average=mode)


def weighted_ce(logits: Tensor, label: Tensor, weight: Tensor | None = None) -> Tensor:
    """Cross-entropy of logits (B, C, h, w) bilinearly upsampled to the label's (B, H, W); ignore 255.

    Without ``weight``: the mean over non-ignored pixels. With a per-pixel ``weight`` (B, H, W): the
    mean of ``CE * weight`` over ALL pixels (DAFormer normalises by the pixel count, not the weight
    sum). The default ``ce`` of :func:`segmentation_loss` for callers outside the step; the step passes
    :func:`step_cross_entropy` (mmseg's rule: the unweighted loss too is divided by all pixels).
    """
    logits = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=False)
    if weight is None:
        return F.cross_entropy(logits, label, ignore_index=IGNORE_INDEX)
    return (F.cross_entropy(logits, label, ignore_index=IGNORE_INDEX, reduction="none") * weight).mean()


@dataclass
class SegLoss:
    """Terms of a segmentation loss: each unweighted for logging, and the weighted ``total`` to backpropagate."""

    main: Tensor  # CE of the (fused) logits over the whole input
    total: Tensor  # main, or (1 - w_d) * main + w_d * detail for HRDA
    detail: Tensor | None = None  # HRDA: CE of the detail logits over the detail crop

    def named(self, name: str) -> dict[str, Tensor]:
        """Log entries: ``loss_{name}`` and, for HRDA, ``loss_{name}_detail``."""
        terms = {f"loss_{name}": self.main}
        if self.detail is not None:
            terms[f"loss_{name}_detail"] = self.detail
        return terms


def segmentation_loss(out: SegOutput | HRDAOutput, label: Tensor, weight: Tensor | None = None, *,
                      detail_weight: float = DETAIL_LOSS_WEIGHT, ce: CrossEntropy = weighted_ce) -> SegLoss:
    """The segmentation loss of ``out`` against ``label`` (B, H, W) (and ``weight`` (B, H, W)) at input size.

    A plain :class:`SegOutput` gives ``ce(logits, label, weight)``. An :class:`HRDAOutput` adds the
    detail term on the label and weight cut to its detail box (``out.detail.grid.crop``), and
    weights the two by ``1 - detail_weight`` and ``detail_weight``. ``ce`` is the step's cross-entropy
    (default :func:`weighted_ce`). Raises ``ValueError`` for a detail weight outside [0, 1).
    """
    main = ce(out.logits, label, weight)
    if not isinstance(out, HRDAOutput):
        return SegLoss(main=main, total=main)
    if not 0 <= detail_weight < 1:
        raise ValueError(f"HRDA detail loss weight must lie in [0, 1), got {detail_weight}")
    crop = out.detail.grid.crop
    detail = ce(out.detail.output.logits, crop(label), None if weight is None else crop(weight))
    return SegLoss(main=main, detail=detail, total=(1 - detail_weight) * main + detail_weight * detail)
