"""The real pieces end to end through the CLI: synthetic trees -> prepare -> train -> resume -> eval.

A tiny synthetic benchmark (64x32 frames) is generated in the real VIPER and Cityscapes-Seq layouts
and indexed by the real prepare tools; PiPa++ with the tiny MiT trains on it through `pipa-video`.
"""
import json
from pathlib import Path

import pytest
import torch

from pipa_video.cli import main
from tests.demo_data import TINY
from pipa_video.demo import prepare_demo_data

CONFIG = "configs/demo/pipa++_synthetic.py"


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    return prepare_demo_data(tmp_path_factory.mktemp("data"), seed=0, spec=TINY)


def _options(indexes, iters):
    return ["--cfg-options", f"data.source.index={indexes['source']}", f"data.target.index={indexes['target_train']}",
            f"data.val.index={indexes['target_val']}", f"data.test.index={indexes['target_test']}",
            f"schedule.iters={iters}", "schedule.warmup_iters=1", "runtime.checkpoint_interval=2",
            "runtime.eval_interval=2", "runtime.log_interval=1", "data.source.crop_size=(64,64)",
            "data.target.crop_size=(64,64)", "uda.pseudo_threshold=0.0", "uda.temporal_contrast.confidence=0.0"]


def _train(work_dir, indexes, iters, *extra):
    assert main(["train", CONFIG, "--work-dir", str(work_dir), *extra, *_options(indexes, iters)]) == 0


def _state(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # checkpoints hold no pickled objects
    return ckpt


def test_train_resume_is_exact_and_eval_reports(indexes, tmp_path):
    _train(tmp_path / "straight", indexes, 4)
    # A crash after the iteration-2 checkpoint: a new run of the same config resumes from it.
    _train(tmp_path / "resumed", indexes, 4, "--resume", str(tmp_path / "straight" / "iter_2.pth"))
    a, b = _state(tmp_path / "straight" / "latest.pth"), _state(tmp_path / "resumed" / "latest.pth")
    assert a["step"] == b["step"] == 4
    for part in ("model", "teacher"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    assert torch.equal(a["extra"]["pixel_bank"]["features"], b["extra"]["pixel_bank"]["features"])
    # the resolved config is saved next to the run, every loss term is logged on its own
    assert (tmp_path / "straight" / "config.py").is_file()
    header = (tmp_path / "straight" / "train_log.csv").read_text().splitlines()[0]
    for term in ("loss_src", "loss_mix", "loss_pixel_src", "loss_patch", "loss_temporal"):
        assert term in header

    out = tmp_path / "eval"
    assert main(["eval", CONFIG, "--checkpoint", str(tmp_path / "straight" / "best.pth"), "--out", str(out),
                 *_options(indexes, 4)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    text = json.dumps(summary)
    assert "davsn" in text and "held-out" in text and "viper15" in text


def test_eval_of_a_checkpoint_from_another_architecture_is_a_clear_error(indexes, tmp_path, capsys):
    _train(tmp_path / "run", indexes, 2)
    code = main(["eval", CONFIG, "--checkpoint", str(tmp_path / "run" / "latest.pth"), *_options(indexes, 2),
                 "model.decode_head.type=daformer"])
    assert code == 4  # the checkpoint's kind of error (errors.ExitCode.CHECKPOINT)
    err = capsys.readouterr().err
    assert "daformer" in err and "segformer" in err


@pytest.mark.slow
def test_full_demo(tmp_path):
    """`pipa-video demo` with its default sizes (minutes on 2 cores): run with `pytest -m slow`."""
    assert main(["demo", "--work-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["methods"]) == {"source_only", "self_training", "pipa++"}
    for result in summary["methods"].values():
        assert 0 <= result["target_mIoU"] <= 100 and result["per_class_IoU"]
        assert "flicker_rate" in result and "flow_warped_consistency" in result
    assert summary["overlay"].endswith(".mp4") and Path(summary["overlay"]).is_file()  # the video, not a folder
    # What five seeds support (docs/demo_findings.md, H): PiPa++ beats self-training, paired 95% interval
    # [+0.07, +2.71]; +1.27 at this seed. (Self-training vs source-only no longer holds across seeds.)
    miou = {name: r["target_mIoU"] for name, r in summary["methods"].items()}
    assert miou["pipa++"] > miou["self_training"], miou


@pytest.mark.parametrize("reference,views", [("teacher", "mixed_and_crop"), ("student", "mixed_and_crop"),
                                             ("teacher", "two_crops")])
def test_torchrun_two_processes_train_pipa(indexes, tmp_path, reference, views):
    """DDP across 2 gloo processes with the real method: every student forward's outputs must feed
    a loss (the patch crops' and the student reference frame's logits included), or DDP hangs/raises."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "pipa_video.cli", "train",
           CONFIG, "--work-dir", str(tmp_path / "ddp"), *_options(indexes, 2),
           f"uda.temporal_contrast.reference={reference}", f"uda.patch_contrast.views={views}"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _state(tmp_path / "ddp" / "latest.pth")["step"] == 2
