"""Decode heads: DAFormer's context-aware fusion (``daformer_sepaspp``) and SegFormer's all-MLP head.

Both take the backbone's four maps (strides 4..32) and return ``(logits, fused)``: the class logits
at stride 4 and the fused stride-4 feature they were classified from, which the contrastive losses
project. Module names follow DAFormer/mmseg (``embed_layers``, ``fuse_layer``, ``conv_seg``).

Memory layout (``channels_last``, default on): on CUDA the heads work on channels-last tensors
(NHWC in memory, still indexed (B, C, H, W)), the layout of cuDNN's bf16 tensor-core kernels, and run
every 1x1 conv on such a tensor as the matmul it is (``F.linear`` over the NHWC view: no layout
copies). On the CPU the DAFormer head keeps NCHW: oneDNN runs its dilated depthwise and dense 3x3
convs 2-5x slower on NHWC (measured, ``CHANNELS_LAST_DEVICES``). The SegFormer head has no spatial
conv and stays NHWC everywhere. Outputs equal the NCHW path's up to float rounding (tests compare).
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


# Device types on which ``channels_last`` heads use NHWC for their spatial convs. Not the CPU: there
# oneDNN (1 thread, AMD EPYC) took 5.5x longer for a dilated 1024-channel depthwise 3x3 conv and 1.7x
# for the 1024->256 3x3 bottleneck on NHWC than on NCHW (forward + backward), and the DAFormer head's
# step 2x longer. Tests add "cpu" to check the NHWC path.
CHANNELS_LAST_DEVICES = ("cuda",)


def is_pointwise(conv: nn.Conv2d) -> bool:
    """A 1x1, stride-1, ungrouped, unpadded conv: a per-pixel linear map over the channels."""
    return (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
            and conv.padding in ((0, 0), "valid"))


def is_nhwc(x: Tensor) -> bool:
    """Whether the (B, H, W, C) view of ``x`` is contiguous, i.e. ``x`` is channels-last in memory."""
    return x.permute(0, 2, 3, 1).is_contiguous()


def pointwise_conv(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(x)`` for a pointwise ``conv`` as one matmul over the NHWC view; the result is channels-last.

    On a channels-last ``x`` the view is contiguous and nothing is copied (on CUDA this is the GEMM
    cuDNN runs for an NHWC 1x1 conv; on the CPU with one thread it also avoids PyTorch's slow im2col
    path for 1x1 convs).
    """
    weight = conv.weight.reshape(conv.out_channels, conv.in_channels)
    return F.linear(x.permute(0, 2, 3, 1), weight, conv.bias).permute(0, 3, 1, 2)


def apply_conv(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(x)``; a pointwise conv on a channels-last ``x`` as a matmul (no layout change)."""
    return pointwise_conv(x, conv) if is_pointwise(conv) and is_nhwc(x) else conv(x)


def to_layout(x: Tensor, nhwc: bool) -> Tensor:
    """``x`` channels-last (``nhwc``) or NCHW-contiguous; no copy when it already is."""
    return x.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)


class ConvBNReLU(nn.Module):
    """Conv (no bias) -> norm -> ReLU: mmcv's ``ConvModule`` with a norm (``batch``: BN, as DAFormer) and ReLU.

    ``norm`` is ``models.norm``'s name (``batch``, ``syncbatch``, ``group``); the layer keeps the name
    ``bn`` whatever it is, so checkpoints of the default keep their keys. Works in the layout it is
    given (a 1x1 conv on a channels-last input runs as a matmul).
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
        return self.activate(self.bn(apply_conv(x, self.conv)))


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
    """A per-pixel linear map (B, C_in, H, W) -> (B, C_out, H, W), as SegFormer's ``MLP``.

    The result is channels-last in memory (the matmul runs on the NHWC view; on a channels-last input,
    as the MiT backbone returns, the view is contiguous and nothing is copied).
    """

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

    def __init__(self, *, channels: int, num_classes: int, dropout: float, channels_last: bool = True) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.channels = channels
        self.num_classes = num_classes
        self.channels_last = channels_last
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.conv_seg.weight, std=CLASSIFIER_INIT_STD)
        nn.init.zeros_(self.conv_seg.bias)

    def nhwc(self, x: Tensor) -> bool:
        """Whether this head works channels-last on ``x``'s device."""
        return self.channels_last

    def classify(self, fused: Tensor) -> Tensor:
        return apply_conv(self.dropout(fused), self.conv_seg)

    def _embed_all(self, embeds: nn.ModuleList, features: Sequence[Tensor]) -> list[Tensor]:
        """Embed each level and resize it to the first (stride-4) level's grid, in the head's layout."""
        _check_levels(features, len(embeds))
        size = features[0].shape[-2:]
        nhwc = self.nhwc(features[0])
        out = []
        for embed, feature in zip(embeds, features):
            x = embed(feature)
            if x.shape[-2:] != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            out.append(to_layout(x, nhwc))
        return out


