"""Segmentor: backbone + decode head; image -> stride-4 logits and the features the losses need."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class SegOutput:
    logits: Tensor  # (B, C, H/4, W/4)
    features: Tensor | None = None  # decoder fused feature before the classifier (B, channels, H/4, W/4)
    backbone_features: list[Tensor] | None = None  # the backbone's four stage maps (strides 4..32)


class Segmentor(nn.Module):
    """Encoder-decoder segmentation network (the student ``g + h_cls`` of the method)."""

    PARAM_GROUPS = ("backbone", "head")

    def __init__(self, *, backbone: nn.Module, decode_head: nn.Module, num_classes: int) -> None:
        super().__init__()
        head_classes = getattr(decode_head, "num_classes", num_classes)
        if head_classes != num_classes:
            raise ValueError(f"decode head predicts {head_classes} classes, segmentor expects {num_classes}")
        self.backbone = backbone
        self.decode_head = decode_head
        self.num_classes = num_classes

    @property
    def feature_channels(self) -> int:
        """Channels of ``SegOutput.features``."""
        return self.decode_head.channels

    def forward(self, img: Tensor, *, return_features: bool = False) -> SegOutput:
        backbone_features = self.backbone(img)
        logits, fused = self.decode_head(backbone_features)
        if not return_features:
            return SegOutput(logits=logits)
        return SegOutput(logits=logits, features=fused, backbone_features=list(backbone_features))

    def inference(self, img: Tensor) -> Tensor:
        """Logits bilinearly upsampled to the input's (H, W); only backbone and classifier head run."""
        logits = self.forward(img).logits
        return F.interpolate(logits, size=img.shape[-2:], mode="bilinear", align_corners=False)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters split for the optimiser: ``backbone`` (base lr) and ``head`` (lr x head_lr_mult)."""
        return {"backbone": list(self.backbone.parameters()), "head": list(self.decode_head.parameters())}
