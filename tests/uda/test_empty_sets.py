"""Every loss over an empty set contributes exactly 0 (never NaN), with finite gradients, on every term.

A VIPER crop inside the masked ego vehicle holds only ignore (255) pixels: the source cross-entropy,
the feature distance and the source pixel contrast then have nothing to average over. The same holds
for target terms with no confident pixel, no stable location or no valid overlap cell."""
import copy

import pytest
import torch

from pipa_video.uda.build import build_method
from pipa_video.uda.contrast.crops import CropBox, CropPair, overlap_correspondence
from pipa_video.uda.contrast.memory_bank import ClassMemoryBank
from pipa_video.uda.contrast.patch import PatchContrastLoss
from pipa_video.uda.contrast.pixel import PixelContrastLoss, bank_entries
from pipa_video.uda.contrast.temporal import TemporalContrastLoss
from pipa_video.uda.feature_distance import FeatureDistanceLoss
from pipa_video.uda.hrda_loss import cross_entropy
from pipa_video.uda.terms import FeatureDistanceTerm
from test_step import NUM_CLASSES, _cfg, _clips

B, D, H, W = 2, 8, 8, 8


def _feat(seed=0):
    return torch.randn(B, D, H, W, generator=torch.Generator().manual_seed(seed), requires_grad=True)


def _exact_zero_with_finite_grad(loss, *leaves):
    assert loss.ndim == 0 and loss.item() == 0.0, loss
    loss.backward()
    for leaf in leaves:
        assert leaf.grad is None or (torch.isfinite(leaf.grad).all() and not leaf.grad.any())


def test_cross_entropy_over_an_all_ignore_crop_is_zero():
    logits = torch.randn(B, NUM_CLASSES, H, W, requires_grad=True)
    label = torch.full((B, 4 * H, 4 * W), 255)
    _exact_zero_with_finite_grad(cross_entropy(logits, label), logits)


def test_feature_distance_without_thing_class_cells_is_zero():
    loss_fn = FeatureDistanceLoss(class_ids=[11, 12], num_classes=NUM_CLASSES, scale_min_ratio=0.75)
    student = _feat()
    for label in (torch.full((B, 4 * H, 4 * W), 255), torch.zeros(B, 4 * H, 4 * W, dtype=torch.long)):
        student.grad = None
        _exact_zero_with_finite_grad(loss_fn(student_feat=student, imagenet_feat=_feat(1), label=label), student)


def test_pixel_contrast_over_all_ignore_labels_is_zero_and_banks_nothing():
    bank = ClassMemoryBank(num_classes=NUM_CLASSES, size=4, dim=D)
    for with_bank in (None, bank):
        loss_fn = PixelContrastLoss(num_classes=NUM_CLASSES, tau=0.1, anchors_per_class=4, hard_ratio=0.5,
                                    bank=with_bank)
        feat = _feat()
        loss = loss_fn(features=feat, labels=torch.full((B, 4 * H, 4 * W), 255),
                       student_pred=torch.zeros(B, H, W, dtype=torch.long))
        _exact_zero_with_finite_grad(loss, feat)
        _, anchors = loss_fn.loss_and_anchors(features=_feat(), labels=torch.full((B, 4 * H, 4 * W), 255),
                                              student_pred=torch.zeros(B, H, W, dtype=torch.long))
        bank.push(**bank_entries(_feat(1), anchors))  # what the pixel term pushes after the backward
    assert int(bank.count.sum()) == 0


def test_patch_contrast_without_a_labelled_overlap_cell_is_zero():
    pair = CropPair(box1=CropBox(0, 0, 4 * H, 4 * W), box2=CropBox(0, 0, 4 * H, 4 * W), flip1=False, flip2=False)
    corr = overlap_correspondence(pair, stride=4, feat_hw=(H, W))
    ignore = torch.full((B, H, W), 255)
    loss_fn = PatchContrastLoss(tau=0.1, num_anchors=16)
    feat1, feat2 = _feat(), _feat(1)
    loss = loss_fn(feat1=feat1, feat2=feat2, pseudo1=ignore, pseudo2=ignore, correspondence=corr)
    _exact_zero_with_finite_grad(loss, feat1, feat2)


def test_temporal_contrast_without_a_stable_location_is_zero():
    loss_fn = TemporalContrastLoss(tau=0.1, num_anchors=16, confidence=0.9)
    uniform = torch.full((B, NUM_CLASSES, H, W), 1.0 / NUM_CLASSES)  # never confident
    confident = torch.zeros(B, NUM_CLASSES, H, W)
    confident[:, 3] = 1.0
    for key_prob, mask in ((uniform, None), (confident, torch.zeros(B, H, W, dtype=torch.bool))):
        key_feat = _feat()
        loss = loss_fn(key_feat=key_feat, ref_feat=_feat(1), key_prob=key_prob, ref_prob=key_prob, valid_mask=mask)
        _exact_zero_with_finite_grad(loss, key_feat)


def _pipa_with_every_term(**uda):
    """PiPa++ with every term on: pixel (source and target), patch, temporal and the feature distance
    (its frozen 'ImageNet' backbone here is a copy of the random one: the term needs no weights to run)."""
    torch.manual_seed(0)
    method = build_method(_cfg(contrast_weight=0.1, pixel_contrast={"use_target": True}, **uda))
    loss = FeatureDistanceLoss(class_ids=[11, 12, 13], num_classes=NUM_CLASSES, scale_min_ratio=0.75)
    imagenet = copy.deepcopy(method.student.segmentor.backbone)
    method.terms.insert(0, FeatureDistanceTerm(loss=loss, weight=0.005, imagenet_backbone=imagenet))  # TERMS order
    return method


def _all_ignore(clips):
    clips["label"][:] = 255
    return clips


@pytest.mark.parametrize("classmix_classes", ["image", "batch"])
def test_pipa_step_on_an_all_ignore_source_batch_is_finite_and_its_source_terms_are_zero(classmix_classes):
    method = _pipa_with_every_term(classmix_classes=classmix_classes)
    losses = method.train_step(_all_ignore(_clips()), _clips(seed=1), iteration=0)
    assert {"loss_src", "loss_fd", "loss_pixel_src", "loss_mix", "loss_temporal", "loss_pixel_tgt",
            "loss_patch"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    assert losses["loss_src"] == losses["loss_fd"] == losses["loss_pixel_src"] == 0.0
    if classmix_classes == "image":  # 255 is never pasted: the target still teaches
        assert losses["loss_mix"] > 0 and losses["loss_temporal"] > 0
    else:  # DAFormer pastes the batch's classes, 255 included: an all-255 source covers the whole image
        assert losses["loss_mix"] == losses["loss_temporal"] == 0.0
    grads = [p.grad for p in method.student.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_pipa_step_with_nothing_to_learn_from_is_all_zeros_not_nan():
    """All-ignore source and a target where no pixel is confident: every term but the patch contrast
    (which contrasts pseudo-label classes whatever their confidence) has an empty set."""
    method = _pipa_with_every_term(pseudo_threshold=1.0)
    method.term("temporal_contrast").loss.confidence = 1.01  # no location can be stable
    losses = method.train_step(_all_ignore(_clips()), _clips(seed=1), iteration=0)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    for term in ("loss_src", "loss_fd", "loss_pixel_src", "loss_mix", "loss_temporal", "loss_pixel_tgt"):
        assert losses[term] == 0.0, (term, losses)
    assert all(torch.isfinite(p.grad).all() for p in method.student.parameters() if p.grad is not None)