def _check_levels(features: Sequence[Tensor], expected: int) -> None:
    if len(features) != expected:
        raise ValueError(f"expected {expected} feature maps, got {len(features)}")


class DAFormerHead(_DecodeHead):
    """DAFormer's decoder (``daformer_sepaspp``): MLP embeddings, upsample to 1/4, ASPP-style fusion."""

    def __init__(self, *, in_channels: Sequence[int], num_classes: int, channels: int = 256,
                 embed_dim: int | None = None, dilations: Sequence[int] = DAFORMER_DILATIONS,
                 separable: bool = True, dropout: float = 0.1, channels_last: bool = True,
                 norm: str = NormKind.BATCH.value) -> None:
        super().__init__(channels=channels, num_classes=num_classes, dropout=dropout, channels_last=channels_last)
        embed_dim = channels if embed_dim is None else embed_dim  # DAFormer: both 256
        self.embed_layers = nn.ModuleList([MLPEmbed(c, embed_dim) for c in in_channels])
        self.fuse_layer = ASPPFusion(embed_dim * len(in_channels), channels, dilations=dilations,
                                     separable=separable, norm=norm)

    def nhwc(self, x: Tensor) -> bool:
        return self.channels_last and x.device.type in CHANNELS_LAST_DEVICES

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        fused = self.fuse_layer(torch.cat(self._embed_all(self.embed_layers, features), dim=1))
        return self.classify(fused), fused


class SegFormerHead(_DecodeHead):
    """SegFormer's all-MLP decoder: MLP embeddings, upsample to 1/4, concat, 1x1 conv-BN-ReLU fuse.

    ``fold_fuse`` (default) computes the same function without building the concatenation: the
    embedding (linear), the bilinear upsampling (a per-pixel convex combination) and the 1x1 fuse conv
    (linear) commute, so ``fuse(cat_i up(E_i x_i + b_i)) = sum_i up(W_i E_i x_i + W_i b_i)`` with
    ``W_i`` the fuse conv's block for level i. Each level is mapped straight to the fused width at its
    own resolution and only the sum is formed at stride 4: the 4C -> C conv over the stride-4 grid,
    most of the head's FLOPs, is gone. The parameters (and checkpoints) are SegFormer's, unchanged;
    outputs equal the concatenating form up to float rounding (tests compare the two).
    """

    def __init__(self, *, in_channels: Sequence[int], num_classes: int, channels: int = 256,
                 dropout: float = 0.1, channels_last: bool = True, fold_fuse: bool = True,
                 norm: str = NormKind.BATCH.value) -> None:
        super().__init__(channels=channels, num_classes=num_classes, dropout=dropout, channels_last=channels_last)
        self.embed_layers = nn.ModuleList([MLPEmbed(c, channels) for c in in_channels])
        self.fuse_layer = ConvBNReLU(channels * len(in_channels), channels, 1, norm=norm)
        self.fold_fuse = fold_fuse

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        if self.fold_fuse:
            fused = self._folded_fuse(features)
        else:
            # SegFormer concatenates the coarsest level first (c4, c3, c2, c1).
            fused = self.fuse_layer(torch.cat(self._embed_all(self.embed_layers, features)[::-1], dim=1))
        return self.classify(fused), fused

    def _folded_fuse(self, features: Sequence[Tensor]) -> Tensor:
        _check_levels(features, len(self.embed_layers))
        size = features[0].shape[-2:]
        # The fuse conv's input blocks are the levels coarsest first: block j belongs to level L-1-j.
        blocks = self.fuse_layer.conv.weight.flatten(1).split(self.channels, dim=1)[::-1]
        total = None
        for embed, block, feature in zip(self.embed_layers, blocks, features):
            weight, bias = block @ embed.proj.weight, block @ embed.proj.bias
            x = F.linear(feature.permute(0, 2, 3, 1), weight, bias).permute(0, 3, 1, 2)
            if x.shape[-2:] != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            total = x if total is None else total + x
        return self.fuse_layer.activate(self.fuse_layer.bn(to_layout(total, self.nhwc(total))))


_HEADS = {HeadName.DAFORMER: DAFormerHead, HeadName.SEGFORMER: SegFormerHead}
HEAD_NAMES: tuple[str, ...] = tuple(h.value for h in HeadName)


def build_decode_head(name: str, *, in_channels: Sequence[int], num_classes: int, channels: int,
                      dropout: float, channels_last: bool = True, norm: str = NormKind.BATCH.value) -> _DecodeHead:
    """A decode head by name; ``norm`` is every conv's normalisation (``models.norm``: batch, syncbatch, group)."""
    if name not in HEAD_NAMES:
        raise ValueError(f"unknown decode head {name!r}; expected one of {list(HEAD_NAMES)}")
    return _HEADS[HeadName(name)](in_channels=in_channels, num_classes=num_classes, channels=channels,
                                  dropout=dropout, channels_last=channels_last, norm=norm)
