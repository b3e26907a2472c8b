"""HRDA segmentor: training outputs and their grids, aligned labels, detail-slide pseudo-labels,
test-time slide inference, parameters and a MiT smoke test."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipa_video.evaluation.inference import predict_logits, slide_inference
from pipa_video.models.heads import DAFormerHead, SegFormerHead
from pipa_video.models.hrda import Box, HRDASegmentor, slide_logits
from pipa_video.models.segmentor import Segmentor

from _hrda_toys import cell_hrda, mit_hrda

C = 5


def _cell_label(b, h, w, cell, seed=0):
    """Labels constant on aligned cell x cell blocks (so a cell's mean colour is its label)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.randint(0, C, (b, h // cell, w // cell), generator=g)
    return small.repeat_interleave(cell, 1).repeat_interleave(cell, 2)


@torch.no_grad()
def test_output_shapes_and_grids():
    model = mit_hrda().eval()
    box = Box(top=16, left=32, height=32, width=32)
    out = model(torch.randn(2, 3, 64, 96), detail_box=box, return_features=True)
    assert out.logits.shape == (2, C, 16, 24) and out.grid.shape == (16, 24) and out.grid.stride == 4
    assert out.context.output.logits.shape == (2, C, 8, 12) and out.context.grid.stride == 8
    assert out.context.grid.region == Box(0, 0, 64, 96)
    assert out.detail.output.logits.shape == (2, C, 8, 8) and out.detail.grid.region == box == out.detail_box
    assert out.detail.output.features.shape == (2, model.feature_channels, 8, 8)
    assert out.context.output.features.shape == (2, model.feature_channels, 8, 12)
    assert out.context.output.backbone_features[-1].shape[-2:] == (1, 2)  # half-resolution input, stride 32
    assert out.attention.shape == (2, C, 8, 12)
    assert model(torch.randn(2, 3, 64, 96), detail_box=box).detail.output.features is None


def test_contrast_labels_come_from_the_same_crop_and_stride_as_the_features():
    """Defect 2 of PiPa's public code: labels of the full image for features of a crop."""
    model = cell_hrda(identity=True).eval()  # features = mean colour of each cell
    label = _cell_label(2, 64, 96, cell=8)
    img = label[:, None].float().expand(-1, 3, -1, -1).contiguous()  # the image's colour is its label
    box = Box(top=24, left=40, height=32, width=32)
    with torch.no_grad():
        out = model(img, detail_box=box, return_features=True)
    for view in (out.detail, out.context):
        assert torch.equal(view.output.features[:, 0], view.grid.sample(label).float())
    # PiPa's way: the full label shrunk to the crop's feature size does not line up
    wrong = F.interpolate(label[:, None].float(), size=out.detail.grid.shape, mode="nearest")[:, 0]
    assert (wrong != out.detail.output.features[:, 0]).float().mean() > 0.5


def test_detail_loss_targets_are_cut_from_the_detail_box():
    model = cell_hrda(identity=True).eval()
    label = _cell_label(1, 64, 96, cell=4, seed=1)
    img = label[:, None].float().expand(-1, 3, -1, -1).contiguous()
    out = model(img, detail_box=Box(8, 16, 32, 32))
    target = out.detail.grid.crop(label)
    assert target.shape == (1, 32, 32)
    up = F.interpolate(model.single_scale(out.detail.grid.crop(img), return_features=True).features,
                       size=(32, 32), mode="nearest")[:, 0]
    assert torch.equal(up, target.float())


@torch.no_grad()
@pytest.mark.parametrize("size", [(64, 96), (96, 64), (32, 40)])
def test_detail_slide_equals_whole_image_detail_for_a_model_that_fits_in_the_window(size):
    model = cell_hrda().eval()  # receptive field: one 4x4 cell, windows 32x32 every 16 px
    img = torch.randn(2, 3, *size)
    torch.testing.assert_close(model.detail_slide(img), model.single_scale(img).logits)
    whole = cell_hrda(detail_slide=False).eval()
    torch.testing.assert_close(model.predict(img), whole.predict(img))


@torch.no_grad()
def test_detail_slide_differs_for_a_model_that_sees_beyond_the_window():
    model = mit_hrda().eval()
    img = torch.randn(1, 3, 64, 96)
    assert not torch.allclose(model.detail_slide(img), model.single_scale(img).logits, atol=1e-3)


@torch.no_grad()
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("size", [(90, 70), (64, 64), (30, 100)])  # not multiples of the stride; smaller than a window
def test_test_time_slide_equals_whole_for_a_pointwise_model(size, batched):
    torch.manual_seed(0)
    pointwise = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, C, 1)).eval()
    img = torch.randn(2, 3, *size)
    out = slide_logits(pointwise, img, window=(64, 64), stride=(32, 32), batched=batched)
    torch.testing.assert_close(out, pointwise(img))


