"""The one place the ``uda`` config is translated into a training method."""
from __future__ import annotations

import logging
from typing import Mapping

from pipa_video.data.classes import get_class_set
from pipa_video.models.build import build_imagenet_backbone, build_segmentor
from pipa_video.uda.contrast.memory_bank import ClassMemoryBank, Gather
from pipa_video.uda.contrast.patch import PatchContrastLoss
from pipa_video.uda.contrast.pixel import PixelContrastLoss
from pipa_video.uda.contrast.temporal import TemporalContrastLoss
from pipa_video.uda.feature_distance import FeatureDistanceLoss
from pipa_video.uda.mix import AugDraw, MixClasses
from pipa_video.uda.pseudo import PseudoWeight
from pipa_video.uda.step import (CEAverage, ContrastLosses, Method, PatchViews, Reference, SelfTrainingMethod,
                                 SelfTrainingSettings)
from pipa_video.uda.student import Head, StudentNet
from pipa_video.uda.teacher import TeacherNorm, ema_horizon_warning

logger = logging.getLogger(__name__)


def build_contrasts(uda: Mapping, *, num_classes: int, gather: Gather | None = None) -> ContrastLosses:
    """Contrast modules whose weight is non-zero; a self-training-free run gets only pixel contrast.

    ``gather`` concatenates a tensor over ranks along dim 0 (``engine.dist.all_gather_cat``; None in
    one process): the memory bank gathers every rank's entries before writing them.
    """
    pixel, patch, temporal = uda["pixel_contrast"], uda["patch_contrast"], uda["temporal_contrast"]
    self_training = Method(uda["method"]) is Method.SELF_TRAINING
    losses = ContrastLosses()
    if pixel["weight"] > 0:
        bank = ClassMemoryBank(num_classes=num_classes, size=pixel["bank_size"], dim=pixel["proj_dim"],
                               gather=gather) if pixel["bank_size"] > 0 else None
        losses.pixel = PixelContrastLoss(num_classes=num_classes, tau=pixel["tau"],
                                         anchors_per_class=pixel["anchors_per_class"],
                                         hard_ratio=pixel["hard_ratio"], bank=bank)
    # Patch and temporal contrast work on target pseudo-labels: they need the teacher.
    if patch["weight"] > 0 and self_training:
        losses.patch = PatchContrastLoss(tau=patch["tau"], num_anchors=patch["num_anchors"])
    if temporal["weight"] > 0 and self_training:
        losses.temporal = TemporalContrastLoss(tau=temporal["tau"], num_anchors=temporal["num_anchors"],
                                               confidence=temporal["confidence"])
    return losses


def pixel_term_weight(pixel: Mapping) -> float:
    """alpha, times tau / base_tau when ``base_tau`` is set (PiPa's code: SupCon's ``temperature /
    base_temperature`` = 0.1 / 0.07 in ``PixelContrastLoss``); the logged loss stays the plain InfoNCE."""
    if pixel["base_tau"] is None:
        return float(pixel["weight"])
    if pixel["base_tau"] <= 0:
        raise ValueError(f"uda.pixel_contrast.base_tau: must be > 0 or None, got {pixel['base_tau']}")
    return float(pixel["weight"]) * pixel["tau"] / pixel["base_tau"]


def build_method(cfg: Mapping, *, gather: Gather | None = None) -> SelfTrainingMethod:
    """Student, teacher, losses and settings from a validated config; ``gather`` as ``build_contrasts``'s."""
    class_set = get_class_set(cfg["class_set"])
    uda = cfg["uda"]
    contrasts = build_contrasts(uda, num_classes=class_set.num_classes, gather=gather)
    proj_dims = {head: uda[key]["proj_dim"] for head, key, loss in (
        (Head.PIXEL, "pixel_contrast", contrasts.pixel), (Head.PATCH, "patch_contrast", contrasts.patch),
        (Head.TEMPORAL, "temporal_contrast", contrasts.temporal)) if loss is not None}
    student = StudentNet(segmentor=build_segmentor(cfg["model"], num_classes=class_set.num_classes),
                         proj_dims=proj_dims, norm=cfg["model"]["projection"]["norm"])
    pretrained = cfg["model"]["backbone"]["pretrained"]
    use_fd = uda["fd_weight"] > 0 and pretrained is not None
    feature_distance = FeatureDistanceLoss(
        class_ids=[class_set.names.index(n) for n in uda["fd_classes"] if n in class_set.names],
        num_classes=class_set.num_classes, scale_min_ratio=uda["fd_scale_min_ratio"]) if use_fd else None
    settings = SelfTrainingSettings(
        method=Method(uda["method"]),
        pseudo_threshold=uda["pseudo_threshold"],
        pseudo_weight=PseudoWeight(uda["pseudo_weight"]),
        pseudo_ignore_top=uda["pseudo_ignore_top"],
        pseudo_ignore_bottom=uda["pseudo_ignore_bottom"],
        mix_classes=MixClasses(uda["classmix_classes"]),
        source_ce_average=CEAverage(uda["source_ce_average"]),
        teacher_norm=TeacherNorm(uda["teacher_norm"]),
        aug_draw=AugDraw(uda["strong_aug_draw"]),
        jitter_strength=uda["color_jitter_strength"],
        jitter_prob=uda["color_jitter_prob"],
        blur=uda["blur"],
        mean=tuple(cfg["data"]["mean"]),
        std=tuple(cfg["data"]["std"]),
        fd_weight=uda["fd_weight"] if use_fd else 0.0,
        pixel_weight=pixel_term_weight(uda["pixel_contrast"]),
        pixel_use_target=uda["pixel_contrast"]["use_target"],
        patch_weight=uda["patch_contrast"]["weight"],
        patch_views=PatchViews(uda["patch_contrast"]["views"]),
        patch_crop_ratio=uda["patch_contrast"]["crop_ratio"],
        patch_iou_range=tuple(uda["patch_contrast"]["iou_range"]),
        temporal_weight=uda["temporal_contrast"]["weight"],
        temporal_reference=Reference(uda["temporal_contrast"]["reference"]),
    )
    if settings.method is Method.SELF_TRAINING:
        warning = ema_horizon_warning(max_alpha=uda["ema_alpha"], iters=cfg["schedule"]["iters"])
        if warning:
            logger.warning(warning)
    return SelfTrainingMethod(
        student=student, settings=settings, ema_alpha=uda["ema_alpha"], contrasts=contrasts,
        feature_distance=feature_distance,
        imagenet_backbone=build_imagenet_backbone(cfg["model"]) if use_fd else None,
    )
