"""Decode heads: DAFormer's context-aware fusion (``daformer_sepaspp``) and SegFormer's all-MLP head.

Both take the backbone's four maps (strides 4..32) and return ``(logits, fused)``: the class logits
at stride 4 and the fused stride-4 feature they were classified from, which the contrastive losses
project. Module names follow DAFormer/mmseg (``embed_layers``, ``fuse_layer``, ``conv_seg``).
"""
from __future__ import annotations

from enum import Enum
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipa_video.models.norm import NormKind, norm_layer

DAFORMER_DILATIONS = (1, 6, 12, 18)
CLASSIFIER_INIT_STD = 0.01  # mmseg's BaseDecodeHead initialises conv_seg with N(0, 0.01)


class HeadName(str, Enum):
    DAFORMER = "daformer"
    SEGFORMER = "segformer"


class ConvBNReLU(nn.Module):
    """Conv (no bias) -> norm -> ReLU: mmcv's ``ConvModule`` with a norm (``batch``: BN, as DAFormer) and ReLU.

    ``norm`` is ``models.norm``'s name (``batch``, ``syncbatch``, ``group``); the layer keeps the name
    ``bn`` whatever it is, so checkpoints of the default keep their keys.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, padding: int = 0,
                 dilation: int = 1, groups: int = 1, norm: str = NormKind.BATCH.value) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation,
                              groups=groups, bias=False)
        self.bn = norm_layer(norm, out_channels)
        self.activate = nn.ReLU(inplace=True)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConvBNReLU(nn.Module):
    """Dilated depthwise 3x3 conv-BN-ReLU then pointwise 1x1 conv-BN-ReLU (mmcv's module of that name)."""

    def __init__(self, in_channels: int, out_channels: int, *, dilation: int, norm: str = NormKind.BATCH.value) -> None:
        super().__init__()
        self.depthwise_conv = ConvBNReLU(in_channels, in_channels, 3, padding=dilation, dilation=dilation,
                                         groups=in_channels, norm=norm)
        self.pointwise_conv = ConvBNReLU(in_channels, out_channels, 1, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class MLPEmbed(nn.Module):
    """A per-pixel linear map (B, C_in, H, W) -> (B, C_out, H, W), as SegFormer's ``MLP``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ASPPFusion(nn.Module):
    """DAFormer's fusion: parallel (depthwise-separable) dilated convs, concat, 3x3 bottleneck.

    Dilation 1 is a 1x1 conv; the others are 3x3 convs with that dilation (depthwise separable when
    ``separable``). Every conv is followed by BN and ReLU. No image-pooling branch (``pool=False``).
    """

    def __init__(self, in_channels: int, channels: int, *, dilations: Sequence[int] = DAFORMER_DILATIONS,
                 separable: bool = True, norm: str = NormKind.BATCH.value) -> None:
        super().__init__()
        self.aspp_modules = nn.ModuleList(
            [self._branch(in_channels, channels, dilation=d, separable=separable, norm=norm) for d in dilations])
        self.bottleneck = ConvBNReLU(len(dilations) * channels, channels, 3, padding=1, norm=norm)

    @staticmethod
    def _branch(in_channels: int, channels: int, *, dilation: int, separable: bool, norm: str) -> nn.Module:
        if dilation == 1:
            return ConvBNReLU(in_channels, channels, 1, norm=norm)
        if separable:
            return DepthwiseSeparableConvBNReLU(in_channels, channels, dilation=dilation, norm=norm)
        return ConvBNReLU(in_channels, channels, 3, padding=dilation, dilation=dilation, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.bottleneck(torch.cat([branch(x) for branch in self.aspp_modules], dim=1))


class _DecodeHead(nn.Module):
    """Shared tail: dropout and the 1x1 classifier; ``channels`` is the fused feature's width."""

    def __init__(self, *, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.channels = channels
        self.num_classes = num_classes
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.conv_seg.weight, std=CLASSIFIER_INIT_STD)
        nn.init.zeros_(self.conv_seg.bias)

    def classify(self, fused: Tensor) -> Tensor:
        return self.conv_seg(self.dropout(fused))

    @staticmethod
    def _embed_all(embeds: nn.ModuleList, features: Sequence[Tensor]) -> list[Tensor]:
        """Embed each level and resize it to the first (stride-4) level's grid."""
        if len(features) != len(embeds):
            raise ValueError(f"expected {len(embeds)} feature maps, got {len(features)}")
        size = features[0].shape[-2:]
        out = []
        for embed, feature in zip(embeds, features):
            x = embed(feature)
            if x.shape[-2:] != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            out.append(x)
        return out


class DAFormerHead(_DecodeHead):
    """DAFormer's decoder (``daformer_sepaspp``): MLP embeddings, upsample to 1/4, ASPP-style fusion."""

    def __init__(self, *, in_channels: Sequence[int], num_classes: int, channels: int = 256,
                 embed_dim: int | None = None, dilations: Sequence[int] = DAFORMER_DILATIONS,
                 separable: bool = True, dropout: float = 0.1, norm: str = NormKind.BATCH.value) -> None:
        super().__init__(channels=channels, num_classes=num_classes, dropout=dropout)
        embed_dim = channels if embed_dim is None else embed_dim  # DAFormer: both 256
        self.embed_layers = nn.ModuleList([MLPEmbed(c, embed_dim) for c in in_channels])
        self.fuse_layer = ASPPFusion(embed_dim * len(in_channels), channels, dilations=dilations,
                                     separable=separable, norm=norm)

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        fused = self.fuse_layer(torch.cat(self._embed_all(self.embed_layers, features), dim=1))
        return self.classify(fused), fused


class SegFormerHead(_DecodeHead):
    """SegFormer's all-MLP decoder: MLP embeddings, upsample to 1/4, concat, 1x1 conv-BN-ReLU fuse."""

    def __init__(self, *, in_channels: Sequence[int], num_classes: int, channels: int = 256,
                 dropout: float = 0.1, norm: str = NormKind.BATCH.value) -> None:
        super().__init__(channels=channels, num_classes=num_classes, dropout=dropout)
        self.embed_layers = nn.ModuleList([MLPEmbed(c, channels) for c in in_channels])
        self.fuse_layer = ConvBNReLU(channels * len(in_channels), channels, 1, norm=norm)

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        embedded = self._embed_all(self.embed_layers, features)
        # SegFormer concatenates the coarsest level first (c4, c3, c2, c1).
        fused = self.fuse_layer(torch.cat(embedded[::-1], dim=1))
        return self.classify(fused), fused


_HEADS = {HeadName.DAFORMER: DAFormerHead, HeadName.SEGFORMER: SegFormerHead}
HEAD_NAMES: tuple[str, ...] = tuple(h.value for h in HeadName)


def build_decode_head(name: str, *, in_channels: Sequence[int], num_classes: int, channels: int,
                      dropout: float, norm: str = NormKind.BATCH.value) -> _DecodeHead:
    """A decode head by name; ``norm`` is every conv's normalisation (``models.norm``: batch, syncbatch, group)."""
    if name not in HEAD_NAMES:
        raise ValueError(f"unknown decode head {name!r}; expected one of {list(HEAD_NAMES)}")
    return _HEADS[HeadName(name)](in_channels=in_channels, num_classes=num_classes, channels=channels,
                                  dropout=dropout, norm=norm)
