"""Official (SegFormer) and mmsegmentation MiT checkpoints load into our timm MiT, strictly."""
import argparse
import errno
import importlib.util
import os
from pathlib import Path

import pytest
import timm
import torch

from _mit_reference import MMSegMiT, OfficialMiT, randomise_
from pipa_video.models.backbones import MIT_ARCHS, MixVisionTransformer, TimmBackbone
from pipa_video.models.checkpoint import (CheckpointError, load_backbone_weights, load_state_dict_strict,
                                          mit_checkpoint_filter_fn, mmseg_to_timm, official_to_timm, timm_to_mmseg)

REPO = Path(__file__).resolve().parents[2]


def _ours(name="mit_demo"):
    return MixVisionTransformer(arch=MIT_ARCHS[name]).eval()


def _reference(cls, name="mit_demo"):
    arch = MIT_ARCHS[name]
    return randomise_(cls(arch.embed_dims, arch.depths, arch.num_heads)).eval()


def _assert_same_outputs(ours, reference, size=(64, 96)):
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = ours(x), reference(x)
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["mit_demo", "mit_b0"])
def test_official_checkpoint_loads_every_key_and_reproduces_the_reference(tmp_path, name):
    reference = _reference(OfficialMiT, name)
    state = reference.state_dict()
    assert "head.weight" in state and "block1.0.mlp.dwconv.dwconv.weight" in state
    path = tmp_path / "mit.pth"
    torch.save({"state_dict": state}, path)  # the released files are sometimes wrapped
    ours = _ours(name)
    load_backbone_weights(ours, path)
    _assert_same_outputs(ours, reference)
    # every non-classifier tensor of the file is used, and each exactly once
    mapped = official_to_timm(state)
    assert set(mapped) == set(ours.state_dict())
    assert len(mapped) == len(state) - 2  # head.weight, head.bias


def test_mmseg_segmentor_checkpoint_loads_backbone_and_reproduces_the_reference(tmp_path):
    reference = _reference(MMSegMiT)
    state = {f"backbone.{k}": v for k, v in reference.state_dict().items()}
    state["decode_head.conv_seg.weight"] = torch.zeros(19, 256, 1, 1)  # a segmentor's head: not ours
    path = tmp_path / "segformer_mmseg.pth"
    torch.save({"meta": {"mmseg_version": "1.2.2"}, "state_dict": state}, path)
    ours = _ours()
    load_backbone_weights(ours, path)
    _assert_same_outputs(ours, reference)


def test_mmseg_in_proj_is_split_into_q_and_kv_and_1x1_convs_squeezed():
    reference = _reference(MMSegMiT)
    state = reference.state_dict()
    mapped = mmseg_to_timm(state)
    d = MIT_ARCHS["mit_demo"].embed_dims[2]
    in_proj = state["layers.2.1.0.attn.attn.in_proj_weight"]
    assert in_proj.shape == (3 * d, d)
    torch.testing.assert_close(mapped["stages.2.blocks.0.attn.q.weight"], in_proj[:d], rtol=0, atol=0)
    torch.testing.assert_close(mapped["stages.2.blocks.0.attn.kv.weight"], in_proj[d:], rtol=0, atol=0)
    torch.testing.assert_close(mapped["stages.2.blocks.0.attn.kv.bias"],
                               state["layers.2.1.0.attn.attn.in_proj_bias"][d:], rtol=0, atol=0)
    fc1 = state["layers.2.1.0.ffn.layers.0.weight"]
    assert fc1.shape == (4 * d, d, 1, 1)
    torch.testing.assert_close(mapped["stages.2.blocks.0.mlp.fc1.weight"], fc1[:, :, 0, 0], rtol=0, atol=0)
    assert set(mapped) == set(_ours().state_dict())


