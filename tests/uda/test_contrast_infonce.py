"""The vectorised supervised InfoNCE core against a direct, slow transcription of method.md's formula.

``slow_infonce`` is also the reference for the pixel, patch and temporal tests (imported from here).
"""
import math

import pytest
import torch

from pipa_video.uda.contrast.infonce import supervised_infonce


def slow_infonce(anchors, keys, positives, negatives, tau):
    """L = - mean_i mean_{p in P(i)} log( r(e_i, e_p) / sum_{k in P(i) u N(i)} r(e_i, e_k) ),
    r(a, b) = exp(cos(a, b) / tau). ``positives[i]`` / ``negatives[i]`` are sets of key indices;
    anchors with no positive are left out of the mean. Python floats in double precision."""
    def r(a, b):
        a, b = a.double(), b.double()
        return math.exp(float(a @ b / (a.norm() * b.norm())) / tau)

    per_anchor = []
    for i, e_i in enumerate(anchors):
        if not positives[i]:
            continue
        denominator = sum(r(e_i, keys[k]) for k in positives[i] | negatives[i])
        per_anchor.append(-sum(math.log(r(e_i, keys[p]) / denominator) for p in positives[i]) / len(positives[i]))
    return sum(per_anchor) / len(per_anchor) if per_anchor else 0.0


def _random_problem(seed, n=7, k=11, d=5):
    g = torch.Generator().manual_seed(seed)
    anchors = torch.randn(n, d, generator=g)
    keys = torch.randn(k, d, generator=g)
    pos = torch.rand(n, k, generator=g) < 0.3
    neg = (torch.rand(n, k, generator=g) < 0.5) & ~pos
    pos[0] = False  # an anchor with no positive contributes nothing
    anchor_valid = torch.rand(n, generator=g) < 0.8
    key_valid = torch.rand(k, generator=g) < 0.8
    self_index = torch.full((n,), -1, dtype=torch.long)
    self_index[:3] = torch.tensor([2, 4, 6])  # anchors 0..2 are keys 2, 4, 6
    return anchors, keys, pos, neg, anchor_valid, key_valid, self_index


def _sets(mask, anchor_valid, key_valid, self_index):
    n, k = mask.shape
    return [{j for j in range(k) if mask[i, j] and key_valid[j] and j != self_index[i]} if anchor_valid[i] else set()
            for i in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_matches_formula(seed):
    anchors, keys, pos, neg, av, kv, si = _random_problem(seed)
    tau = 0.1
    got = supervised_infonce(anchors=anchors, keys=keys, positive_mask=pos, negative_mask=neg, tau=tau,
                             anchor_valid=av, key_valid=kv, anchor_key_index=si)
    want = slow_infonce(anchors, keys, _sets(pos, av, kv, si), _sets(neg, av, kv, si), tau)
    assert got.item() == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_denominator_is_positives_and_negatives_only():
    """A key that is neither positive nor negative of an anchor must not change that anchor's loss."""
    anchors, keys, pos, neg, *_ = _random_problem(0)
    pos[:, -1] = False
    neg[:, -1] = False
    base = supervised_infonce(anchors=anchors, keys=keys, positive_mask=pos, negative_mask=neg, tau=0.1)
    keys2 = keys.clone()
    keys2[-1] = anchors[1] * 3  # would dominate any denominator it entered
    moved = supervised_infonce(anchors=anchors, keys=keys2, positive_mask=pos, negative_mask=neg, tau=0.1)
    assert moved.item() == pytest.approx(base.item(), rel=1e-6)
    neg[:, -1] = True
    entered = supervised_infonce(anchors=anchors, keys=keys2, positive_mask=pos, negative_mask=neg, tau=0.1)
    assert entered.item() > base.item() + 1e-3


def test_anchor_is_never_its_own_key():
    """Keys = anchors: with self excluded, an anchor whose only same-label key is itself has no positive."""
    # Seeded: an unseeded draw whose two positives nearly coincide gives a loss ~1e-4, below float32's
    # relative resolution of the log-sum-exp (the test then failed depending on the tests run before it).
    emb = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 0, 1, 2])
    same = labels[:, None] == labels[None, :]
    loss = supervised_infonce(anchors=emb, keys=emb, positive_mask=same, negative_mask=~same, tau=0.1,
                              anchor_key_index=torch.arange(4))
    positives = [{j for j in range(4) if same[i, j] and j != i} for i in range(4)]
    negatives = [{j for j in range(4) if not same[i, j]} for i in range(4)]
    assert loss.item() == pytest.approx(slow_infonce(emb, emb, positives, negatives, 0.1), rel=1e-5)
    # Without the exclusion the anchor itself (cos = 1) would be a positive and lower the loss.
    with_self = supervised_infonce(anchors=emb, keys=emb, positive_mask=same, negative_mask=~same, tau=0.1)
    assert with_self.item() != pytest.approx(loss.item(), rel=1e-3)


