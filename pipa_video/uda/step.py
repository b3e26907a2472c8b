"""One training step: base self-training (DAFormer's DACS) and then the enabled terms (``uda.terms``).

Stages, each backpropagated as soon as its losses are computed (which frees its activations):

1. Teacher (self-training only): gradient-free forwards of everything the base and the terms ask
   for (``TeacherRequest``): the target key frames' pseudo-label logits (HRDA: detail slide fused
   with the context), plus e.g. reference frames (temporal) and source frames (memory bank).
2. Source: the student on the source key frames (HRDA: context + one detail crop); cross-entropy
   (HRDA: 0.9 fused + 0.1 detail) + each term's source losses (feature distance, pixel contrast).
3. Mixed (self-training only): pseudo-labels (confidence weight, margins, padding never a label),
   ClassMix, strong augmentation; the student on the mixed image (its own detail crop); weighted
   cross-entropy + each term's mixed losses (temporal, target pixel, patch contrast).
4. Each term's own stage (MIC; the two-crop patch contrast).

After each backward every term applies its state updates (the memory bank). Which forward goes
through DDP's wrapper, which leaves BatchNorm statistics alone and which runs under autocast is
decided in one place, ``uda.forwards``. Every term is logged on its own (detached); nothing here
syncs with the host.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import reduce
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from pipa_video.uda.forwards import ContextFactory, Stage, StudentForwards, ViewKind, frozen_norm_statistics
from pipa_video.uda.hrda_loss import DETAIL_LOSS_WEIGHT, CEAverage, step_cross_entropy, segmentation_loss
from pipa_video.uda.mix import AugDraw, MixClasses, class_mix, strong_augment
from pipa_video.uda.pseudo import PseudoWeight, make_pseudo_labels
from pipa_video.uda.student import FEATURE_STRIDE, StudentNet, StudentOutput
from pipa_video.uda.teacher import EMATeacher, TeacherNorm, TeacherRequest, teacher_views
from pipa_video.uda.terms import Batch, ForwardNeeds, StepContext, Term, TermLoss

__all__ = ["FEATURE_STRIDE", "BaseSettings", "CEAverage", "Method", "SelfTrainingMethod", "frozen_norm_statistics"]

TARGET_VIEW = "target"  # the teacher request of the target key frames' pseudo-label logits


class Method(str, Enum):
    SOURCE_ONLY = "source_only"
    SELF_TRAINING = "self_training"


@dataclass(frozen=True)
class BaseSettings:
    """Settings of base self-training (translated from ``uda`` by ``uda.build``); terms carry their own."""

    method: Method
    pseudo_threshold: float = 0.968
    pseudo_weight: PseudoWeight = PseudoWeight.BATCH
    pseudo_ignore_top: int = 0
    pseudo_ignore_bottom: int = 0
    mix_classes: MixClasses = MixClasses.BATCH
    source_ce_average: CEAverage = CEAverage.ALL_PIXELS
    teacher_norm: TeacherNorm = TeacherNorm.BATCH
    aug_draw: AugDraw = AugDraw.BATCH
    jitter_strength: float = 0.2
    jitter_prob: float = 0.8
    blur: bool = True
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    detail_loss_weight: float = DETAIL_LOSS_WEIGHT  # HRDA only: lambda_d of the detail crop's loss


def _add_losses(losses: dict[str, Tensor], total: Tensor, terms: Sequence[TermLoss]) -> Tensor:
    """Log each term loss and return ``total + sum(weight * value)`` (in the order given)."""
    for term_loss in terms:
        losses[term_loss.name] = term_loss.value
        total = total + term_loss.weight * term_loss.value
    return total


class SelfTrainingMethod(nn.Module):
    """Implements the engine's ``TrainMethod`` protocol: base self-training plus ``terms`` (see module docstring)."""

    def __init__(self, *, student: StudentNet, settings: BaseSettings, ema_alpha: float,
                 terms: Sequence[Term] = ()) -> None:
        super().__init__()
        self.student = student
        self.settings = settings
        self.teacher = (EMATeacher(student, max_alpha=ema_alpha, norm=settings.teacher_norm)
                        if settings.method is Method.SELF_TRAINING else None)
        self.terms = nn.ModuleList(terms)
        self.forwards = StudentForwards(student)
        self.register_buffer("mean", torch.tensor(settings.mean), persistent=False)
        self.register_buffer("std", torch.tensor(settings.std), persistent=False)
        self._source_ce = step_cross_entropy(settings.source_ce_average)
        self._mixed_ce = step_cross_entropy(CEAverage.ALL_PIXELS)  # the weighted loss: always over all pixels

    def term(self, name: str) -> Term | None:
        """The enabled term called ``name`` (e.g. ``'pixel_contrast'``), or None."""
        return next((t for t in self.terms if t.name == name), None)

    # --- engine protocol -------------------------------------------------------------------
    def wrap_student(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        self.forwards.wrap(wrapper)

    def set_forward_context(self, factory: ContextFactory) -> None:
        """Every student and teacher forward runs in ``factory()`` (phase-2 interface 1); backwards never do."""
        self.forwards.set_context(factory)

    def eval_model(self) -> nn.Module:
        return self.student.segmentor

    def after_step(self, *, iteration: int) -> None:
        if self.teacher is not None:
            self.teacher.update(self.student, iteration=iteration)

    def checkpoint_state(self) -> dict:
        extra = {"heads": self.student.heads.state_dict()}
        for term in self.terms:
            extra.update(term.checkpoint_state())
        return {"model": self.student.segmentor.state_dict(),
                "teacher": self.teacher.model.state_dict() if self.teacher is not None else None, "extra": extra}

    def load_checkpoint_state(self, state: dict) -> None:
        self.student.segmentor.load_state_dict(state["model"])
        self.student.heads.load_state_dict(state["extra"]["heads"])
        if self.teacher is not None:
            if state.get("teacher") is None:
                raise KeyError("checkpoint has no teacher state but the method is self-training")
            self.teacher.model.load_state_dict(state["teacher"])
        for term in self.terms:
            term.load_checkpoint_state(state["extra"])

    # --- the step --------------------------------------------------------------------------
    def train_step(self, source: dict, target: dict | None, *, iteration: int) -> dict[str, Tensor]:
        self.student.train()
        self_training = self.settings.method is Method.SELF_TRAINING
        if self_training and target is None:
            raise ValueError("self-training needs a target batch; use uda.method='source_only' without one")
        ctx = self._context(source, target if self_training else None)
        if self_training:
            ctx.teacher = teacher_views(self.teacher, self._teacher_requests(ctx), self.forwards.context)
        losses = self._source_stage(ctx)
        if self_training:
            losses.update(self._mixed_stage(ctx))
            for term in self.terms:
                losses.update(term.own_stage(ctx))
                self._update_state(ctx)
        return {k: v.detach() for k, v in losses.items()}

    def _context(self, source: dict, target: dict | None) -> StepContext:
        """The step's inputs and HRDA's detail crops: one for the source stage, one for the mixed stage."""
        batch = Batch(source, target)
        src_box = self.student.sample_detail_box(batch.src_img.shape[-2:])
        mix_box = self.student.sample_detail_box(batch.tgt_img.shape[-2:]) if target is not None else None
        return StepContext(batch=batch, forwards=self.forwards, augment=self._strong_augment,
                           teacher_model=self.teacher.model if self.teacher is not None else None,
                           src_box=src_box, mix_box=mix_box)

    def _teacher_requests(self, ctx: StepContext) -> list[TeacherRequest]:
        requests = [TeacherRequest(TARGET_VIEW, ctx.batch.tgt_img)]
        for term in self.terms:
            requests += term.teacher_requests(ctx)
        return requests

    def _needs(self, hook: str, ctx: StepContext) -> ForwardNeeds:
        return reduce(lambda a, b: a | b, (getattr(t, hook)(ctx) for t in self.terms), ForwardNeeds())

    def _update_state(self, ctx: StepContext) -> None:
        for term in self.terms:
            term.update_state(ctx)

    def _source_stage(self, ctx: StepContext) -> dict[str, Tensor]:
        b, stage = ctx.batch, self.forwards.stage()
        out = stage.forward(b.src_img, kind=ViewKind.TRAINING, detail_box=ctx.src_box,
                            **self._needs("source_needs", ctx).forward_kwargs())
        seg = segmentation_loss(out.seg, b.src_label, detail_weight=self.settings.detail_loss_weight,
                                ce=self._source_ce)
        losses = seg.named("src")
        total = _add_losses(losses, seg.total, [x for t in self.terms for x in t.source_losses(ctx, out, stage)])
        stage.backward(total)
        self._update_state(ctx)
        return losses

    def _mixed_stage(self, ctx: StepContext) -> dict[str, Tensor]:
        s, b = self.settings, ctx.batch
        ctx.pseudo = make_pseudo_labels(ctx.teacher[TARGET_VIEW].logits, size=tuple(b.tgt_img.shape[-2:]),
                                        threshold=s.pseudo_threshold, weight_mode=s.pseudo_weight,
                                        ignore_top=s.pseudo_ignore_top, ignore_bottom=s.pseudo_ignore_bottom,
                                        valid=b.tgt_valid, pseudo_valid=b.pseudo_valid)
        ctx.mixed = class_mix(source_img=b.src_img, source_label=b.src_label, target_img=b.tgt_img,
                              pseudo_label=ctx.pseudo.label, pseudo_weight=ctx.pseudo.weight, classes=s.mix_classes,
                              source_valid=b.src_valid, target_valid=b.tgt_valid)
        stage = self.forwards.stage()
        out = stage.forward(self._strong_augment(ctx.mixed.img), kind=ViewKind.TRAINING, detail_box=ctx.mix_box,
                            **self._needs("mixed_needs", ctx).forward_kwargs())
        seg = segmentation_loss(out.seg, ctx.mixed.label, ctx.mixed.weight, detail_weight=s.detail_loss_weight,
                                ce=self._mixed_ce)
        losses = {**seg.named("mix"), "pseudo_weight": ctx.pseudo.weight.mean()}
        total = _add_losses(losses, seg.total, self._mixed_term_losses(ctx, out, stage))
        stage.backward(total)
        self._update_state(ctx)
        return losses

    def _mixed_term_losses(self, ctx: StepContext, out: StudentOutput, stage: Stage) -> list[TermLoss]:
        return [x for t in self.terms for x in t.mixed_losses(ctx, out, stage)]

    def _strong_augment(self, img: Tensor) -> Tensor:
        s = self.settings
        return strong_augment(img, mean=self.mean, std=self.std, jitter_strength=s.jitter_strength,
                              jitter_prob=s.jitter_prob, blur=s.blur, draw=s.aug_draw)
