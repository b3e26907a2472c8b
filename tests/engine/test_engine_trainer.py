import contextlib
import csv

import numpy as np
import pytest
import torch
from engine_toys import ToyMethod, toy_loaders_factory

from pipa_video.config import validate
from pipa_video.engine.build import build_trainer, make_trainer, run_header
from pipa_video.engine.checkpoint import CheckpointError, RunHeader, check_compatible, load_checkpoint
from pipa_video.engine.dist import DistInfo
from pipa_video.engine.hooks import CheckpointHook, EvalHook, LoggerHook, NonFiniteHook
from pipa_video.engine.optim import build_optimizer
from pipa_video.engine.schedule import lr_schedule
from pipa_video.engine.trainer import NonFiniteLossError, move_to_device
from pipa_video.evaluation.loop import eval_mode

CONFIG = {"class_set": "cityscapes19", "note": "toy"}
HEADER = RunHeader(config=CONFIG, class_set="cityscapes19", num_classes=19)


def _trainer(method, work_dir, *, iters=4, checkpoint_interval=2, eval_interval=0, evaluate_fn=None,
             log_interval=1, seed=11, header=HEADER, device="cpu", check=None, **options):
    optimizer = build_optimizer(method.student.param_groups(), lr=0.01, head_lr_mult=10.0, weight_decay=0.01,
                                betas=(0.9, 0.999))
    schedule = lr_schedule(base_lr=0.01, iters=iters, warmup_iters=2, warmup_ratio=0.1, power=1.0, min_lr=0.0)
    return make_trainer(method=method, optimizer=optimizer, lr_schedule=schedule,
                        loaders_factory=toy_loaders_factory(seed=5), work_dir=work_dir, header=header, iters=iters,
                        log_interval=log_interval, checkpoint_interval=checkpoint_interval,
                        eval_interval=eval_interval, evaluate_fn=evaluate_fn, amp=True,
                        dist=DistInfo(device=torch.device(device)), seed=seed, check=check, **options)


def _rng_consuming_eval(model):
    torch.rand(5)  # an evaluation that draws random numbers must not shift training
    np.random.rand()
    return {"mIoU": 50.0}


def _assert_same_training_state(a, b):
    for key, value in a.student.state_dict().items():
        assert torch.equal(value, b.student.state_dict()[key]), key
    for key, value in a.teacher.state_dict().items():
        assert torch.equal(value, b.teacher.state_dict()[key]), key
    state_a, state_b = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    for idx in state_a:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(state_a[idx][name], state_b[idx][name]), (idx, name)


def test_interrupted_and_resumed_run_is_bit_identical(tmp_path):
    straight = ToyMethod(init_seed=0)
    straight_trainer = _trainer(straight, tmp_path / "straight", eval_interval=2, evaluate_fn=_rng_consuming_eval)
    straight_trainer.fit()
    straight.optimizer = straight_trainer.optimizer

    crashed = ToyMethod(init_seed=0, fail_at=2)  # dies after the checkpoint at step 2
    with pytest.raises(KeyboardInterrupt):
        _trainer(crashed, tmp_path / "resumed", eval_interval=2, evaluate_fn=_rng_consuming_eval).fit()
    assert load_checkpoint(tmp_path / "resumed" / "latest.pth")["step"] == 2

    resumed = ToyMethod(init_seed=123)  # different initial weights: everything must come from the checkpoint
    resumed_trainer = _trainer(resumed, tmp_path / "resumed", eval_interval=2, evaluate_fn=_rng_consuming_eval)
    summary = resumed_trainer.fit(resume=resumed_trainer.checkpoints.resume_path(True))
    resumed.optimizer = resumed_trainer.optimizer
    assert summary["start_iteration"] == 2 and summary["iterations"] == 4
    assert int(resumed.steps_seen) == 4
    _assert_same_training_state(straight, resumed)
    assert not any(straight.autocast_seen)  # amp=True never autocasts on CPU


def test_resume_is_needed_for_identity(tmp_path):
    """Control for the test above: a fresh restart from step 2 without the RNG state does diverge."""
    straight = ToyMethod(init_seed=0)
    _trainer(straight, tmp_path / "a").fit()
    other = ToyMethod(init_seed=0)
    _trainer(other, tmp_path / "b", seed=12).fit()
    assert not torch.equal(straight.student.head.weight, other.student.head.weight)


