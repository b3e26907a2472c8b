"""Flow-free temporal contrast: a location in the key frame against the same location one frame away.

Usage in a training step (video clips only; skip the term when the clip has one frame)::

    loss = loss_fn(
        key_feat=temporal_head(student(frame_t).features),              # (B, D, h, w), with grad
        ref_feat=temporal_head(teacher(frame_t_plus_o).features).detach(),  # or the student's
        key_prob=teacher_logits_t.softmax(1),                            # (B, C, h, w) teacher
        ref_prob=teacher_logits_t_plus_o.softmax(1),
    )

No optical flow: the positive of a key-frame location is the same (row, column) in the reference
frame. That is only a fair positive where nothing moved across a class boundary, so anchors are
restricted to locations where the teacher's argmax is the same in both frames and both maximum
probabilities reach ``confidence``. Negatives are the other sampled locations (either frame) whose
pseudo-label differs. With no such location the loss is a differentiable 0.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pipa_video.uda.contrast.infonce import supervised_infonce
from pipa_video.uda.contrast.sampling import AnchorSample, gather_embeddings, gather_positions, sample_uniform


class TemporalContrastLoss(nn.Module):
    """InfoNCE between a key-frame location and the same location in a reference frame."""

    def __init__(self, *, tau: float, num_anchors: int, confidence: float) -> None:
        super().__init__()
        self.tau = tau
        self.num_anchors = num_anchors
        self.confidence = confidence

    def extra_repr(self) -> str:
        return f"tau={self.tau}, num_anchors={self.num_anchors}, confidence={self.confidence}"

    def stable_locations(self, *, key_prob: Tensor, ref_prob: Tensor,
                         valid_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, h, w) pseudo-label of the key frame and (B, h, w) bool: agreeing and confident there."""
        key_conf, key_label = key_prob.detach().max(dim=1)
        ref_conf, ref_label = ref_prob.detach().max(dim=1)
        stable = (key_label == ref_label) & (key_conf >= self.confidence) & (ref_conf >= self.confidence)
        if valid_mask is not None:
            stable = stable & valid_mask
        return key_label, stable

    def select_anchors(self, *, stable: Tensor, generator: torch.Generator | None = None) -> AnchorSample:
        return sample_uniform(valid=stable.reshape(-1), num=self.num_anchors, generator=generator)

    def forward(self, *, key_feat: Tensor, ref_feat: Tensor, key_prob: Tensor, ref_prob: Tensor,
                valid_mask: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Scalar loss. ``valid_mask`` (B, h, w) bool optionally excludes locations (e.g. ignored margins)."""
        self._check_shapes(key_feat, ref_feat, key_prob, ref_prob, valid_mask)
        label, stable = self.stable_locations(key_prob=key_prob, ref_prob=ref_prob, valid_mask=valid_mask)
        sample = self.select_anchors(stable=stable, generator=generator)
        anchors = gather_embeddings(key_feat, sample.index)
        anchor_labels = gather_positions(label, sample.index)
        # Keys: [key-frame anchors; reference cells at the same places], positive of anchor i is S + i.
        keys = torch.cat([anchors, gather_embeddings(ref_feat, sample.index)])
        key_labels = torch.cat([anchor_labels, anchor_labels])
        s = sample.index.shape[0]
        slots = torch.arange(s, device=key_feat.device)
        columns = torch.arange(2 * s, device=key_feat.device)
        return supervised_infonce(
            anchors=anchors, keys=keys,
            positive_mask=columns[None, :] == (slots + s)[:, None],
            negative_mask=anchor_labels[:, None] != key_labels[None, :],
            tau=self.tau, anchor_valid=sample.valid, key_valid=torch.cat([sample.valid, sample.valid]),
            anchor_key_index=slots,
        )

    @staticmethod
    def _check_shapes(key_feat: Tensor, ref_feat: Tensor, key_prob: Tensor, ref_prob: Tensor,
                      valid_mask: Tensor | None) -> None:
        if key_feat.ndim != 4 or key_feat.shape != ref_feat.shape:
            raise ValueError(f"TemporalContrastLoss: key_feat and ref_feat must both be (B, D, h, w), "
                             f"got {tuple(key_feat.shape)} and {tuple(ref_feat.shape)}")
        b, _, h, w = key_feat.shape
        if key_prob.ndim != 4 or key_prob.shape != ref_prob.shape or key_prob.shape[0] != b \
                or key_prob.shape[-2:] != (h, w):
            raise ValueError(f"TemporalContrastLoss: key_prob and ref_prob must both be (B={b}, C, h={h}, w={w}) "
                             f"(teacher softmax at the feature grid), got {tuple(key_prob.shape)} and "
                             f"{tuple(ref_prob.shape)}")
        if valid_mask is not None and (valid_mask.shape != (b, h, w) or valid_mask.dtype != torch.bool):
            raise ValueError(f"TemporalContrastLoss: valid_mask must be bool (B, h, w) = {(b, h, w)}, "
                             f"got {valid_mask.dtype} {tuple(valid_mask.shape)}")
