"""GPU-efficiency switches read from ``runtime``: TF32 matmuls/convolutions and ``torch.compile``.

The other efficient defaults live where their objects are built: fused AdamW in ``engine.optim``,
channels-last decode heads in ``models.heads``, pinned memory and prefetching in ``data.build``.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from pipa_video.models.segmentor import Segmentor


def configure_backends(runtime: Mapping[str, Any]) -> None:
    """TF32 for float32 matmuls and cuDNN convolutions when ``runtime.tf32`` (the default), else full FP32.

    Affects CUDA only (TF32 is an Ampere+ tensor-core format: 10-bit mantissa, float32 range). Under
    bf16 autocast most matmuls are bf16 anyway; TF32 covers what autocast keeps in float32 and runs
    without autocast (``runtime.amp=False``, evaluation). Process-wide: it sets the torch.backends flags.
    """
    enabled = bool(runtime["tf32"])
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def compile_segmentors(module: nn.Module, **compile_kwargs: Any) -> int:
    """``torch.compile`` every :class:`Segmentor` inside ``module`` (student, EMA teacher) in place.

    ``nn.Module.compile`` keeps the module tree, so parameter names, checkpoints, the EMA update and
    DDP wrapping are unchanged; only ``forward`` runs through the compiled graph (``inference`` stays
    eager). Returns the number of segmentors compiled.
    """
    count = 0
    for sub in module.modules():
        if isinstance(sub, Segmentor):
            sub.compile(**compile_kwargs)
            count += 1
    return count
