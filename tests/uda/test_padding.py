"""Padding is never a pseudo-label: a target crop that is half padding, through every term of the step."""
import pytest
import torch

import pipa_video.uda.step as step_module
import pipa_video.uda.terms.patch as patch_module
from pipa_video.config import validate
from pipa_video.uda.build import build_method
from pipa_video.uda.contrast.crops import CropBox, CropPair
from pipa_video.uda.mix import class_mix
from pipa_video.uda.padding import cell_valid, mask_invalid_cells
from pipa_video.uda.pseudo import make_pseudo_labels

SIZE, STRIDE, PAD_FROM = 64, 4, 30  # columns >= 30 are padding: cell column 7 straddles the border


def _half_padded_valid(batch=2, frames=2):
    valid = torch.ones(batch, frames, SIZE, SIZE, dtype=torch.bool)
    valid[..., PAD_FROM:] = False
    return valid


def _clips(seed, *, padded, frames=2):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 15, (2, frames, SIZE, SIZE), generator=g)
    img = torch.randn(2, frames, 3, SIZE, SIZE, generator=g)
    valid = _half_padded_valid(frames=frames) if padded else torch.ones(2, frames, SIZE, SIZE, dtype=torch.bool)
    label[~valid] = 255
    img[~valid[:, :, None].expand_as(img)] = 0.0
    return {"img": img, "label": label, "valid": valid, "pseudo_valid": torch.ones(2, SIZE, SIZE, dtype=torch.bool)}


def test_cells_holding_any_padding_are_ignored():
    valid = _half_padded_valid(frames=1)[:, 0]
    cells = cell_valid(valid, STRIDE)
    assert cells.shape == (2, 16, 16)
    assert cells[..., :7].all() and not cells[..., 7:].any()  # cell 7 covers columns 28-31, two of them padding
    label = mask_invalid_cells(torch.zeros(2, SIZE, SIZE, dtype=torch.long), valid, STRIDE)
    assert (label[..., :28] == 0).all() and (label[..., 28:] == 255).all()


