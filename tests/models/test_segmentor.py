"""Segmentor: outputs, full-size inference, parameter groups, gradients."""
import pytest
import torch
import torch.nn.functional as F

from pipa_video.models.backbones import MIT_ARCHS, MixVisionTransformer
from pipa_video.models.heads import DAFormerHead, SegFormerHead
from pipa_video.models.segmentor import SegOutput, Segmentor

NUM_CLASSES = 5


def _segmentor(head_cls=DAFormerHead, channels=16):
    torch.manual_seed(0)
    backbone = MixVisionTransformer(arch=MIT_ARCHS["mit_demo"], drop_path_rate=0.1)
    head = head_cls(in_channels=[f["num_chs"] for f in backbone.feature_info], num_classes=NUM_CLASSES,
                    channels=channels)
    return Segmentor(backbone=backbone, decode_head=head, num_classes=NUM_CLASSES)


@pytest.mark.parametrize("head_cls", [DAFormerHead, SegFormerHead])
def test_forward_shapes_and_features_on_request(head_cls):
    model = _segmentor(head_cls).eval()
    img = torch.randn(2, 3, 64, 64)
    out = model(img)
    assert isinstance(out, SegOutput)
    assert out.logits.shape == (2, NUM_CLASSES, 16, 16)
    assert out.features is None and out.backbone_features is None
    full = model(img, return_features=True)
    assert full.features.shape == (2, model.feature_channels, 16, 16) and model.feature_channels == 16
    assert [tuple(f.shape[1:]) for f in full.backbone_features] == [(16, 16, 16), (32, 8, 8), (64, 4, 4), (128, 2, 2)]
    torch.testing.assert_close(full.logits, out.logits)


def test_inference_returns_input_size_logits():
    model = _segmentor().eval()
    img = torch.randn(1, 3, 60, 90)  # not a multiple of 32
    with torch.no_grad():
        logits = model.inference(img)
        stride4 = model(img).logits
    assert logits.shape == (1, NUM_CLASSES, 60, 90)
    torch.testing.assert_close(logits, F.interpolate(stride4, size=(60, 90), mode="bilinear", align_corners=False))


def test_param_groups_partition_all_parameters():
    model = _segmentor()
    groups = model.param_groups()
    assert set(groups) == {"backbone", "head"}
    ids = [id(p) for group in groups.values() for p in group]
    assert len(ids) == len(set(ids))  # disjoint
    assert set(ids) == {id(p) for p in model.parameters()}  # complete
    assert {id(p) for p in groups["head"]} == {id(p) for p in model.decode_head.parameters()}


def test_gradients_reach_every_backbone_stage():
    model = _segmentor().train()
    out = model(torch.randn(2, 3, 64, 64), return_features=True)
    target = torch.randint(0, NUM_CLASSES, (2, 16, 16))
    loss = F.cross_entropy(out.logits, target) + out.features.pow(2).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.backbone.stages[3].blocks[0].attn.q.weight.grad.abs().sum() > 0


def test_head_and_segmentor_must_agree_on_classes():
    backbone = MixVisionTransformer(arch=MIT_ARCHS["mit_demo"])
    head = SegFormerHead(in_channels=[16, 32, 64, 128], num_classes=3, channels=8)
    with pytest.raises(ValueError, match="decode head predicts 3 classes, segmentor expects 4"):
        Segmentor(backbone=backbone, decode_head=head, num_classes=4)
