"""Backbones through timm's feature API: SegFormer's Mix Transformer (MiT-B0..B5, timm's PVTv2 class),
ResNet-101, and any timm model with feature extraction, named ``timm:<model name>`` in a config.

Every backbone maps an image batch (B, 3, H, W) to a list of four feature maps at strides 4, 8, 16,
32 and describes them in ``feature_info`` (one dict per map: ``num_chs``, ``reduction``, ``module``).
The maps come from timm's ``forward_intermediates`` (``features_only`` for models without it); only
the checkpoint key remap (``filter_checkpoint``) is ours. A hierarchical model (MiT, ResNet, ConvNeXt,
Swin, ...) gives its last map of each stride; a plain ViT (one stride-16 or stride-14 map, DINOv2
included) goes through a ``SimpleFeaturePyramid`` (ViTDet, Li et al. 2022). Weights never come from a
hub: ``pretrained`` is a local file, loaded strictly by
:func:`pipa_video.models.checkpoint.load_backbone_weights`.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import timm
import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from timm.models.pvt_v2 import PyramidVisionTransformerV2
from torch import Tensor, nn

from pipa_video.models.checkpoint import load_backbone_weights, mit_checkpoint_filter_fn

# MiT differs from timm's pvt_v2_b0..b4 in the MLP ratio: 4 in every stage (PVTv2 uses 8, 8, 4, 4).
MIT_MLP_RATIO = 4.0
# Blocks and stage-end norms use eps 1e-6 (the official ``partial(nn.LayerNorm, eps=1e-6)``); the
# patch-embedding and spatial-reduction norms keep the default 1e-5, as in the official code and timm.
MIT_NORM_EPS = 1e-6
PYRAMID_STRIDES = (4, 8, 16, 32)  # what every backbone returns, what the heads and the contrasts expect
TIMM_PREFIX = "timm:"  # model.backbone.type = "timm:<name>": any timm model with feature extraction
BODY_PREFIX = "body."  # where a wrapped timm model's parameters live


@dataclass(frozen=True)
class MiTArch:
    """The numbers that define one Mix Transformer variant (SegFormer, Table 6)."""

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)


_WIDE = (64, 128, 320, 512)
MIT_ARCHS: dict[str, MiTArch] = {
    "mit_b0": MiTArch(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    "mit_b1": MiTArch(embed_dims=_WIDE, depths=(2, 2, 2, 2)),
    "mit_b2": MiTArch(embed_dims=_WIDE, depths=(3, 4, 6, 3)),
    "mit_b3": MiTArch(embed_dims=_WIDE, depths=(3, 4, 18, 3)),
    "mit_b4": MiTArch(embed_dims=_WIDE, depths=(3, 8, 27, 3)),
    "mit_b5": MiTArch(embed_dims=_WIDE, depths=(3, 6, 40, 3)),
    # Not a published variant: a MiT-shaped toy (same blocks, strides and layout, 0.42M parameters)
    # for the CPU demo and the tests. Heads (1, 2, 4, 8) keep the head width at 16 channels.
    "mit_demo": MiTArch(embed_dims=(16, 32, 64, 128), depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8)),
}


def _feature_dicts(info: Any) -> list[dict]:
    """timm's ``feature_info`` (a list of dicts, or a ``FeatureInfo``) as ``num_chs / reduction / module`` dicts."""
    dicts = info.get_dicts() if hasattr(info, "get_dicts") else list(info)
    return [{k: d[k] for k in ("num_chs", "reduction", "module")} for d in dicts]


