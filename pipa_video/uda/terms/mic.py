"""MIC (masked image consistency) as a term: a stage of its own after the mixed stage.

The target images (``images='target'``, MIC's ``separatetrg*`` modes), or the first half of the
batch's source images with their labels and the rest target images (``'source_and_target'``, MIC's
``separate*`` modes: ``stack([img[0], target_img[0]])`` for batch 2), colour-augmented when
``color_augmentation`` (the ``*aug`` modes), then 70% of 64x64 blocks blanked, go through the
student (HRDA: its own random detail crop) against the teacher's pseudo-labels of the UNMASKED
target images with their confidence weight (the base's, before ClassMix, margins applied; MIC's
``mask_alpha='same'``, ``mask_pseudo_threshold='same'``) and weight 1 on source pixels. The loss is
the model's own segmentation loss (HRDA: fused + 0.1 detail), times ``weight`` (``mask_lambda``).
Source: lhoyer/MIC ``seg/mmseg/models/uda/masking_consistency_module.py``. Config: ``uda.mic``.
"""
from __future__ import annotations

from enum import Enum
from typing import Mapping

import torch
from torch import Tensor

from pipa_video.uda.forwards import ViewKind
from pipa_video.uda.hrda_loss import CrossEntropy, segmentation_loss, step_cross_entropy
from pipa_video.uda.masking import MaskedImageConsistency, MICSettings
from pipa_video.uda.mix import AugDraw
from pipa_video.uda.terms.base import BuildContext, StepContext, Term


class MICImages(str, Enum):
    TARGET = "target"
    SOURCE_AND_TARGET = "source_and_target"


class MaskedConsistencyTerm(Term):
    name = "mic"
    needs_teacher = True

    def __init__(self, *, mic: MaskedImageConsistency, images: MICImages, ce: CrossEntropy,
                 detail_weight: float) -> None:
        super().__init__(weight=mic.weight)
        self.mic = mic
        self.images = MICImages(images)
        self.ce = ce
        self.detail_weight = detail_weight

    @classmethod
    def from_config(cls, section: Mapping, build: BuildContext) -> "MaskedConsistencyTerm | None":
        if section["weight"] <= 0 or not build.self_training:
            return None
        uda, data = build.cfg["uda"], build.cfg["data"]
        settings = MICSettings(mask_ratio=section["mask_ratio"], block_size=section["block_size"],
                               weight=section["weight"], color_augmentation=section["color_augmentation"],
                               jitter_strength=uda["color_jitter_strength"], jitter_prob=uda["color_jitter_prob"],
                               draw=AugDraw(uda["strong_aug_draw"]))
        return cls(mic=MaskedImageConsistency(settings, mean=tuple(data["mean"]), std=tuple(data["std"])),
                   images=MICImages(section["images"]), ce=step_cross_entropy(),
                   detail_weight=build.cfg["model"]["hrda"]["detail_loss_weight"])

    def _inputs(self, ctx: StepContext) -> tuple[Tensor, Tensor, Tensor]:
        """Images (B, 3, H, W), labels and weights (B, H, W) before augmentation and masking."""
        b, pseudo = ctx.batch, ctx.pseudo
        if self.images is MICImages.TARGET:
            return b.tgt_img, pseudo.label, pseudo.weight
        n = b.src_img.shape[0] // 2
        m = b.tgt_img.shape[0] - n
        return (torch.cat([b.src_img[:n], b.tgt_img[:m]]), torch.cat([b.src_label[:n], pseudo.label[:m]]),
                torch.cat([torch.ones_like(pseudo.weight[:n]), pseudo.weight[:m]]))

    def own_stage(self, ctx: StepContext) -> dict[str, Tensor]:
        img, label, weight = self._inputs(ctx)
        masked = self.mic.masked_target(img, pseudo_label=label, pseudo_weight=weight)
        stage = ctx.forwards.stage()
        box = ctx.student.sample_detail_box(img.shape[-2:])
        out = stage.forward(masked.img, kind=ViewKind.TRAINING, detail_box=box)
        loss = segmentation_loss(out.seg, masked.label, masked.weight, detail_weight=self.detail_weight, ce=self.ce)
        stage.backward(self.weight * loss.total)
        return loss.named("mic")
