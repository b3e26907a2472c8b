"""Learning-rate schedule, precomputed for every iteration (dinov2 style).

The values follow mmcv's ``PolyLrUpdaterHook`` with linear warm-up, as DAFormer runs it
(``policy='poly', warmup='linear', by_epoch=False``): at 0-based iteration ``i`` of ``N``

    poly(i) = (base_lr - min_lr) * (1 - i / N) ** power + min_lr
    lr(i)   = poly(i) * (1 - (1 - i / W) * (1 - warmup_ratio))   for i < W (warm-up)
    lr(i)   = poly(i)                                             otherwise

so warm-up starts at ``base_lr * warmup_ratio`` and scales the poly curve (which itself runs from
iteration 0, as in mmcv) up to 1 at iteration ``W``. The array holds the rate of a group with
multiplier 1; the trainer multiplies it by each group's ``lr_mult``. (With ``min_lr > 0`` mmcv
would floor every group at ``min_lr``; here the head floor is ``min_lr * head_lr_mult``.)
"""
from __future__ import annotations

import numpy as np


def lr_schedule(*, base_lr: float, iters: int, warmup_iters: int, warmup_ratio: float, power: float,
                min_lr: float) -> np.ndarray:
    """(iters,) float64 learning rate of each iteration for a group with multiplier 1."""
    if iters <= 0:
        raise ValueError(f"schedule.iters must be > 0, got {iters}")
    if not 0 <= warmup_iters <= iters:
        raise ValueError(f"schedule.warmup_iters must be in [0, iters={iters}], got {warmup_iters}")
    if not 0 < warmup_ratio <= 1:
        raise ValueError(f"schedule.warmup_ratio must be in (0, 1], got {warmup_ratio}")
    if base_lr <= 0 or min_lr < 0 or min_lr > base_lr:
        raise ValueError(f"need 0 <= min_lr <= base_lr and base_lr > 0, got base_lr={base_lr}, min_lr={min_lr}")
    if power < 0:
        raise ValueError(f"schedule.power must be >= 0, got {power}")
    progress = np.arange(iters, dtype=np.float64) / iters
    lr = (base_lr - min_lr) * (1.0 - progress) ** power + min_lr
    if warmup_iters > 0:
        steps = np.arange(warmup_iters, dtype=np.float64)
        lr[:warmup_iters] *= 1.0 - (1.0 - steps / warmup_iters) * (1.0 - warmup_ratio)
    return lr
