"""`pipa-video demo --methods`: HRDA + MIC and PiPa++ on HRDA + MIC through the real pipeline, with --seeds."""
import csv
import json

import pytest

from pipa_video.cli import build_parser
from pipa_video.demo import (ALL_METHODS, METHODS, demo_config, methods_by_name, overlay_video, prepare_demo_data,
                             run_demo_seeds)
from tests.demo_data import TINY_HRDA as TINY  # HRDA's context is half the frame: 128x64



def test_methods_are_chosen_by_name_and_the_default_is_unchanged():
    assert [m.name for m in METHODS] == ["source_only", "self_training", "pipa++"]
    assert [m.name for m in ALL_METHODS][3:] == ["hrda_mic", "pipa++_hrda_mic"]
    assert [m.name for m in methods_by_name(["pipa++_hrda_mic", "source_only"])] == ["pipa++_hrda_mic", "source_only"]
    for bad in (["hrda"], [], ["pipa++", "pipa++"]):
        with pytest.raises(ValueError, match="hrda_mic"):
            methods_by_name(bad)


def test_cli_combines_methods_with_seeds():
    args = build_parser().parse_args(["demo", "--methods", "hrda_mic,pipa++_hrda_mic", "--seeds", "0,1,2"])
    assert args.methods == ["hrda_mic", "pipa++_hrda_mic"] and args.seeds == [0, 1, 2]
    assert build_parser().parse_args(["demo"]).methods is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--methods", "hrda_mic,daformer"])


def _columns(run_dir):
    with open(run_dir / "train_log.csv", newline="") as f:
        return next(csv.reader(f))


def test_hrda_mic_methods_train_evaluate_and_log_every_term(tmp_path):
    overrides = {"data.source.crop_size": (64, 64), "data.target.crop_size": (64, 64), "uda.pseudo_threshold": 0.0,
                 "uda.temporal_contrast.confidence": 0.0}
    summary = run_demo_seeds(work_dir=tmp_path, seeds=[0, 1], iters=2, spec=TINY, overrides=overrides,
                             methods=methods_by_name(["self_training", "hrda_mic", "pipa++_hrda_mic"]))
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert set(on_disk["methods"]) == {"self_training", "hrda_mic", "pipa++_hrda_mic"}
    assert set(on_disk["paired"]) == {"hrda_mic - self_training", "pipa++_hrda_mic - hrda_mic"}
    assert summary["seeds"] == [0, 1]
    for seed in (0, 1):
        hrda = _columns(tmp_path / f"seed{seed}" / "hrda_mic")
        pipa = _columns(tmp_path / f"seed{seed}" / "pipa++_hrda_mic")
        for columns in (hrda, pipa):
            assert {"loss_src", "loss_src_detail", "loss_mix", "loss_mix_detail", "loss_mic", "loss_mic_detail"} \
                <= set(columns), columns
        assert {"loss_pixel_src", "loss_patch", "loss_temporal"} <= set(pipa)
        assert not any("detail" in c or "mic" in c for c in _columns(tmp_path / f"seed{seed}" / "self_training"))
    config = (tmp_path / "seed0" / "hrda_mic" / "config.py").read_text()
    assert "hrda" in config  # the saved config says which model was trained
    # predict (the overlay video) goes through HRDA's own slide too, as eval and tc-report did above
    indexes = prepare_demo_data(tmp_path / "data", seed=0, spec=TINY)  # already there: only the paths
    (method,) = methods_by_name(["hrda_mic"])
    cfg = demo_config(method, indexes, iters=2, seed=0, extra=overrides)
    video = overlay_video(cfg, tmp_path / "seed0" / "hrda_mic" / "latest.pth", indexes["target_test"], tmp_path / "ov")
    assert video.suffix == ".mp4" and video.stat().st_size > 0
