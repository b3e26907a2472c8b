"""Temporal contrast: the formula, anchor filtering by agreeing confident teacher labels, empty case."""
import pytest
import torch
from torch import nn

from pipa_video.models.projection import ProjectionHead
from pipa_video.uda.contrast.temporal import TemporalContrastLoss
from test_contrast_infonce import slow_infonce

B, D, C, h, w = 2, 5, 4, 6, 6


def _probs(labels, confidence):
    """Softmax-like maps with argmax ``labels`` (B, h, w) and max probability ``confidence`` (B, h, w)."""
    rest = (1 - confidence) / (C - 1)
    prob = rest[:, None].expand(B, C, h, w).clone()
    prob.scatter_(1, labels[:, None], confidence[:, None])
    return prob


def _scene(seed):
    g = torch.Generator().manual_seed(seed)
    key_label = torch.randint(0, C, (B, h, w), generator=g)
    ref_label = key_label.clone()
    moved = torch.rand(B, h, w, generator=g) < 0.2
    ref_label[moved] = (ref_label[moved] + 1) % C  # these locations changed class: not anchors
    key_conf = torch.where(torch.rand(B, h, w, generator=g) < 0.8, 0.99, 0.5)
    ref_conf = torch.where(torch.rand(B, h, w, generator=g) < 0.8, 0.99, 0.5)
    return _probs(key_label, key_conf), _probs(ref_label, ref_conf), key_label


def _reference(key_feat, ref_feat, key_prob, ref_prob, sample, confidence, tau):
    anchors = []  # (embedding, label, reference embedding)
    for slot in range(sample.index.shape[0]):
        if not sample.valid[slot]:
            continue
        b, pos = divmod(int(sample.index[slot]), h * w)
        y, x = divmod(pos, w)
        kp, rp = key_prob[b, :, y, x], ref_prob[b, :, y, x]
        assert int(kp.argmax()) == int(rp.argmax()) and kp.max() >= confidence and rp.max() >= confidence
        anchors.append((key_feat[b, :, y, x], int(kp.argmax()), ref_feat[b, :, y, x]))
    n = len(anchors)
    keys = [a[0] for a in anchors] + [a[2] for a in anchors]
    key_labels = [a[1] for a in anchors] * 2
    positives = [{n + i} for i in range(n)]
    negatives = [{k for k in range(2 * n) if key_labels[k] != anchors[i][1]} for i in range(n)]
    return slow_infonce([a[0] for a in anchors], keys, positives, negatives, tau)


@pytest.mark.parametrize("num_anchors", [10, 500])
def test_matches_formula(num_anchors):
    key_prob, ref_prob, _ = _scene(0)
    g = torch.Generator().manual_seed(1)
    key_feat, ref_feat = torch.randn(B, D, h, w, generator=g), torch.randn(B, D, h, w, generator=g)
    loss_fn = TemporalContrastLoss(tau=0.1, num_anchors=num_anchors, confidence=0.9)
    _, stable = loss_fn.stable_locations(key_prob=key_prob, ref_prob=ref_prob)
    sample = loss_fn.select_anchors(stable=stable, generator=torch.Generator().manual_seed(2))
    want = _reference(key_feat, ref_feat, key_prob, ref_prob, sample, confidence=0.9, tau=0.1)
    got = loss_fn(key_feat=key_feat, ref_feat=ref_feat, key_prob=key_prob, ref_prob=ref_prob,
                  generator=torch.Generator().manual_seed(2))
    assert int(sample.valid.sum()) == min(num_anchors, int(stable.sum()))
    assert 0 < int(stable.sum()) < B * h * w
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_anchors_only_where_labels_agree_and_are_confident():
    key_prob, ref_prob, key_label = _scene(3)
    loss_fn = TemporalContrastLoss(tau=0.1, num_anchors=1000, confidence=0.9)
    label, stable = loss_fn.stable_locations(key_prob=key_prob, ref_prob=ref_prob)
    expected = ((key_prob.argmax(1) == ref_prob.argmax(1)) & (key_prob.amax(1) >= 0.9) & (ref_prob.amax(1) >= 0.9))
    assert torch.equal(stable, expected) and torch.equal(label, key_label)
    margin = torch.ones(B, h, w, dtype=torch.bool)
    margin[:, 0] = False
    _, masked = loss_fn.stable_locations(key_prob=key_prob, ref_prob=ref_prob, valid_mask=margin)
    assert torch.equal(masked, expected & margin)


@pytest.mark.parametrize("case", ["disagree", "unconfident"])
def test_no_stable_location_gives_differentiable_zero(case):
    labels = torch.zeros(B, h, w, dtype=torch.long)
    conf = torch.full((B, h, w), 0.99 if case == "disagree" else 0.5)
    key_prob = _probs(labels, conf)
    ref_prob = _probs(labels + 1 if case == "disagree" else labels, conf)
    key_feat = torch.randn(B, D, h, w, requires_grad=True)
    loss = TemporalContrastLoss(tau=0.1, num_anchors=32, confidence=0.9)(
        key_feat=key_feat, ref_feat=torch.randn(B, D, h, w), key_prob=key_prob, ref_prob=ref_prob)
    loss.backward()
    assert loss.item() == 0.0 and not torch.isnan(loss)
    assert torch.isfinite(key_feat.grad).all()


def test_gradient_reaches_the_student_with_a_detached_teacher_reference():
    torch.manual_seed(0)
    backbone = nn.Conv2d(3, 8, kernel_size=4, stride=4)
    head = ProjectionHead(in_channels=8, proj_dim=D)
    key_prob, ref_prob, _ = _scene(4)
    teacher_ref = torch.randn(B, D, h, w)  # stands for the EMA teacher's projection: no gradient
    loss = TemporalContrastLoss(tau=0.1, num_anchors=64, confidence=0.9)(
        key_feat=head(backbone(torch.randn(B, 3, 4 * h, 4 * w))), ref_feat=teacher_ref,
        key_prob=key_prob, ref_prob=ref_prob)
    loss.backward()
    assert loss.item() > 0 and backbone.weight.grad.abs().sum() > 0


def test_mismatched_shapes_raise():
    loss_fn = TemporalContrastLoss(tau=0.1, num_anchors=8, confidence=0.9)
    feat = torch.randn(B, D, h, w)
    prob = torch.rand(B, C, h, w)
    with pytest.raises(ValueError, match="key_feat and ref_feat"):
        loss_fn(key_feat=feat, ref_feat=feat[:, :, :3], key_prob=prob, ref_prob=prob)
    with pytest.raises(ValueError, match="key_prob and ref_prob"):
        loss_fn(key_feat=feat, ref_feat=feat, key_prob=prob, ref_prob=prob[:, :, :3])
    with pytest.raises(ValueError, match="key_prob and ref_prob"):
        loss_fn(key_feat=feat, ref_feat=feat, key_prob=prob[:, :, :3], ref_prob=prob[:, :, :3])
    with pytest.raises(ValueError, match="valid_mask"):
        loss_fn(key_feat=feat, ref_feat=feat, key_prob=prob, ref_prob=prob, valid_mask=torch.ones(B, h, w))
