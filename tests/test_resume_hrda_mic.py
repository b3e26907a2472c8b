"""Resume stays exact with HRDA, MIC and the contrasts: detail crops, masks and anchors come from the
generators the checkpoint restores (through the real CLI, as tests/test_end_to_end.py does for PiPa++)."""
import pytest
import torch

from pipa_video.cli import main
from pipa_video.demo import prepare_demo_data
from tests.demo_data import TINY_HRDA as TINY  # HRDA's context is half the frame: 128x64

CONFIG = "configs/demo/pipa++_hrda_mic_synthetic.py"


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    return prepare_demo_data(tmp_path_factory.mktemp("data"), seed=0, spec=TINY)


def _train(work_dir, indexes, iters, *extra):
    options = [f"data.source.index={indexes['source']}", f"data.target.index={indexes['target_train']}",
               f"data.val.index={indexes['target_val']}", f"data.test.index={indexes['target_test']}",
               f"schedule.iters={iters}", "schedule.warmup_iters=1", "runtime.checkpoint_interval=2",
               "runtime.eval_interval=2", "runtime.log_interval=1", "data.source.crop_size=(64,64)",
               "data.target.crop_size=(64,64)", "model.hrda.detail_crop=(32,32)", "uda.patch_contrast.crop_ratio=1.0",
               "uda.pseudo_threshold=0.0", "uda.temporal_contrast.confidence=0.0"]
    assert main(["train", CONFIG, "--work-dir", str(work_dir), *extra, "--cfg-options", *options]) == 0


def test_resume_with_hrda_mic_and_the_contrasts_is_exact(indexes, tmp_path):
    _train(tmp_path / "straight", indexes, 4)
    _train(tmp_path / "resumed", indexes, 4, "--resume", str(tmp_path / "straight" / "iter_2.pth"))
    load = lambda run: torch.load(tmp_path / run / "latest.pth", map_location="cpu", weights_only=True)  # noqa: E731
    a, b = load("straight"), load("resumed")
    assert a["step"] == b["step"] == 4
    assert any("scale_attention" in key for key in a["model"])  # HRDA was trained
    for part in ("model", "teacher"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    assert torch.equal(a["extra"]["pixel_bank"]["features"], b["extra"]["pixel_bank"]["features"])
    header = (tmp_path / "straight" / "train_log.csv").read_text().splitlines()[0]
    for term in ("loss_src_detail", "loss_mix_detail", "loss_mic", "loss_mic_detail", "loss_patch", "loss_temporal"):
        assert term in header
