"""The student network: the segmentor plus the training-only projection heads.

They live in one module so that DistributedDataParallel averages the heads' gradients too, and so
that the EMA teacher (a copy of this module) has the same heads for the memory bank and the
temporal reference features. Inference uses ``segmentor`` alone.
"""
from __future__ import annotations

from enum import Enum
from typing import Mapping, Sequence

from torch import Tensor, nn

from pipa_video.models.norm import norm_parameters
from pipa_video.models.projection import ProjectionHead
from pipa_video.models.segmentor import SegOutput, Segmentor


class Head(str, Enum):
    PIXEL = "pixel"
    PATCH = "patch"
    TEMPORAL = "temporal"


class StudentNet(nn.Module):
    def __init__(self, *, segmentor: Segmentor, proj_dims: Mapping[Head, int], norm: str = "batch") -> None:
        super().__init__()
        self.segmentor = segmentor
        self.heads = nn.ModuleDict({
            Head(name).value: ProjectionHead(in_channels=segmentor.feature_channels, proj_dim=dim, norm=norm)
            for name, dim in proj_dims.items()
        })

    def forward(self, img: Tensor, *, project: Sequence[Head] = (), return_features: bool = False,
                return_backbone: bool = False) -> tuple[SegOutput, dict[Head, Tensor]]:
        """Segmentor output and the projections of its fused feature by each head in ``project``.

        ``return_features`` keeps the fused feature in the output without projecting it, for a
        caller that projects only part of the batch (``project_features``).
        """
        need_features = bool(project) or return_features or return_backbone
        out = self.segmentor(img, return_features=need_features)
        return out, {Head(h): self.project_features(out.features, head=h) for h in project}

    def project_features(self, features: Tensor, *, head: Head) -> Tensor:
        """``features`` (B, channels, h, w) through one projection head: (B, proj_dim, h, w), unit length."""
        return self.heads[Head(head).value](features)

    def no_decay_parameters(self) -> list[nn.Parameter]:
        """The backbone's normalisation parameters: DAFormer trains them without weight decay."""
        return norm_parameters(self.segmentor.backbone)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = self.segmentor.param_groups()
        groups["head"] = list(groups["head"]) + list(self.heads.parameters())
        return groups
