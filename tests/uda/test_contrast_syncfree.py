"""The contrast losses never read device data on the host, and run at realistic sizes.

Tensors on the ``meta`` device have shapes but no values: ``.item()``, ``.cpu()``, ``.tolist()``,
``bool(t)``, ``nonzero`` and boolean-mask indexing all raise there. A forward and backward pass of
every loss (memory-bank push included) on meta tensors therefore proves that none of them syncs a
GPU stream or creates data-dependent shapes, at the sizes of a real run (B=2, D=256, 128x128
features, 19 classes, bank 200 per class), at no cost.
"""
import torch

from pipa_video.models.projection import ProjectionHead
from pipa_video.uda.contrast import (ClassMemoryBank, PatchContrastLoss, PixelContrastLoss, TemporalContrastLoss,
                                     bank_entries,
                                     overlap_correspondence, sample_crop_pair)

META = torch.device("meta")
B, D, C, HW = 2, 256, 19, (128, 128)


def test_pixel_contrast_with_bank_is_sync_free():
    bank = ClassMemoryBank(num_classes=C, size=200, dim=D).to(META)
    loss_fn = PixelContrastLoss(num_classes=C, tau=0.1, anchors_per_class=64, hard_ratio=0.5, bank=bank)
    features = torch.randn(B, D, *HW, device=META, requires_grad=True)
    for _ in range(2):  # the second call reads what the first pushed
        loss, anchors = loss_fn.loss_and_anchors(features=features,
                                                 labels=torch.randint(0, C, (B, 512, 512), device=META),
                                                 student_pred=torch.randint(0, C, (B, *HW), device=META))
        loss.backward()
        bank.push(**bank_entries(features, anchors))
    assert loss.shape == () and features.grad.shape == features.shape


def test_patch_contrast_is_sync_free():
    pair = sample_crop_pair(image_hw=(512, 512), crop_hw=(384, 384), iou_range=(0.1, 1.0), flip_prob=0.5, align=4)
    corr = overlap_correspondence(pair, stride=4, feat_hw=(96, 96), device=META)
    feat1 = torch.randn(B, D, 96, 96, device=META, requires_grad=True)
    feat2 = torch.randn(B, D, 96, 96, device=META, requires_grad=True)
    labels = torch.randint(0, C, (B, 384, 384), device=META)
    loss = PatchContrastLoss(tau=0.1, num_anchors=1024)(feat1=feat1, feat2=feat2, pseudo1=labels, pseudo2=labels,
                                                        correspondence=corr)
    loss.backward()
    assert feat1.grad.shape == feat1.shape and feat2.grad.shape == feat2.shape


def test_temporal_contrast_is_sync_free():
    key_feat = torch.randn(B, D, *HW, device=META, requires_grad=True)
    prob = torch.rand(B, C, *HW, device=META)
    loss = TemporalContrastLoss(tau=0.1, num_anchors=1024, confidence=0.968)(
        key_feat=key_feat, ref_feat=torch.randn(B, D, *HW, device=META), key_prob=prob, ref_prob=prob,
        valid_mask=torch.ones(B, *HW, dtype=torch.bool, device=META))
    loss.backward()
    assert key_feat.grad.shape == key_feat.shape


def test_meta_device_does_catch_host_reads():
    """Guard for the tests above: the meta device really refuses the operations that sync."""
    x = torch.randn(4, device=META)
    for op in (lambda: x.sum().item(), lambda: x[x > 0], lambda: x.nonzero(), lambda: bool(x[0] > 0)):
        try:
            op()
        except (RuntimeError, NotImplementedError):
            continue
        raise AssertionError("meta tensors allowed a host read")


def test_projection_head_gives_unit_vectors():
    head = ProjectionHead(in_channels=8, proj_dim=D)
    out = head(torch.randn(B, 8, 5, 7))
    assert out.shape == (B, D, 5, 7)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(B, 5, 7))
