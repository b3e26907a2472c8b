"""Normalisation layers by name (config keys ``model.decode_head.norm``, ``model.projection.norm``) and
the normalisation parameters that DAFormer trains without weight decay.

- ``batch``: ``nn.BatchNorm2d`` (DAFormer, SegFormer, PiPa: the default everywhere);
- ``syncbatch``: ``nn.SyncBatchNorm``, batch statistics over every rank of a torchrun run. PyTorch
  synchronises it on CUDA only: under a multi-process CPU (gloo) run its forward raises, which
  ``engine.build`` turns into a config error before training; in one process it equals ``batch``;
- ``group``: ``nn.GroupNorm`` with ``min(32, C)`` groups dividing C (no batch statistics: batch-size
  independent, nothing for the EMA teacher to average).
"""
from __future__ import annotations

import math
from enum import Enum

from torch import nn

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
MAX_GROUPS = 32


class NormKind(str, Enum):
    BATCH = "batch"
    SYNCBATCH = "syncbatch"
    GROUP = "group"


NORM_KINDS: tuple[str, ...] = tuple(k.value for k in NormKind)


def norm_layer(kind: NormKind | str, channels: int) -> nn.Module:
    """A 2-D normalisation layer over ``channels`` (B, C, H, W) maps; ``ValueError`` for an unknown kind."""
    try:
        kind = NormKind(kind)
    except ValueError:
        raise ValueError(f"unknown norm {kind!r}; expected one of {list(NORM_KINDS)}") from None
    if kind is NormKind.BATCH:
        return nn.BatchNorm2d(channels)
    if kind is NormKind.SYNCBATCH:
        return nn.SyncBatchNorm(channels)
    return nn.GroupNorm(math.gcd(MAX_GROUPS, channels), channels)


def norm_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters of the normalisation layers inside ``module`` (BatchNorm, SyncBatchNorm, GroupNorm,
    LayerNorm), in module order: what DAFormer's ``custom_keys norm=dict(decay_mult=0.0)`` exempts."""
    return [p for m in module.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)]
