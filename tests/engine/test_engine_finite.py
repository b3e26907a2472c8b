"""No checkpoint ever holds a NaN/inf: the training state is checked at log intervals and before every write,
and the stop names the first bad tensor and the last checkpoint (or says none was written)."""
import math

import pytest
import torch
from engine_toys import TOY_HEADER, ToyMethod, toy_loaders_factory

from pipa_video.engine.checkpoint import load_checkpoint
from pipa_video.engine.finite import first_non_finite, named_float_tensors
from pipa_video.engine.optim import build_optimizer
from pipa_video.engine.schedule import lr_schedule
from pipa_video.engine.build import make_trainer
from pipa_video.errors import NonFiniteError

def test_first_non_finite_names_the_first_bad_tensor_in_order():
    state = {"model": {"w": torch.ones(3), "steps": torch.tensor([1, 2])},
             "teacher": {"bn.running_var": torch.tensor([1.0, math.inf])},
             "extra": {"bank": [torch.zeros(2), torch.tensor([math.nan])]}}
    assert [n for n, _ in named_float_tensors(state)] == ["model.w", "teacher.bn.running_var", "extra.bank.0",
                                                          "extra.bank.1"]
    assert first_non_finite(state) == "teacher.bn.running_var"
    state["teacher"]["bn.running_var"][1] = 2.0
    assert first_non_finite(state) == "extra.bank.1"
    state["extra"]["bank"][1][0] = 0.0
    assert first_non_finite(state) is None


def _trainer(method, work_dir, *, iters=6, checkpoint_interval=2, log_interval=2):
    optimizer = build_optimizer(method.student.param_groups(), lr=0.01, head_lr_mult=10.0, weight_decay=0.01,
                                betas=(0.9, 0.999))
    schedule = lr_schedule(base_lr=0.01, iters=iters, warmup_iters=2, warmup_ratio=0.1, power=1.0, min_lr=0.0)
    return make_trainer(method=method, optimizer=optimizer, lr_schedule=schedule, loaders_factory=toy_loaders_factory(),
                        work_dir=work_dir, header=TOY_HEADER, iters=iters, log_interval=log_interval,
                        checkpoint_interval=checkpoint_interval, seed=1)


def _poison_teacher_after(method, iteration):
    """The losses stay finite (the teacher only picks pseudo-labels), the state does not."""
    original = method.after_step

    def after_step(**kw):
        original(**kw)
        if kw["iteration"] == iteration:
            with torch.no_grad():
                method.teacher.head.bias[0] = math.inf

    method.after_step = after_step


def test_a_non_finite_weight_with_finite_losses_stops_before_the_next_checkpoint(tmp_path):
    method = ToyMethod(init_seed=0)
    _poison_teacher_after(method, iteration=2)  # after the 3rd step; the next check is after the 4th
    with pytest.raises(NonFiniteError, match=r"^teacher\.head\.bias: NaN or inf in the training state after "
                                             r"iteration 4 on rank 0; stopped without writing") as info:
        _trainer(method, tmp_path).fit()
    assert f"the last checkpoint, {tmp_path / 'latest.pth'}, holds only finite tensors" in str(info.value)
    assert load_checkpoint(tmp_path / "latest.pth")["step"] == 2 and not (tmp_path / "iter_4.pth").exists()


def test_a_stop_before_the_first_checkpoint_says_none_was_written(tmp_path):
    method = ToyMethod(init_seed=0)
    _poison_teacher_after(method, iteration=0)
    with pytest.raises(NonFiniteError, match=f"no checkpoint was written to {tmp_path}"):
        _trainer(method, tmp_path, checkpoint_interval=4, log_interval=1).fit()
    assert not list(tmp_path.glob("*.pth"))