@pytest.mark.parametrize("mode", ["batch", "image", "pixel"])
def test_padding_is_out_of_the_pseudo_label_weight_and_its_share(mode):
    valid = _half_padded_valid(frames=1)[:, 0]
    logits = torch.zeros(2, 3, SIZE // 4, SIZE // 4)
    logits[:, 1, :, :PAD_FROM // 4] = 10.0  # confident on the frame, unsure on the padding
    pl = make_pseudo_labels(logits, size=(SIZE, SIZE), threshold=0.9, weight_mode=mode, valid=valid)
    assert (pl.weight[~valid] == 0).all()
    inside = pl.weight[:, :, :24]  # away from the bilinear border of the confident block
    assert torch.allclose(inside, torch.ones_like(inside)) if mode == "pixel" else inside.min() > 0.9
    logits = -logits  # now confident only on the padding: it must not lend the frame any weight
    logits[:, 2, :, PAD_FROM // 4 + 1:] = 10.0
    pl = make_pseudo_labels(logits, size=(SIZE, SIZE), threshold=0.9, weight_mode=mode, valid=valid)
    assert pl.weight.max() == 0


def test_pseudo_weight_is_one_share_per_batch_with_greater_or_equal():
    """DAFormer: ``pseudo_prob.ge(threshold)`` summed over the whole batch, one weight for every pixel."""
    logits = torch.full((2, 2, 4, 4), 0.0)
    logits[0, 0] = 10.0  # image 0 confident everywhere, image 1 at exactly 0.5 = the threshold
    pl = make_pseudo_labels(logits, size=(4, 4), threshold=0.5, weight_mode="batch")
    assert torch.allclose(pl.weight, torch.ones_like(pl.weight))  # 0.5 >= 0.5 counts
    pl = make_pseudo_labels(logits, size=(4, 4), threshold=0.6, weight_mode="batch")
    assert torch.allclose(pl.weight, torch.full_like(pl.weight, 0.5))  # one share for both images
    pl = make_pseudo_labels(logits, size=(4, 4), threshold=0.6, weight_mode="image")
    assert torch.allclose(pl.weight[0], torch.ones(4, 4)) and (pl.weight[1] == 0).all()


def test_crop_aware_margins_zero_the_weight_where_the_mask_says():
    logits = torch.zeros(1, 2, 4, 4)
    logits[:, 0] = 10.0
    margins = torch.ones(1, 16, 16, dtype=torch.bool)
    margins[:, :3] = False
    pl = make_pseudo_labels(logits, size=(16, 16), threshold=0.9, weight_mode="batch", pseudo_valid=margins)
    assert (pl.weight[:, :3] == 0).all() and (pl.weight[:, 3:] == 1).all()


def test_class_mix_pads_weigh_zero_from_either_image():
    torch.manual_seed(0)
    target_valid = _half_padded_valid(frames=1)[:, 0]
    source_valid = torch.ones_like(target_valid)
    source_valid[:, :8] = False
    source_label = torch.randint(0, 4, (2, SIZE, SIZE))
    source_label[~source_valid] = 255
    mixed = class_mix(source_img=torch.ones(2, 3, SIZE, SIZE), source_label=source_label,
                      target_img=torch.zeros(2, 3, SIZE, SIZE), pseudo_label=torch.zeros(2, SIZE, SIZE, dtype=torch.long),
                      pseudo_weight=torch.full((2, SIZE, SIZE), 0.7), classes="batch", source_valid=source_valid,
                      target_valid=target_valid)
    expected_valid = torch.where(mixed.mask, source_valid, target_valid)
    assert torch.equal(mixed.valid, expected_valid)
    assert (mixed.weight[~mixed.valid] == 0).all() and (mixed.weight[mixed.valid] > 0).all()
    assert (~mixed.valid & ~mixed.mask).any() and (mixed.mask & ~source_valid).any()  # both kinds occur


def _cfg(views, reference):
    return validate({
        "class_set": "viper15",
        "model": {"backbone": {"type": "mit_demo", "pretrained": None},
                  "decode_head": {"type": "segformer", "channels": 32}},
        "uda": {"method": "self_training", "pseudo_threshold": 0.0,
                "pixel_contrast": {"weight": 0.1, "proj_dim": 16, "anchors_per_class": 64, "bank_size": 0,
                                   "use_target": True},
                "patch_contrast": {"weight": 0.1, "proj_dim": 16, "num_anchors": 512, "views": views,
                                   "crop_ratio": 1.0},
                "temporal_contrast": {"weight": 0.1, "proj_dim": 16, "num_anchors": 512, "confidence": 0.0,
                                      "reference": reference}},
    })


class _Spy:
    """Records the features every contrast receives (with their gradients kept) and the mixed batch."""

    def __init__(self, method, monkeypatch):
        self.calls = {"pixel": [], "patch": [], "temporal": []}
        self.mixed = None
        pixel = method.term("pixel_contrast").loss  # its forward goes through loss_and_anchors too
        monkeypatch.setattr(pixel, "loss_and_anchors", self._wrap("pixel", pixel.loss_and_anchors))
        for name in ("patch", "temporal"):
            loss = method.term(f"{name}_contrast").loss
            monkeypatch.setattr(loss, "forward", self._wrap(name, loss.forward))
        monkeypatch.setattr(step_module, "class_mix", self._mix)
        full = CropBox(top=0, left=0, height=SIZE, width=SIZE)  # crops = the whole image, unflipped
        pair = CropPair(box1=full, box2=full, flip1=False, flip2=False)
        monkeypatch.setattr(patch_module, "sample_crop_in_view", lambda **_: pair)
        monkeypatch.setattr(patch_module, "sample_crop_pair", lambda **_: pair)

    def _wrap(self, name, forward):
        def spy(**kw):
            for key in ("features", "feat1", "feat2", "key_feat", "ref_feat"):
                if key in kw and kw[key].requires_grad:
                    kw[key].retain_grad()
            self.calls[name].append(kw)
            return forward(**kw)
        return spy

    def _mix(self, **kw):
        self.mixed = class_mix(**kw)
        return self.mixed


def _grad_on(feat, cells_bad):
    """Largest |gradient| of (B, D, h, w) features over the cells flagged by (B, h, w) ``cells_bad``."""
    return feat.grad.abs().sum(1)[cells_bad].max() if cells_bad.any() else torch.tensor(0.0)


@pytest.mark.parametrize("views,reference", [("mixed_and_crop", "teacher"), ("two_crops", "student")])
def test_half_padded_crop_is_never_a_sample_of_any_term(views, reference, monkeypatch):
    torch.manual_seed(0)
    method = build_method(_cfg(views, reference))
    spy = _Spy(method, monkeypatch)
    method.train_step(_clips(0, padded=True), _clips(1, padded=True), iteration=0)
    mixed = spy.mixed
    # mixed loss and pseudo-labels: padded pixels (not covered by a pasted, valid source pixel) weigh 0
    assert (~mixed.valid).any() and (mixed.weight[~mixed.valid] == 0).all()
    bad_mixed = ~cell_valid(mixed.valid, STRIDE)
    bad_source = ~cell_valid(_half_padded_valid(frames=1)[:, 0], STRIDE)
    src_call, tgt_call = spy.calls["pixel"]
    assert _grad_on(src_call["features"], bad_source) == 0 and _grad_on(tgt_call["features"], bad_mixed) == 0
    assert src_call["features"].grad.abs().sum() > 0 and tgt_call["features"].grad.abs().sum() > 0
    (patch_call,) = spy.calls["patch"]
    for key in ("feat1", "feat2"):
        assert _grad_on(patch_call[key], bad_mixed) == 0 and patch_call[key].grad.abs().sum() > 0
    (temporal_call,) = spy.calls["temporal"]
    bad_target = ~cell_valid(_half_padded_valid(frames=1)[:, 0], STRIDE)
    assert _grad_on(temporal_call["key_feat"], bad_target) == 0 and temporal_call["key_feat"].grad.abs().sum() > 0
    if reference == "student":
        ref = temporal_call["ref_feat"]
        assert _grad_on(ref, bad_target) == 0 and ref.grad.abs().sum() > 0
