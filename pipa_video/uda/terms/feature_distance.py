"""ImageNet feature distance as a term (DAFormer): thing-class features of the source image stay close to
those of the frozen ImageNet backbone.

On only with ImageNet weights (``model.backbone.pretrained``): without them the distance has no
meaning. Source stage: the student's deepest backbone map against the frozen backbone's on the same
image; on HRDA both on the context image (HRDA ``feature_scale=0.5``). Config: ``uda.feature_distance``
(``weight`` = DAFormer's ``imnet_feature_dist_lambda``, ``classes`` by name, ``scale_min_ratio``).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from pipa_video.models.build import build_imagenet_backbone
from pipa_video.uda.feature_distance import FeatureDistanceLoss
from pipa_video.uda.forwards import Stage
from pipa_video.uda.student import StudentOutput
from pipa_video.uda.terms.base import BuildContext, ForwardNeeds, StepContext, Term, TermLoss


class FeatureDistanceTerm(Term):
    name = "feature_distance"

    def __init__(self, *, loss: FeatureDistanceLoss, weight: float, imagenet_backbone: nn.Module) -> None:
        super().__init__(weight=weight)
        self.loss = loss
        self.imagenet_backbone = imagenet_backbone.requires_grad_(False).eval()

    @classmethod
    def from_config(cls, section: Mapping, build: BuildContext) -> "FeatureDistanceTerm | None":
        if section["weight"] <= 0 or build.cfg["model"]["backbone"]["pretrained"] is None:
            return None
        class_ids = [build.class_names.index(n) for n in section["classes"] if n in build.class_names]
        loss = FeatureDistanceLoss(class_ids=class_ids, num_classes=build.num_classes,
                                   scale_min_ratio=section["scale_min_ratio"])
        # Its (overwritten) random initialisation must not shift the student's: a forked generator.
        with torch.random.fork_rng(devices=[]):
            backbone = build_imagenet_backbone(build.cfg["model"])
        return cls(loss=loss, weight=section["weight"], imagenet_backbone=backbone)

    def source_needs(self, ctx: StepContext) -> ForwardNeeds:
        return ForwardNeeds(backbone=True)

    def source_losses(self, ctx: StepContext, out: StudentOutput, stage: Stage) -> list[TermLoss]:
        with torch.no_grad(), ctx.forwards.context():
            imagenet_feat = self.imagenet_backbone(ctx.student.backbone_input(ctx.batch.src_img))[-1]
        loss = self.loss(student_feat=out.backbone_features[-1].float(), imagenet_feat=imagenet_feat.float(),
                         label=ctx.batch.src_label)
        return [TermLoss("loss_fd", loss, self.weight)]
