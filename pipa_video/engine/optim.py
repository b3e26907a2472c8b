"""The AdamW optimiser with DAFormer's parameter groups (head learning rate x10).

Each optimiser group records its name and learning-rate multiplier (``name``, ``lr_mult``); the
trainer sets ``lr = schedule[iteration] * lr_mult`` for every group at every iteration.

Weight decay: by default it applies to every parameter, biases and norm layers included. Note that
DAFormer's released configs (``paramwise_cfg.custom_keys`` with ``norm=dict(decay_mult=0.0)``,
matched by mmcv as a substring of the parameter name, ``head`` matched first) exempt the backbone's
norm layers from decay while still decaying biases; pass ``no_decay=norm_parameters(backbone)`` to
reproduce that exactly.

On CUDA the update runs as PyTorch's fused AdamW kernel (one launch for all parameters instead of a
few per parameter tensor); elsewhere the default (foreach) implementation. Both compute the same update.
"""
from __future__ import annotations

from enum import Enum
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.optim import AdamW

from pipa_video.models.norm import norm_parameters  # noqa: F401  (re-exported: the no-decay parameters)

NO_DECAY_SUFFIX = "/no_decay"



class ParamGroup(str, Enum):
    """Names of the optimiser's parameter groups (what ``student.param_groups()`` returns)."""

    BACKBONE = "backbone"
    HEAD = "head"  # decode head and every training-only projection head


def build_optimizer(param_groups: Mapping[str, Sequence[nn.Parameter]], *, lr: float, head_lr_mult: float,
                    weight_decay: float, betas: tuple[float, float],
                    no_decay: Iterable[nn.Parameter] = (), fused: bool | None = None) -> AdamW:
    """AdamW over the named groups: ``backbone`` at ``lr``, ``head`` at ``lr * head_lr_mult``.

    ``no_decay`` parameters (default none: DAFormer-style decay on all) go to a twin group
    ``<name>/no_decay`` with the same learning rate and no weight decay. ``fused``: None (default)
    picks the fused kernel exactly when every parameter is on CUDA (``use_fused``); build the optimizer
    after moving the model to its device.
    """
    lr_mults = {ParamGroup.BACKBONE.value: 1.0, ParamGroup.HEAD.value: head_lr_mult}
    unknown = [name for name in param_groups if name not in lr_mults]
    if unknown:
        raise ValueError(f"unknown parameter group(s) {unknown}; expected names from {sorted(lr_mults)}")
    _check_disjoint(param_groups)
    no_decay_ids = {id(p) for p in no_decay}
    groups = []
    for name, params in param_groups.items():
        decayed = [p for p in params if id(p) not in no_decay_ids]
        exempt = [p for p in params if id(p) in no_decay_ids]
        for group_name, group_params, wd in ((name, decayed, weight_decay),
                                             (name + NO_DECAY_SUFFIX, exempt, 0.0)):
            if group_params:
                groups.append(dict(params=group_params, name=group_name, lr_mult=lr_mults[name],
                                   lr=lr * lr_mults[name], weight_decay=wd))
    if not groups:
        raise ValueError(f"no parameters to optimise: every group in {list(param_groups)} is empty")
    if fused is None:
        fused = use_fused([p for g in groups for p in g["params"]])
    return AdamW(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay, fused=fused or None)


def use_fused(params: Sequence[torch.Tensor]) -> bool:
    """Whether AdamW should run fused: every parameter is a floating-point CUDA tensor."""
    return bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)


def _check_disjoint(param_groups: Mapping[str, Sequence[nn.Parameter]]) -> None:
    owner: dict[int, str] = {}
    for name, params in param_groups.items():
        for p in params:
            if not isinstance(p, nn.Parameter):
                raise TypeError(f"parameter group {name!r} holds a {type(p).__name__}, expected nn.Parameter")
            if id(p) in owner:
                raise ValueError(f"a parameter appears twice: in group {owner[id(p)]!r} and in group {name!r}")
            owner[id(p)] = name