def test_writing_the_mmseg_layout_back_loads_into_mmseg_and_round_trips():
    ours = randomise_(_ours(), seed=3)
    state = ours.state_dict()
    mmseg_state = timm_to_mmseg(state)
    reference = MMSegMiT(*(getattr(MIT_ARCHS["mit_demo"], f) for f in ("embed_dims", "depths", "num_heads")))
    reference.load_state_dict(mmseg_state, strict=True)
    _assert_same_outputs(ours, reference.eval())
    back = mmseg_to_timm(mmseg_state)
    assert set(back) == set(state)
    for key, value in state.items():
        assert torch.equal(back[key], value), key


def test_timm_layout_loads_and_its_imagenet_classifier_is_dropped(tmp_path):
    source = randomise_(_ours(), seed=5)
    state = dict(source.state_dict())
    state["head.weight"], state["head.bias"] = torch.zeros(1000, 128), torch.zeros(1000)  # timm pvt_v2 files
    path = tmp_path / "timm.pth"
    torch.save(state, path)
    ours = _ours()
    load_backbone_weights(ours, path)
    for key, value in source.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


def test_failed_load_lists_missing_unexpected_and_misshaped_keys_and_changes_nothing(tmp_path):
    state = official_to_timm(_reference(OfficialMiT).state_dict())
    del state["stages.1.blocks.0.attn.q.bias"]
    state["stages.1.blocks.0.attn.extra.weight"] = torch.zeros(3)
    state["stages.3.norm.weight"] = torch.zeros(7)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    ours = _ours()
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_backbone_weights(ours, path)
    message = str(err.value)
    assert "missing (1): stages.1.blocks.0.attn.q.bias" in message
    assert "unexpected (1): stages.1.blocks.0.attn.extra.weight" in message
    assert "stages.3.norm.weight: checkpoint (7,) vs model (128,)" in message
    assert str(path) in message
    for key, value in ours.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed by a failed load"


def test_wrong_variant_is_refused(tmp_path):
    path = tmp_path / "b0.pth"
    torch.save(_reference(OfficialMiT, "mit_b0").state_dict(), path)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_backbone_weights(_ours("mit_demo"), path)


