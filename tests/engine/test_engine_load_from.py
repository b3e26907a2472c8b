"""``load_from``: a checkpoint's segmentor initialises student and teacher; mismatches are clear errors."""
import pytest
import torch

from pipa_video.config import validate
from pipa_video.engine.build import init_from_checkpoint
from pipa_video.engine.checkpoint import CheckpointError, check_compatible, load_checkpoint, make_meta, save_checkpoint
from pipa_video.uda.build import build_method


def _cfg(method="self_training", head="segformer", load_from=None):
    return validate({
        "class_set": "viper15", "load_from": load_from,
        "model": {"backbone": {"type": "mit_demo", "pretrained": None}, "decode_head": {"type": head, "channels": 32}},
        "uda": {"method": method, "pixel_contrast": {"weight": 0.1, "proj_dim": 16, "bank_size": 8}},
    })


def _save(tmp_path, cfg, seed=3):
    torch.manual_seed(seed)
    trained = build_method(cfg)
    path = save_checkpoint({"model": trained.student.segmentor.state_dict(), "config": cfg.to_dict(),
                            "meta": make_meta(class_set=cfg["class_set"], num_classes=15, iteration=7,
                                              selection="last iteration")}, tmp_path / "source_only.pth")
    return trained, path


def test_student_and_teacher_start_from_the_checkpoint(tmp_path, caplog):
    trained, path = _save(tmp_path, _cfg("source_only"))
    cfg = _cfg("self_training", load_from=str(path))
    torch.manual_seed(0)
    method = build_method(cfg)
    with caplog.at_level("INFO", logger="pipa_video"):
        init_from_checkpoint(method, cfg)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("load_from:")]
    assert len(logged) == 1 and str(path) in logged[0] and "iteration 7, class set viper15" in logged[0]
    expected = trained.student.segmentor.state_dict()
    for name, value in method.student.segmentor.state_dict().items():
        assert torch.equal(value, expected[name]), name
    for name, value in method.teacher.model.segmentor.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_a_checkpoint_of_another_model_is_refused_naming_the_keys(tmp_path):
    _, path = _save(tmp_path, _cfg("source_only", head="daformer"))
    cfg = _cfg("self_training", load_from=str(path))
    with pytest.raises(CheckpointError, match="decode head 'daformer'.*model.decode_head.type"):
        init_from_checkpoint(build_method(cfg), cfg)


def test_a_missing_checkpoint_is_named(tmp_path):
    cfg = _cfg(load_from=str(tmp_path / "nope.pth"))
    with pytest.raises(CheckpointError, match="nope.pth: checkpoint not found"):
        init_from_checkpoint(build_method(cfg), cfg)


@pytest.mark.parametrize("change, named", [
    (lambda cfg: cfg.update(class_set="cityscapes19"), r"class set viper15 \(15 classes\), config asks for cityscapes19"),
    (lambda cfg: cfg["model"]["backbone"].update(type="mit_b0"), r"backbone 'mit_demo'.*model.backbone.type"),
    (lambda cfg: cfg["model"].update(type="hrda"), r"a single-scale segmentor, the config asks for "
                                                   r"an HRDA one \(model.type\)"),
], ids=["class_set", "backbone", "hrda"])
def test_load_from_and_resume_run_the_same_check(tmp_path, change, named):
    """One check for both: the trainer's resume check is check_compatible bound to the config by the builder."""
    _, path = _save(tmp_path, _cfg("source_only"))
    wanted = _cfg("self_training", load_from=str(path)).to_dict()
    change(wanted)
    with pytest.raises(CheckpointError, match=named):
        check_compatible(load_checkpoint(path, require=("model",)), wanted, path=path)  # what resume runs
    with pytest.raises(CheckpointError, match=named):
        init_from_checkpoint(build_method(_cfg("self_training", load_from=str(path))), validate(wanted))
