"""The mean teacher: an EMA copy of the student, pinned to eval mode, never trained by gradients."""
from __future__ import annotations

import copy
from enum import Enum

import torch
from torch import nn


class TeacherNorm(str, Enum):
    """How the teacher's BatchNorm layers normalise (``uda.teacher_norm``)."""

    # DAFormer (mmseg/models/uda/dacs.py): the EMA covers parameters only (``_update_ema``) and the
    # teacher forward runs in the UDA module's train mode with only dropout and DropPath switched off,
    # so BatchNorm normalises every teacher batch with that batch's own statistics.
    BATCH = "batch"
    # Eval mode throughout; BatchNorm uses running statistics averaged like the parameters.
    EMA = "ema"


def ema_alpha(iteration: int, *, max_alpha: float) -> float:
    """DAFormer's ramp: alpha = min(1 - 1 / (it + 1), max_alpha); iteration 0 copies the student."""
    return min(1.0 - 1.0 / (iteration + 1), max_alpha)


PAPER_HORIZON_SHARE = 1000 / 40000  # DAFormer: alpha 0.999 (a ~1000-iteration average) over 40k iterations


def ema_horizon_warning(*, max_alpha: float, iters: int) -> str | None:
    """Why ``max_alpha`` does not suit a run of ``iters`` iterations, or None when it does.

    The ramp min(1 - 1/(it + 1), alpha) makes the teacher the plain average of every student so far
    until it reaches alpha, at iteration 1/(1 - alpha) - 1. A shorter run never gets there: its teacher
    stays the average of every student since initialisation, random weights included (on the demo that
    cost 1.5 target mIoU over three seeds: docs/demo_findings.md, section F).
    """
    horizon = 1.0 / (1.0 - max_alpha) if max_alpha < 1.0 else float("inf")
    if horizon < iters:
        return None
    suggested = 1.0 - 1.0 / max(2.0, PAPER_HORIZON_SHARE * iters)
    return (f"uda.ema_alpha={max_alpha} averages the teacher over ~{horizon:.0f} iterations, no fewer "
            f"than the whole run (schedule.iters={iters}): the teacher stays the average of every student "
            f"since initialisation. {suggested:.3g} keeps the paper's horizon ({PAPER_HORIZON_SHARE:.1%} of the run).")


def _batch_norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class EMATeacher(nn.Module):
    """Holds ``model``, an exponential moving average of the student.

    ``norm=TeacherNorm.EMA``: floating-point parameters AND buffers (BatchNorm running statistics) are
    averaged, integer buffers (``num_batches_tracked``) copied, and the teacher stays in eval mode.
    ``norm=TeacherNorm.BATCH`` (DAFormer): parameters only; dropout and DropPath stay off but BatchNorm
    layers run in train mode, normalising each forward by its own batch (their running statistics,
    which that mode never reads, are left to the forwards). Either way ``.train()`` cannot change it.
    """

    def __init__(self, student: nn.Module, *, max_alpha: float, norm: TeacherNorm | str = TeacherNorm.BATCH) -> None:
        super().__init__()
        self.max_alpha = max_alpha
        self.norm = TeacherNorm(norm)
        self.model = copy.deepcopy(student)
        self.model.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> "EMATeacher":
        super().train(False)
        if self.norm is TeacherNorm.BATCH:
            for m in _batch_norms(self.model):
                m.train(True)
        return self

    @torch.no_grad()
    def update(self, student: nn.Module, *, iteration: int) -> None:
        alpha = ema_alpha(iteration, max_alpha=self.max_alpha)
        t_params = list(self.model.parameters())
        s_params = [p.detach() for p in student.parameters()]
        if len(t_params) != len(s_params):
            raise RuntimeError("teacher and student have different parameter lists")
        torch._foreach_mul_(t_params, alpha)
        torch._foreach_add_(t_params, s_params, alpha=1.0 - alpha)
        if self.norm is TeacherNorm.EMA:
            self._average_buffers(student, alpha)

    def _average_buffers(self, student: nn.Module, alpha: float) -> None:
        t_float, s_float = [], []
        for t_buf, s_buf in zip(self.model.buffers(), student.buffers()):
            if t_buf.is_floating_point():
                t_float.append(t_buf)
                s_float.append(s_buf.detach())
            else:
                t_buf.copy_(s_buf)
        if t_float:
            torch._foreach_mul_(t_float, alpha)
            torch._foreach_add_(t_float, s_float, alpha=1.0 - alpha)

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.model(*args, **kwargs)
