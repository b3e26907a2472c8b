"""Toy backbone and head whose receptive field is one stride-4 cell (HRDA geometry tests)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipa_video.models.backbones import MIT_ARCHS, MixVisionTransformer
from pipa_video.models.heads import DAFormerHead
from pipa_video.models.hrda import HRDASegmentor, HRDASettings


class CellBackbone(nn.Module):
    """Four maps at strides 4, 8, 16, 32; the stride-4 map is a 1x1 conv of each 4x4 cell's mean colour."""

    def __init__(self, channels: int = 4, *, identity: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, channels, 1)
        if identity:  # features = the cell's mean colour (needs channels == 3)
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
                self.proj.bias.zero_()
        self.feature_info = [dict(num_chs=channels, reduction=4 * 2 ** i, module=f"level{i}") for i in range(4)]

    def forward(self, x):
        f = self.proj(F.avg_pool2d(x, 4))
        return [f] + [F.avg_pool2d(f, 2 ** i, ceil_mode=True) for i in (1, 2, 3)]


class PointHead(nn.Module):
    """Decode head on the stride-4 map alone with 1x1 convs: each logit cell sees only its own cell."""

    def __init__(self, *, in_channels, num_classes: int, channels: int = 4, identity: bool = False) -> None:
        super().__init__()
        self.channels, self.num_classes = channels, num_classes
        self.fuse = nn.Conv2d(in_channels[0], channels, 1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        if identity:
            with torch.no_grad():
                self.fuse.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
                self.fuse.bias.zero_()

    def forward(self, features):
        fused = self.fuse(features[0])
        return self.conv_seg(fused), fused


def cell_hrda(num_classes: int = 5, *, seed: int = 0, identity: bool = False, **settings) -> HRDASegmentor:
    torch.manual_seed(seed)
    channels = 3 if identity else 4
    backbone = CellBackbone(channels, identity=identity)
    head = PointHead(in_channels=[channels] * 4, num_classes=num_classes, channels=channels, identity=identity)
    settings = {"detail_crop": (32, 32), "attention_channels": 8, "test_window": (64, 64), "test_stride": (32, 32),
                **settings}
    return HRDASegmentor(backbone=backbone, decode_head=head, num_classes=num_classes,
                         settings=HRDASettings(**settings))


def mit_hrda(num_classes: int = 5, *, seed: int = 0, head_cls=DAFormerHead, **settings) -> HRDASegmentor:
    torch.manual_seed(seed)
    backbone = MixVisionTransformer(arch=MIT_ARCHS["mit_demo"])
    head = head_cls(in_channels=[f["num_chs"] for f in backbone.feature_info], num_classes=num_classes, channels=16)
    settings = {"detail_crop": (32, 32), "attention_channels": 16, "test_window": (64, 64), "test_stride": (32, 32),
                **settings}
    return HRDASegmentor(backbone=backbone, decode_head=head, num_classes=num_classes,
                         settings=HRDASettings(**settings))
