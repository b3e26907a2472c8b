"""The supervised InfoNCE core shared by the pixel, patch and temporal contrasts.

With r(a, b) = exp(cos(a, b) / tau), for each anchor i with positives P(i) and negatives N(i):

    L = - mean_i mean_{p in P(i)} log( r(e_i, e_p) / sum_{k in P(i) u N(i)} r(e_i, e_k) )

(method.md). The denominator runs over the positives and negatives of anchor i only; keys that are
neither (e.g. same-class keys that are not the designated positive) do not enter it.

Everything works on fixed-shape tensors with validity masks, so the loss never synchronises with the
device (no ``.item()``, no boolean indexing, no ``nonzero``) and its cost does not depend on the data.
Anchors with no positive (or no valid key) contribute nothing; the mean divides by the number of
contributing anchors clamped to at least one, so an empty batch gives a differentiable 0, never NaN.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Stands in for log(0) on masked logits. A finite value (not -inf) keeps logsumexp's gradient finite
# when a row has no key at all; logits are cos / tau, so their magnitude is far below this.
_MASKED_LOGIT = -1e9


def supervised_infonce(
    *,
    anchors: Tensor,
    keys: Tensor,
    positive_mask: Tensor,
    negative_mask: Tensor,
    tau: float,
    anchor_valid: Tensor | None = None,
    key_valid: Tensor | None = None,
    anchor_key_index: Tensor | None = None,
) -> Tensor:
    """Supervised InfoNCE over anchors (N, D) and keys (K, D); returns a scalar (float32).

    Args:
        anchors: (N, D) embeddings (normalised here, so cos is exact whatever the input norm).
        keys: (K, D) embeddings.
        positive_mask: (N, K) bool, key k is a positive of anchor i.
        negative_mask: (N, K) bool, key k is a negative of anchor i. A key in both counts once in the
            denominator (it is a union) and as a positive in the numerator.
        tau: temperature.
        anchor_valid: (N,) bool, anchors that exist (padding slots are False). Default: all.
        key_valid: (K,) bool, keys that exist. Default: all.
        anchor_key_index: (N,) long, the column of ``keys`` that holds anchor i itself, or -1. That
            pair is removed from both masks: an anchor is never its own positive or negative.
    """
    _check_shapes(anchors, keys, positive_mask, negative_mask, anchor_valid, key_valid, anchor_key_index)
    n, k = positive_mask.shape
    device = anchors.device
    # float32 whatever the autocast dtype: exp(cos / tau) spans e^{+-1/tau}.
    anchors = F.normalize(anchors.float(), dim=1)
    keys = F.normalize(keys.float(), dim=1)
    logits = anchors @ keys.t() / tau

    allowed = torch.ones(n, k, dtype=torch.bool, device=device)
    if anchor_valid is not None:
        allowed = allowed & anchor_valid[:, None]
    if key_valid is not None:
        allowed = allowed & key_valid[None, :]
    if anchor_key_index is not None:
        columns = torch.arange(k, device=device)
        allowed = allowed & (columns[None, :] != anchor_key_index[:, None])
    positives = positive_mask & allowed
    in_denominator = (positive_mask | negative_mask) & allowed

    log_denominator = torch.logsumexp(logits.masked_fill(~in_denominator, _MASKED_LOGIT), dim=1, keepdim=True)
    log_prob = logits - log_denominator
    # where(), not a product with the mask: entries outside the denominator hold ~1e9, and where()
    # drops them exactly (value and gradient) instead of relying on 0 * 1e9 staying finite.
    positive_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    num_positives = positives.sum(dim=1)
    per_anchor = -positive_log_prob / num_positives.clamp_min(1)
    contributes = num_positives > 0
    return (per_anchor * contributes).sum() / contributes.sum().clamp_min(1)


def _check_shapes(anchors: Tensor, keys: Tensor, positive_mask: Tensor, negative_mask: Tensor,
                  anchor_valid: Tensor | None, key_valid: Tensor | None, anchor_key_index: Tensor | None) -> None:
    if anchors.ndim != 2 or keys.ndim != 2 or anchors.shape[1] != keys.shape[1]:
        raise ValueError(f"supervised_infonce: anchors (N, D) and keys (K, D) must share D, "
                         f"got {tuple(anchors.shape)} and {tuple(keys.shape)}")
    n, k = anchors.shape[0], keys.shape[0]
    for name, mask in (("positive_mask", positive_mask), ("negative_mask", negative_mask)):
        if mask.shape != (n, k) or mask.dtype != torch.bool:
            raise ValueError(f"supervised_infonce: {name} must be bool of shape ({n}, {k}), "
                             f"got {mask.dtype} {tuple(mask.shape)}")
    for name, vec, size in (("anchor_valid", anchor_valid, n), ("key_valid", key_valid, k)):
        if vec is not None and (vec.shape != (size,) or vec.dtype != torch.bool):
            raise ValueError(f"supervised_infonce: {name} must be bool of shape ({size},), "
                             f"got {vec.dtype} {tuple(vec.shape)}")
    if anchor_key_index is not None and (anchor_key_index.shape != (n,) or anchor_key_index.is_floating_point()):
        raise ValueError(f"supervised_infonce: anchor_key_index must be an integer tensor of shape ({n},), "
                         f"got {anchor_key_index.dtype} {tuple(anchor_key_index.shape)}")
