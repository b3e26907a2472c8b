"""Projection heads for the PiPa++ contrastive losses (training only; inference never uses them).

A head maps the segmentor's fused decoder feature (``SegOutput.features``, (B, channels, H/4, W/4))
to unit-length embeddings, (B, proj_dim, H/4, W/4): 1x1 conv -> norm (BN by default) -> ReLU -> 1x1 conv, then L2
normalisation along channels, as in PiPa and in pixel-contrast segmentation (Wang et al., 2021).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from pipa_video.models.norm import NormKind, norm_layer


class ProjectionHead(nn.Module):
    """1x1 conv -> BN -> ReLU -> 1x1 conv -> ``proj_dim`` channels, L2-normalised along channels."""

    def __init__(self, *, in_channels: int, proj_dim: int = 256, hidden_channels: int | None = None,
                 norm: str = NormKind.BATCH.value) -> None:
        super().__init__()
        if in_channels <= 0 or proj_dim <= 0:
            raise ValueError(f"ProjectionHead: in_channels and proj_dim must be positive, "
                             f"got {in_channels}, {proj_dim}")
        hidden = in_channels if hidden_channels is None else hidden_channels
        self.in_channels = in_channels
        self.proj_dim = proj_dim
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False),  # BN follows: a bias is redundant
            norm_layer(norm, hidden),  # models.norm: batch (PiPa), syncbatch or group
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, proj_dim, kernel_size=1),
        )

    def forward(self, features: Tensor) -> Tensor:
        if features.ndim != 4 or features.shape[1] != self.in_channels:
            raise ValueError(f"ProjectionHead: expected features of shape (B, {self.in_channels}, h, w), "
                             f"got {tuple(features.shape)}")
        return F.normalize(self.proj(features), dim=1)
