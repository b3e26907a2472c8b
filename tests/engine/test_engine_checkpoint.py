import os

import numpy as np
import pytest
import torch

from pipa_video.engine import checkpoint as ckpt
from pipa_video.engine.checkpoint import (CheckpointError, CheckpointManager, Selection, load_checkpoint, make_meta,
                                          save_checkpoint)


def _payload(step, value=0.0):
    return {"model": {"w": torch.full((3,), float(value))}, "step": step, "format_version": ckpt.FORMAT_VERSION,
            "meta": make_meta(class_set="cityscapes19", num_classes=19, iteration=step,
                              selection=Selection.LAST.describe("mIoU"))}


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_round_trip_and_no_temp_files(tmp_path):
    path = save_checkpoint(_payload(3, 1.5), tmp_path / "a.pth")
    loaded = load_checkpoint(path)
    assert loaded["step"] == 3 and torch.equal(loaded["model"]["w"], torch.full((3,), 1.5))
    assert loaded["meta"]["selection"] == "last iteration" and loaded["meta"]["num_classes"] == 19
    assert _leftovers(tmp_path) == []
    assert Selection.BEST.describe("mIoU") == "best mIoU on data.val (held-out split)"


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint(_payload(1, 1.0), tmp_path / "latest.pth")
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr("torch.save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_payload(2, 2.0), path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_one_checkpoint_error_class_under_every_import_path():
    from pipa_video.checkpoint_io import CheckpointError as IOCheckpointError
    from pipa_video.models.checkpoint import CheckpointError as ModelCheckpointError

    assert CheckpointError is IOCheckpointError is ModelCheckpointError
    assert issubclass(CheckpointError, ValueError)


def test_missing_corrupt_and_foreign_files_get_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pth")
    good = save_checkpoint(_payload(1), tmp_path / "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated.pth: corrupt or truncated") as caught:
        load_checkpoint(truncated)
    assert str(caught.value).endswith("(copy it again or pick another checkpoint)")  # a whole sentence, not cut
    half = tmp_path / "half.pth"
    half.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match=r"half.pth: corrupt or truncated checkpoint \(RuntimeError: "
                                              r"PytorchStreamReader failed reading zip archive[^.]*\); expected"):
        load_checkpoint(half)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pth: not a torch checkpoint"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match=r"lacks \['format_version', 'meta'\]"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="lacks \\['optimizer'"):
        load_checkpoint(good, require=("optimizer", "step"))
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"format_version": 1, "meta": {}, "obj": np.zeros(2)}, unsafe)  # numpy is not plain data
    with pytest.raises(CheckpointError, match="other than tensors"):
        load_checkpoint(unsafe)
    with pytest.raises(CheckpointError, match="is a directory, expected a file"):
        load_checkpoint(tmp_path)


def test_rotation_keeps_newest_and_latest_survives(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (2, 4, 6, 8):
        manager.save_periodic(_payload(step, step), iteration=step)
    assert sorted(manager.iteration_files()) == [6, 8]
    latest = load_checkpoint(manager.latest_path)
    assert latest["step"] == 8 and torch.equal(latest["model"]["w"], torch.full((3,), 8.0))
    # latest.pth is its own directory entry: removing the iteration file does not remove it
    os.unlink(manager.iter_path(8))
    assert load_checkpoint(manager.latest_path)["step"] == 8
    assert _leftovers(tmp_path) == []


def test_rotation_leaves_an_abandoned_timeline_alone(tmp_path):
    manager = CheckpointManager(tmp_path, keep=1)
    manager.save_periodic(_payload(10), iteration=10)
    manager.save_periodic(_payload(4), iteration=4)  # resumed from an older checkpoint
    assert sorted(manager.iteration_files()) == [4, 10]
    assert load_checkpoint(manager.latest_path)["step"] == 4
    with pytest.raises(ValueError, match="keep_checkpoints"):
        CheckpointManager(tmp_path, keep=0)


def test_link_falls_back_to_a_copy(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError("hard links not supported")

    monkeypatch.setattr("pipa_video.atomic.os.link", no_links)
    manager = CheckpointManager(tmp_path, keep=1)
    manager.save_periodic(_payload(2, 2.0), iteration=2)
    assert load_checkpoint(manager.latest_path)["step"] == 2
    assert manager.latest_path.stat().st_ino != manager.iter_path(2).stat().st_ino


def test_a_checkpoint_is_run_without_the_imagenet_weights_its_config_names(tmp_path):
    """eval / predict build the segmentor for a checkpoint: model.backbone.pretrained is never read."""
    from pipa_video.config import validate
    from pipa_video.engine.checkpoint import load_segmentor
    from pipa_video.models import build_segmentor

    model_cfg = {"backbone": {"type": "mit_demo", "pretrained": str(tmp_path / "pretrained" / "mit_b5.pth")},
                 "decode_head": {"type": "segformer", "channels": 16}}
    cfg = validate({"class_set": "viper15", "model": model_cfg})
    torch.manual_seed(1)
    trained = build_segmentor({**cfg["model"], "backbone": {**cfg["model"]["backbone"], "pretrained": None}},
                              num_classes=15)
    path = save_checkpoint({"model": trained.state_dict(), "config": cfg.to_dict(),
                            "meta": make_meta(class_set="viper15", num_classes=15, iteration=3, selection="last")},
                           tmp_path / "m.pth")
    restored = load_segmentor(cfg, path)  # the ImageNet file does not exist
    for key, value in trained.state_dict().items():
        assert torch.equal(restored.model.state_dict()[key], value), key
    assert restored.meta["iteration"] == 3 and restored.path == str(path)
    with pytest.raises(CheckpointError, match="mit_b5.pth: checkpoint not found"):
        build_segmentor(cfg["model"], num_classes=15)  # training does read it, and names it
