"""Pixel contrast: the formula with batch and memory-bank keys, gradients, ignore label, hard anchors."""
import pytest
import torch
from torch import nn

from pipa_video.models.projection import ProjectionHead
from pipa_video.uda.contrast.memory_bank import ClassMemoryBank
from pipa_video.uda.contrast.pixel import PixelContrastLoss, bank_entries
from test_contrast_infonce import slow_infonce

B, D, h, w, C, STRIDE = 2, 6, 6, 6, 3, 4


def _cell_labels(seed):
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, C, (B, h, w), generator=g)
    cells[0, 0] = 255  # an ignored row of cells
    return cells


def _full_res(cells):
    """Labels at image resolution, constant over each STRIDE x STRIDE cell."""
    return cells.repeat_interleave(STRIDE, 1).repeat_interleave(STRIDE, 2)


def _prefilled_bank(seed):
    bank = ClassMemoryBank(num_classes=C, size=5, dim=D)
    g = torch.Generator().manual_seed(seed)
    bank.push(features=torch.randn(9, D, generator=g), labels=torch.tensor([0, 0, 0, 0, 0, 0, 0, 1, 1]),
              valid=torch.ones(9, dtype=torch.bool))  # class 0 wrapped, class 1 partial, class 2 empty
    return bank


def _reference(features, cells, sample, bank, tau):
    """method.md's loss by hand: anchors from the sampled cells, keys = other anchors + bank entries."""
    anchors = []  # (slot, embedding, label)
    for slot in range(sample.index.shape[0]):
        if sample.valid[slot]:
            b, pos = divmod(int(sample.index[slot]), h * w)
            y, x = divmod(pos, w)
            label = int(cells[b, y, x])
            assert label == int(sample.labels[slot]) and label != 255
            anchors.append((slot, features[b, :, y, x], label))
    keys = [(("anchor", slot), emb, label) for slot, emb, label in anchors]
    if bank is not None:
        keys += [(("bank", c, j), emb, c) for c in range(C) for j, emb in enumerate(bank.class_entries(c))]
    positives = [{k for k, (kid, _, lab) in enumerate(keys) if lab == a_lab and kid != ("anchor", slot)}
                 for slot, _, a_lab in anchors]
    negatives = [{k for k, (_, _, lab) in enumerate(keys) if lab != a_lab} for _, _, a_lab in anchors]
    return slow_infonce([a[1] for a in anchors], [k[1] for k in keys], positives, negatives, tau)


@pytest.mark.parametrize("with_bank", [False, True])
def test_matches_formula(with_bank):
    torch.manual_seed(0)
    cells = _cell_labels(1)
    features = torch.nn.functional.normalize(torch.randn(B, D, h, w), dim=1)
    student_pred = torch.randint(0, C, (B, h, w))
    bank = _prefilled_bank(2) if with_bank else None
    loss_fn = PixelContrastLoss(num_classes=C, tau=0.1, anchors_per_class=4, hard_ratio=0.5, bank=bank)
    sample = loss_fn.select_anchors(labels=cells, student_pred=student_pred, generator=torch.Generator().manual_seed(5))
    want = _reference(features, cells, sample, bank, tau=0.1)  # bank as it is before this step's push
    got = loss_fn(features=features, labels=_full_res(cells), student_pred=student_pred,
                  generator=torch.Generator().manual_seed(5))
    assert int(sample.valid.sum()) == 3 * 4
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_the_loss_only_reads_the_bank_and_bank_entries_are_the_teacher_projections_of_the_anchors():
    cells = _cell_labels(3)
    teacher = torch.randn(B, D, h, w)
    bank = ClassMemoryBank(num_classes=C, size=50, dim=D)
    loss_fn = PixelContrastLoss(num_classes=C, tau=0.1, anchors_per_class=4, hard_ratio=0.5, bank=bank)
    student_pred = torch.zeros(B, h, w, dtype=torch.long)
    sample = loss_fn.select_anchors(labels=cells, student_pred=student_pred, generator=torch.Generator().manual_seed(7))
    _, anchors = loss_fn.loss_and_anchors(features=torch.randn(B, D, h, w), labels=_full_res(cells),
                                          student_pred=student_pred, generator=torch.Generator().manual_seed(7))
    assert int(bank.count.sum()) == 0  # the loss call is no state update
    assert torch.equal(anchors.index, sample.index)
    bank.push(**bank_entries(teacher, anchors))
    flat_teacher = teacher.permute(0, 2, 3, 1).reshape(-1, D)
    for c in range(C):
        slots = sample.valid & (sample.labels == c)
        torch.testing.assert_close(bank.class_entries(c), flat_teacher[sample.index[slots]])
    loss_fn(features=torch.randn(B, D, h, w), labels=_full_res(cells), student_pred=student_pred)
    assert torch.equal(bank.count, torch.full((C,), 4))


