"""Patch-wise contrast: one image location seen in two crops (different context, augmentation, flip).

Usage in a training step::

    pair = sample_crop_pair(image_hw=(H, W), crop_hw=crop_size((H, W), ratio=0.75, align=4),
                            iou_range=(0.1, 1.0), flip_prob=0.5, align=4)
    x1 = strong_aug(apply_crop(images, box=pair.box1, flip=pair.flip1))
    x2 = strong_aug(apply_crop(images, box=pair.box2, flip=pair.flip2))
    feat1 = patch_head(student(x1).features)   # BOTH crops through the STUDENT, with gradients:
    feat2 = patch_head(student(x2).features)   # PiPa defect 1 used the EMA teacher and trained nothing
    corr = overlap_correspondence(pair, stride=4, feat_hw=feat1.shape[-2:])
    loss = loss_fn(feat1=feat1, feat2=feat2,
                   pseudo1=apply_crop(pseudo, box=pair.box1, flip=pair.flip1),
                   pseudo2=apply_crop(pseudo, box=pair.box2, flip=pair.flip2), correspondence=corr)

Anchors are ``num_anchors`` overlap cells (any image of the batch) with a pseudo-label in both crops.
Each cell's positive is the same image cell in the other crop; its negatives are the other sampled
cells of either crop and any image whose pseudo-label differs from its own (same-label cells are left
out of the denominator rather than pushed away: no false negatives). The loss is symmetric: crop-2
cells are anchors too, against crop 1.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pipa_video.data.classes import IGNORE_INDEX
from pipa_video.uda.contrast.crops import Correspondence
from pipa_video.uda.contrast.infonce import supervised_infonce
from pipa_video.uda.contrast.sampling import (AnchorSample, downsample_labels, gather_embeddings,
                                              gather_positions, sample_uniform)


class PatchContrastLoss(nn.Module):
    """Symmetric InfoNCE between corresponding cells of two crops, negatives filtered by pseudo-label."""

    def __init__(self, *, tau: float, num_anchors: int, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.tau = tau
        self.num_anchors = num_anchors
        self.ignore_index = ignore_index

    def extra_repr(self) -> str:
        return f"tau={self.tau}, num_anchors={self.num_anchors}, ignore_index={self.ignore_index}"

    def candidate_positions(self, *, batch_size: int, pseudo1: Tensor, pseudo2: Tensor,
                            correspondence: Correspondence) -> tuple[Tensor, Tensor, Tensor]:
        """Flat (B*h*w,) positions in crop 1 and crop 2 of every (image, overlap cell) and their validity.

        Candidate u = b * h*w + j stands for cell j of crop 1 in image b. ``pseudo*`` are (B, h, w).
        """
        cells = correspondence.idx1.shape[0]
        offset = torch.arange(batch_size, device=pseudo1.device)[:, None] * cells
        pos1 = (offset + correspondence.idx1[None, :]).reshape(-1)
        pos2 = (offset + correspondence.idx2[None, :]).reshape(-1)
        valid = (correspondence.valid[None, :].expand(batch_size, cells).reshape(-1)
                 & (gather_positions(pseudo1, pos1) != self.ignore_index)
                 & (gather_positions(pseudo2, pos2) != self.ignore_index))
        return pos1, pos2, valid

    def select_anchors(self, *, valid: Tensor, generator: torch.Generator | None = None) -> AnchorSample:
        return sample_uniform(valid=valid, num=self.num_anchors, generator=generator)

    def forward(self, *, feat1: Tensor, feat2: Tensor, pseudo1: Tensor, pseudo2: Tensor,
                correspondence: Correspondence, generator: torch.Generator | None = None) -> Tensor:
        """Scalar loss. ``feat1``/``feat2``: student projections (B, D, h, w) of crop 1 / crop 2;
        ``pseudo1``/``pseudo2``: their pseudo-labels, (B, h, w) or full crop size (nearest-downsampled)."""
        if feat1.ndim != 4 or feat1.shape != feat2.shape:
            raise ValueError(f"PatchContrastLoss: feat1 and feat2 must both be (B, D, h, w), "
                             f"got {tuple(feat1.shape)} and {tuple(feat2.shape)}")
        b, _, h, w = feat1.shape
        if correspondence.idx1.shape != (h * w,):
            raise ValueError(f"PatchContrastLoss: correspondence covers {correspondence.idx1.shape[0]} cells, "
                             f"the feature grid has {h}x{w}; compute it with feat_hw=({h}, {w})")
        pseudo1 = self._labels_on_grid("pseudo1", pseudo1, b, (h, w))
        pseudo2 = self._labels_on_grid("pseudo2", pseudo2, b, (h, w))
        pos1, pos2, candidate_valid = self.candidate_positions(batch_size=b, pseudo1=pseudo1, pseudo2=pseudo2,
                                                               correspondence=correspondence)
        sample = self.select_anchors(valid=candidate_valid, generator=generator)
        at1, at2 = pos1[sample.index], pos2[sample.index]
        # Both crops' cells are anchors and keys: [crop-1 cells; crop-2 cells], partners S apart.
        embeddings = torch.cat([gather_embeddings(feat1, at1), gather_embeddings(feat2, at2)])
        labels = torch.cat([gather_positions(pseudo1, at1), gather_positions(pseudo2, at2)])
        valid = torch.cat([sample.valid, sample.valid])
        s = sample.index.shape[0]
        slots = torch.arange(2 * s, device=feat1.device)
        partner = (slots + s) % (2 * s)
        return supervised_infonce(
            anchors=embeddings, keys=embeddings,
            positive_mask=slots[None, :] == partner[:, None],
            negative_mask=labels[:, None] != labels[None, :],
            tau=self.tau, anchor_valid=valid, key_valid=valid, anchor_key_index=slots,
        )

    @staticmethod
    def _labels_on_grid(name: str, labels: Tensor, batch_size: int, grid: tuple[int, int]) -> Tensor:
        if labels.ndim != 3 or labels.shape[0] != batch_size:
            raise ValueError(f"PatchContrastLoss: {name} must be (B={batch_size}, h, w), got {tuple(labels.shape)}")
        return downsample_labels(labels, grid)
