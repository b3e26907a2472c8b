"""Flow-free temporal contrast as a term (video clips only; one-frame clips skip it).

Key-frame features: the student's temporal projections of the mixed view on its contrast grid
(HRDA: the mixed stage's detail crop), at target pixels only (pasted source pixels are not frame t)
and away from padding of either frame. Reference frame t+o: the SAME crop of it, through the teacher
(default) or the student (an auxiliary view: bare student, BatchNorm statistics frozen). Anchors
are restricted to cells where the teacher's predictions of the two frames agree and are confident;
on HRDA both come from the teacher's single-scale forwards of that crop (the grid of the features),
on a plain segmentor from its whole-frame forwards. Config: ``uda.temporal_contrast``.
"""
from __future__ import annotations

from enum import Enum
from typing import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor

from pipa_video.uda.contrast.temporal import TemporalContrastLoss
from pipa_video.uda.forwards import Stage, ViewKind
from pipa_video.uda.padding import cell_valid
from pipa_video.uda.student import FEATURE_STRIDE, Head, StudentOutput
from pipa_video.uda.teacher import TeacherRequest
from pipa_video.uda.terms.base import BuildContext, ForwardNeeds, StepContext, Term, TermLoss, teacher_projection

KEY_VIEW, REFERENCE_VIEW = "temporal_key", "temporal_reference"


class Reference(str, Enum):
    STUDENT = "student"
    TEACHER = "teacher"


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def _nearest(mask: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(mask[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


class TemporalContrastTerm(Term):
    name = "temporal_contrast"
    needs_teacher = True

    def __init__(self, *, loss: TemporalContrastLoss, weight: float, proj_dim: int, reference: Reference) -> None:
        super().__init__(weight=weight)
        self.loss = loss
        self.proj_dim = proj_dim
        self.reference = Reference(reference)

    @classmethod
    def from_config(cls, section: Mapping, build: BuildContext) -> "TemporalContrastTerm | None":
        if section["weight"] <= 0 or not build.self_training:
            return None
        loss = TemporalContrastLoss(tau=section["tau"], num_anchors=section["num_anchors"],
                                    confidence=section["confidence"])
        return cls(loss=loss, weight=section["weight"], proj_dim=section["proj_dim"],
                   reference=Reference(section["reference"]))

    def heads(self) -> dict[Head, int]:
        return {Head.TEMPORAL: self.proj_dim}

    def teacher_requests(self, ctx: StepContext) -> list[TeacherRequest]:
        b = ctx.batch
        if b.ref_img is None:
            return []
        # On a plain segmentor the key view is the base's pseudo-label forward (same frames, whole frame).
        return [TeacherRequest(KEY_VIEW, b.tgt_img, region=ctx.mix_box),
                TeacherRequest(REFERENCE_VIEW, b.ref_img, region=ctx.mix_box,
                               features=self.reference is Reference.TEACHER)]

    def mixed_needs(self, ctx: StepContext) -> ForwardNeeds:
        return ForwardNeeds(heads=(Head.TEMPORAL,)) if ctx.batch.ref_img is not None else ForwardNeeds()

    def mixed_losses(self, ctx: StepContext, out: StudentOutput, stage: Stage) -> list[TermLoss]:
        b = ctx.batch
        if b.ref_img is None:
            return []
        key_feat = out.proj[Head.TEMPORAL]
        size = key_feat.shape[-2:]
        key_prob = _resize(ctx.teacher[KEY_VIEW].logits.float().softmax(1), size)
        ref_prob = _resize(ctx.teacher[REFERENCE_VIEW].logits.float().softmax(1), size)
        inside = cell_valid(out.crop(b.tgt_valid & b.ref_valid), FEATURE_STRIDE)[:, :size[0], :size[1]]
        target_cell = _nearest((~out.crop(ctx.mixed.mask)).long(), size).bool() & inside
        ref_feat = _resize(self._reference_features(ctx, out, stage), size)
        loss = self.loss(key_feat=key_feat, ref_feat=ref_feat, key_prob=key_prob, ref_prob=ref_prob,
                         valid_mask=target_cell)
        return [TermLoss("loss_temporal", loss, self.weight)]

    def _reference_features(self, ctx: StepContext, out: StudentOutput, stage: Stage) -> Tensor:
        if self.reference is Reference.TEACHER:
            return teacher_projection(ctx, ctx.teacher[REFERENCE_VIEW].features, Head.TEMPORAL)
        ref = stage.forward(out.crop(ctx.batch.ref_img), kind=ViewKind.AUXILIARY, single_scale=True,
                            project=(Head.TEMPORAL,))
        return ref.proj[Head.TEMPORAL]