class MixVisionTransformer(PyramidVisionTransformerV2):
    """SegFormer's MiT encoder as timm's ``PyramidVisionTransformerV2`` (no classifier).

    PVTv2 with ``linear=False`` is the MiT architecture; only the MLP ratio and norm eps differ from
    timm's registered pvt_v2 variants, so the parameter names are timm's and timm-layout checkpoints
    load directly; official SegFormer and mmsegmentation layouts are remapped by
    :func:`pipa_video.models.checkpoint.mit_checkpoint_filter_fn`. ``forward`` is timm's
    ``forward_intermediates``: the four stage outputs (after each stage's norm).
    """

    def __init__(self, *, arch: MiTArch, drop_path_rate: float = 0.0, in_chans: int = 3,
                 device: torch.device | str | None = None) -> None:
        # A default-device context rather than timm's ``device=`` argument, which older timm lacks.
        with torch.device(device) if device is not None else contextlib.nullcontext():
            super().__init__(
                in_chans=in_chans, num_classes=0, global_pool="", depths=arch.depths, embed_dims=arch.embed_dims,
                num_heads=arch.num_heads, sr_ratios=arch.sr_ratios, mlp_ratios=(MIT_MLP_RATIO,) * len(arch.depths),
                qkv_bias=True, linear=False, drop_path_rate=drop_path_rate,
                norm_layer=partial(nn.LayerNorm, eps=MIT_NORM_EPS))
        self.arch = arch
        self.feature_info = _feature_dicts(self.feature_info)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Four maps (B, C_i, H/s, W/s), s = 4, 8, 16, 32, each channels-last in memory.

        timm's stage forward ends with ``permute(0, 3, 1, 2).contiguous()``: a copy of every stage
        output to NCHW, which the next stage's patch embedding and the heads' per-pixel linear
        layers then copy back. Here the stage runs as in timm but returns the permuted view (a
        channels-last tensor, no copy); the next patch-embedding conv takes it as it is. Values are
        timm's (tests compare against the official MiT).
        """
        x = self.patch_embed(x)  # (B, H, W, C)
        features = []
        for stage in self.stages:
            if stage.downsample is not None:
                x = stage.downsample(x)  # (B, C, H, W) in, (B, H, W, C) out
            batch, height, width, channels = x.shape
            x = x.reshape(batch, -1, channels)
            for block in stage.blocks:
                x = block(x, (height, width))
            x = stage.norm(x).reshape(batch, height, width, channels).permute(0, 3, 1, 2)
            features.append(x)
        return features

    @staticmethod
    def filter_checkpoint(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return mit_checkpoint_filter_fn(state_dict)


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's simple feature pyramid (Li et al., 2022, "Exploring Plain Vision Transformer Backbones"):
    one map of a plain ViT -> maps at strides 4, 8, 16, 32 with ``out_channels`` each.

    The map is first resized to stride 16 of the input (a no-op for patch-16 ViTs; DINOv2's patch 14
    gives stride 14), then: stride 4 = two 2x2 stride-2 deconvolutions (LayerNorm and GELU between),
    8 = one, 16 = identity, 32 = 2x2 max-pooling; each followed by a 1x1 and a 3x3 conv with LayerNorm.
    """

    def __init__(self, in_channels: int, *, out_channels: int = 256) -> None:
        super().__init__()
        half, quarter = max(1, in_channels // 2), max(1, in_channels // 4)
        samplers = [
            nn.Sequential(nn.ConvTranspose2d(in_channels, half, 2, stride=2), LayerNorm2d(half), nn.GELU(),
                          nn.ConvTranspose2d(half, quarter, 2, stride=2)),
            nn.ConvTranspose2d(in_channels, half, 2, stride=2),
            nn.Identity(),
            nn.MaxPool2d(2, stride=2),
        ]
        widths = (quarter, half, in_channels, in_channels)
        self.samplers = nn.ModuleList(samplers)
        self.outputs = nn.ModuleList([nn.Sequential(
            nn.Conv2d(width, out_channels, 1, bias=False), LayerNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), LayerNorm2d(out_channels))
            for width in widths])
        self.out_channels = out_channels

    def forward(self, feature: Tensor, image_hw: Sequence[int]) -> list[Tensor]:
        """(B, C, h, w) of an (H, W) image -> four (B, out_channels, H/s, W/s) maps, s = 4, 8, 16, 32."""
        size16 = (math.ceil(image_hw[0] / 16), math.ceil(image_hw[1] / 16))
        if tuple(feature.shape[-2:]) != size16:
            feature = F.interpolate(feature, size=size16, mode="bilinear", align_corners=False)
        return [out(sample(feature)) for sample, out in zip(self.samplers, self.outputs)]


def _stride_indices(infos: Sequence[dict]) -> list[int] | None:
    """The last feature index of each stride 4, 8, 16, 32, or None when the model lacks one."""
    last = {info["reduction"]: i for i, info in enumerate(infos)}
    return [last[s] for s in PYRAMID_STRIDES] if all(s in last for s in PYRAMID_STRIDES) else None


