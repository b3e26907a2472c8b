"""Config loading: _base_ inheritance, --cfg-options overrides, and failures that name the key."""
import re
import textwrap
from pathlib import Path

import pytest

from pipa_video.config import ConfigError, dump_config, load_config


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_base_inheritance_and_overrides(tmp_path):
    _write(tmp_path / "_base_" / "data.py", """
        class_set = 'viper15'
        data = dict(source=dict(index='a', crop_size=(64, 64)), source_batch_size=3)
    """)
    cfg_file = _write(tmp_path / "exp.py", """
        _base_ = ['./_base_/data.py']
        data = dict(source=dict(crop_size=(32, 32)))
        schedule = dict(iters=10, warmup_iters=2)
    """)
    cfg = load_config(cfg_file, overrides={"schedule.iters": 7, "uda.pixel_contrast.weight": 0.1})
    assert cfg.class_set == "viper15"
    assert cfg.data.source.index == "a" and tuple(cfg.data.source.crop_size) == (32, 32)
    assert cfg.data.source_batch_size == 3
    assert cfg.schedule.iters == 7 and cfg.uda.pixel_contrast.weight == 0.1
    assert cfg.optimizer.lr == 6e-5  # defaults filled in


@pytest.mark.parametrize("body, message", [
    ("data = dict(source=dict(crop_sise=(1, 1)))", "data.source.crop_sise: unknown key; did you mean 'crop_size'"),
    ("uda = dict(method='dacs')", "uda.method: 'dacs' is not one of"),
    ("schedule = dict(iters='many')", "schedule.iters: got str"),
    ("runtime = dict(amp=1)", "runtime.amp: got int"),
    ("optimiser = dict(lr=1.0)", "optimiser: unknown key; did you mean 'optimizer'"),
    ("schedule = dict(iters=4, warmup_iters=30)", "schedule.warmup_iters: must be in [0, schedule.iters=4]"),
    ("uda = dict(patch_contrast=dict(crop_ratio=1.5))", "uda.patch_contrast.crop_ratio: expected a value in (0, 1], got 1.5"),
    ("evaluation = dict(tc_resize=(1024, 0))", "evaluation.tc_resize: expected every value in [1, inf), got 0 in (1024, 0)"),
    ("uda = dict(patch_contrast=dict(views='three_crops'))", "uda.patch_contrast.views: 'three_crops' is not one of"),
    ("uda = dict(patch_contrast=dict(weight=0.1, crop_ratio=0.25))",
     "uda.patch_contrast.crop_ratio: with views='mixed_and_crop' the crop covers crop_ratio^2 = 0.062"),
])
def test_bad_keys_and_values_fail_at_load_time_naming_the_key(tmp_path, body, message):
    cfg_file = _write(tmp_path / "bad.py", body)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(cfg_file)


def test_bad_override_fails_naming_the_key(tmp_path):
    cfg_file = _write(tmp_path / "ok.py", "schedule = dict(iters=10)")
    with pytest.raises(ConfigError, match="schedule.itres: unknown key"):
        load_config(cfg_file, overrides={"schedule.itres": 5})


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.py: config file not found"):
        load_config(tmp_path / "nope.py")


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(_write(tmp_path / "c.py", "schedule = dict(iters=12, warmup_iters=2)"))
    dump_config(cfg, tmp_path / "run" / "config.py")
    again = load_config(tmp_path / "run" / "config.py")
    assert again.to_dict() == cfg.to_dict()
    assert not list((tmp_path / "run").glob("*.tmp"))


CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = sorted(p for p in CONFIG_DIR.rglob("*.py") if "_base_" not in p.parts)


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(CONFIG_DIR)) for p in SHIPPED])
def test_every_shipped_config_loads_and_validates(path):
    cfg = load_config(path)
    assert cfg.data.source.index, "every config names its source index"


def test_paper_settings_in_benchmark_configs():
    for path in SHIPPED:
        if "demo" in path.name or path.parent.name == "demo":
            continue
        cfg = load_config(path)
        assert cfg.model.backbone.type == "mit_b5" and cfg.schedule.iters == 40000
        # DAFormer's 512x512 crops; HRDA's 1024x1024 (its context crop, at full resolution)
        assert tuple(cfg.data.source.crop_size) == ((1024, 1024) if cfg.model.type == "hrda" else (512, 512))
        assert cfg.data.source_batch_size == 2 and cfg.data.target_batch_size == 2
        if path.parent.name == "pipa++":
            assert cfg.uda.pixel_contrast.weight == cfg.uda.patch_contrast.weight == 0.1
            assert cfg.uda.temporal_contrast.weight == 0.1
