"""Whole / sliding-window inference, flip and multi-scale averaging, output size."""
import pytest
import torch
from torch import nn

from pipa_video.evaluation.inference import predict_labels, predict_logits, slide_windows

NUM_CLASSES = 4


@pytest.fixture
def context_model():
    """Sees a 5x5 neighbourhood (zero padding): NOT translation-equivariant at window borders."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, NUM_CLASSES, 1)).eval()


@pytest.fixture
def pointwise_model():
    """1x1 convolutions: each pixel on its own, so equivariant to translation, cropping and flips."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, NUM_CLASSES, 1)).eval()


@pytest.fixture
def img():
    torch.manual_seed(2)
    return torch.randn(2, 3, 21, 34)


@torch.no_grad()
def test_slide_with_window_covering_the_image_equals_whole(context_model, img):
    whole = predict_logits(context_model, img, mode="whole")
    slide = predict_logits(context_model, img, mode="slide", window=(32, 40), stride=(8, 8))
    torch.testing.assert_close(slide, whole)


@torch.no_grad()
def test_slide_on_pointwise_model_equals_whole(pointwise_model, context_model, img):
    kwargs = dict(mode="slide", window=(10, 16), stride=(6, 7))
    torch.testing.assert_close(predict_logits(pointwise_model, img, **kwargs),
                               predict_logits(pointwise_model, img, mode="whole"))
    # The same windows do change a model with spatial context (the test could fail).
    assert not torch.allclose(predict_logits(context_model, img, **kwargs),
                              predict_logits(context_model, img, mode="whole"), atol=1e-4)


def test_slide_windows_cover_the_image_and_end_at_the_border():
    boxes = slide_windows((21, 34), window=(10, 16), stride=(6, 7))
    covered = torch.zeros(21, 34)
    for y1, y2, x1, x2 in boxes:
        assert (y2 - y1, x2 - x1) == (10, 16)
        covered[y1:y2, x1:x2] += 1
    assert covered.min() >= 1
    assert max(b[1] for b in boxes) == 21 and max(b[3] for b in boxes) == 34
    # mmseg grid: ceil((21 - 10) / 6) + 1 = 3 rows, ceil((34 - 16) / 7) + 1 = 4 columns
    assert len(boxes) == 12
    with pytest.raises(ValueError, match="positive"):
        slide_windows((4, 4), window=(2, 2), stride=(0, 1))


@torch.no_grad()
def test_flip_averaging_of_flip_equivariant_model_is_a_no_op(pointwise_model, img):
    plain = predict_logits(pointwise_model, img).softmax(1)
    flipped = predict_logits(pointwise_model, img, flip=True)
    torch.testing.assert_close(flipped, plain)


@torch.no_grad()
def test_flip_averaging_changes_a_position_dependent_model(img):
    class LeftRight(nn.Module):  # class scores grow from left to right: not flip-equivariant
        def forward(self, x):
            ramp = torch.linspace(-3, 3, x.shape[-1]).view(1, 1, 1, -1)
            return torch.cat([ramp, -ramp], 1).expand(x.shape[0], 2, *x.shape[-2:])

    flipped = predict_logits(LeftRight(), img, flip=True)
    torch.testing.assert_close(flipped, torch.full_like(flipped, 0.5))  # both orientations cancel


@torch.no_grad()
def test_output_size_scales_and_low_resolution_logits(pointwise_model, img):
    def quarter_res(x):  # like a SegFormer head: logits at 1/4 of the input size
        return pointwise_model(x)[..., ::4, ::4]

    out = predict_logits(quarter_res, img, out_size=(42, 68))
    assert out.shape == (2, NUM_CLASSES, 42, 68)
    probs = predict_logits(pointwise_model, img, scales=[0.5, 1.0, 1.5], flip=True, out_size=(30, 40))
    assert probs.shape == (2, NUM_CLASSES, 30, 40)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 30, 40))  # averaged probabilities
    labels = predict_labels(pointwise_model, img, mode="slide", window=(8, 8), stride=(8, 8), out_size=(21, 34))
    assert labels.shape == (2, 21, 34) and labels.dtype == torch.int64


def test_bad_input_is_rejected(pointwise_model):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        predict_logits(pointwise_model, torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="whole"):
        predict_logits(pointwise_model, torch.zeros(1, 3, 8, 8), mode="tiles")


@torch.no_grad()
def test_predict_labels_is_argmax_with_first_maximum_on_ties(context_model, img):
    torch.testing.assert_close(predict_labels(context_model, img), predict_logits(context_model, img).argmax(1))
    ties = predict_labels(lambda x: torch.zeros(x.shape[0], NUM_CLASSES, *x.shape[-2:]), img)
    assert (ties == 0).all()
