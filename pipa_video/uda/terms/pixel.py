"""Pixel-wise contrast as a term: class compactness on source ground truth (and, optionally, on confident
target pseudo-labels), with a class-wise memory bank of teacher projections.

Source stage: the student's pixel projections on the contrast grid (HRDA: the detail crop) against
the source labels cut to the same crop, padded cells ignored; the teacher's projections of the same
crop are pushed into the bank after the stage's backward (``update_state``), never inside the loss.
Without a teacher (source-only) the bank holds the student's own detached projections. Mixed stage
(``use_target``): the mixed view's projections against its labels where they are pasted source pixels
or confident pseudo-labels; those are anchors and in-batch keys, never written to the bank.
Config: ``uda.pixel_contrast``; the weight is alpha, times tau / base_tau when ``base_tau`` is set
(PiPa's code scales SupCon's loss by 0.1 / 0.07), while the logged loss stays the plain InfoNCE.
"""
from __future__ import annotations

from typing import Mapping

from torch import Tensor

from pipa_video.data.classes import IGNORE_INDEX
from pipa_video.uda.contrast.memory_bank import ClassMemoryBank
from pipa_video.uda.contrast.pixel import PixelContrastLoss, bank_entries
from pipa_video.uda.contrast.sampling import ClassBalancedSample
from pipa_video.uda.forwards import Stage
from pipa_video.uda.student import FEATURE_STRIDE, Head, StudentOutput
from pipa_video.uda.padding import mask_invalid_cells
from pipa_video.uda.teacher import TeacherRequest
from pipa_video.uda.terms.base import BuildContext, ForwardNeeds, StepContext, Term, TermLoss, teacher_projection

SOURCE_VIEW = "pixel_source"  # the teacher request of the source key frames' crop (bank entries)


def pixel_term_weight(section: Mapping) -> float:
    """alpha, times tau / base_tau when ``base_tau`` is set (PiPa's code); raises ``ValueError`` on base_tau <= 0."""
    if section["base_tau"] is None:
        return float(section["weight"])
    if section["base_tau"] <= 0:
        raise ValueError(f"uda.pixel_contrast.base_tau: must be > 0 or None, got {section['base_tau']}")
    return float(section["weight"]) * section["tau"] / section["base_tau"]


class PixelContrastTerm(Term):
    name = "pixel_contrast"

    def __init__(self, *, loss: PixelContrastLoss, weight: float, proj_dim: int, use_target: bool,
                 pseudo_threshold: float) -> None:
        super().__init__(weight=weight)
        self.loss = loss
        self.proj_dim = proj_dim
        self.use_target = use_target
        self.pseudo_threshold = pseudo_threshold
        self._pending: tuple[Tensor, ClassBalancedSample] | None = None

    @classmethod
    def from_config(cls, section: Mapping, build: BuildContext) -> "PixelContrastTerm | None":
        if section["weight"] <= 0:
            return None
        bank = (ClassMemoryBank(num_classes=build.num_classes, size=section["bank_size"], dim=section["proj_dim"],
                                gather=build.gather) if section["bank_size"] > 0 else None)
        loss = PixelContrastLoss(num_classes=build.num_classes, tau=section["tau"],
                                 anchors_per_class=section["anchors_per_class"], hard_ratio=section["hard_ratio"],
                                 bank=bank)
        return cls(loss=loss, weight=pixel_term_weight(section), proj_dim=section["proj_dim"],
                   use_target=section["use_target"] and build.self_training,
                   pseudo_threshold=build.cfg["uda"]["pseudo_threshold"])

    @property
    def bank(self) -> ClassMemoryBank | None:
        return self.loss.bank

    def heads(self) -> dict[Head, int]:
        return {Head.PIXEL: self.proj_dim}

    def teacher_requests(self, ctx: StepContext) -> list[TeacherRequest]:
        if ctx.teacher_model is None or self.bank is None:
            return []
        return [TeacherRequest(SOURCE_VIEW, ctx.batch.src_img, region=ctx.src_box, features=True)]

    def source_needs(self, ctx: StepContext) -> ForwardNeeds:
        return ForwardNeeds(heads=(Head.PIXEL,))

    def source_losses(self, ctx: StepContext, out: StudentOutput, stage: Stage) -> list[TermLoss]:
        b = ctx.batch
        labels = out.crop(mask_invalid_cells(b.src_label, b.src_valid, FEATURE_STRIDE))
        features = out.proj[Head.PIXEL]
        loss, anchors = self.loss.loss_and_anchors(features=features, labels=labels,
                                                   student_pred=out.logits.detach().argmax(1))
        if self.bank is not None:
            bank_features = (teacher_projection(ctx, ctx.teacher[SOURCE_VIEW].features, Head.PIXEL)
                             if ctx.teacher_model is not None else features.detach())
            self._pending = (bank_features, anchors)
        return [TermLoss("loss_pixel_src", loss, self.weight)]

    def mixed_needs(self, ctx: StepContext) -> ForwardNeeds:
        return ForwardNeeds(heads=(Head.PIXEL,)) if self.use_target else ForwardNeeds()

    def mixed_losses(self, ctx: StepContext, out: StudentOutput, stage: Stage) -> list[TermLoss]:
        if not self.use_target:
            return []
        confident = ctx.mixed.mask | (ctx.pseudo.prob >= self.pseudo_threshold)
        labels = out.crop(ctx.mixed_contrast_label.masked_fill(~confident, IGNORE_INDEX))
        loss = self.loss(features=out.proj[Head.PIXEL], labels=labels, student_pred=out.logits.detach().argmax(1))
        return [TermLoss("loss_pixel_tgt", loss, self.weight)]

    def update_state(self, ctx: StepContext) -> None:
        if self._pending is not None:
            features, anchors = self._pending
            self._pending = None
            self.bank.push(**bank_entries(features, anchors))

    def checkpoint_state(self) -> dict:
        return {"pixel_bank": self.bank.state_dict()} if self.bank is not None else {}

    def load_checkpoint_state(self, extra: dict) -> None:
        if self.bank is not None and "pixel_bank" in extra:
            self.bank.load_state_dict(extra["pixel_bank"])
