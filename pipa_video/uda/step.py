"""One training step of source-only, DAFormer self-training, or PiPa++ (self-training + contrasts).

The step is composed of small stages; each stage backpropagates its losses as soon as they are
computed (DAFormer style), which frees that stage's activations before the next forward:

1. ``_source_stage``: supervised cross-entropy on source key frames (+ ImageNet feature distance,
   + pixel contrast on source ground truth).
2. ``_teacher_stage``: gradient-free teacher forwards over target key frames, target reference frames
   (video) and source key frames (memory-bank features): each part alone when BatchNorm uses batch
   statistics (DAFormer), one batch when it uses running statistics.
3. ``_mix_stage``: ClassMix + strong augmentation, weighted cross-entropy on the mixed image,
   + temporal contrast (key-frame features of target pixels of the mixed view against the
   reference frame), + pixel contrast on confident target pseudo-labels when enabled.
4. Patch contrast, one patch in two contexts, both views through the STUDENT: by default the mixed
   view itself (already forwarded in stage 3) against one crop of the mixed image, inside stage 3's
   backward (``_patch_against_view``); or two fresh crops in a stage of their own (``_patch_two_crops``).
   Each crop gets its own strong augmentation and flip.

Auxiliary views (patch crops, the student reference frame) run in train mode but leave the BatchNorm
running statistics alone (``frozen_norm_statistics``); only the source and mixed images move them.

Padding (a clip's ``valid`` False) is never a pseudo-label nor a contrast sample: it weighs 0 in the
mixed loss and in the pseudo-label weight, and its feature cells are ignored by every contrast.

Every term is returned on its own, detached, for logging. Nothing here syncs with the CPU.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipa_video.data.classes import IGNORE_INDEX
from pipa_video.uda.contrast.crops import (CropPair, apply_crop, crop_feature_map, crop_size, overlap_correspondence,
                                           sample_crop_in_view, sample_crop_pair)
from pipa_video.uda.contrast.patch import PatchContrastLoss
from pipa_video.uda.contrast.pixel import PixelContrastLoss
from pipa_video.uda.contrast.temporal import TemporalContrastLoss
from pipa_video.uda.feature_distance import FeatureDistanceLoss
from pipa_video.uda.mix import AugDraw, MixClasses, class_mix, strong_augment
from pipa_video.uda.padding import cell_valid, clip_valid, mask_invalid_cells
from pipa_video.uda.pseudo import PseudoWeight, make_pseudo_labels
from pipa_video.uda.student import Head, StudentNet
from pipa_video.uda.teacher import EMATeacher, TeacherNorm


FEATURE_STRIDE = 4  # the segmentor's features and logits are at 1/4 of the input resolution


class Method(str, Enum):
    SOURCE_ONLY = "source_only"
    SELF_TRAINING = "self_training"


class PatchViews(str, Enum):
    MIXED_AND_CROP = "mixed_and_crop"
    TWO_CROPS = "two_crops"


class Reference(str, Enum):
    STUDENT = "student"
    TEACHER = "teacher"


class CEAverage(str, Enum):
    ALL_PIXELS = "all_pixels"  # mmseg 0.x: mean over every pixel, ignored ones contributing 0
    LABELLED_PIXELS = "labelled_pixels"  # mean over the labelled pixels (torch's default)


@dataclass(frozen=True)
class SelfTrainingSettings:
    """Plain settings of the step (translated from the config by ``uda.build``)."""

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
    fd_weight: float = 0.0
    pixel_weight: float = 0.0
    pixel_use_target: bool = False
    patch_weight: float = 0.0
    patch_views: PatchViews = PatchViews.MIXED_AND_CROP
    patch_crop_ratio: float = 0.5
    patch_iou_range: tuple[float, float] = (0.1, 1.0)
    temporal_weight: float = 0.0
    temporal_reference: Reference = Reference.TEACHER


@dataclass
class ContrastLosses:
    pixel: PixelContrastLoss | None = None
    patch: PatchContrastLoss | None = None
    temporal: TemporalContrastLoss | None = None


@dataclass
class _TeacherView:
    """Teacher outputs for one step (all detached)."""

    target_logits: Tensor
    ref_prob: Tensor | None = None  # (B, C, h, w) softmax on the target reference frame
    key_prob: Tensor | None = None  # (B, C, h, w) softmax on the target key frame
    ref_temporal: Tensor | None = None  # temporal projections of the reference frame
    source_pixel: Tensor | None = None  # pixel projections of the source key frame


def _key(clip: dict) -> tuple[Tensor, Tensor]:
    """Key frame image (B,3,H,W) and label (B,H,W) of a batch of clips."""
    return clip["img"][:, 0], clip["label"][:, 0]


def _reference(clip: dict) -> Tensor | None:
    """First reference frame (B,3,H,W), or None for one-frame clips (images): no temporal term."""
    return clip["img"][:, 1] if clip["img"].shape[1] > 1 else None


def _upsampled_ce(logits: Tensor, label: Tensor, weight: Tensor | None = None, *,
                  average: CEAverage = CEAverage.ALL_PIXELS) -> Tensor:
    """Cross-entropy of stride-4 logits upsampled to the label; the weighted (mixed) loss is always
    averaged over all pixels, as DAFormer, not by the weight sum."""
    logits = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=False)
    pixel = F.cross_entropy(logits, label, ignore_index=IGNORE_INDEX, reduction="none")
    if weight is not None:
        pixel = pixel * weight
    if average is CEAverage.LABELLED_PIXELS:
        return pixel.sum() / (label != IGNORE_INDEX).sum().clamp_min(1)
    return pixel.mean()


def _ddp_tie(logits: Tensor) -> Tensor:
    """A zero that depends on ``logits``.

    DDP with ``find_unused_parameters`` marks every parameter reachable from a forward's outputs
    as used and then waits for its gradient; a forward whose logits feed no loss (the patch crops,
    the student reference frame) would leave the classifier's gradient pending forever.
    """
    return 0.0 * logits.float().mean()


@contextlib.contextmanager
def frozen_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Train-mode forwards inside leave every BatchNorm running mean/var of ``module`` unchanged.

    The contrasts' auxiliary views (patch crops, the student reference frame) are not what the model
    segments; their statistics must not move the running statistics that inference and, through the
    EMA, the teacher's pseudo-labels use. Measured on the demo: with the contrast weights at 1e-6, the
    patch crop's forward alone cost ~2 mIoU when it updated the statistics. Batch statistics still
    normalise the view itself, as in any train-mode forward.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


def _nearest(label: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(label[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


class SelfTrainingMethod(nn.Module):
    """Implements the engine's ``TrainMethod`` protocol."""

    def __init__(self, *, student: StudentNet, settings: SelfTrainingSettings, ema_alpha: float,
                 contrasts: ContrastLosses | None = None, feature_distance: FeatureDistanceLoss | None = None,
                 imagenet_backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.student = student
        self.settings = settings
        self.teacher = (EMATeacher(student, max_alpha=ema_alpha, norm=settings.teacher_norm)
                        if settings.method is Method.SELF_TRAINING else None)
        contrasts = contrasts or ContrastLosses()
        self.pixel_loss, self.patch_loss, self.temporal_loss = contrasts.pixel, contrasts.patch, contrasts.temporal
        self.feature_distance = feature_distance
        self.imagenet_backbone = imagenet_backbone
        if imagenet_backbone is not None:
            imagenet_backbone.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(settings.mean), persistent=False)
        self.register_buffer("std", torch.tensor(settings.std), persistent=False)
        self._student_forward: Callable = student

    # --- engine protocol -------------------------------------------------------------------
    def wrap_student(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        self._student_forward = wrapper(self.student)

    def eval_model(self) -> nn.Module:
        return self.student.segmentor

    def after_step(self, *, iteration: int) -> None:
        if self.teacher is not None:
            self.teacher.update(self.student, iteration=iteration)

    def checkpoint_state(self) -> dict:
        extra = {"heads": self.student.heads.state_dict()}
        if self.pixel_loss is not None and self.pixel_loss.bank is not None:
            extra["pixel_bank"] = self.pixel_loss.bank.state_dict()
        return {
            "model": self.student.segmentor.state_dict(),
            "teacher": self.teacher.model.state_dict() if self.teacher is not None else None,
            "extra": extra,
        }

    def load_checkpoint_state(self, state: dict) -> None:
        self.student.segmentor.load_state_dict(state["model"])
        self.student.heads.load_state_dict(state["extra"]["heads"])
        if self.teacher is not None:
            if state.get("teacher") is None:
                raise KeyError("checkpoint has no teacher state but the method is self-training")
            self.teacher.model.load_state_dict(state["teacher"])
        if "pixel_bank" in state["extra"] and self.pixel_loss is not None and self.pixel_loss.bank is not None:
            self.pixel_loss.bank.load_state_dict(state["extra"]["pixel_bank"])

    # --- the step --------------------------------------------------------------------------
    def train_step(self, source: dict, target: dict | None, *, iteration: int) -> dict[str, Tensor]:
        self.student.train()
        teacher_view = None
        if self.settings.method is Method.SELF_TRAINING:
            if target is None:
                raise ValueError("self-training needs a target batch; use uda.method='source_only' without one")
            teacher_view = self._teacher_stage(source, target)
        losses = self._source_stage(source, teacher_view)
        if teacher_view is not None:
            losses.update(self._mix_stage(source, target, teacher_view))
        return {k: v.detach() for k, v in losses.items()}

    def _source_stage(self, source: dict, teacher_view: _TeacherView | None) -> dict[str, Tensor]:
        img, label = _key(source)
        project = (Head.PIXEL,) if self.pixel_loss is not None else ()
        use_fd = self.feature_distance is not None and self.imagenet_backbone is not None
        out, proj = self._student_forward(img, project=project, return_backbone=use_fd)
        losses = {"loss_src": _upsampled_ce(out.logits, label, average=self.settings.source_ce_average)}
        total = losses["loss_src"]
        if use_fd:
            with torch.no_grad():
                imagenet_feat = self.imagenet_backbone(img)[-1]
            losses["loss_fd"] = self.feature_distance(student_feat=out.backbone_features[-1],
                                                      imagenet_feat=imagenet_feat, label=label)
            total = total + self.settings.fd_weight * losses["loss_fd"]
        if self.pixel_loss is not None:
            # Without a teacher (source-only), the bank holds the student's own detached projections.
            bank_feat = teacher_view.source_pixel if teacher_view is not None else proj[Head.PIXEL].detach()
            losses["loss_pixel_src"] = self.pixel_loss(
                features=proj[Head.PIXEL], labels=mask_invalid_cells(label, clip_valid(source, 0), FEATURE_STRIDE),
                student_pred=out.logits.detach().argmax(1), teacher_features=bank_feat)
            total = total + self.settings.pixel_weight * losses["loss_pixel_src"]
        total.backward()
        return losses

    @torch.no_grad()
    def _teacher_forward(self, parts: list[Tensor], need_features: bool) -> tuple[list[Tensor], list[Tensor | None]]:
        """Teacher logits and fused features of each part (a batch of frames).

        With BatchNorm on batch statistics (DAFormer) each part gets a forward of its own, so the target
        key frames are normalised by their own statistics exactly as DAFormer's teacher batch is; with
        running statistics one batched forward gives the same as separate ones, at one launch.
        """
        if self.teacher.norm is TeacherNorm.BATCH:
            outs = [self.teacher(p, return_features=need_features)[0] for p in parts]
            return [o.logits for o in outs], [o.features for o in outs]
        out, _ = self.teacher(torch.cat(parts), return_features=need_features)
        sizes = [p.shape[0] for p in parts]
        features = list(out.features.split(sizes)) if need_features else [None] * len(parts)
        return list(out.logits.split(sizes)), features

    @torch.no_grad()
    def _teacher_stage(self, source: dict, target: dict) -> _TeacherView:
        """Teacher forward(s): target key [+ target reference] [+ source key]."""
        tgt_img, _ = _key(target)
        ref = _reference(target) if self.temporal_loss is not None else None
        parts = [tgt_img] + ([ref] if ref is not None else []) + ([_key(source)[0]] if self.pixel_loss is not None else [])
        logits, features = self._teacher_forward(parts, need_features=ref is not None or self.pixel_loss is not None)
        view = _TeacherView(target_logits=logits[0])
        # Each head projects only the frames it serves (reference frame, source frame). The heads are
        # per-location maps (1x1 convs, BatchNorm), so projecting a part equals slicing the projection of
        # the whole batch whenever the forward above was one batch (running statistics).
        project = self.teacher.model.project_features
        if ref is not None:
            view.key_prob = logits[0].float().softmax(1)
            view.ref_prob = logits[1].float().softmax(1)
            view.ref_temporal = project(features[1], head=Head.TEMPORAL)
        if self.pixel_loss is not None:
            view.source_pixel = project(features[-1], head=Head.PIXEL)
        return view

    def _mix_stage(self, source: dict, target: dict, tv: _TeacherView) -> dict[str, Tensor]:
        s = self.settings
        src_img, src_label = _key(source)
        tgt_img, _ = _key(target)
        pseudo = make_pseudo_labels(tv.target_logits, size=tuple(tgt_img.shape[-2:]), threshold=s.pseudo_threshold,
                                    weight_mode=s.pseudo_weight, ignore_top=s.pseudo_ignore_top,
                                    ignore_bottom=s.pseudo_ignore_bottom, valid=clip_valid(target, 0),
                                    pseudo_valid=target.get("pseudo_valid"))
        mixed = class_mix(source_img=src_img, source_label=src_label, target_img=tgt_img, pseudo_label=pseudo.label,
                          pseudo_weight=pseudo.weight, classes=s.mix_classes, source_valid=clip_valid(source, 0),
                          target_valid=clip_valid(target, 0))
        mixed_img = self._strong_augment(mixed.img)
        use_temporal = self.temporal_loss is not None and tv.ref_prob is not None
        use_pixel_tgt = self.pixel_loss is not None and s.pixel_use_target
        patch_in_view = self.patch_loss is not None and s.patch_views is PatchViews.MIXED_AND_CROP
        project = tuple(h for h, on in ((Head.TEMPORAL, use_temporal), (Head.PIXEL, use_pixel_tgt),
                                        (Head.PATCH, patch_in_view)) if on)
        out, proj = self._student_forward(mixed_img, project=project)
        losses = {"loss_mix": _upsampled_ce(out.logits, mixed.label, mixed.weight),
                  "pseudo_weight": pseudo.weight.mean()}
        total = losses["loss_mix"]
        if use_temporal:
            losses["loss_temporal"] = self._temporal(proj[Head.TEMPORAL], mixed.mask, target, tv)
            total = total + s.temporal_weight * losses["loss_temporal"]
        contrast_label = mask_invalid_cells(mixed.label, mixed.valid, FEATURE_STRIDE)
        if use_pixel_tgt:
            confident = mixed.mask | (pseudo.prob >= s.pseudo_threshold)
            labels = contrast_label.masked_fill(~confident, IGNORE_INDEX)
            # The bank holds teacher projections of source frames only: these student features are
            # anchors and in-batch keys, never written to it.
            losses["loss_pixel_tgt"] = self.pixel_loss(
                features=proj[Head.PIXEL], labels=labels, student_pred=out.logits.detach().argmax(1),
                update_bank=False)
            total = total + s.pixel_weight * losses["loss_pixel_tgt"]
        if patch_in_view:
            losses["loss_patch"] = self._patch_against_view(proj[Head.PATCH], mixed.img, contrast_label)
            total = total + s.patch_weight * losses["loss_patch"]
        total.backward()
        if self.patch_loss is not None and not patch_in_view:
            losses["loss_patch"] = self._patch_two_crops(mixed.img, contrast_label)
        return losses

    def _strong_augment(self, img: Tensor) -> Tensor:
        s = self.settings
        return strong_augment(img, mean=self.mean, std=self.std, jitter_strength=s.jitter_strength,
                              jitter_prob=s.jitter_prob, blur=s.blur, draw=s.aug_draw)

    def _temporal(self, key_feat: Tensor, pasted: Tensor, target: dict, tv: _TeacherView) -> Tensor:
        """Temporal contrast between target pixels of the mixed key view and the reference frame.

        The key-frame features come from the student's forward on the mixed image (no extra
        forward); pasted source pixels are not frame t, so they are excluded as anchors, and so are
        cells holding padding of either frame.
        """
        h, w = key_feat.shape[-2:]
        key_prob = F.interpolate(tv.key_prob, size=(h, w), mode="bilinear", align_corners=False)
        ref_prob = F.interpolate(tv.ref_prob, size=(h, w), mode="bilinear", align_corners=False)
        inside = cell_valid(clip_valid(target, 0) & clip_valid(target, 1), FEATURE_STRIDE)[:, :h, :w]
        target_cell = _nearest((~pasted).long(), (h, w)).bool() & inside
        if self.settings.temporal_reference is Reference.STUDENT:
            # Bare student, not the DDP wrapper: the mixed view's forward is this backward's one
            # wrapped forward and reaches every parameter this one does (see _patch_against_view).
            with frozen_norm_statistics(self.student):
                _, proj = self.student(_reference(target), project=(Head.TEMPORAL,))
            ref_feat = proj[Head.TEMPORAL]
        else:
            ref_feat = tv.ref_temporal
        ref_feat = F.interpolate(ref_feat, size=(h, w), mode="bilinear", align_corners=False)
        return self.temporal_loss(key_feat=key_feat, ref_feat=ref_feat, key_prob=key_prob, ref_prob=ref_prob,
                                  valid_mask=target_cell)

    def _patch_against_view(self, view_feat: Tensor, img: Tensor, label: Tensor) -> Tensor:
        """The mixed view's patch features against one crop of the (unaugmented) mixed image.

        The crop covers ``crop_ratio`` of each side, gets its own strong augmentation and flip and goes
        through the student; its cells are matched with the view's cells under the crop box. Returns
        the loss, to be backpropagated by the caller together with the mixed view's losses.

        The crop goes through the bare student, not the DDP wrapper: DDP allows one wrapped forward
        per backward (a second one would mark the parameters it does not reach, e.g. the temporal
        head, as unused although the mixed view's losses train them). Autograd sums the crop's
        gradient into each parameter's before the gradient hooks fire, so DDP still averages it.
        """
        s = self.settings
        stride = FEATURE_STRIDE
        pair = sample_crop_in_view(image_hw=tuple(img.shape[-2:]),
                                   crop_hw=crop_size(tuple(img.shape[-2:]), ratio=s.patch_crop_ratio, align=stride),
                                   iou_range=s.patch_iou_range, flip_prob=0.5, align=stride)
        box, flip = pair.box2, pair.flip2
        with frozen_norm_statistics(self.student):
            _, proj = self.student(self._strong_augment(apply_crop(img, box=box, flip=flip)), project=(Head.PATCH,))
        crop_feat = proj[Head.PATCH]
        view_cells = crop_feature_map(view_feat, box=box, flip=flip, stride=stride)
        crop_label = apply_crop(label, box=box, flip=flip)
        # Both grids now share the crop's layout: the overlap is every cell, matched to itself.
        corr = overlap_correspondence(CropPair(box1=box, box2=box, flip1=flip, flip2=flip), stride=stride,
                                      feat_hw=tuple(crop_feat.shape[-2:]), device=img.device)
        return self.patch_loss(feat1=view_cells, feat2=crop_feat, pseudo1=crop_label, pseudo2=crop_label,
                               correspondence=corr)

    def _patch_two_crops(self, img: Tensor, label: Tensor) -> Tensor:
        """Two overlapping crops of the mixed image, each with its own augmentation and flip, through the student.

        Crop corners and sizes are multiples of the feature stride, so the two crops' feature
        cells cover the same image cells and the overlap maps cell for cell.
        """
        s = self.settings
        stride = FEATURE_STRIDE
        pair = sample_crop_pair(image_hw=tuple(img.shape[-2:]),
                                crop_hw=crop_size(tuple(img.shape[-2:]), ratio=s.patch_crop_ratio, align=stride),
                                iou_range=s.patch_iou_range, flip_prob=0.5, align=stride)
        feats, labels, tie = [], [], 0.0
        with frozen_norm_statistics(self.student):
            for box, flip in ((pair.box1, pair.flip1), (pair.box2, pair.flip2)):
                out, proj = self._student_forward(self._strong_augment(apply_crop(img, box=box, flip=flip)),
                                                  project=(Head.PATCH,))
                feats.append(proj[Head.PATCH])
                tie = tie + _ddp_tie(out.logits)
                labels.append(apply_crop(label, box=box, flip=flip))
        corr = overlap_correspondence(pair, stride=stride, feat_hw=tuple(feats[0].shape[-2:]), device=img.device)
        loss = self.patch_loss(feat1=feats[0], feat2=feats[1], pseudo1=labels[0], pseudo2=labels[1],
                               correspondence=corr)
        (s.patch_weight * loss + tie).backward()
        return loss
