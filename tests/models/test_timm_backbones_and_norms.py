"""Backbones through timm's feature API (ResNet, any timm model, plain ViTs through ViTDet's simple feature
pyramid), built without downloads; the norm-layer choice of the heads and projection heads, SyncBN included."""
import os

import pytest
import timm
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from pipa_video.config import ConfigError, load_config, validate
from pipa_video.engine.build import check_sync_batchnorm
from pipa_video.engine.dist import DistInfo
from pipa_video.models import build_segmentor
from pipa_video.models.backbones import TimmBackbone, build_backbone
from pipa_video.models.checkpoint import CheckpointError, load_backbone_weights
from pipa_video.models.heads import build_decode_head
from pipa_video.models.norm import norm_layer, norm_parameters
from pipa_video.models.projection import ProjectionHead

TINY_VIT = dict(depth=2, embed_dim=48, num_heads=2, img_size=64, dynamic_img_size=True)


def _randomise(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.randn_like(value) * 0.1 + (1.0 if name.endswith("running_var") else 0.0)).abs_() \
                    if name.endswith("running_var") else value.copy_(torch.randn_like(value) * 0.1)
    return module


def test_resnet_through_forward_intermediates_equals_features_only():
    """The former path (timm features_only) and the feature API give the same maps from the same weights."""
    ours = _randomise(TimmBackbone("resnet18")).eval()
    before = timm.create_model("resnet18", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4)).eval()
    assert {f"body.{k}" for k in before.state_dict()} == set(ours.state_dict())  # same checkpoint keys
    before.load_state_dict({k[len("body."):]: v for k, v in ours.state_dict().items()})
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(ours(x), before(x), strict=True):
            assert torch.equal(a, b)
    assert [f["reduction"] for f in ours.feature_info] == [4, 8, 16, 32]


def test_a_tiny_vit_gives_four_maps_through_the_simple_feature_pyramid():
    backbone = build_backbone("timm:vit_tiny_patch16_224", pretrained=None, drop_path_rate=0.1, kwargs=TINY_VIT,
                              pyramid_channels=32)
    feats = backbone(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 16, 24), (2, 32, 8, 12), (2, 32, 4, 6), (2, 32, 2, 3)]
    assert [(f["num_chs"], f["reduction"]) for f in backbone.feature_info] == [(32, 4), (32, 8), (32, 16), (32, 32)]
    sum(f.mean() for f in feats).backward()
    assert backbone.body.blocks[0].attn.qkv.weight.grad is not None  # the ViT trains through the pyramid
    assert not hasattr(backbone.body.norm, "weight")  # the final norm the pyramid does not use is pruned


def test_a_patch14_vit_dinov2_style_is_resampled_to_the_four_strides():
    kwargs = dict(depth=1, embed_dim=32, num_heads=2, img_size=70, dynamic_img_size=True)
    backbone = build_backbone("timm:vit_small_patch14_dinov2", pretrained=None, drop_path_rate=0.0, kwargs=kwargs,
                              pyramid_channels=16)
    feats = backbone(torch.randn(1, 3, 70, 98))
    assert [tuple(f.shape[-2:]) for f in feats] == [(20, 28), (10, 14), (5, 7), (2, 3)]  # ceil(70/16) = 5, ...


def test_a_timm_checkpoint_loads_strictly_without_its_classifier_and_pruned_norm(tmp_path):
    full = _randomise(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=1000, **TINY_VIT))
    path = tmp_path / "vit.pth"
    torch.save(full.state_dict(), path)
    backbone = build_backbone("timm:vit_tiny_patch16_224", pretrained=str(path), drop_path_rate=0.0,
                              kwargs=TINY_VIT)
    assert torch.equal(backbone.body.blocks[1].mlp.fc2.weight, full.blocks[1].mlp.fc2.weight)
    assert torch.equal(backbone.body.pos_embed, full.pos_embed)
    state = full.state_dict()
    state.pop("blocks.1.mlp.fc2.weight")
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"missing \(1\): body.blocks.1.mlp.fc2.weight"):
        load_backbone_weights(backbone, path)


