"""Pixel-wise contrast: supervised InfoNCE over class-balanced anchors and a class-wise memory bank.

Usage in a training step (all tensors at the feature grid (h, w) = (H/4, W/4) except ``labels``)::

    loss_fn = PixelContrastLoss(num_classes=19, tau=0.1, anchors_per_class=64, hard_ratio=0.5,
                                bank=ClassMemoryBank(num_classes=19, size=200, dim=256))
    loss, anchors = loss_fn.loss_and_anchors(
        features=student_pixel_head(student_out.features),          # (B, D, h, w), with grad
        labels=source_label,                                         # (B, H, W) long, 255 = ignore
        student_pred=student_out.logits.argmax(1),                   # (B, h, w), the TRAINED classifier
    )
    loss.backward()
    loss_fn.bank.push(**bank_entries(teacher_pixel_head(teacher_out.features), anchors))  # state, after the loss

``labels`` (source ground truth, or a batch with confident target pseudo-labels merged in by the
caller) is nearest-downsampled to (h, w); 255 (``ignore_index``) is never a class. Anchors are
sampled class-balanced (``anchors_per_class`` at most per class), a share ``hard_ratio`` of them
misclassified by ``student_pred``, which must come from the student's segmentation classifier (a head
no loss trains would make "hard" meaningless; PiPa defect 3). Positives of an anchor are the keys of
its class, negatives the keys of other classes; keys are the batch's other anchors plus the memory
bank. The loss only reads the bank: writing the teacher projections at the anchors into it
(:func:`bank_entries`) is the caller's state update, kept out of the loss call.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pipa_video.data.classes import IGNORE_INDEX
from pipa_video.uda.contrast.infonce import supervised_infonce
from pipa_video.uda.contrast.memory_bank import ClassMemoryBank
from pipa_video.uda.contrast.sampling import (ClassBalancedSample, downsample_labels, gather_embeddings,
                                              sample_class_balanced)


class PixelContrastLoss(nn.Module):
    """Class-balanced supervised InfoNCE on pixel projections, with an optional class-wise memory bank."""

    def __init__(self, *, num_classes: int, tau: float, anchors_per_class: int, hard_ratio: float,
                 bank: ClassMemoryBank | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"PixelContrastLoss: ignore_index {ignore_index} is a class id (num_classes "
                             f"{num_classes}); ignored pixels must never form a class")
        if bank is not None and bank.num_classes != num_classes:
            raise ValueError(f"PixelContrastLoss: bank has {bank.num_classes} classes, loss has {num_classes}")
        self.num_classes = num_classes
        self.tau = tau
        self.anchors_per_class = anchors_per_class
        self.hard_ratio = hard_ratio
        self.ignore_index = ignore_index
        self.bank = bank

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, tau={self.tau}, anchors_per_class={self.anchors_per_class}, "
                f"hard_ratio={self.hard_ratio}, ignore_index={self.ignore_index}")

    def select_anchors(self, *, labels: Tensor, student_pred: Tensor,
                       generator: torch.Generator | None = None) -> ClassBalancedSample:
        """Anchors on the feature grid: ``labels`` and ``student_pred`` are both (B, h, w)."""
        hard = (student_pred != labels).reshape(-1)
        return sample_class_balanced(labels=labels.reshape(-1), hard=hard, num_classes=self.num_classes,
                                     per_class=self.anchors_per_class, hard_ratio=self.hard_ratio,
                                     ignore_index=self.ignore_index, generator=generator)

    def forward(self, *, features: Tensor, labels: Tensor, student_pred: Tensor,
                generator: torch.Generator | None = None) -> Tensor:
        """Scalar loss. ``features``: student projections (B, D, h, w); see the module docstring."""
        return self.loss_and_anchors(features=features, labels=labels, student_pred=student_pred,
                                     generator=generator)[0]

    def loss_and_anchors(self, *, features: Tensor, labels: Tensor, student_pred: Tensor,
                         generator: torch.Generator | None = None) -> tuple[Tensor, ClassBalancedSample]:
        """The loss and the anchors it sampled (for :func:`bank_entries`); raises ``ValueError`` on shapes."""
        grid = self._check_inputs(features, labels, student_pred)
        labels = downsample_labels(labels, grid)
        sample = self.select_anchors(labels=labels, student_pred=student_pred, generator=generator)
        anchors = gather_embeddings(features, sample.index)

        keys, key_labels, key_valid = anchors, sample.labels, sample.valid
        if self.bank is not None:
            bank_features, bank_labels, bank_valid = self.bank.entries()
            keys = torch.cat([anchors.float(), bank_features.float()])
            key_labels = torch.cat([sample.labels, bank_labels])
            key_valid = torch.cat([sample.valid, bank_valid])
        same_class = sample.labels[:, None] == key_labels[None, :]
        loss = supervised_infonce(
            anchors=anchors, keys=keys, positive_mask=same_class, negative_mask=~same_class, tau=self.tau,
            anchor_valid=sample.valid, key_valid=key_valid,
            anchor_key_index=torch.arange(anchors.shape[0], device=anchors.device),  # batch anchors lead the keys
        )
        return loss, sample

    def _check_inputs(self, features: Tensor, labels: Tensor, student_pred: Tensor) -> tuple[int, int]:
        if features.ndim != 4:
            raise ValueError(f"PixelContrastLoss: features must be (B, D, h, w), got {tuple(features.shape)}")
        b, d, h, w = features.shape
        if labels.ndim != 3 or labels.shape[0] != b:
            raise ValueError(f"PixelContrastLoss: labels must be (B={b}, H, W), got {tuple(labels.shape)}")
        if student_pred.shape != (b, h, w):
            raise ValueError(f"PixelContrastLoss: student_pred must be at the feature grid (B, h, w) = "
                             f"{(b, h, w)}, got {tuple(student_pred.shape)}")
        if self.bank is not None and d != self.bank.dim:
            raise ValueError(f"PixelContrastLoss: features have {d} channels, the bank stores {self.bank.dim}")
        return h, w


def bank_entries(teacher_features: Tensor, anchors: ClassBalancedSample) -> dict[str, Tensor]:
    """``ClassMemoryBank.push`` arguments: the (detached) teacher projections (B, D, h, w) at ``anchors``."""
    if teacher_features.ndim != 4:
        raise ValueError(f"bank_entries: teacher_features must be (B, D, h, w), got {tuple(teacher_features.shape)}")
    return {"features": gather_embeddings(teacher_features.detach(), anchors.index), "labels": anchors.labels,
            "valid": anchors.valid}
