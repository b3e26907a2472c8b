"""Class-wise memory bank of detached teacher projections for the pixel contrast (PiPa's FIFO queue).

``ClassMemoryBank(num_classes=C, size=M, dim=D)`` keeps a ring buffer of M entries per class in
registered buffers (``features`` (C, M, D), ``ptr`` (C,), ``count`` (C,)), so it moves with the module
and is saved in checkpoints. ``push`` appends each class's new entries in arrival order, overwrites the
oldest once full and, when more than M entries of a class arrive at once, keeps the newest M.

Distributed training: give the bank a ``gather`` callable that concatenates a tensor across ranks
along dim 0 (``engine.dist.all_gather_cat``, handed down by ``uda.build.build_method(cfg, gather=...)``).
``push`` gathers before writing, so every rank writes the same entries in the same order and the
banks stay identical without any broadcast.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

Gather = Callable[[Tensor], Tensor]


class ClassMemoryBank(nn.Module):
    """Per-class FIFO queue of M detached embeddings of dimension D."""

    features: Tensor
    ptr: Tensor
    count: Tensor

    def __init__(self, *, num_classes: int, size: int, dim: int, gather: Gather | None = None) -> None:
        super().__init__()
        if num_classes <= 0 or size <= 0 or dim <= 0:
            raise ValueError(f"ClassMemoryBank: num_classes, size and dim must be positive, "
                             f"got {num_classes}, {size}, {dim}")
        self.num_classes = num_classes
        self.size = size
        self.dim = dim
        self.gather = gather
        self.register_buffer("features", torch.zeros(num_classes, size, dim))
        self.register_buffer("ptr", torch.zeros(num_classes, dtype=torch.long))  # next slot to write
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.long))  # filled slots

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, size={self.size}, dim={self.dim}"

    def entries(self) -> tuple[Tensor, Tensor, Tensor]:
        """All slots as keys: features (C*M, D), labels (C*M,) long, valid (C*M,) bool.

        Slots fill from 0 upwards and ``ptr`` only wraps once a class is full, so slot s of class c
        holds an entry exactly when s < count[c].
        """
        c, m = self.num_classes, self.size
        device = self.features.device
        labels = torch.arange(c, device=device).repeat_interleave(m)
        valid = (torch.arange(m, device=device)[None, :] < self.count[:, None]).reshape(-1)
        return self.features.reshape(c * m, self.dim), labels, valid

    @torch.no_grad()
    def push(self, *, features: Tensor, labels: Tensor, valid: Tensor) -> None:
        """Append features (N, D) with class labels (N,) where ``valid`` (N,) is True.

        Entries whose label is not a class in [0, num_classes) (e.g. the ignore label 255) are never
        written. Within a class, entries are queued in the order given (after the cross-rank gather).
        """
        self._check_push(features, labels, valid)
        c, m = self.num_classes, self.size
        features = features.detach().to(self.features.dtype)
        # Invalid entries go to an extra "class" c that owns no slots, so they are never written.
        bucket = torch.where(valid & (labels >= 0) & (labels < c), labels.long(), torch.full_like(labels.long(), c))
        if self.gather is not None:
            features = self.gather(features.contiguous())
            bucket = self.gather(bucket.contiguous())

        # (N, C+1) membership; a comparison rather than F.one_hot, whose range check may read the device.
        one_hot = (bucket[:, None] == torch.arange(c + 1, device=bucket.device)).long()
        arrivals = one_hot.sum(dim=0)[:c]  # entries of each class in this push
        # 0-based arrival order of each entry within its class.
        rank = (one_hot.cumsum(dim=0) * one_hot).sum(dim=1) - 1
        cls = bucket.clamp_max(c - 1)
        keep = (bucket < c) & (rank >= arrivals[cls] - m)  # only the newest M of a class survive
        slot = (self.ptr[cls] + rank) % m
        # Kept entries of one class occupy at most M consecutive ranks, so their slots are distinct;
        # dropped ones go to a trash row past the end that is cut off afterwards.
        target = torch.where(keep, cls * m + slot, torch.full_like(slot, c * m))
        # A fresh tensor (the cat) rather than writing into the buffer: a loss that read ``entries()``
        # before this push still holds the old one in its autograd graph.
        workspace = torch.cat([self.features.reshape(c * m, self.dim), self.features.new_zeros(1, self.dim)])
        workspace.index_put_((target,), features)
        self.features = workspace[: c * m].reshape(c, m, self.dim)
        self.ptr = (self.ptr + arrivals) % m
        self.count = (self.count + arrivals).clamp_max(m)

    def class_entries(self, class_id: int) -> Tensor:
        """The entries of one class, oldest first, (count, D). For inspection and tests (synchronises)."""
        n = int(self.count[class_id])
        queue = self.features[class_id]
        if n < self.size:
            return queue[:n]
        return torch.roll(queue, shifts=-int(self.ptr[class_id]), dims=0)

    def _check_push(self, features: Tensor, labels: Tensor, valid: Tensor) -> None:
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"ClassMemoryBank.push: features must be (N, {self.dim}), got {tuple(features.shape)}")
        n = features.shape[0]
        if labels.shape != (n,) or labels.is_floating_point():
            raise ValueError(f"ClassMemoryBank.push: labels must be integer (N={n},), "
                             f"got {labels.dtype} {tuple(labels.shape)}")
        if valid.shape != (n,) or valid.dtype != torch.bool:
            raise ValueError(f"ClassMemoryBank.push: valid must be bool (N={n},), "
                             f"got {valid.dtype} {tuple(valid.shape)}")
