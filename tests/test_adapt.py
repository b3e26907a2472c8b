"""``pipa-video adapt``'s config: everything from the checkpoint's saved config, the schedule scaled."""
import pytest

from pipa_video.adapt import adapt_config, check_source_index, ema_alpha_for, method_name, scaled_schedule
from pipa_video.config import ConfigError, load_config

DEMO = "configs/demo/pipa++_synthetic.py"


def saved(path=DEMO, **changes):
    cfg = load_config(path).to_dict()
    for key, value in changes.items():
        section, name = key.split(".")
        cfg[section][name] = value
    return cfg


def test_short_schedules_keep_the_warm_up_share_and_the_paper_teacher_horizon():
    assert scaled_schedule(dict(iters=40000, warmup_iters=1500), 400) == dict(iters=400, warmup_iters=15)
    assert scaled_schedule(dict(iters=400, warmup_iters=30), 10) == dict(iters=10, warmup_iters=1)
    assert ema_alpha_for(0.999, 40000) == pytest.approx(0.999)
    assert ema_alpha_for(0.999, 400) == pytest.approx(0.9)
    assert ema_alpha_for(0.999, 10) == pytest.approx(0.5)
    assert ema_alpha_for(0.9, 40000) == 0.9  # a shorter horizon than the paper's is kept


def test_footage_is_the_target_and_nothing_is_selected_on_it(tmp_path):
    cfg = adapt_config(saved(), checkpoint="ckpt.pth", index_dir=tmp_path, iters=10)
    assert cfg.load_from == "ckpt.pth" and cfg.class_set == "viper15"
    assert cfg.data.target.index == str(tmp_path) and cfg.data.target["keys"] == "all"
    assert cfg.data.target.boundary == "clamp"  # photos are one-frame sequences
    assert cfg.data.val.index is None and cfg.data.test.index is None
    assert cfg.data.source.index == saved()["data"]["source"]["index"]
    assert (cfg.schedule.iters, cfg.schedule.warmup_iters, cfg.uda.ema_alpha) == (10, 1, 0.5)
    assert cfg.runtime.log_interval == 1 and cfg.runtime.checkpoint_interval == 10
    assert method_name(cfg.uda) == "self-training (DAFormer) + pixel, patch, temporal contrast (PiPa++)"
    same = adapt_config(saved(), checkpoint="ckpt.pth", index_dir=tmp_path)  # default: the saved schedule
    assert same.schedule.iters == 400 and same.schedule.warmup_iters == 30 and same.uda.ema_alpha == 0.9


def test_a_source_only_checkpoint_is_adapted_by_self_training(tmp_path):
    cfg = adapt_config(saved("configs/demo/source_only_synthetic.py"), checkpoint="c", index_dir=tmp_path, iters=5)
    assert cfg.uda.method == "self_training" and method_name(cfg.uda) == "self-training (DAFormer)"


def test_overrides_and_errors_name_the_key(tmp_path):
    cfg = adapt_config(saved(), checkpoint="c", index_dir=tmp_path, iters=5,
                       overrides={"data.source.index": str(tmp_path)})
    assert cfg.data.source.index == str(tmp_path)
    check_source_index(cfg, checkpoint="c")
    with pytest.raises(ConfigError, match=r"data\.source\.index = 'nowhere' \(from the config saved in c\)"):
        check_source_index(adapt_config(saved(), checkpoint="c", index_dir=tmp_path, iters=5,
                                        overrides={"data.source.index": "nowhere"}), checkpoint="c")
    with pytest.raises(ConfigError, match="--iters: must be >= 1"):
        adapt_config(saved(), checkpoint="c", index_dir=tmp_path, iters=-1)


def test_every_source_of_a_multi_source_checkpoint_must_be_here(tmp_path):
    here = tmp_path / "gta"
    here.mkdir()
    cfg = saved("configs/demo/pipa++_synthetic.py")
    cfg["data"]["sources"] = [dict(index=str(here), weight=0.5), dict(index="gone", weight=0.5)]
    adapted = adapt_config(cfg, checkpoint="c", index_dir=tmp_path, iters=5)
    with pytest.raises(ConfigError, match=r"data\.sources\[1\]\.index = 'gone' .*--cfg-options data\.sources\.1\.index=DIR"):
        check_source_index(adapted, checkpoint="c")


@pytest.mark.timeout(1800)
def test_a_used_adapt_work_dir_needs_resume_or_overwrite(tmp_path, capsys):
    """A second ``adapt`` into the same dir is refused (exit 7, naming both flags); ``--resume`` continues
    on the footage index the first run prepared; ``--overwrite`` starts afresh."""
    from pipa_video.cli import main
    from tests.test_readme_footage import make_footage, tiny_demo_checkpoint

    tiny_demo_checkpoint(tmp_path)
    make_footage(tmp_path)
    ckpt, work = tmp_path / "work_dirs" / "demo" / "pipa++" / "best.pth", tmp_path / "adapted"
    args = ["adapt", "--checkpoint", str(ckpt), "--footage", str(tmp_path / "my_footage"), "--work-dir", str(work),
            "--cfg-options", "data.source.crop_size=(64,64)", "data.target.crop_size=(64,64)"]
    assert main([*args, "--iters", "2"]) == 0
    prepared = (work / "footage_index" / "index.csv").stat().st_mtime_ns
    capsys.readouterr()
    assert main([*args, "--iters", "2"]) == 7
    assert "--resume to continue it" in capsys.readouterr().err
    assert main([*args, "--iters", "3", "--resume"]) == 0
    assert (work / "footage_index" / "index.csv").stat().st_mtime_ns == prepared  # the same frames
    assert (work / "iter_3.pth").is_file() or (work / "latest.pth").is_file()
    assert main([*args, "--iters", "2", "--overwrite"]) == 0


def test_cfg_options_text_is_parsed_against_the_schema_as_train_does(tmp_path):
    cfg = adapt_config(saved(), checkpoint="c", index_dir=tmp_path, iters=5,
                       overrides={"data.source.crop_size": "(64,64)", "data.target.crop_size": "[64, 64]",
                                  "runtime.amp": "false"})
    assert tuple(cfg.data.source.crop_size) == (64, 64) and cfg.runtime.amp is False


def test_the_method_is_named_with_hrda_and_mic(tmp_path):
    cfg = adapt_config(saved("configs/demo/pipa++_hrda_mic_synthetic.py"), checkpoint="c", index_dir=tmp_path, iters=5)
    assert method_name(cfg.uda, cfg.model) == ("self-training (DAFormer) on HRDA + MIC + pixel, patch, temporal "
                                              "contrast (PiPa++)")
