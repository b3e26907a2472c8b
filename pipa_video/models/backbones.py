"""Backbones: SegFormer's Mix Transformer (MiT-B0..B5, via timm's PVTv2) and ResNet-101 (timm).

Every backbone maps an image batch (B, 3, H, W) to a list of four feature maps at strides
4, 8, 16, 32 and describes them in ``feature_info`` (one dict per map: ``num_chs``, ``reduction``,
``module``). Weights never come from a hub: ``pretrained`` is a local file, loaded strictly by
:func:`pipa_video.models.checkpoint.load_backbone_weights`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial
from typing import Callable, Mapping

import timm
import torch
from timm.models.pvt_v2 import PyramidVisionTransformerV2
from torch import Tensor, nn

from pipa_video.models.checkpoint import load_backbone_weights, mit_checkpoint_filter_fn

# MiT differs from timm's pvt_v2_b0..b4 in the MLP ratio: 4 in every stage (PVTv2 uses 8, 8, 4, 4).
MIT_MLP_RATIO = 4.0
# Blocks and stage-end norms use eps 1e-6 (the official ``partial(nn.LayerNorm, eps=1e-6)``); the
# patch-embedding and spatial-reduction norms keep the default 1e-5, as in the official code and timm.
MIT_NORM_EPS = 1e-6
RESNET_OUT_INDICES = (1, 2, 3, 4)  # layer1..layer4: strides 4, 8, 16, 32


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


class MixVisionTransformer(PyramidVisionTransformerV2):
    """SegFormer's MiT encoder as timm's ``PyramidVisionTransformerV2`` (no classifier).

    PVTv2 with ``linear=False`` is the MiT architecture; only the MLP ratio and norm eps differ from
    timm's registered pvt_v2 variants, so the parameter names are timm's and timm-layout checkpoints
    load directly; official SegFormer and mmsegmentation layouts are remapped by
    :func:`pipa_video.models.checkpoint.mit_checkpoint_filter_fn`.
    """

    def __init__(self, *, arch: MiTArch, drop_path_rate: float = 0.0, in_chans: int = 3,
                 device: torch.device | str | None = None) -> None:
        # A default-device context rather than timm's ``device=`` argument, which older timm lacks.
        with torch.device(device) if device is not None else contextlib.nullcontext():
            super().__init__(
                in_chans=in_chans,
                num_classes=0,
                global_pool="",
                depths=arch.depths,
                embed_dims=arch.embed_dims,
                num_heads=arch.num_heads,
                sr_ratios=arch.sr_ratios,
                mlp_ratios=(MIT_MLP_RATIO,) * len(arch.depths),
                qkv_bias=True,
                linear=False,
                drop_path_rate=drop_path_rate,
                norm_layer=partial(nn.LayerNorm, eps=MIT_NORM_EPS),
            )
        self.arch = arch

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


class ResNetBackbone(nn.Module):
    """A timm ResNet (``features_only``) returning layer1..layer4 (strides 4..32)."""

    CLASSIFIER_PREFIX = "fc."  # ImageNet classifier in timm/torchvision checkpoints: not loaded

    def __init__(self, *, timm_name: str = "resnet101", drop_path_rate: float = 0.0) -> None:
        super().__init__()
        # pretrained=False always: weights come from a local file via load_backbone_weights.
        self.body = timm.create_model(timm_name, pretrained=False, features_only=True,
                                      out_indices=RESNET_OUT_INDICES, drop_path_rate=drop_path_rate)
        self.feature_info = [{k: d[k] for k in ("num_chs", "reduction", "module")}
                             for d in self.body.feature_info.get_dicts()]

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.body(x))

    @classmethod
    def filter_checkpoint(cls, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """timm/torchvision ResNet keys (``conv1.weight``, ``layer1.0...``) -> ``body.*``."""
        out = {}
        for key, value in state_dict.items():
            if key.startswith(cls.CLASSIFIER_PREFIX):
                continue
            out[key if key.startswith("body.") else f"body.{key}"] = value
        return out


def mit_state_shapes(name: str) -> dict[str, torch.Size]:
    """Parameter/buffer shapes of a MiT variant, from a model on the meta device (no memory, fast)."""
    if name not in MIT_ARCHS:
        raise ValueError(f"unknown MiT variant {name!r}; expected one of {list(MIT_ARCHS)}")
    model = MixVisionTransformer(arch=MIT_ARCHS[name], device="meta")
    return {key: value.shape for key, value in model.state_dict().items()}


def _build_mit(name: str, *, drop_path_rate: float) -> nn.Module:
    return MixVisionTransformer(arch=MIT_ARCHS[name], drop_path_rate=drop_path_rate)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    **{name: partial(_build_mit, name) for name in MIT_ARCHS},
    "resnet101": partial(ResNetBackbone, timm_name="resnet101"),
}
BACKBONE_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_backbone(name: str, *, pretrained: str | None, drop_path_rate: float) -> nn.Module:
    """Build a backbone by name; ``pretrained`` is a local checkpoint path (or None: random init)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; expected one of {list(BACKBONE_NAMES)}")
    model = _BUILDERS[name](drop_path_rate=drop_path_rate)
    if pretrained is not None:
        load_backbone_weights(model, pretrained)
    return model