def test_crash_loses_at_most_one_checkpoint_interval(tmp_path):
    straight = ToyMethod(init_seed=0)
    t = _trainer(straight, tmp_path / "straight", iters=6)
    t.fit()
    straight.optimizer = t.optimizer
    with pytest.raises(KeyboardInterrupt):
        _trainer(ToyMethod(init_seed=0, fail_at=5), tmp_path / "run", iters=6).fit()
    work = tmp_path / "run"
    assert sorted(p.name for p in work.glob("iter_*.pth")) == ["iter_2.pth", "iter_4.pth"]
    assert load_checkpoint(work / "latest.pth")["step"] == 4
    # the crashed run logged iteration 5; the resumed run replaces that row
    resumed = ToyMethod(init_seed=7)
    t2 = _trainer(resumed, work, iters=6)
    t2.fit(resume=str(work / "iter_4.pth"))
    resumed.optimizer = t2.optimizer
    _assert_same_training_state(straight, resumed)
    with open(work / "train_log.csv", newline="") as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]


def test_non_finite_loss_stops_before_the_step_and_keeps_the_checkpoint(tmp_path):
    method = ToyMethod(init_seed=0, nan_at=3)
    trainer = _trainer(method, tmp_path, iters=6)
    seen = {}
    original_after_step = method.after_step

    def spy_after_step(*, iteration):
        original_after_step(iteration=iteration)
        seen[iteration] = {k: v.clone() for k, v in method.student.state_dict().items()}

    method.after_step = spy_after_step
    with pytest.raises(NonFiniteLossError, match=r"loss_tgt: non-finite loss \(nan\) at iteration 3 on rank 0") as info:
        trainer.fit()
    assert "latest.pth" in str(info.value)
    latest = load_checkpoint(tmp_path / "latest.pth")
    assert latest["step"] == 2 and not (tmp_path / "iter_4.pth").exists()
    # the optimiser did not step on the bad iteration: weights are those after iteration 2
    for key, value in method.student.state_dict().items():
        assert torch.equal(value, seen[2][key]), key


