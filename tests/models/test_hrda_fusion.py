"""HRDA scale attention and fusion: the formula, forced attention, masking to the detail crop, gradients."""
import pytest
import torch
import torch.nn.functional as F

from pipa_video.models.hrda import Box, HRDASettings, ScaleAttentionHead, fuse_scales

from _hrda_toys import cell_hrda, mit_hrda

C = 5


def _hrda_head_formula(lr_seg, hr_seg, att, crop_box):
    """A direct transcription of lhoyer/HRDA HRDAHead.forward (os=4, scales [0.5, 1]), box in input px."""
    y1, y2, x1, x2 = crop_box
    mask = lr_seg.new_zeros([lr_seg.shape[0], 1, *lr_seg.shape[2:]])
    mask[:, :, y1 // 8:y2 // 8, x1 // 8:x2 // 8] = 1
    att = att * mask
    lr_seg = (1 - att) * lr_seg
    up_lr_seg = F.interpolate(lr_seg, scale_factor=2, mode="bilinear", align_corners=False)
    att = F.interpolate(att, scale_factor=2, mode="bilinear", align_corners=False)
    hr_seg_inserted = torch.zeros_like(up_lr_seg)
    hr_seg_inserted[:, :, y1 // 4:y2 // 4, x1 // 4:x2 // 4] = hr_seg
    return att * hr_seg_inserted + up_lr_seg


def test_fusion_matches_hrda_head_forward():
    torch.manual_seed(0)
    box = Box(top=16, left=40, height=32, width=48)  # input pixels of a 64x96 input
    lr, hr, att = torch.randn(2, C, 8, 12), torch.randn(2, C, 8, 12), torch.rand(2, C, 8, 12)
    fused, masked = fuse_scales(context_logits=lr, detail_logits=hr, attention=att, ratio=2,
                                detail_cells=box.scaled_down(4), context_cells=box.scaled_down(8))
    torch.testing.assert_close(fused, _hrda_head_formula(lr, hr, att, (16, 48, 40, 88)))
    assert (masked[..., :2, :] == 0).all() and (masked[..., 6:, :] == 0).all()
    torch.testing.assert_close(masked[..., 2:6, 5:11], att[..., 2:6, 5:11])


@torch.no_grad()
def test_attention_zero_gives_the_context_and_one_the_detail_prediction_at_inference():
    torch.manual_seed(0)
    lr, hr = torch.randn(2, C, 8, 12), torch.randn(2, C, 16, 24)
    up_lr = F.interpolate(lr, size=(16, 24), mode="bilinear", align_corners=False)
    for value, expected in ((0.0, up_lr), (1.0, hr)):
        fused, _ = fuse_scales(context_logits=lr, detail_logits=hr, attention=torch.full((2, 1, 8, 12), value),
                               ratio=2, detail_cells=None, context_cells=None)
        torch.testing.assert_close(fused, expected)


@torch.no_grad()
@pytest.mark.parametrize("value", [0.0, 1.0])
def test_forced_attention_in_the_model(value):
    model = cell_hrda(fixed_attention=value).eval()
    assert model.scale_attention is None
    img = torch.randn(2, 3, 64, 96)
    box = Box(top=16, left=40, height=32, width=48)
    out = model(img, detail_box=box)
    up_context = F.interpolate(out.context.output.logits, size=(16, 24), mode="bilinear", align_corners=False)
    if value == 0.0:
        torch.testing.assert_close(out.logits, up_context)
        torch.testing.assert_close(model.predict(img), F.interpolate(
            model.single_scale(model.context_image(img)).logits, size=(16, 24), mode="bilinear", align_corners=False))
        return
    # Attention 1 inside the crop: detail inside (away from the bilinear seam of the mask), context outside.
    cells = box.scaled_down(4)
    inner = out.logits[..., cells.top + 1:cells.bottom - 1, cells.left + 1:cells.right - 1]
    torch.testing.assert_close(inner, out.detail.output.logits[..., 1:-1, 1:-1])
    torch.testing.assert_close(out.logits[..., :cells.top - 1, :], up_context[..., :cells.top - 1, :])
    torch.testing.assert_close(out.logits[..., :, cells.right + 1:], up_context[..., :, cells.right + 1:])
    # at inference the detail slide covers everything: the fused prediction is the detail prediction
    torch.testing.assert_close(model.predict(img), model.detail_slide(img))


def test_scale_attention_head_shapes():
    head = ScaleAttentionHead(in_channels=[16, 32, 64, 128], num_classes=C, channels=8)
    feats = [torch.randn(2, c, 16 // 2 ** i, 16 // 2 ** i) for i, c in enumerate([16, 32, 64, 128])]
    assert head(feats).shape == (2, C, 16, 16)
    single = ScaleAttentionHead(in_channels=[16, 32, 64, 128], num_classes=C, classwise=False)
    assert single(feats).shape == (2, 1, 16, 16)


def test_gradients_reach_the_scale_attention_backbone_and_head():
    model = mit_hrda().train()
    img = torch.randn(2, 3, 64, 64)
    out = model(img, return_features=True)
    label = torch.randint(0, C, (2, 64, 64))
    loss = F.cross_entropy(F.interpolate(out.logits, size=(64, 64), mode="bilinear"), label)
    loss.backward()
    assert model.scale_attention.conv_seg.weight.grad.abs().sum() > 0
    assert model.scale_attention.embed_layers[0].proj.weight.grad.abs().sum() > 0
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.decode_head.conv_seg.weight.grad.abs().sum() > 0


def test_settings_are_checked():
    with pytest.raises(ValueError, match="multiple of 8"):
        cell_hrda(crop_divisible=4)
    with pytest.raises(ValueError, match="detail_crop"):
        cell_hrda(detail_crop=(36, 32))
    with pytest.raises(ValueError, match="context_scale"):
        HRDASettings(context_scale=1.0)
    with pytest.raises(ValueError, match="fixed_attention"):
        HRDASettings(fixed_attention=2.0)
