"""Segmentation loss of plain and HRDA outputs: HRDA's 0.9 fused + 0.1 detail on the detail crop."""
import pytest
import torch
import torch.nn.functional as F

from pipa_video.models.hrda import Box, FeatureGrid, HRDAOutput, ScaleView
from pipa_video.models.segmentor import SegOutput
from pipa_video.uda.hrda_loss import segmentation_loss, weighted_ce

C = 4


def _ce(logits, label, weight=None):
    up = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=False)
    pixel = F.cross_entropy(up, label, ignore_index=255, reduction="none")
    if weight is None:
        return pixel.sum() / (label != 255).sum()
    return (pixel * weight).sum() / label.numel()


def _hrda_output(box):
    torch.manual_seed(0)
    context = ScaleView(SegOutput(logits=torch.randn(2, C, 8, 12)), FeatureGrid(Box(0, 0, 64, 96), 8))
    detail = ScaleView(SegOutput(logits=torch.randn(2, C, box.height // 4, box.width // 4)), FeatureGrid(box, 4))
    return HRDAOutput(logits=torch.randn(2, C, 16, 24), context=context, detail=detail,
                      attention=torch.rand(2, C, 8, 12))


def _targets():
    torch.manual_seed(1)
    label, weight = torch.randint(0, C, (2, 64, 96)), torch.rand(2, 64, 96)
    label[:, :6] = 255
    return label, weight


def test_weighted_ce_normalises_like_daformer():
    label, weight = _targets()
    logits = torch.randn(2, C, 16, 24)
    torch.testing.assert_close(weighted_ce(logits, label), _ce(logits, label))
    torch.testing.assert_close(weighted_ce(logits, label, weight), _ce(logits, label, weight))


def test_plain_output_has_no_detail_term():
    label, weight = _targets()
    loss = segmentation_loss(SegOutput(logits=torch.randn(2, C, 16, 24)), label, weight)
    assert loss.detail is None and loss.total is loss.main and list(loss.named("src")) == ["loss_src"]


@pytest.mark.parametrize("with_weight", [True, False])
def test_hrda_detail_term_uses_label_and_weight_cut_to_the_detail_box(with_weight):
    box = Box(top=16, left=40, height=32, width=48)
    out = _hrda_output(box)
    label, weight = _targets()
    weight = weight if with_weight else None
    loss = segmentation_loss(out, label, weight)
    cut = (lambda t: None if t is None else t[:, 16:48, 40:88])
    torch.testing.assert_close(loss.main, _ce(out.logits, label, weight))
    torch.testing.assert_close(loss.detail, _ce(out.detail.output.logits, cut(label), cut(weight)))
    torch.testing.assert_close(loss.total, 0.9 * loss.main + 0.1 * loss.detail)
    assert set(loss.named("mix")) == {"loss_mix", "loss_mix_detail"}


def test_the_step_cross_entropy_can_be_passed_in():
    calls = []
    ce = lambda logits, label, weight: calls.append(tuple(label.shape)) or logits.sum()  # noqa: E731
    segmentation_loss(_hrda_output(Box(0, 0, 32, 32)), *_targets(), ce=ce)
    assert calls == [(2, 64, 96), (2, 32, 32)]


def test_detail_weight_is_checked():
    with pytest.raises(ValueError, match="detail loss weight"):
        segmentation_loss(_hrda_output(Box(0, 0, 32, 32)), *_targets(), detail_weight=1.0)