def test_no_positive_anywhere_gives_differentiable_zero():
    anchors = torch.randn(5, 4, requires_grad=True)
    keys = torch.randn(6, 4)
    loss = supervised_infonce(anchors=anchors, keys=keys, positive_mask=torch.zeros(5, 6, dtype=torch.bool),
                              negative_mask=torch.ones(5, 6, dtype=torch.bool), tau=0.1)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(anchors.grad).all() and (anchors.grad == 0).all()


def test_no_valid_key_gives_zero_not_nan():
    anchors = torch.randn(3, 4, requires_grad=True)
    loss = supervised_infonce(anchors=anchors, keys=torch.randn(2, 4), positive_mask=torch.ones(3, 2, dtype=torch.bool),
                              negative_mask=torch.zeros(3, 2, dtype=torch.bool), tau=0.1,
                              key_valid=torch.zeros(2, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(anchors.grad).all()


def test_stable_at_small_temperature_and_low_precision():
    """cos / tau = 1000: exp overflows float32, logsumexp must not."""
    anchors = torch.randn(6, 8)
    keys = torch.cat([anchors, -anchors])
    pos = torch.eye(6, 12, dtype=torch.bool)
    neg = ~pos
    loss = supervised_infonce(anchors=anchors.bfloat16(), keys=keys.bfloat16(), positive_mask=pos,
                              negative_mask=neg, tau=0.001)
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    assert loss.item() == pytest.approx(0.0, abs=1e-3)  # each positive dominates its denominator


def test_gradient_pulls_positive_and_pushes_negative():
    anchor = torch.tensor([[1.0, 0.0]], requires_grad=True)
    keys = torch.tensor([[0.0, 1.0], [0.0, -1.0]])  # key 0 positive, key 1 negative
    loss = supervised_infonce(anchors=anchor, keys=keys, positive_mask=torch.tensor([[True, False]]),
                              negative_mask=torch.tensor([[False, True]]), tau=0.5)
    loss.backward()
    assert anchor.grad[0, 1] < 0  # descending moves the anchor towards +y, the positive


def test_bad_shapes_are_named():
    a, k = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(ValueError, match="positive_mask"):
        supervised_infonce(anchors=a, keys=k, positive_mask=torch.ones(3, 4, dtype=torch.bool),
                           negative_mask=torch.ones(3, 5, dtype=torch.bool), tau=0.1)
    with pytest.raises(ValueError, match="share D"):
        supervised_infonce(anchors=a, keys=torch.randn(5, 3), positive_mask=torch.ones(3, 5, dtype=torch.bool),
                           negative_mask=torch.ones(3, 5, dtype=torch.bool), tau=0.1)
    with pytest.raises(ValueError, match="key_valid"):
        supervised_infonce(anchors=a, keys=k, positive_mask=torch.ones(3, 5, dtype=torch.bool),
                           negative_mask=torch.ones(3, 5, dtype=torch.bool), tau=0.1, key_valid=torch.ones(5))
