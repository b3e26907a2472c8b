"""The mean teacher: an EMA copy of the student, pinned to eval mode, never trained by gradients.

``teacher_views`` runs the teacher forwards one step needs: the step and its terms state what they
need as :class:`TeacherRequest` objects (which frames, which region, features or not), and get one
:class:`TeacherView` per request name.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from enum import Enum
from typing import Callable, ContextManager, Sequence

import torch
from torch import Tensor, nn

from pipa_video.models.hrda import Box


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
    suggested = 1.0 - 1.0 / max(2.0, PAPER_HORIZON_SHARE * iters)
    if horizon < iters or max_alpha <= suggested:  # a run too short for any horizon: nothing better to offer
        return None
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


@dataclass(frozen=True)
class TeacherRequest:
    """Frames (B, 3, H, W) whose teacher view a step part needs, under ``name``.

    ``region`` None: logits of the whole frames for pseudo-labels (HRDA: detail slide fused with the
    context, ``StudentNet.pseudo_label_logits``). A ``Box``: one forward of that crop of the frames
    (HRDA: its single-scale branch, i.e. the detail grid of a stage's detail crop). ``features``: keep
    the decoder features (for a projection head).
    """

    name: str
    frames: Tensor
    region: Box | None = None
    features: bool = False

    def same_input(self, other: "TeacherRequest") -> bool:
        return self.frames is other.frames and self.region == other.region


@dataclass
class TeacherView:
    """Teacher logits (B, C, h, w) over the request's region at stride 4, and its features (or None)."""

    logits: Tensor
    features: Tensor | None = None


def _merge(requests: Sequence[TeacherRequest]) -> tuple[list[TeacherRequest], dict[str, int]]:
    """Requests of the same frames and region share one forward (features if any of them asks)."""
    unique: list[TeacherRequest] = []
    index: dict[str, int] = {}
    for request in requests:
        match = next((i for i, u in enumerate(unique) if u.same_input(request)), None)
        if match is None:
            unique.append(request)
            match = len(unique) - 1
        elif request.features and not unique[match].features:
            unique[match] = replace(unique[match], features=True)
        index[request.name] = match
    return unique, index


@torch.no_grad()
def _forward(model: nn.Module, request: TeacherRequest) -> TeacherView:
    if request.region is not None:
        out = model(request.region.crop(request.frames), single_scale=True, return_features=request.features)
        return TeacherView(out.logits, out.features)
    if model.is_hrda:
        if request.features:
            raise ValueError(f"teacher request {request.name!r}: HRDA gives features of a region only; pass region=")
        return TeacherView(model.pseudo_label_logits(request.frames))
    out = model(request.frames, return_features=request.features)
    return TeacherView(out.logits, out.features)


@torch.no_grad()
def teacher_views(teacher: EMATeacher, requests: Sequence[TeacherRequest],
                  context: Callable[[], ContextManager]) -> dict[str, TeacherView]:
    """Run the teacher once per distinct (frames, region) of ``requests``; views by request name.

    With BatchNorm on batch statistics (DAFormer) each input gets a forward of its own, so the target
    key frames are normalised by their own statistics exactly as DAFormer's teacher batch is; with
    running statistics the whole-frame inputs of a plain segmentor share one batched forward (the same
    result at one launch). Runs under ``torch.no_grad`` and the forward ``context``.
    """
    unique, index = _merge(requests)
    model = teacher.model
    with context():
        if teacher.norm is TeacherNorm.EMA and not model.is_hrda and all(r.region is None for r in unique):
            views = _batched(model, unique)
        else:
            views = [_forward(model, r) for r in unique]
    return {name: views[i] for name, i in index.items()}


def _batched(model: nn.Module, requests: Sequence[TeacherRequest]) -> list[TeacherView]:
    need = any(r.features for r in requests)
    out = model(torch.cat([r.frames for r in requests]), return_features=need)
    sizes = [r.frames.shape[0] for r in requests]
    features = list(out.features.split(sizes)) if need else [None] * len(requests)
    return [TeacherView(logits, feat) for logits, feat in zip(out.logits.split(sizes), features)]
