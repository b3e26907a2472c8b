"""Cityscapes -> ACDC / Dark Zurich configs carry DAFormer's published values (docs/recipes.md, "Cross-weather")."""
from pathlib import Path

import pytest

from pipa_video.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TARGETS = {"acdc": ("data/index/acdc_train", "data/index/acdc_val"),
           "darkzurich": ("data/index/darkzurich_train", "data/index/darkzurich_val")}


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("method", ["baselines/source_only", "baselines/dacs", "pipa++/pipa++"])
def test_cross_weather_recipe(method, target):
    cfg = load_config(CONFIGS / f"{method}_mit_b5_cs_to_{target}.py")
    src, tgt = cfg.data.source, cfg.data.target
    assert cfg.class_set == "cityscapes19" and src.index == "data/index/cs_train"
    assert tuple(src.resize) == (1024, 512) and src.ratio_range is None and src.cat_max_ratio == 0.75
    assert src.rcs.enabled and src.rcs.temperature == 0.01 and src.rcs.min_pixels == 3000
    assert (tgt.index, cfg.data.test.index) == TARGETS[target] and cfg.data.val.index is None
    assert tuple(tgt.resize) == (960, 540) and tgt.ratio_range is None and tgt.cat_max_ratio == 1.0
    assert tuple(tgt.crop_size) == (512, 512) and tgt.flip_prob == 0.5 and tgt.offsets == [] and tgt["keys"] == "all"
    assert tuple(cfg.evaluation.resize) == (960, 540) and cfg.evaluation.mode == "whole"
    assert cfg.optimizer.lr == 6e-5 and cfg.schedule.iters == 40000 and cfg.schedule.warmup_iters == 1500
    if method == "baselines/source_only":
        assert cfg.uda.method == "source_only"
        return
    u = cfg.uda
    assert u.method == "self_training" and u.ema_alpha == 0.999 and u.pseudo_threshold == 0.968
    assert (u.pseudo_ignore_top, u.pseudo_ignore_bottom) == (15, 120)  # DAFormer id 8: plcrop=True
    assert u.feature_distance.weight == 0.005 and u.feature_distance.scale_min_ratio == 0.75
    assert u.feature_distance.classes == ["traffic light", "traffic sign", "person", "rider", "car", "truck", "bus", "train",
                            "motorcycle", "bicycle"]  # DAFormer's thing classes 6, 7, 11..18
