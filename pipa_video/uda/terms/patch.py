"""Patch-wise contrast as a term: one patch in two contexts, both views through the STUDENT (PiPa defect 1).

``views='mixed_and_crop'`` (default): view 1 is the strongly augmented mixed image the student has
just seen for the mixed loss, on its contrast grid (HRDA: the detail crop); view 2 one crop of that
region of the unaugmented mixed image, ``crop_ratio`` of its side, with its own strong augmentation
and flip, through the student as an auxiliary view (HRDA: single scale, so at the detail grid's
stride). View 1's cells under the crop box are matched cell for cell with the crop's
(``crops.crop_feature_map``). The loss joins the mixed stage's backward.
``views='two_crops'``: method.md's literal form, two fresh overlapping crops of the mixed image, each
with its own augmentation and flip, in a stage of its own. Labels: the mixed labels cut from the same
crops, padded cells ignored. Config: ``uda.patch_contrast``.
"""
from __future__ import annotations

from enum import Enum
from typing import Mapping

from torch import Tensor

from pipa_video.uda.contrast.crops import (CropPair, apply_crop, crop_feature_map, crop_size, overlap_correspondence,
                                           sample_crop_in_view, sample_crop_pair)
from pipa_video.uda.contrast.patch import PatchContrastLoss
from pipa_video.uda.forwards import Stage, ViewKind
from pipa_video.uda.student import FEATURE_STRIDE, Head, StudentOutput
from pipa_video.uda.terms.base import BuildContext, ForwardNeeds, StepContext, Term, TermLoss


class PatchViews(str, Enum):
    MIXED_AND_CROP = "mixed_and_crop"
    TWO_CROPS = "two_crops"


class PatchContrastTerm(Term):
    name = "patch_contrast"
    needs_teacher = True

    def __init__(self, *, loss: PatchContrastLoss, weight: float, proj_dim: int, views: PatchViews,
                 crop_ratio: float, iou_range: tuple[float, float]) -> None:
        super().__init__(weight=weight)
        self.loss = loss
        self.proj_dim = proj_dim
        self.views = PatchViews(views)
        self.crop_ratio = crop_ratio
        self.iou_range = tuple(iou_range)

    @classmethod
    def from_config(cls, section: Mapping, build: BuildContext) -> "PatchContrastTerm | None":
        if section["weight"] <= 0 or not build.self_training:
            return None
        return cls(loss=PatchContrastLoss(tau=section["tau"], num_anchors=section["num_anchors"]),
                   weight=section["weight"], proj_dim=section["proj_dim"], views=PatchViews(section["views"]),
                   crop_ratio=section["crop_ratio"], iou_range=tuple(section["iou_range"]))

    def heads(self) -> dict[Head, int]:
        return {Head.PATCH: self.proj_dim}

    def _crop_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        return crop_size(image_hw, ratio=self.crop_ratio, align=FEATURE_STRIDE)

    def mixed_needs(self, ctx: StepContext) -> ForwardNeeds:
        return ForwardNeeds(heads=(Head.PATCH,)) if self.views is PatchViews.MIXED_AND_CROP else ForwardNeeds()

    def mixed_losses(self, ctx: StepContext, out: StudentOutput, stage: Stage) -> list[TermLoss]:
        if self.views is not PatchViews.MIXED_AND_CROP:
            return []
        loss = self.against_view(ctx, stage, view_feat=out.proj[Head.PATCH], img=out.crop(ctx.mixed.img),
                                 label=out.crop(ctx.mixed_contrast_label))
        return [TermLoss("loss_patch", loss, self.weight)]

    def against_view(self, ctx: StepContext, stage: Stage, *, view_feat: Tensor, img: Tensor, label: Tensor) -> Tensor:
        """The view's patch features (B, D, H/4, W/4) of ``img`` (B, 3, H, W) against one crop of ``img``.

        The crop goes through ``stage`` as an auxiliary view; returns the loss for the caller's backward.
        """
        image_hw = tuple(img.shape[-2:])
        pair = sample_crop_in_view(image_hw=image_hw, crop_hw=self._crop_hw(image_hw), iou_range=self.iou_range,
                                   flip_prob=0.5, align=FEATURE_STRIDE)
        box, flip = pair.box2, pair.flip2
        crop = stage.forward(ctx.augment(apply_crop(img, box=box, flip=flip)), kind=ViewKind.AUXILIARY,
                             single_scale=True, project=(Head.PATCH,))
        crop_feat = crop.proj[Head.PATCH]
        view_cells = crop_feature_map(view_feat, box=box, flip=flip, stride=FEATURE_STRIDE)
        crop_label = apply_crop(label, box=box, flip=flip)
        # Both grids now share the crop's layout: the overlap is every cell, matched to itself.
        corr = overlap_correspondence(CropPair(box1=box, box2=box, flip1=flip, flip2=flip), stride=FEATURE_STRIDE,
                                      feat_hw=tuple(crop_feat.shape[-2:]), device=img.device)
        return self.loss(feat1=view_cells, feat2=crop_feat, pseudo1=crop_label, pseudo2=crop_label, correspondence=corr)

    def own_stage(self, ctx: StepContext) -> dict[str, Tensor]:
        if self.views is not PatchViews.TWO_CROPS:
            return {}
        return {"loss_patch": self.two_crops(ctx, img=ctx.mixed.img, label=ctx.mixed_contrast_label)}

    def two_crops(self, ctx: StepContext, *, img: Tensor, label: Tensor) -> Tensor:
        """Two overlapping crops of ``img`` (B, 3, H, W), each augmented and flipped, in a stage of their own.

        Crop corners and sizes are multiples of the feature stride, so the crops' cells cover the same
        image cells and the overlap maps cell for cell. Backpropagates ``weight * loss``; returns the loss.
        """
        image_hw = tuple(img.shape[-2:])
        pair = sample_crop_pair(image_hw=image_hw, crop_hw=self._crop_hw(image_hw), iou_range=self.iou_range,
                                flip_prob=0.5, align=FEATURE_STRIDE)
        stage = ctx.forwards.stage()
        feats, labels = [], []
        for box, flip in ((pair.box1, pair.flip1), (pair.box2, pair.flip2)):
            out = stage.forward(ctx.augment(apply_crop(img, box=box, flip=flip)), kind=ViewKind.AUXILIARY,
                                single_scale=True, project=(Head.PATCH,))
            feats.append(out.proj[Head.PATCH])
            labels.append(apply_crop(label, box=box, flip=flip))
        corr = overlap_correspondence(pair, stride=FEATURE_STRIDE, feat_hw=tuple(feats[0].shape[-2:]),
                                      device=img.device)
        loss = self.loss(feat1=feats[0], feat2=feats[1], pseudo1=labels[0], pseudo2=labels[1], correspondence=corr)
        stage.backward(self.weight * loss, logits_in_loss=False)
        return loss
