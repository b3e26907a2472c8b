"""Multi-source training end to end through the CLI: GTA5 + SYNTHIA trees in their published layouts ->
prepare -> PiPa++ (tiny MiT) trained on batches mixing both sources -> resumed exactly -> evaluated."""
import csv
import json
from pathlib import Path

import pytest
import torch

from pipa_video.cli import main
from tests.data.multisource_fixtures import CROP, H, W, prepare_two_sources

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multisource_e2e")
    idx = prepare_two_sources(tmp)
    source = dict(offsets=[], ratio_range=None, crop_size=CROP, rcs=dict(enabled=True, min_pixels=100))
    text = f"""_base_ = [{str(ROOT / 'configs/demo/pipa++_synthetic.py')!r}]
class_set = 'cityscapes19'
data = dict(
    source=dict(index={idx['gta']!r}, **{source!r}),
    sources=[dict(index={idx['gta']!r}, weight=0.5), dict(index={idx['synthia']!r}, weight=0.5)],
    target=dict(index={idx['cs']!r}, offsets=[], resize=({W}, {H}), ratio_range=None, crop_size={CROP!r}),
    val=dict(index={idx['cs']!r}),
    test=dict(index={idx['cs']!r}),
)
evaluation = dict(resize=(64, 32))
uda = dict(pseudo_threshold=0.0)
schedule = dict(iters=4, warmup_iters=1)
runtime = dict(checkpoint_interval=2, eval_interval=2, log_interval=1, device='cpu')
"""
    path = tmp / "gta+synthia_tiny.py"
    path.write_text(text)
    return path


def _train(config_file, work_dir, *extra):
    assert main(["train", str(config_file), "--work-dir", str(work_dir), *extra]) == 0


def test_two_source_training_resumes_exactly_and_evaluates(config_file, tmp_path):
    _train(config_file, tmp_path / "straight")
    _train(config_file, tmp_path / "resumed", "--resume", str(tmp_path / "straight" / "iter_2.pth"))
    a, b = (torch.load(tmp_path / run / "latest.pth", map_location="cpu", weights_only=True)
            for run in ("straight", "resumed"))
    assert a["step"] == b["step"] == 4
    for part in ("model", "teacher"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    bank = a["extra"]["pixel_bank"]
    assert torch.equal(bank["features"], b["extra"]["pixel_bank"]["features"])
    assert int(bank["count"].sum()) > 0
    with open(tmp_path / "straight" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(float(r["loss_src"]) > 0 for r in rows)
    for term in ("loss_mix", "loss_pixel_src", "loss_patch"):
        assert term in rows[0]
    saved = (tmp_path / "straight" / "config.py").read_text()
    assert "synthia" in saved and "weight=0.5" in saved  # the resolved sources are saved with the run
    out = tmp_path / "eval"
    assert main(["eval", str(config_file), "--checkpoint", str(tmp_path / "straight" / "latest.pth"),
                 "--out", str(out)]) == 0
    assert "cityscapes19" in json.dumps(json.loads((out / "summary.json").read_text()))