def test_unknown_layout_missing_file_prefix_and_pickles_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="cannot tell the MiT checkpoint layout"):
        mit_checkpoint_filter_fn({"encoder.conv.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="not found"):
        load_backbone_weights(_ours(), tmp_path / "nope.pth")
    state = {f"model.backbone.{k}": v for k, v in _reference(OfficialMiT).state_dict().items()}
    path = tmp_path / "daformer.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError, match="no key starts with prefix 'encoder.'"):
        load_backbone_weights(_ours(), path, prefix="encoder.")
    load_backbone_weights(_ours(), path, prefix="model.backbone.")  # explicit prefix works
    pickled = tmp_path / "pickled.pth"
    torch.save({"state_dict": _ours().state_dict(), "meta": argparse.Namespace(seed=0)}, pickled)
    with pytest.raises(CheckpointError, match="argparse.Namespace.*--allow-pickle"):
        load_backbone_weights(_ours(), pickled)
    load_backbone_weights(_ours(), pickled, allow_pickle=True)


def test_resnet_loads_torchvision_style_keys_and_drops_the_classifier(tmp_path):
    full = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    state = {k: v for k, v in full.state_dict().items() if not k.endswith("num_batches_tracked")}
    with torch.no_grad():
        state["layer3.0.bn1.running_mean"] = torch.arange(256.0)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    backbone = TimmBackbone("resnet18")
    load_backbone_weights(backbone, path)
    assert torch.equal(backbone.body.layer3[0].bn1.running_mean, torch.arange(256.0))
    assert torch.equal(backbone.body.conv1.weight, full.conv1.weight)
    state.pop("layer4.1.conv2.weight")
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"missing \(1\): body.layer4.1.conv2.weight"):
        load_backbone_weights(TimmBackbone("resnet18"), path)


# ------------------------------------------------------------------------------ converter script
@pytest.fixture(scope="module")
def converter():
    spec = importlib.util.spec_from_file_location("convert_mit_checkpoint",
                                                  REPO / "data_tools" / "convert_mit_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converter_writes_timm_and_mmseg_layouts(tmp_path, converter):
    reference = _reference(OfficialMiT)
    src = tmp_path / "mit_demo.pth"
    torch.save(reference.state_dict(), src)
    assert converter.main([str(src), str(tmp_path / "out" / "timm.pth"), "--arch", "mit_demo"]) == 0
    ours = _ours()
    ours.load_state_dict(torch.load(tmp_path / "out" / "timm.pth", weights_only=True), strict=True)
    _assert_same_outputs(ours, reference)

    dst = tmp_path / "mmseg.pth"
    assert converter.main([str(src), str(dst), "--arch", "mit_demo", "--layout", "mmseg"]) == 0
    written = torch.load(dst, weights_only=True)
    assert written["meta"]["arch"] == "mit_demo"
    assert all(k.startswith("backbone.") for k in written["state_dict"])
    mmseg = MMSegMiT(*(getattr(MIT_ARCHS["mit_demo"], f) for f in ("embed_dims", "depths", "num_heads")))
    mmseg.load_state_dict({k[len("backbone."):]: v for k, v in written["state_dict"].items()}, strict=True)
    _assert_same_outputs(mmseg.eval(), reference)
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == []  # temp files renamed away


def test_converter_refuses_the_wrong_arch_and_leaves_the_output_alone(tmp_path, converter, capsys):
    src = tmp_path / "mit_demo.pth"
    torch.save(_reference(OfficialMiT).state_dict(), src)
    dst = tmp_path / "out.pth"
    dst.write_bytes(b"previous")
    assert converter.main([str(src), str(dst), "--arch", "mit_b0"]) == 4  # errors.ExitCode.CHECKPOINT
    err = capsys.readouterr().err
    assert "does not match mit_b0" in err and "--arch mit_demo" in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("convert_mit_checkpoint.py: error: ")
    assert dst.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, dst.name])  # no temp left


def test_converter_errors_are_one_line_with_an_exit_code_per_kind(tmp_path, converter, capsys, monkeypatch):
    text = tmp_path / "notes.pth"
    text.write_text("a,b\n1,2\n")
    assert converter.main([str(text), str(tmp_path / "out.pth"), "--arch", "mit_demo"]) == 4
    assert capsys.readouterr().err == (f"convert_mit_checkpoint.py: error: {text}: not a torch checkpoint (expected "
                                       "a file written by torch.save; it starts with b'a,b\\n')\n")
    src = tmp_path / "mit_demo.pth"
    torch.save(_reference(OfficialMiT).state_dict(), src)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", disk_full)
    assert converter.main([str(src), str(tmp_path / "out.pth"), "--arch", "mit_demo", "--debug"]) == 6
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith(f"convert_mit_checkpoint.py: error: {tmp_path / 'out.pth'}: "
                                                    "No space left on device")
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_strict_state_dict_load_is_all_or_nothing_and_accepts_ddp_prefixes():
    def net():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))

    src, dst = net(), net()
    with torch.no_grad():
        src[0].weight.fill_(2.0)
        src[1].running_mean.fill_(3.0)
    ddp_state = {f"module.{k}": v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    load_state_dict_strict(dst, ddp_state, source="ddp.pth", target="Sequential")
    torch.testing.assert_close(dst[0].weight, src[0].weight)
    torch.testing.assert_close(dst[1].running_mean, src[1].running_mean)

    fresh = net()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    partial = {k: v for k, v in src.state_dict().items() if k != "1.running_var"}
    with pytest.raises(CheckpointError, match=r"(?s)part\.pth does not match Sequential.*missing \(1\): 1\.running_var"):
        load_state_dict_strict(fresh, partial, source="part.pth", target="Sequential")
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(v, before[k])  # nothing was loaded
