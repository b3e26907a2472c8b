"""What a term of the training step is, and what the step hands it.

The step runs base self-training (source cross-entropy; teacher pseudo-labels; ClassMix; mixed
cross-entropy) in stages, each backpropagated as soon as its losses are computed. A :class:`Term` is
one add-on (pixel, patch or temporal contrast, MIC, ImageNet feature distance): built from its own
config section, it owns its weight, declares the projection heads and teacher views it needs, and
joins the stages through hooks, each optional:

- ``teacher_requests``: teacher views it needs (run with the base's, before any student forward);
- ``source_needs`` / ``source_losses``: what it needs from the source stage's student forward, and
  its losses there (added, weighted, to that stage's backward);
- ``mixed_needs`` / ``mixed_losses``: the same for the mixed stage;
- ``own_stage``: forwards and a backward of its own (MIC, the two-crop patch contrast);
- ``update_state``: state updates after a backward (the memory bank), never inside a loss;
- ``checkpoint_state`` / ``load_checkpoint_state``: its state in the checkpoint's ``extra``.

Terms never call the student directly: they ask the stage (``uda.forwards.Stage``), which applies
the one DDP / BatchNorm / forward-context rule. Adding a term touches no other term.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, ClassVar, Mapping

import torch
from torch import Tensor, nn

from pipa_video.models.hrda import Box
from pipa_video.uda.forwards import Stage, StudentForwards
from pipa_video.uda.mix import MixedBatch
from pipa_video.uda.padding import clip_valid, mask_invalid_cells
from pipa_video.uda.pseudo import PseudoLabels
from pipa_video.uda.student import FEATURE_STRIDE, Head, StudentNet, StudentOutput
from pipa_video.uda.teacher import TeacherRequest, TeacherView


class Batch:
    """The step's clips cut once into the frames every part uses (the same tensor objects throughout).

    Source: key image (B, 3, H, W), label (B, H, W), validity (B, H, W). Target (None for source-only):
    key image, key validity, crop-aware pseudo-label mask ``pseudo_valid`` (or None), and the first
    reference frame and its validity (None for one-frame clips: images have no temporal term).
    """

    def __init__(self, source: dict, target: dict | None) -> None:
        self.src_img, self.src_label = source["img"][:, 0], source["label"][:, 0]
        self.src_valid = clip_valid(source, 0)
        self.tgt_img = self.tgt_valid = self.pseudo_valid = self.ref_img = self.ref_valid = None
        if target is not None:
            self.tgt_img, self.tgt_valid = target["img"][:, 0], clip_valid(target, 0)
            self.pseudo_valid = target.get("pseudo_valid")
            if target["img"].shape[1] > 1:
                self.ref_img, self.ref_valid = target["img"][:, 1], clip_valid(target, 1)


@dataclass
class StepContext:
    """One step's shared state: inputs, the forward rule, the detail crops, and what earlier stages produced.

    ``src_box`` / ``mix_box``: HRDA's detail crops of the source and mixed stages (input pixels, drawn
    once per step from torch's global generator; None on a plain segmentor). A term that needs the
    teacher's view of a stage's contrast grid requests that stage's box as its region.
    """

    batch: Batch
    forwards: StudentForwards
    augment: Callable[[Tensor], Tensor]  # the step's strong augmentation (colour jitter + blur) of normalised images
    teacher_model: StudentNet | None = None
    src_box: Box | None = None
    mix_box: Box | None = None
    teacher: dict[str, TeacherView] = field(default_factory=dict)
    pseudo: PseudoLabels | None = None  # target key frames', before ClassMix (B, H, W)
    mixed: MixedBatch | None = None  # the mixed batch, before strong augmentation

    @property
    def student(self) -> StudentNet:
        return self.forwards.student

    @cached_property
    def mixed_contrast_label(self) -> Tensor:
        """Mixed labels (B, H, W) with every feature cell that holds padding set to ignore (the contrasts' labels)."""
        return mask_invalid_cells(self.mixed.label, self.mixed.valid, FEATURE_STRIDE)


@dataclass
class TermLoss:
    """One logged loss of a term: ``value`` unweighted (logged), ``weight * value`` backpropagated."""

    name: str
    value: Tensor
    weight: float


@dataclass(frozen=True)
class ForwardNeeds:
    """What a term needs from a stage's student forward: projection heads, decoder or backbone features."""

    heads: tuple[Head, ...] = ()
    features: bool = False
    backbone: bool = False

    def __or__(self, other: "ForwardNeeds") -> "ForwardNeeds":
        heads = self.heads + tuple(h for h in other.heads if h not in self.heads)
        return ForwardNeeds(heads, self.features or other.features, self.backbone or other.backbone)

    def forward_kwargs(self) -> dict:
        return {"project": self.heads, "return_features": self.features, "return_backbone": self.backbone}


class Term(nn.Module):
    """Base class of the step's add-ons; every hook does nothing unless overridden (module docstring)."""

    name: ClassVar[str] = "term"
    needs_teacher: ClassVar[bool] = False  # off (not built) without self-training

    def __init__(self, *, weight: float) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"uda.{self.name}.weight must be >= 0, got {weight}")
        self.weight = float(weight)

    def heads(self) -> dict[Head, int]:
        """Projection heads the term needs, by head, with their output dimension."""
        return {}

    def teacher_requests(self, ctx: StepContext) -> list[TeacherRequest]:
        return []

    def source_needs(self, ctx: StepContext) -> ForwardNeeds:
        return ForwardNeeds()

    def source_losses(self, ctx: StepContext, out: StudentOutput, stage: Stage) -> list[TermLoss]:
        return []

    def mixed_needs(self, ctx: StepContext) -> ForwardNeeds:
        return ForwardNeeds()

    def mixed_losses(self, ctx: StepContext, out: StudentOutput, stage: Stage) -> list[TermLoss]:
        return []

    def own_stage(self, ctx: StepContext) -> dict[str, Tensor]:
        """Runs the term's own forwards and backward (through ``ctx.forwards.stage()``); logged losses."""
        return {}

    def update_state(self, ctx: StepContext) -> None:
        """After each stage's backward: apply pending state updates."""

    def checkpoint_state(self) -> dict:
        return {}

    def load_checkpoint_state(self, extra: dict) -> None:
        """Load what ``checkpoint_state`` saved (keys of the checkpoint's ``extra``)."""


def teacher_projection(ctx: StepContext, features: Tensor, head: Head) -> Tensor:
    """The teacher's projection of its ``features`` by ``head`` (gradient-free, in the forward context)."""
    with torch.no_grad(), ctx.forwards.context():
        return ctx.teacher_model.project_features(features, head=head)


@dataclass(frozen=True)
class BuildContext:
    """What a term's ``from_config`` may read besides its own section."""

    cfg: Mapping  # the whole validated config
    num_classes: int
    class_names: tuple[str, ...]
    self_training: bool  # a teacher exists (terms with ``needs_teacher`` are off otherwise)
    gather: Callable[[Tensor], Tensor] | None = None  # concatenates a tensor over ranks along dim 0
