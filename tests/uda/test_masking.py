"""MIC: block masks (about 70% of 64x64 blocks), augment-then-mask, labels of the unmasked image, the loss."""
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipa_video.models.segmentor import SegOutput
from pipa_video.uda.masking import MaskedImageConsistency, MICSettings, block_mask
from pipa_video.uda.mix import strong_augment
from pipa_video.uda.pseudo import make_pseudo_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from _hrda_toys import mit_hrda  # noqa: E402

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
C = 5


def _mic(**kwargs):
    return MaskedImageConsistency(MICSettings(**kwargs), mean=MEAN, std=STD)


def test_about_seventy_percent_of_blocks_are_masked_and_blocks_are_whole():
    torch.manual_seed(0)
    mask = block_mask(8, (1024, 1024), mask_ratio=0.7, block_size=64)
    assert mask.shape == (8, 1, 1024, 1024)
    blocks = mask.unflatten(2, (16, 64)).unflatten(4, (16, 64))  # (B, 1, 16, 64, 16, 64)
    per_block = blocks.amax(dim=(3, 5))
    assert torch.equal(per_block, blocks.amin(dim=(3, 5)))  # each 64x64 block is all kept or all masked
    masked_share = 1 - per_block.mean().item()  # 2048 blocks: standard deviation 0.010
    assert 0.67 < masked_share < 0.73


@pytest.mark.parametrize("size, grid", [((1000, 600), (16, 9)), ((96, 160), (2, 2)), ((20, 20), (1, 1))])
def test_block_grid_rounds_like_mic(size, grid):
    """MIC: rand on a (B, 1, round(H/64), round(W/64)) grid, kept where > ratio, nearest-resized to (H, W)."""
    torch.manual_seed(0)
    mask = block_mask(2, size, mask_ratio=0.5, block_size=64)
    torch.manual_seed(0)
    expected = F.interpolate((torch.rand(2, 1, *grid) > 0.5).float(), size=size, mode="nearest")
    assert torch.equal(mask, expected)


def test_masked_target_is_augmented_then_masked_with_zeros():
    torch.manual_seed(1)
    target = torch.randn(2, 3, 128, 192)
    mic = _mic()
    label, weight = torch.randint(0, C, (2, 128, 192)), torch.rand(2, 128, 192)
    torch.manual_seed(7)
    masked = mic.masked_target(target, pseudo_label=label, pseudo_weight=weight)
    torch.manual_seed(7)
    augmented = strong_augment(target, mean=torch.tensor(MEAN), std=torch.tensor(STD), jitter_strength=0.2,
                               jitter_prob=0.8, blur=True, draw="batch")  # MIC: one jitter/blur decision per batch
    hidden = masked.mask.expand_as(target) == 0
    assert 0.4 < hidden.float().mean() < 0.95
    assert (masked.img[hidden] == 0).all()  # exactly the normalised mean colour
    torch.testing.assert_close(masked.img[~hidden], augmented[~hidden])
    assert not torch.allclose(augmented, target)  # the colour augmentation did something


def test_labels_are_the_teachers_on_the_unmasked_image_and_the_weight_is_not_masked():
    teacher = mit_hrda().eval()
    torch.manual_seed(2)
    target = torch.randn(2, 3, 128, 128) * 2
    with torch.no_grad():
        pseudo = make_pseudo_labels(teacher.predict(target), size=(128, 128), threshold=0.2, weight_mode="pixel")
    masked = _mic().masked_target(target, pseudo_label=pseudo.label, pseudo_weight=pseudo.weight)
    with torch.no_grad():
        on_masked = make_pseudo_labels(teacher.predict(masked.img), size=(128, 128), threshold=0.2, weight_mode="pixel")
    assert torch.equal(masked.label, pseudo.label) and torch.equal(masked.weight, pseudo.weight)
    assert not torch.equal(masked.label, on_masked.label)  # the masked image would have given other labels
    hidden = masked.mask[:, 0] == 0
    assert (masked.weight[hidden] > 0).any()  # masked pixels are trained on too


def test_mask_and_augmentation_repeat_after_restoring_the_generator():
    target = torch.randn(1, 3, 128, 128)
    label, weight = torch.zeros(1, 128, 128, dtype=torch.long), torch.ones(1, 128, 128)
    torch.manual_seed(11)
    first = _mic().masked_target(target, pseudo_label=label, pseudo_weight=weight)
    state = torch.get_rng_state()
    second = _mic().masked_target(target, pseudo_label=label, pseudo_weight=weight)
    torch.set_rng_state(state)
    again = _mic().masked_target(target, pseudo_label=label, pseudo_weight=weight)
    assert torch.equal(second.img, again.img) and not torch.equal(first.mask, second.mask)


def test_shapes_and_settings_are_checked():
    with pytest.raises(ValueError, match="must be \\(B, H, W\\)"):
        _mic().masked_target(torch.randn(1, 3, 64, 64), pseudo_label=torch.zeros(1, 32, 32, dtype=torch.long),
                             pseudo_weight=torch.ones(1, 32, 32))
    with pytest.raises(ValueError, match="mask_ratio"):
        MICSettings(mask_ratio=1.0)
    with pytest.raises(ValueError, match="block_size"):
        MICSettings(block_size=0)


def test_loss_on_a_plain_output_is_the_weighted_cross_entropy():
    torch.manual_seed(3)
    logits = torch.randn(2, C, 16, 16)
    label, weight = torch.randint(0, C, (2, 64, 64)), torch.rand(2, 64, 64)
    label[0, :4] = 255
    mic = _mic()
    masked = mic.masked_target(torch.randn(2, 3, 64, 64), pseudo_label=label, pseudo_weight=weight)
    loss = mic.loss(SegOutput(logits=logits), masked)
    up = F.interpolate(logits, size=(64, 64), mode="bilinear", align_corners=False)
    expected = (F.cross_entropy(up, label, ignore_index=255, reduction="none") * weight).mean()
    torch.testing.assert_close(loss.total, expected)
    assert set(loss.named("mic")) == {"loss_mic"} and mic.weight == 1.0


def test_loss_on_hrda_trains_fused_and_detail_and_reaches_the_scale_attention():
    model = mit_hrda().train()
    mic = _mic(block_size=16)  # 16 blocks: a 64 px image is never masked whole (one 64 px block is, 70% of the time)
    label, weight = torch.randint(0, C, (2, 64, 64)), torch.full((2, 64, 64), 0.5)
    masked = mic.masked_target(torch.randn(2, 3, 64, 64), pseudo_label=label, pseudo_weight=weight)
    out = model(masked.img)
    loss = mic.loss(out, masked)
    assert set(loss.named("mic")) == {"loss_mic", "loss_mic_detail"}
    torch.testing.assert_close(loss.total, 0.9 * loss.main + 0.1 * loss.detail)
    (mic.weight * loss.total).backward()
    assert model.scale_attention.conv_seg.weight.grad.abs().sum() > 0
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0


def test_masking_and_loss_run_without_host_reads():
    """The meta device refuses to read values: any .item() or Python branch on data would raise."""
    mic = _mic()
    target = torch.randn(2, 3, 64, 64, device="meta")
    masked = mic.masked_target(target, pseudo_label=torch.zeros(2, 64, 64, dtype=torch.long, device="meta"),
                               pseudo_weight=torch.ones(2, 64, 64, device="meta"))
    loss = mic.loss(SegOutput(logits=torch.randn(2, C, 16, 16, device="meta")), masked)
    assert loss.total.device.type == "meta"