@torch.no_grad()
def test_test_time_slide_averages_like_the_evaluation_slide():
    torch.manual_seed(0)
    context = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, C, 1)).eval()
    img = torch.randn(2, 3, 90, 70)
    torch.testing.assert_close(slide_logits(context, img, window=(64, 64), stride=(32, 32)),
                               slide_inference(context, img, window=(64, 64), stride=(32, 32)))


@torch.no_grad()
def test_inference_is_predict_on_each_window_of_the_test_slide():
    model = mit_hrda().eval()
    img = torch.randn(1, 3, 72, 96)  # 2 x 2 windows of 64, the last row shifted back to end at the border
    expected = slide_inference(model.window_logits, img, window=(64, 64), stride=(32, 32))
    torch.testing.assert_close(model.inference(img), expected)
    small = torch.randn(1, 3, 64, 64)  # one window: the upsampled pseudo-label prediction
    torch.testing.assert_close(model.inference(small), F.interpolate(model.predict(small), size=(64, 64),
                                                                     mode="bilinear", align_corners=False))


@torch.no_grad()
def test_inference_takes_any_size_through_the_evaluation_interface():
    model = mit_hrda().eval()
    img = torch.randn(2, 3, 60, 71)  # smaller than the window, not a multiple of 8
    logits = model.inference(img)
    assert logits.shape == (2, C, 60, 71) and torch.isfinite(logits).all()
    labels = predict_logits(model.inference, img, mode="whole", out_size=(120, 142)).argmax(1)
    assert labels.shape == (2, 120, 142)
    with pytest.raises(ValueError, match="multiple of 8"):
        model.predict(img)


def test_misaligned_boxes_and_inputs_are_refused():
    model = cell_hrda()
    with pytest.raises(ValueError, match="not aligned to 8"):
        model(torch.randn(1, 3, 64, 96), detail_box=Box(4, 0, 32, 32))
    with pytest.raises(ValueError, match="leaves"):
        model(torch.randn(1, 3, 64, 96), detail_box=Box(48, 0, 32, 32))
    with pytest.raises(ValueError, match="must be a multiple of 8"):
        model(torch.randn(1, 3, 60, 96))


@pytest.mark.parametrize("head_cls", [DAFormerHead, SegFormerHead])
def test_mit_demo_forward_backward_smoke(head_cls):
    model = mit_hrda(head_cls=head_cls).train()
    img, label = torch.randn(2, 3, 64, 64), torch.randint(0, C, (2, 64, 64))
    out = model(img, return_features=True)
    fused = F.cross_entropy(F.interpolate(out.logits, size=(64, 64), mode="bilinear"), label)
    detail = F.cross_entropy(F.interpolate(out.detail.output.logits, size=out.detail_box.height, mode="bilinear"),
                             out.detail.grid.crop(label))
    (0.9 * fused + 0.1 * detail + out.detail.output.features.pow(2).mean()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    model.eval()
    with torch.no_grad():
        assert model.predict(img).shape == (2, C, 16, 16)


def test_param_groups_and_state_dict():
    model = mit_hrda()
    groups = model.param_groups()
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    assert {id(p) for p in model.scale_attention.parameters()} <= {id(p) for p in groups["head"]}
    plain = Segmentor(backbone=model.backbone, decode_head=model.decode_head, num_classes=C)
    wrapped = HRDASegmentor.from_segmentor(plain, settings=model.settings)
    assert wrapped.backbone is plain.backbone and wrapped.decode_head is plain.decode_head
    extra = set(wrapped.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith("scale_attention.") for k in extra)