class TimmBackbone(nn.Module):
    """A timm model (``body``) as a four-map backbone: its ``forward_intermediates`` at the strides 4..32,
    or, for a plain ViT (one stride), its last block through a ``SimpleFeaturePyramid``.

    ``kwargs`` go to ``timm.create_model`` (e.g. ``dynamic_img_size=True`` so a ViT takes any crop
    size, ``img_size``, ``depth``). Raises ``ValueError`` naming the model when its features cannot
    make the four strides. Checkpoints load after ``filter_checkpoint`` (timm or torchvision keys,
    classifier and pruned layers dropped).
    """

    NEW_LAYERS = ("pyramid.",)  # not in ImageNet weights: initialised fresh, as ViTDet's

    def __init__(self, name: str, *, drop_path_rate: float = 0.0, pyramid_channels: int = 256,
                 **kwargs: Any) -> None:
        super().__init__()
        body = timm.create_model(name, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate, **kwargs)
        if not hasattr(body, "forward_intermediates"):
            body = timm.create_model(name, pretrained=False, features_only=True, drop_path_rate=drop_path_rate,
                                     **kwargs)
        infos = _feature_dicts(body.feature_info)
        indices = _stride_indices(infos)
        plain = indices is None
        self.indices = self._plain_vit_index(name, infos) if plain else indices
        full_keys = set(body.state_dict())
        if hasattr(body, "prune_intermediate_layers"):
            body.prune_intermediate_layers(self.indices, prune_norm=True, prune_head=True)
        self.body = body
        self._pruned = {BODY_PREFIX + k for k in full_keys - set(body.state_dict())}
        self.pyramid = SimpleFeaturePyramid(infos[self.indices[0]]["num_chs"], out_channels=pyramid_channels) \
            if plain else None
        self.classifier = (body.pretrained_cfg or {}).get("classifier") if hasattr(body, "pretrained_cfg") else None
        self.feature_info = self._info(infos, pyramid_channels)

    @staticmethod
    def _plain_vit_index(name: str, infos: Sequence[dict]) -> list[int]:
        strides = sorted({info["reduction"] for info in infos})
        if len(strides) != 1 or not 8 <= strides[0] <= 16:
            raise ValueError(f"timm model {name!r} has feature strides {strides}; expected 4, 8, 16 and 32 (a "
                             f"hierarchical model) or one stride from 8 to 16 (a plain ViT)")
        return [len(infos) - 1]

    def _info(self, infos: Sequence[dict], pyramid_channels: int) -> list[dict]:
        if self.pyramid is None:
            return [infos[i] for i in self.indices]
        return [dict(num_chs=pyramid_channels, reduction=s, module=f"pyramid.outputs.{k}")
                for k, s in enumerate(PYRAMID_STRIDES)]

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> four (B, C_i, H/s, W/s) maps, s = 4, 8, 16, 32."""
        if hasattr(self.body, "forward_intermediates"):
            feats = self.body.forward_intermediates(x, indices=self.indices, intermediates_only=True)
        else:
            feats = self.body(x)  # features_only: already the requested maps
        return list(feats) if self.pyramid is None else self.pyramid(feats[-1], x.shape[-2:])

    def filter_checkpoint(self, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """timm/torchvision keys (``conv1.weight``, ``blocks.0...``) -> ``body.*``; the classifier and the
        layers pruned here (a ViT's final norm) left out."""
        out = {}
        for key, value in state_dict.items():
            key = key if key.startswith(BODY_PREFIX) else BODY_PREFIX + key
            bare = key[len(BODY_PREFIX):]
            if self.classifier and (bare == self.classifier or bare.startswith(f"{self.classifier}.")):
                continue
            if key not in self._pruned:
                out[key] = value
        return out


def mit_state_shapes(name: str) -> dict[str, torch.Size]:
    """Parameter/buffer shapes of a MiT variant, from a model on the meta device (no memory, fast)."""
    if name not in MIT_ARCHS:
        raise ValueError(f"unknown MiT variant {name!r}; expected one of {list(MIT_ARCHS)}")
    model = MixVisionTransformer(arch=MIT_ARCHS[name], device="meta")
    return {key: value.shape for key, value in model.state_dict().items()}


def _build_mit(name: str, *, drop_path_rate: float, **kwargs: Any) -> nn.Module:
    if kwargs:
        raise ValueError(f"model.backbone.kwargs {sorted(kwargs)} apply to timm backbones only (resnet101, "
                         f"timm:<name>); {name} is defined by its MiT variant")
    return MixVisionTransformer(arch=MIT_ARCHS[name], drop_path_rate=drop_path_rate)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    **{name: partial(_build_mit, name) for name in MIT_ARCHS},
    "resnet101": partial(TimmBackbone, "resnet101"),
}
BACKBONE_NAMES: tuple[str, ...] = tuple(_BUILDERS) + (TIMM_PREFIX + "<name>",)


def build_backbone(name: str, *, pretrained: str | None, drop_path_rate: float,
                   kwargs: Mapping[str, Any] | None = None, pyramid_channels: int = 256) -> nn.Module:
    """Build a backbone by name (``mit_b0``..``mit_b5``, ``mit_demo``, ``resnet101``, ``timm:<name>`` with
    ``kwargs`` for ``timm.create_model``); ``pretrained`` is a local checkpoint path (None: random init)."""
    if name.startswith(TIMM_PREFIX):
        model = TimmBackbone(name[len(TIMM_PREFIX):], drop_path_rate=drop_path_rate,
                             pyramid_channels=pyramid_channels, **dict(kwargs or {}))
    elif name in _BUILDERS:
        model = _BUILDERS[name](drop_path_rate=drop_path_rate, **dict(kwargs or {}))
    else:
        raise ValueError(f"unknown backbone {name!r}; expected one of {list(BACKBONE_NAMES)}")
    if pretrained is not None:
        load_backbone_weights(model, pretrained)
    return model
