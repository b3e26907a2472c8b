"""MiT-B0..B5 are the official architectures (checked numerically), ResNet-101, the registry."""
import functools

import pytest
import torch
from torch import nn

from _mit_reference import OfficialMiT, randomise_
from pipa_video.models.backbones import BACKBONE_NAMES, MIT_ARCHS, MixVisionTransformer, build_backbone

MIT_NAMES = [f"mit_b{i}" for i in range(6)]
# SegFormer paper, Table 1, encoder parameters in millions (B0, listed a little above its count, left out).
PUBLISHED_ENCODER_PARAMS_M = {"mit_b1": 13.1, "mit_b2": 24.2, "mit_b3": 44.0, "mit_b4": 60.8, "mit_b5": 81.4}


def _official_param_count(dims, depths, sr_ratios=(8, 4, 2, 1), mlp_ratio=4):
    """Parameters of the official MiT encoder (no classifier), counted layer by layer from its code."""
    total, in_chans = 0, 3
    for stage, (d, depth, sr) in enumerate(zip(dims, depths, sr_ratios)):
        k = 7 if stage == 0 else 3
        total += in_chans * d * k * k + d + 2 * d  # overlapping patch embedding conv + LayerNorm
        hidden = mlp_ratio * d
        block = 2 * d  # norm1
        block += (d * d + d) + (d * 2 * d + 2 * d) + (d * d + d)  # q, kv, proj
        if sr > 1:
            block += d * d * sr * sr + d + 2 * d  # spatial-reduction conv + its LayerNorm
        block += 2 * d  # norm2
        block += (d * hidden + hidden) + (9 * hidden + hidden) + (hidden * d + d)  # fc1, dwconv, fc2
        total += depth * block + 2 * d  # blocks + stage-end norm
        in_chans = d
    return total


@functools.lru_cache(maxsize=None)
def _meta_mit(name):
    """A variant on the meta device: shapes without memory (B5 is built once per session)."""
    return MixVisionTransformer(arch=MIT_ARCHS[name], device="meta")


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", MIT_NAMES)
def test_parameter_count_is_the_official_mit(name):
    arch = MIT_ARCHS[name]
    ours = _meta_mit(name)
    count = _count(ours)
    assert count == _official_param_count(arch.embed_dims, arch.depths)
    if name in PUBLISHED_ENCODER_PARAMS_M:
        # the table's one-decimal figures are sometimes rounded, sometimes truncated
        assert abs(count / 1e6 - PUBLISHED_ENCODER_PARAMS_M[name]) < 0.1
    if name in ("mit_b0", "mit_b5"):
        with torch.device("meta"):
            reference = OfficialMiT(arch.embed_dims, arch.depths, arch.num_heads, num_classes=0)
        assert count == _count(reference)
        # and tensor by tensor: both register the same shapes in the same order
        assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]


def test_every_stage_is_mit_shaped():
    arch = MIT_ARCHS["mit_b5"]
    model = _meta_mit("mit_b5")
    assert model.patch_embed.proj.kernel_size == (7, 7) and model.patch_embed.proj.stride == (4, 4)
    assert model.patch_embed.norm.eps == 1e-5
    for s, stage in enumerate(model.stages):
        dim = arch.embed_dims[s]
        if s > 0:
            assert stage.downsample.proj.kernel_size == (3, 3) and stage.downsample.proj.stride == (2, 2)
        assert stage.norm.eps == 1e-6
        assert len(stage.blocks) == arch.depths[s]
        for block in stage.blocks:
            assert block.mlp.fc1.out_features == 4 * dim  # MiT: ratio 4 everywhere (PVTv2: 8, 8, 4, 4)
            assert isinstance(block.mlp.relu, nn.Identity)  # linear=False: no PVTv2-li extra ReLU
            assert block.attn.pool is None
            assert block.attn.num_heads == arch.num_heads[s]
            assert block.attn.q.bias is not None and block.attn.kv.bias is not None
            assert block.norm1.eps == block.norm2.eps == 1e-6
            sr = arch.sr_ratios[s]
            if sr > 1:
                assert block.attn.sr.kernel_size == (sr, sr) and block.attn.sr.stride == (sr, sr)
            else:
                assert block.attn.sr is None


@pytest.mark.parametrize("name", ["mit_demo", "mit_b0"])
def test_forward_returns_four_maps_at_strides_4_to_32(name):
    model = MixVisionTransformer(arch=MIT_ARCHS[name]).eval()
    with torch.no_grad():
        feats = model(torch.randn(2, 3, 64, 96))
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    assert [f["module"] for f in model.feature_info] == [f"stages.{i}" for i in range(4)]
    for feat, info in zip(feats, model.feature_info, strict=True):
        r = info["reduction"]
        assert feat.shape == (2, info["num_chs"], 64 // r, 96 // r)
    assert [f["num_chs"] for f in model.feature_info] == list(MIT_ARCHS[name].embed_dims)


def test_drop_path_rates_rise_linearly_over_all_blocks():
    model = MixVisionTransformer(arch=MIT_ARCHS["mit_b0"], drop_path_rate=0.3)
    rates = [getattr(b.drop_path1, "drop_prob", 0.0) for stage in model.stages for b in stage.blocks]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.3, 8))
    assert isinstance(model.stages[0].blocks[0].drop_path1, nn.Identity)  # rate 0: no layer at all


def test_resnet101_gives_four_maps_at_strides_4_to_32():
    model = build_backbone("resnet101", pretrained=None, drop_path_rate=0.0).eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 64, 64))
    assert [f["num_chs"] for f in model.feature_info] == [256, 512, 1024, 2048]
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    assert [tuple(f.shape) for f in feats] == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]


def test_registry_names_and_unknown_name():
    assert set(BACKBONE_NAMES) == {*MIT_NAMES, "mit_demo", "resnet101", "timm:<name>"}
    with pytest.raises(ValueError, match=r"unknown backbone 'mit_b6'.*mit_b5.*resnet101"):
        build_backbone("mit_b6", pretrained=None, drop_path_rate=0.0)


def test_build_backbone_loads_a_local_official_checkpoint(tmp_path):
    arch = MIT_ARCHS["mit_demo"]
    reference = randomise_(OfficialMiT(arch.embed_dims, arch.depths, arch.num_heads))
    path = tmp_path / "mit_demo.pth"
    torch.save(reference.state_dict(), path)
    model = build_backbone("mit_demo", pretrained=str(path), drop_path_rate=0.1)
    assert torch.equal(model.stages[2].blocks[0].mlp.dwconv.weight, reference.block3[0].mlp.dwconv.dwconv.weight)
    assert torch.equal(model.patch_embed.proj.weight, reference.patch_embed1.proj.weight)


def test_stage_maps_are_timms_values_in_channels_last_memory():
    """The copy-free forward returns exactly what timm's own stage forward computes."""
    torch.manual_seed(0)
    model = MixVisionTransformer(arch=MIT_ARCHS["mit_b0"]).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ours = model(x)
        y, timm_maps = model.patch_embed(x), []
        for stage in model.stages:  # timm's PyramidVisionTransformerStage.forward, NCHW copy included
            y = stage(y)
            timm_maps.append(y)
    for a, b in zip(ours, timm_maps, strict=True):
        assert a.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