def test_ignore_label_is_never_a_class_nor_banked():
    bank = ClassMemoryBank(num_classes=C, size=5, dim=D)
    loss_fn = PixelContrastLoss(num_classes=C, tau=0.1, anchors_per_class=4, hard_ratio=0.5, bank=bank)
    features = torch.randn(B, D, h, w, requires_grad=True)
    all_ignored = torch.full((B, h * STRIDE, w * STRIDE), 255)
    loss, anchors = loss_fn.loss_and_anchors(features=features, labels=all_ignored,
                                             student_pred=torch.zeros(B, h, w, dtype=torch.long))
    bank.push(**bank_entries(features, anchors))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(features.grad).all()
    assert (bank.count == 0).all(), "ignored pixels entered the bank"
    # Half ignored: anchors and bank entries come only from labelled cells.
    cells = torch.full((B, h, w), 255)
    cells[:, :, : w // 2] = 1
    sample = loss_fn.select_anchors(labels=cells, student_pred=torch.zeros(B, h, w, dtype=torch.long))
    assert (cells.reshape(-1)[sample.index[sample.valid]] == 1).all()
    _, anchors = loss_fn.loss_and_anchors(features=features, labels=_full_res(cells),
                                          student_pred=torch.zeros(B, h, w, dtype=torch.long))
    bank.push(**bank_entries(features, anchors))
    assert torch.equal(bank.count, torch.tensor([0, 4, 0]))


def test_ignore_index_inside_the_classes_is_rejected():
    with pytest.raises(ValueError, match="never form a class"):
        PixelContrastLoss(num_classes=C, tau=0.1, anchors_per_class=4, hard_ratio=0.5, ignore_index=1)


def test_hard_anchors_are_the_pixels_student_pred_gets_wrong():
    cells = torch.zeros(B, h, w, dtype=torch.long)  # one class, 72 cells
    student_pred = cells.clone()
    wrong = torch.zeros(B, h, w, dtype=torch.bool)
    wrong[1, 2:4, 1:4] = True  # 6 misclassified cells
    student_pred[wrong] = 2
    loss_fn = PixelContrastLoss(num_classes=C, tau=0.1, anchors_per_class=8, hard_ratio=0.5)
    sample = loss_fn.select_anchors(labels=cells, student_pred=student_pred, generator=torch.Generator().manual_seed(0))
    picked_wrong = wrong.reshape(-1)[sample.index]
    assert int((sample.valid & picked_wrong).sum()) == 4  # hard share of 8 anchors
    assert torch.equal(picked_wrong[sample.valid], sample.hard[sample.valid])


def test_gradient_reaches_the_backbone():
    torch.manual_seed(0)
    backbone = nn.Conv2d(3, 8, kernel_size=STRIDE, stride=STRIDE)
    head = ProjectionHead(in_channels=8, proj_dim=D)
    classifier = nn.Conv2d(8, C, 1)
    image = torch.randn(B, 3, h * STRIDE, w * STRIDE)
    feat = backbone(image)
    bank = _prefilled_bank(0)
    loss_fn = PixelContrastLoss(num_classes=C, tau=0.1, anchors_per_class=4, hard_ratio=0.5, bank=bank)
    loss = loss_fn(features=head(feat), labels=_full_res(_cell_labels(0)),
                   student_pred=classifier(feat).argmax(1))
    loss.backward()
    assert loss.item() > 0
    assert backbone.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters() if p.ndim > 1)


def test_misaligned_inputs_raise():
    loss_fn = PixelContrastLoss(num_classes=C, tau=0.1, anchors_per_class=4, hard_ratio=0.5,
                                bank=ClassMemoryBank(num_classes=C, size=5, dim=D))
    features = torch.randn(B, D, h, w)
    pred = torch.zeros(B, h, w, dtype=torch.long)
    with pytest.raises(ValueError, match="same region"):
        loss_fn(features=features, labels=torch.zeros(B, 48, 24, dtype=torch.long), student_pred=pred)
    with pytest.raises(ValueError, match="student_pred"):
        loss_fn(features=features, labels=_full_res(_cell_labels(0)), student_pred=pred[:, :3])
    with pytest.raises(ValueError, match="teacher_features"):
        bank_entries(features[0], loss_fn.select_anchors(labels=_cell_labels(0), student_pred=pred))
