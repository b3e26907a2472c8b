"""Fixed-shape, sync-free sampling of contrastive anchors.

Every sampler returns as many slots as it could ever fill, plus a validity mask, so shapes never
depend on the data and nothing waits for the device. Randomness comes from ``generator`` (on the
same device as the inputs) or torch's global generator, so resumed runs sample identically.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AnchorSample:
    """Sampled positions into a flattened (B*h*w,) grid; padding slots have ``valid`` False."""

    index: Tensor  # (S,) long
    valid: Tensor  # (S,) bool


@dataclass(frozen=True)
class ClassBalancedSample(AnchorSample):
    """Slots laid out class by class: slot ``c * per_class + j`` belongs to class c."""

    labels: Tensor  # (S,) long, the class of each slot
    hard: Tensor  # (S,) bool, the slot holds a hard (misclassified) position


def sample_class_balanced(
    *,
    labels: Tensor,
    hard: Tensor,
    num_classes: int,
    per_class: int,
    hard_ratio: float,
    ignore_index: int,
    generator: torch.Generator | None = None,
) -> ClassBalancedSample:
    """Up to ``per_class`` positions of each class, a share ``hard_ratio`` of them hard.

    Args:
        labels: (N,) long class per position; ``ignore_index`` and anything outside
            [0, num_classes) is never sampled.
        hard: (N,) bool, the position is misclassified by the student.
    Per class, round(hard_ratio * per_class) slots go to hard positions and the rest to easy ones;
    when one kind runs short the other fills its slots (as in Wang et al., 2021), and a class with
    fewer than ``per_class`` positions takes them all. Within a kind the choice is uniform.
    Output: ``num_classes * per_class`` slots, hard ones first within a class.
    """
    if labels.ndim != 1 or hard.shape != labels.shape or hard.dtype != torch.bool:
        raise ValueError(f"sample_class_balanced: labels (N,) and bool hard (N,) expected, "
                         f"got {tuple(labels.shape)} and {hard.dtype} {tuple(hard.shape)}")
    if per_class <= 0 or not 0.0 <= hard_ratio <= 1.0:
        raise ValueError(f"sample_class_balanced: per_class must be > 0 and hard_ratio in [0, 1], "
                         f"got {per_class}, {hard_ratio}")
    c, p = num_classes, per_class
    device = labels.device
    labels = labels.long()
    is_class = (labels >= 0) & (labels < c) & (labels != ignore_index)
    # Group g = 2 * class + (0 hard | 1 easy); group 2C collects positions that are never sampled.
    group = torch.where(is_class, labels * 2 + (~hard).long(), torch.full_like(labels, 2 * c))
    group_size = torch.zeros(2 * c + 1, dtype=torch.long, device=device).scatter_add_(0, group, torch.ones_like(group))
    num_hard, num_easy = group_size[0:2 * c:2], group_size[1:2 * c:2]
    hard_target = round(hard_ratio * p)
    take_hard = torch.minimum(num_hard, (p - num_easy).clamp_min(hard_target))
    take_easy = torch.minimum(num_easy, p - take_hard)

    # Random order inside each group: shuffle, then a stable sort by group keeps the shuffle.
    shuffle = torch.randperm(labels.shape[0], device=device, generator=generator)
    order = shuffle[torch.argsort(group[shuffle], stable=True)]
    sorted_group = group[order]
    group_start = group_size.cumsum(0) - group_size
    rank = torch.arange(order.shape[0], device=device) - group_start[sorted_group]

    cls = (sorted_group // 2).clamp_max(c - 1)
    is_easy = sorted_group % 2 == 1
    quota = torch.where(is_easy, take_easy[cls], take_hard[cls])
    keep = (sorted_group < 2 * c) & (rank < quota)
    slot = cls * p + torch.where(is_easy, take_hard[cls] + rank, rank)
    slot = torch.where(keep, slot, torch.full_like(slot, c * p))  # trash slot, cut off below

    index = torch.zeros(c * p + 1, dtype=torch.long, device=device).index_put((slot,), order)[: c * p]
    valid = torch.zeros(c * p + 1, dtype=torch.bool, device=device).index_put((slot,), keep)[: c * p]
    slot_hard = torch.zeros(c * p + 1, dtype=torch.bool, device=device).index_put((slot,), keep & ~is_easy)[: c * p]
    slot_labels = torch.arange(c, device=device).repeat_interleave(p)
    return ClassBalancedSample(index=index, valid=valid, labels=slot_labels, hard=slot_hard)


def sample_uniform(*, valid: Tensor, num: int, generator: torch.Generator | None = None) -> AnchorSample:
    """Up to ``num`` positions drawn uniformly without replacement among those with ``valid`` (N,) True.

    Returns min(num, N) slots; valid positions fill the first slots, in random order.
    """
    if valid.ndim != 1 or valid.dtype != torch.bool:
        raise ValueError(f"sample_uniform: valid must be bool (N,), got {valid.dtype} {tuple(valid.shape)}")
    if num <= 0:
        raise ValueError(f"sample_uniform: num must be positive, got {num}")
    scores = torch.rand(valid.shape[0], device=valid.device, generator=generator)
    scores = torch.where(valid, scores, torch.full_like(scores, -1.0))  # invalid ones rank last
    index = torch.topk(scores, k=min(num, valid.shape[0]), sorted=False).indices
    return AnchorSample(index=index, valid=valid[index])


def gather_embeddings(features: Tensor, index: Tensor) -> Tensor:
    """Rows of (B, D, h, w) ``features`` at flat positions ``index`` (S,) into (B*h*w,): (S, D).

    Indexes the (B, D, h*w) view directly instead of materialising a (B*h*w, D) copy.
    """
    b, d, h, w = features.shape
    flat = features.reshape(b, d, h * w)
    return flat[index // (h * w), :, index % (h * w)]


def gather_positions(values: Tensor, index: Tensor) -> Tensor:
    """Entries of a per-position map (B, h, w) at flat positions ``index`` (S,): (S,)."""
    return values.reshape(-1)[index]


def downsample_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of (B, H, W) integer labels to ``size``; label values are kept exactly.

    Both grids must describe the same image region, so H / h and W / w may differ by at most one cell's
    rounding (features of a crop next to the full image's labels is PiPa defect 2 and raises here when
    the aspect ratios differ; cropping labels and images together is the caller's job).
    """
    if labels.ndim != 3 or labels.is_floating_point():
        raise ValueError(f"downsample_labels: labels must be integer (B, H, W), "
                         f"got {labels.dtype} {tuple(labels.shape)}")
    big_h, big_w = labels.shape[-2:]
    h, w = size
    # |H/h - W/w| <= (H/h) / min(h, w), multiplied through by h * w to stay in integers.
    if abs(big_h * w - big_w * h) * min(h, w) > big_h * w:
        raise ValueError(f"downsample_labels: labels {big_h}x{big_w} and features {h}x{w} do not cover the "
                         f"same region (aspect ratios differ)")
    if (big_h, big_w) == (h, w):
        return labels.long()
    # Exact in float32 for labels < 2**24; "nearest" copies values and never mixes neighbours.
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
