"""build_segmentor / build_imagenet_backbone read the validated ``model`` config section."""
import pytest
import torch

from _mit_reference import OfficialMiT, randomise_
from pipa_video.config import ConfigError, validate
from pipa_video.models.backbones import MIT_ARCHS, MixVisionTransformer
from pipa_video.models.build import FrozenBackbone, build_imagenet_backbone, build_segmentor
from pipa_video.models.heads import DAFormerHead, SegFormerHead


def _model_cfg(**backbone):
    cfg = validate({"model": {"backbone": {"type": "mit_demo", **backbone},
                              "decode_head": {"channels": 32, "dropout": 0.2}}})
    return cfg["model"]


def test_build_segmentor_from_config():
    model = build_segmentor(_model_cfg(drop_path_rate=0.2), num_classes=19)
    assert isinstance(model.backbone, MixVisionTransformer) and model.backbone.arch == MIT_ARCHS["mit_demo"]
    assert isinstance(model.decode_head, DAFormerHead)  # the schema's default head
    assert model.feature_channels == 32 and model.decode_head.dropout.p == 0.2
    assert model.backbone.stages[3].blocks[0].drop_path1.drop_prob == pytest.approx(0.2)
    assert model(torch.randn(1, 3, 64, 64)).logits.shape == (1, 19, 16, 16)
    cfg = _model_cfg()
    cfg["decode_head"]["type"] = "segformer"
    assert isinstance(build_segmentor(cfg, num_classes=2).decode_head, SegFormerHead)


@pytest.mark.parametrize("channels_last", [True, False])
def test_decode_head_layout_follows_the_config(channels_last):
    cfg = _model_cfg()
    cfg["decode_head"]["type"] = "segformer"  # NHWC on every device (the DAFormer head: on CUDA only)
    assert cfg["decode_head"]["channels_last"] is True  # the default
    cfg["decode_head"]["channels_last"] = channels_last
    model = build_segmentor(cfg, num_classes=3).eval()
    assert model.decode_head.channels_last is channels_last
    with torch.no_grad():
        fused = model(torch.randn(1, 3, 64, 64), return_features=True).features
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert fused.is_contiguous(memory_format=layout)


def test_build_segmentor_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown backbone 'mit_b9'"):
        build_segmentor(_model_cfg(type="mit_b9"), num_classes=19)
    with pytest.raises(ConfigError, match="model.decode_head.channels: missing"):
        build_segmentor({"backbone": dict(_model_cfg()["backbone"]), "decode_head": {"type": "daformer"}},
                        num_classes=19)


def test_imagenet_backbone_is_loaded_frozen_and_stays_in_eval(tmp_path):
    with pytest.raises(ConfigError, match="model.backbone.pretrained"):
        build_imagenet_backbone(_model_cfg())
    arch = MIT_ARCHS["mit_demo"]
    reference = randomise_(OfficialMiT(arch.embed_dims, arch.depths, arch.num_heads)).eval()
    path = tmp_path / "mit_demo_imagenet.pth"
    torch.save(reference.state_dict(), path)
    frozen = build_imagenet_backbone(_model_cfg(pretrained=str(path)))
    assert isinstance(frozen, FrozenBackbone)
    frozen.train()
    assert not frozen.training and not frozen.backbone.training
    assert not any(p.requires_grad for p in frozen.parameters())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for got, want in zip(frozen(x), reference(x), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    # the student built from the same config starts from the same weights but trains
    student = build_segmentor(_model_cfg(pretrained=str(path)), num_classes=3)
    assert torch.equal(student.backbone.patch_embed.proj.weight, frozen.backbone.patch_embed.proj.weight)
    assert all(p.requires_grad for p in student.parameters())
