"""ImageNet feature distance (DAFormer): keeps thing-class features close to the ImageNet ones."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipa_video.data.classes import IGNORE_INDEX


def downscale_label_ratio(label: Tensor, *, size: tuple[int, int], min_ratio: float,
                          num_classes: int, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """(B, h, w) label of each feature cell: its majority class if it covers ``min_ratio``, else ignore."""
    valid = label != ignore_index
    onehot = F.one_hot(label.masked_fill(~valid, num_classes), num_classes + 1)
    onehot = onehot[..., :num_classes].permute(0, 3, 1, 2).float()
    share = F.adaptive_avg_pool2d(onehot, size)
    best, cls = share.max(dim=1)
    return cls.masked_fill(best < min_ratio, ignore_index)


class FeatureDistanceLoss(nn.Module):
    """Mean L2 distance between student and frozen ImageNet features on thing-class cells."""

    def __init__(self, *, class_ids: Sequence[int], num_classes: int, scale_min_ratio: float) -> None:
        super().__init__()
        self.register_buffer("class_ids", torch.as_tensor(list(class_ids), dtype=torch.long), persistent=False)
        self.num_classes = num_classes
        self.scale_min_ratio = scale_min_ratio

    def forward(self, *, student_feat: Tensor, imagenet_feat: Tensor, label: Tensor) -> Tensor:
        cell_label = downscale_label_ratio(label, size=student_feat.shape[-2:], min_ratio=self.scale_min_ratio,
                                           num_classes=self.num_classes)
        mask = torch.isin(cell_label, self.class_ids).to(student_feat.dtype)
        dist = torch.linalg.vector_norm(student_feat - imagenet_feat.detach(), dim=1)
        return (dist * mask).sum() / mask.sum().clamp_min(1.0)