def test_best_checkpoint_logs_and_meta(tmp_path):
    scores = iter([30.0, 55.0, 40.0])
    calls = []

    def evaluate(model):
        with eval_mode(model):  # what the evaluation loop does around its pass
            calls.append(model.training)
            return {"mIoU": next(scores), "aAcc": 90.0, "per_class": [1.0, 2.0]}

    method = ToyMethod(init_seed=0)
    summary = _trainer(method, tmp_path, iters=6, eval_interval=2, log_interval=2, evaluate_fn=evaluate).fit()
    assert calls == [False, False, False]  # evaluated in eval mode...
    assert method.student.training  # ...and put back into training mode
    best = load_checkpoint(tmp_path / "best.pth")
    assert best["meta"]["selection"] == "best mIoU on data.val (held-out split)"
    assert best["meta"]["iteration"] == 4 and best["meta"]["metrics"] == {"mIoU": 55.0, "aAcc": 90.0}
    assert best["meta"]["class_set"] == "cityscapes19" and best["meta"]["num_classes"] == 19
    assert best["step"] == 4 and "teacher" in best and "extra" in best
    latest = load_checkpoint(tmp_path / "latest.pth")
    assert latest["meta"]["selection"] == "last iteration" and latest["step"] == 6
    assert latest["config"] == CONFIG
    assert summary["best"] == {"metric": "mIoU", "value": 55.0, "iteration": 4}
    assert set(summary["last_losses"]) == {"loss_src", "loss_tgt"}
    assert "note = 'toy'" in (tmp_path / "config.py").read_text()
    with open(tmp_path / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [2, 4, 6]
    assert {"loss_src", "loss_tgt", "lr/backbone", "lr/head", "time_per_iter"} <= set(rows[0])
    # the lr logged at step 4 is that of iteration 3: poly(3/6) = 0.01 * 0.5, head x10
    assert float(rows[1]["lr/backbone"]) == pytest.approx(0.005)
    assert float(rows[1]["lr/head"]) == pytest.approx(0.05)
    with open(tmp_path / "eval_log.csv", newline="") as f:
        assert [float(r["mIoU"]) for r in csv.DictReader(f)] == [30.0, 55.0, 40.0]


def test_resume_keeps_the_best_found_before_the_crash(tmp_path):
    scores = iter([55.0, 30.0, 40.0])
    evaluate = lambda model: {"mIoU": next(scores)}  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        _trainer(ToyMethod(init_seed=0, fail_at=3), tmp_path, iters=6, eval_interval=2, evaluate_fn=evaluate).fit()
    trainer = _trainer(ToyMethod(init_seed=0), tmp_path, iters=6, eval_interval=2, evaluate_fn=evaluate)
    trainer.fit(resume=tmp_path / "latest.pth")
    assert load_checkpoint(tmp_path / "best.pth")["meta"]["metrics"]["mIoU"] == 55.0


def test_resume_errors(tmp_path):
    with pytest.raises(CheckpointError, match="latest.pth: not found, so there is nothing to resume in"):
        _trainer(ToyMethod(init_seed=0), tmp_path).checkpoints.resume_path(True)
    _trainer(ToyMethod(init_seed=0), tmp_path).fit()
    other = validate({"class_set": "synthiaseq12"})
    trainer = _trainer(ToyMethod(init_seed=0), tmp_path, check=lambda ckpt, path: check_compatible(ckpt, other,
                                                                                                   path=path))
    with pytest.raises(CheckpointError, match=r"trained for class set cityscapes19 \(19 classes\), config asks for "
                                              r"synthiaseq12 \(12\) \(class_set\)"):
        trainer.fit(resume=tmp_path / "latest.pth")
    assert trainer.method.student.training and load_checkpoint(tmp_path / "latest.pth")["step"] == 4


def test_setup_errors_name_the_problem(tmp_path):
    method = ToyMethod(init_seed=0)
    optimizer = build_optimizer(method.student.param_groups(), lr=0.01, head_lr_mult=10.0, weight_decay=0.0,
                                betas=(0.9, 0.999))
    common = dict(method=method, optimizer=optimizer, loaders_factory=toy_loaders_factory(), work_dir=tmp_path,
                  iters=4, log_interval=1, checkpoint_interval=2)
    with pytest.raises(ValueError, match=r"lr_schedule has shape \(3,\), expected \(4,\)"):
        make_trainer(lr_schedule=np.ones(3), **common)
    with pytest.raises(ValueError, match="checkpoint_interval must be >= 1"):
        make_trainer(lr_schedule=np.ones(4), **{**common, "checkpoint_interval": 0})
    with pytest.raises(RuntimeError, match="move the method to the device"):
        make_trainer(lr_schedule=np.ones(4), dist=DistInfo(device=torch.device("cuda")), **common).fit()
    with pytest.raises(ValueError, match="lr_mult"):
        make_trainer(lr_schedule=np.ones(4), **{**common, "optimizer": torch.optim.SGD(method.student.parameters(), 0.1)})


def test_bad_losses_and_metrics_are_reported(tmp_path):
    method = ToyMethod(init_seed=0)
    method.train_step = lambda source, target, iteration: {"loss_src": torch.ones(2)}
    with pytest.raises(TypeError, match="loss_src=.*expected a scalar tensor"):
        _trainer(method, tmp_path / "a").fit()
    with pytest.raises(KeyError, match="needs 'mIoU'"):
        _trainer(ToyMethod(init_seed=0), tmp_path / "b", eval_interval=2, evaluate_fn=lambda m: {"miou": 1.0}).fit()


def test_move_to_device_keeps_meta_on_the_host():
    batch = {"img": torch.zeros(1), "meta": {"offsets": torch.zeros(2)}, "pair": [torch.ones(1), "x"]}
    moved = move_to_device(batch, torch.device("cpu"))
    assert moved["meta"] is batch["meta"] and moved["pair"][1] == "x"


def test_build_trainer_reads_the_config(tmp_path):
    cfg = validate({"optimizer": {"lr": 0.02}, "schedule": {"iters": 8, "warmup_iters": 2},
                    "runtime": {"checkpoint_interval": 4, "log_interval": 2, "keep_checkpoints": 1, "seed": 4,
                                "eval_interval": 4}})
    method = ToyMethod(init_seed=0)
    trainer = build_trainer(cfg, method=method, loaders_factory=toy_loaders_factory(), work_dir=tmp_path,
                            dist=DistInfo(), evaluate_fn=lambda model: {"mIoU": 1.0})
    intervals = {type(h): getattr(h, "interval", None) for h in trainer.hooks}
    assert intervals[CheckpointHook] == 4 and intervals[EvalHook] == 4 and intervals[LoggerHook] == 2
    assert type(trainer.hooks[0]) is NonFiniteHook  # the state is checked before anything is logged or saved
    assert trainer.iters == 8 and trainer.checkpoints.keep == 1 and trainer.seed == 4
    assert trainer.header == run_header(cfg) and trainer.header.class_set == "cityscapes19"
    assert trainer.lr_schedule[2] == pytest.approx(0.02 * (1 - 2 / 8))
    assert {g["name"]: g["lr_mult"] for g in trainer.optimizer.param_groups} == {"backbone": 1.0, "head": 10.0}
    trainer.fit()
    assert load_checkpoint(tmp_path / "latest.pth")["config"]["optimizer"]["lr"] == 0.02


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_autocast_and_resume(tmp_path):
    device = "cuda:0"
    straight = ToyMethod(init_seed=0).to(device)
    _trainer(straight, tmp_path / "straight", device=device).fit()
    assert all(straight.autocast_seen)  # amp=True autocasts the forwards on CUDA
    with pytest.raises(KeyboardInterrupt):
        _trainer(ToyMethod(init_seed=0, fail_at=2).to(device), tmp_path / "resumed", device=device).fit()
    resumed = ToyMethod(init_seed=9).to(device)
    _trainer(resumed, tmp_path / "resumed", device=device).fit(resume=tmp_path / "resumed" / "latest.pth")
    # a missing CUDA RNG restore would change the dropout masks: far beyond this tolerance
    for key, value in straight.student.state_dict().items():
        torch.testing.assert_close(value, resumed.student.state_dict()[key], rtol=0, atol=1e-6, msg=key)


class _Recorder:
    """A forward-context factory that records when it is entered and whether a backward ran inside."""

    def __init__(self):
        self.entered, self.inside = 0, False

    @contextlib.contextmanager
    def __call__(self):
        self.entered += 1
        self.inside = True
        try:
            yield
        finally:
            self.inside = False


def test_the_forward_context_wraps_forwards_and_never_a_backward(tmp_path):
    """Interface 1, engine side: the trainer hands its factory to the method before the first step."""
    recorder = _Recorder()
    method = ToyMethod(init_seed=0)
    backward_inside = []
    original = torch.Tensor.backward

    def spy_backward(self, *args, **kwargs):
        backward_inside.append(recorder.inside)
        return original(self, *args, **kwargs)

    trainer = _trainer(method, tmp_path, iters=2, forward_context=recorder)
    torch.Tensor.backward = spy_backward
    try:
        trainer.fit()
    finally:
        torch.Tensor.backward = original
    assert method.forward_context is recorder and recorder.entered == 2 * 3  # per step: source, teacher, target
    assert backward_inside == [False] * 4  # two backwards per step, both outside the context
    assert isinstance(_trainer(method, tmp_path / "b").autocast_context(), contextlib.nullcontext)  # CPU: no autocast
    cuda = _trainer(method, tmp_path / "c", device="cuda")
    assert isinstance(cuda.autocast_context(), torch.autocast)  # CUDA + amp: bf16 autocast (not entered here)


def test_a_method_without_set_forward_context_cannot_train_with_autocast(tmp_path):
    class Legacy(ToyMethod):
        set_forward_context = None  # a method from before interface 1

    _trainer(Legacy(init_seed=0), tmp_path / "cpu", iters=2).fit()  # no autocast wanted: it trains
    with pytest.raises(TypeError, match="Legacy has no set_forward_context"):
        _trainer(Legacy(init_seed=0), tmp_path / "amp", iters=2, forward_context=_Recorder()).fit()


def test_periodic_validation_reads_with_the_configs_workers(monkeypatch, tmp_path):
    from pipa_video.engine import build as engine_build
    from pipa_video.evaluation import runner

    seen = {}
    monkeypatch.setattr(engine_build, "build_eval_dataset", lambda cfg, split: f"dataset of {split}")
    monkeypatch.setattr(runner, "run_split", lambda predictor, dataset, settings, comm: seen.update(
        dataset=dataset, workers=settings.num_workers, device=predictor.device) or {"sem_seg": {"mIoU": 12.5}})
    cfg = validate({"data": {"val": {"index": str(tmp_path)}, "num_workers": 3}, "runtime": {"device": "cpu"}})
    evaluate = engine_build.val_evaluator(cfg, DistInfo())
    assert evaluate(torch.nn.Linear(2, 2)) == {"mIoU": 12.5}
    assert seen == {"dataset": "dataset of val", "workers": 3, "device": torch.device("cpu")}