def test_a_timm_backbone_is_named_in_a_config_with_its_kwargs(tmp_path):
    cfg = validate({"model": {"backbone": {"type": "timm:vit_tiny_patch16_224", "pretrained": None,
                                           "kwargs": TINY_VIT, "pyramid_channels": 24},
                              "decode_head": {"type": "segformer", "channels": 16, "norm": "group"}}})
    model = build_segmentor(cfg["model"], num_classes=5)
    assert model(torch.randn(2, 3, 64, 64)).logits.shape == (2, 5, 16, 16)
    config = tmp_path / "vit.py"
    config.write_text("model = dict(backbone=dict(type='timm:vit_tiny_patch16_224', pretrained=None))\n")
    loaded = load_config(config, {"model.backbone.kwargs.depth": "1", "model.backbone.kwargs.dynamic_img_size": "true"})
    assert loaded.model.backbone.kwargs == {"depth": 1, "dynamic_img_size": True}


def test_backbone_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"model.backbone: timm model 'vit_tiny_patch16_224'|model.backbone: unknown"):
        build_segmentor(validate({"model": {"backbone": {"type": "mit_b9"}}})["model"], num_classes=3)
    with pytest.raises(ConfigError, match=r"model.backbone: model.backbone.kwargs \['depth'\] apply to timm backbones"):
        build_segmentor(validate({"model": {"backbone": {"type": "mit_demo", "pretrained": None,
                                                         "kwargs": {"depth": 2}}}})["model"], num_classes=3)


@pytest.mark.parametrize("kind, cls", [("batch", nn.BatchNorm2d), ("syncbatch", nn.SyncBatchNorm),
                                       ("group", nn.GroupNorm)])
def test_heads_and_projection_heads_take_the_norm_choice(kind, cls):
    head = build_decode_head("daformer", in_channels=[8, 16, 32, 64], num_classes=3, channels=32, dropout=0.0, norm=kind)
    norms = [m for m in head.modules() if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm))]
    assert norms and all(type(m) is cls for m in norms)
    proj = ProjectionHead(in_channels=32, proj_dim=8, norm=kind)
    assert type(proj.proj[1]) is cls
    if kind == "group":
        assert norms[0].num_groups == 32 and not any("running_mean" in k for k in head.state_dict())
    assert set(norm_parameters(head)) == {p for m in norms for p in m.parameters()}
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        norm_layer("layer", 8)


def test_syncbatchnorm_in_one_process_is_batchnorm_and_keeps_the_checkpoint_keys():
    """What a single process (and every checkpoint) sees: the same numbers and keys as BatchNorm."""
    batch = _randomise(build_decode_head("segformer", in_channels=[8, 8, 8, 8], num_classes=3, channels=16,
                                         dropout=0.0, norm="batch"))
    synced = build_decode_head("segformer", in_channels=[8, 8, 8, 8], num_classes=3, channels=16, dropout=0.0,
                               norm="syncbatch")
    assert list(synced.state_dict()) == list(batch.state_dict())
    synced.load_state_dict(batch.state_dict())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(batch)  # torch's conversion of a batch-norm model
    feats = [torch.randn(2, 8, 8 // 2 ** i, 8 // 2 ** i) for i in range(4)]
    for mode in (True, False):
        synced.train(mode), converted.train(mode)
        assert torch.allclose(synced(feats)[0], converted(feats)[0])


def _syncbn_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        layer = norm_layer("syncbatch", 4).train()
        try:
            layer(torch.randn(2, 4, 3, 3))
            outcome = "ran"
        except ValueError as err:
            outcome = str(err)
        with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
            f.write(outcome)
    finally:
        dist.destroy_process_group()


def test_syncbatchnorm_does_not_run_on_cpu_ranks_and_training_refuses_it_first(tmp_path):
    """PyTorch synchronises SyncBatchNorm on CUDA only: under 2 gloo CPU ranks its forward raises. The engine
    refuses such a run before training, naming the keys; on one process or on CUDA ranks it is allowed."""
    mp.start_processes(_syncbn_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    for rank in range(2):
        assert "expected input tensor to be on GPU" in (tmp_path / f"rank{rank}.txt").read_text()
    model = ProjectionHead(in_channels=8, proj_dim=4, norm="syncbatch")
    with pytest.raises(ConfigError, match=r"model.decode_head.norm / model.projection.norm: 'syncbatch'.*2 cpu"):
        check_sync_batchnorm(model, DistInfo(rank=0, world_size=2))
    check_sync_batchnorm(model, DistInfo())  # one process: SyncBatchNorm is BatchNorm
    check_sync_batchnorm(model, DistInfo(world_size=2, device=torch.device("cuda", 0)))
    check_sync_batchnorm(ProjectionHead(in_channels=8, proj_dim=4, norm="group"), DistInfo(world_size=2))
