"""Patch contrast: the formula over corresponding cells, no false negatives, gradients through both crops."""
import pytest
import torch
from torch import nn

from pipa_video.models.projection import ProjectionHead
from pipa_video.uda.contrast.crops import CropBox, CropPair, apply_crop, overlap_correspondence
from pipa_video.uda.contrast.patch import PatchContrastLoss
from test_contrast_infonce import slow_infonce

B, D, C, STRIDE = 2, 5, 3, 4
IMAGE_HW = (40, 48)
PAIR = CropPair(box1=CropBox(0, 8, 32, 32), box2=CropBox(8, 0, 32, 32), flip1=False, flip2=True)
FEAT_HW = (8, 8)


def _pseudo(seed):
    """Full-image pseudo-labels constant per stride cell, a few cells ignored."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, C, (B, IMAGE_HW[0] // STRIDE, IMAGE_HW[1] // STRIDE), generator=g)
    cells[torch.rand(cells.shape, generator=g) < 0.15] = 255
    return cells.repeat_interleave(STRIDE, 1).repeat_interleave(STRIDE, 2)


def _reference(feat1, feat2, pseudo1, pseudo2, corr, sample, tau):
    """Anchors: sampled cells of both crops. Positive: the other crop's cell at the same image place.
    Negatives: every other sampled cell (either crop, any image) with a different pseudo-label."""
    hw = FEAT_HW[0] * FEAT_HW[1]
    cells = []  # (crop, pair id, embedding, label)
    for slot in range(sample.index.shape[0]):
        if not sample.valid[slot]:
            continue
        b, j = divmod(int(sample.index[slot]), hw)
        assert corr.valid[j]
        for crop, feat, pseudo, pos in ((1, feat1, pseudo1, j), (2, feat2, pseudo2, int(corr.idx2[j]))):
            y, x = divmod(pos, FEAT_HW[1])
            label = int(pseudo[b, y * STRIDE, x * STRIDE])
            assert label != 255
            cells.append((crop, slot, feat[b, :, y, x], label))
    positives = [{k for k, other in enumerate(cells) if other[1] == a[1] and other[0] != a[0]} for a in cells]
    negatives = [{k for k, other in enumerate(cells) if other[3] != a[3]} for a in cells]
    embeddings = [c[2] for c in cells]
    return slow_infonce(embeddings, embeddings, positives, negatives, tau)


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    feat1 = torch.randn(B, D, *FEAT_HW, generator=g)
    feat2 = torch.randn(B, D, *FEAT_HW, generator=g)
    pseudo = _pseudo(seed)
    pseudo1 = apply_crop(pseudo, box=PAIR.box1, flip=PAIR.flip1)
    pseudo2 = apply_crop(pseudo, box=PAIR.box2, flip=PAIR.flip2)
    return feat1, feat2, pseudo1, pseudo2


@pytest.mark.parametrize("num_anchors", [6, 1000])
def test_matches_formula(num_anchors):
    feat1, feat2, pseudo1, pseudo2 = _inputs(0)
    corr = overlap_correspondence(PAIR, stride=STRIDE, feat_hw=FEAT_HW)
    loss_fn = PatchContrastLoss(tau=0.1, num_anchors=num_anchors)
    small1, small2 = pseudo1[:, ::STRIDE, ::STRIDE], pseudo2[:, ::STRIDE, ::STRIDE]
    _, _, valid = loss_fn.candidate_positions(batch_size=B, pseudo1=small1, pseudo2=small2, correspondence=corr)
    sample = loss_fn.select_anchors(valid=valid, generator=torch.Generator().manual_seed(1))
    want = _reference(feat1, feat2, pseudo1, pseudo2, corr, sample, tau=0.1)
    got = loss_fn(feat1=feat1, feat2=feat2, pseudo1=pseudo1, pseudo2=pseudo2, correspondence=corr,
                  generator=torch.Generator().manual_seed(1))
    assert int(sample.valid.sum()) == min(num_anchors, int(valid.sum()))
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_same_label_cells_are_not_negatives():
    """All cells share one pseudo-label: nothing is pushed away and the loss is exactly 0."""
    feat1, feat2, _, _ = _inputs(1)
    one_class = torch.zeros(B, *FEAT_HW, dtype=torch.long)
    corr = overlap_correspondence(PAIR, stride=STRIDE, feat_hw=FEAT_HW)
    loss = PatchContrastLoss(tau=0.1, num_anchors=64)(feat1=feat1, feat2=feat2, pseudo1=one_class,
                                                      pseudo2=one_class, correspondence=corr)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_fully_ignored_pseudo_labels_give_zero_not_nan():
    feat1 = torch.randn(B, D, *FEAT_HW, requires_grad=True)
    ignored = torch.full((B, *FEAT_HW), 255)
    corr = overlap_correspondence(PAIR, stride=STRIDE, feat_hw=FEAT_HW)
    loss = PatchContrastLoss(tau=0.1, num_anchors=16)(feat1=feat1, feat2=torch.randn(B, D, *FEAT_HW),
                                                      pseudo1=ignored, pseudo2=ignored, correspondence=corr)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(feat1.grad).all()


def test_gradient_reaches_the_student_through_both_crops():
    """PiPa defect 1: the patch loss must train the segmentation network, via both crops."""
    torch.manual_seed(0)
    backbone = nn.Conv2d(3, 8, kernel_size=STRIDE, stride=STRIDE)
    head = ProjectionHead(in_channels=8, proj_dim=D)
    image = torch.randn(B, 3, *IMAGE_HW)
    crops = [apply_crop(image, box=PAIR.box1, flip=PAIR.flip1), apply_crop(image, box=PAIR.box2, flip=PAIR.flip2)]
    feats = [head(backbone(c)) for c in crops]
    for f in feats:
        f.retain_grad()
    pseudo = _pseudo(2)
    loss = PatchContrastLoss(tau=0.1, num_anchors=64)(
        feat1=feats[0], feat2=feats[1], pseudo1=apply_crop(pseudo, box=PAIR.box1, flip=PAIR.flip1),
        pseudo2=apply_crop(pseudo, box=PAIR.box2, flip=PAIR.flip2),
        correspondence=overlap_correspondence(PAIR, stride=STRIDE, feat_hw=FEAT_HW))
    loss.backward()
    assert loss.item() > 0
    assert backbone.weight.grad.abs().sum() > 0
    assert feats[0].grad.abs().sum() > 0 and feats[1].grad.abs().sum() > 0


def test_grid_mismatch_raises():
    feat = torch.randn(B, D, *FEAT_HW)
    labels = torch.zeros(B, *FEAT_HW, dtype=torch.long)
    corr = overlap_correspondence(CropPair(CropBox(0, 0, 16, 16), CropBox(4, 4, 16, 16), False, False),
                                  stride=STRIDE, feat_hw=(4, 4))
    with pytest.raises(ValueError, match="correspondence covers"):
        PatchContrastLoss(tau=0.1, num_anchors=8)(feat1=feat, feat2=feat, pseudo1=labels, pseudo2=labels,
                                                  correspondence=corr)
    with pytest.raises(ValueError, match="feat1 and feat2"):
        PatchContrastLoss(tau=0.1, num_anchors=8)(feat1=feat, feat2=feat[:1], pseudo1=labels, pseudo2=labels,
                                                  correspondence=corr)
