"""HRDA's learned scale attention and the fusion of context and detail predictions.

Source: lhoyer/HRDA ``mmseg/models/decode_heads/hrda_head.py`` (``HRDAHead.__init__``: the attention
head is the single-scale head's type with ``channels = embed_dims = attention_embed_dim = 256`` and
its ASPP fusion replaced by a 1x1 conv-BN-ReLU; ``HRDAHead.forward``: the fusion) and
``configs/hrda/gtaHR2csHR_hrda.py`` (``attention_classwise=True``).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pipa_video.models.hrda.geometry import Box
from pipa_video.models.heads import ConvBNReLU, MLPEmbed, _DecodeHead

ATTENTION_CHANNELS = 256  # HRDAHead(attention_embed_dim=256), used for embed_dims and channels
ATTENTION_DROPOUT = 0.1  # inherited from the decode head config's dropout_ratio=0.1


class ScaleAttentionHead(_DecodeHead):
    """Scale attention scores from the context branch's four backbone maps (strides 4..32).

    DAFormer's decoder with a 1x1 conv-BN-ReLU fusion instead of ASPP (HRDA builds it from the
    ``DAFormerHead`` config that way): per-level MLP embeddings to ``channels``, upsampled to the
    first level, concatenated in level order, fused, dropout, 1x1 classifier. Returns raw scores
    (B, out_channels, h4, w4) where ``out_channels`` is ``num_classes`` (class-wise attention, as HRDA's
    configs) or 1; the segmentor applies the sigmoid. Module names follow the decode heads
    (``embed_layers``, ``fuse_layer``, ``conv_seg``).
    """

    def __init__(self, *, in_channels: Sequence[int], num_classes: int, classwise: bool = True,
                 channels: int = ATTENTION_CHANNELS, dropout: float = ATTENTION_DROPOUT) -> None:
        super().__init__(channels=channels, num_classes=num_classes if classwise else 1, dropout=dropout)
        self.embed_layers = torch.nn.ModuleList([MLPEmbed(c, channels) for c in in_channels])
        self.fuse_layer = ConvBNReLU(channels * len(in_channels), channels, 1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return self.classify(self.fuse_layer(torch.cat(self._embed_all(self.embed_layers, features), dim=1)))


def box_mask(like: Tensor, box_cells: Box) -> Tensor:
    """(B, 1, h, w) float mask of ``like`` (B, *, h, w): 1 inside ``box_cells`` (in cells of ``like``), else 0."""
    b, _, h, w = like.shape
    ones = like.new_ones((b, 1, box_cells.height, box_cells.width))
    return F.pad(ones, (box_cells.left, w - box_cells.right, box_cells.top, h - box_cells.bottom))


def fuse_scales(*, context_logits: Tensor, detail_logits: Tensor, attention: Tensor, ratio: int,
                detail_cells: Box | None, context_cells: Box | None) -> tuple[Tensor, Tensor]:
    """HRDA's fusion: ``up((1 - a) * context) + up(a) * detail``, with ``a`` masked to the detail crop.

    - ``context_logits`` (B, C, h, w) and ``attention`` (B, C or 1, h, w) in [0, 1]: the whole input on
      the context grid. ``ratio``: detail cells per context cell along a side (1 / context scale: 2).
    - ``detail_logits``: (B, C, ratio*h, ratio*w) covering the whole input (inference: detail slide),
      with both box arguments None; or, in training, (B, C, bh, bw) covering ``detail_cells`` (the
      detail crop in cells of the fused grid), and ``context_cells`` the same crop in context cells.

    The attention is zeroed outside the crop on the context grid, then both the attention-weighted
    context logits and the attention are bilinearly upsampled by ``ratio`` to the fused grid, and the
    detail logits are inserted at the crop, zero elsewhere. Returns (fused (B, C, ratio*h, ratio*w),
    masked attention (B, C or 1, h, w)). With the attention forced to 0 the result is the upsampled
    context prediction; forced to 1 with no crop, the detail prediction. Raises ``ValueError`` when
    the shapes or boxes do not fit the fused grid.
    """
    if (detail_cells is None) != (context_cells is None):
        raise ValueError("fuse_scales: give both detail_cells and context_cells (training) or neither (inference)")
    if context_cells is not None:
        attention = attention * box_mask(attention, context_cells)
    h, w = context_logits.shape[-2:]
    size = (ratio * h, ratio * w)
    up_context = F.interpolate((1 - attention) * context_logits, size=size, mode="bilinear", align_corners=False)
    up_attention = F.interpolate(attention, size=size, mode="bilinear", align_corners=False)
    if detail_cells is not None:
        if not Box.whole(size).contains(detail_cells):
            raise ValueError(f"fuse_scales: detail crop {detail_cells} (cells) leaves the fused "
                             f"{size[0]}x{size[1]} grid")
        detail_logits = F.pad(detail_logits, (detail_cells.left, size[1] - detail_cells.right,
                                              detail_cells.top, size[0] - detail_cells.bottom))
    if tuple(detail_logits.shape[-2:]) != size:
        raise ValueError(f"fuse_scales: detail logits {tuple(detail_logits.shape)} do not cover the fused "
                         f"{size[0]}x{size[1]} grid")
    return up_attention * detail_logits + up_context, attention
