"""The student network: the segmentor (plain or HRDA) plus the training-only projection heads.

They live in one module so that DistributedDataParallel averages the heads' gradients too, and so
that the EMA teacher (a copy of this module) has the same heads for the memory bank and the
temporal reference features. Each term declares the heads it needs (``Term.heads``); the builder
creates them here, in :data:`HEAD_ORDER`. Inference uses ``segmentor`` alone.

Every forward returns a :class:`StudentOutput`: the segmentor's output for the segmentation loss and
the *contrast grid*, i.e. the logits, features and projections the contrasts use together with the
input region they cover at stride 4. On a plain segmentor that region is the whole input; on HRDA it
is the detail crop (its full-resolution branch), so features and labels always come from the same
crop at the same stride (method.md, defect 2): labels are cut with ``StudentOutput.crop``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Sequence

from torch import Tensor, nn

from pipa_video.models.hrda import Box, HRDAOutput, HRDASegmentor
from pipa_video.models.norm import norm_parameters
from pipa_video.models.projection import ProjectionHead
from pipa_video.models.segmentor import SegOutput, Segmentor

FEATURE_STRIDE = 4  # input pixels per cell of the segmentor's features and logits (either branch)


class Head(str, Enum):
    PIXEL = "pixel"
    PATCH = "patch"
    TEMPORAL = "temporal"


HEAD_ORDER = (Head.PIXEL, Head.PATCH, Head.TEMPORAL)  # creation order: fixes their random initialisation


@dataclass
class StudentOutput:
    """One forward of the student (or of the teacher, its copy).

    - ``seg``: what the segmentation loss takes: a ``SegOutput``, or an ``HRDAOutput`` (fused + detail).
    - ``region``: the input pixels (a ``Box``) that ``logits``, ``features`` and ``proj`` cover at
      ``FEATURE_STRIDE`` px per cell: the whole input, or HRDA's detail crop.
    - ``logits`` (B, C, h, w), ``features`` (B, channels, h, w) or None, ``proj``: {head: (B, D, h, w)}.
    - ``backbone_features``: the backbone's four maps of the image ``StudentNet.backbone_input`` gives
      (HRDA: its context image), when requested; else None.
    """

    seg: SegOutput | HRDAOutput
    region: Box
    logits: Tensor
    features: Tensor | None = None
    proj: dict[Head, Tensor] = field(default_factory=dict)
    backbone_features: list[Tensor] | None = None

    def crop(self, pixel_map: Tensor) -> Tensor:
        """``pixel_map`` (..., H, W) of the whole input cut to ``region`` (labels, masks, weights, images)."""
        return self.region.crop(pixel_map)


class StudentNet(nn.Module):
    def __init__(self, *, segmentor: Segmentor | HRDASegmentor, proj_dims: Mapping[Head, int],
                 norm: str = "batch") -> None:
        super().__init__()
        self.segmentor = segmentor
        unknown = set(map(Head, proj_dims)) - set(HEAD_ORDER)
        if unknown:
            raise ValueError(f"unknown projection heads {sorted(unknown)}")
        self.heads = nn.ModuleDict({
            head.value: ProjectionHead(in_channels=segmentor.feature_channels, proj_dim=proj_dims[head], norm=norm)
            for head in HEAD_ORDER if head in proj_dims
        })

    @property
    def is_hrda(self) -> bool:
        return isinstance(self.segmentor, HRDASegmentor)

    def forward(self, img: Tensor, *, project: Sequence[Head] = (), detail_box: Box | None = None,
                single_scale: bool = False, return_features: bool = False,
                return_backbone: bool = False) -> StudentOutput:
        """Segmentor forward of ``img`` (B, 3, H, W) and the projections of its contrast-grid features.

        HRDA: ``detail_box`` is the detail crop (None draws one); ``single_scale=True`` runs the shared
        backbone and head once on ``img`` as given (auxiliary views already cut to the detail crop).
        A plain segmentor ignores both. ``return_backbone`` keeps the backbone maps (feature distance).
        """
        need = bool(project) or return_features or return_backbone
        if not self.is_hrda:
            return self._output(self.segmentor(img, return_features=need), Box.whole(img.shape[-2:]), project)
        if single_scale:
            return self._output(self.segmentor.single_scale(img, return_features=need), Box.whole(img.shape[-2:]),
                                project)
        out: HRDAOutput = self.segmentor(img, detail_box=detail_box, return_features=need)
        detail = out.detail.output
        proj = {Head(h): self.project_features(detail.features, head=h) for h in project}
        return StudentOutput(seg=out, region=out.detail_box, logits=detail.logits, features=detail.features, proj=proj,
                             backbone_features=out.context.output.backbone_features if need else None)

    def _output(self, out: SegOutput, region: Box, project: Sequence[Head]) -> StudentOutput:
        proj = {Head(h): self.project_features(out.features, head=h) for h in project}
        return StudentOutput(seg=out, region=region, logits=out.logits, features=out.features, proj=proj,
                             backbone_features=out.backbone_features)

    def pseudo_label_logits(self, img: Tensor) -> Tensor:
        """Logits (B, C, H/4, W/4) of the whole input for pseudo-labels (HRDA: detail slide fused with context)."""
        if self.is_hrda:
            return self.segmentor.predict(img)
        return self.segmentor(img).logits

    def backbone_input(self, img: Tensor) -> Tensor:
        """The image ``StudentOutput.backbone_features`` are of: ``img``, or HRDA's context image."""
        return self.segmentor.context_image(img) if self.is_hrda else img

    def sample_detail_box(self, image_hw: Sequence[int]) -> Box | None:
        """HRDA: a random detail crop for an input of ``image_hw`` (torch's global generator); plain: None."""
        return self.segmentor.sample_detail_box(tuple(image_hw)) if self.is_hrda else None

    def project_features(self, features: Tensor, *, head: Head) -> Tensor:
        """``features`` (B, channels, h, w) through one projection head: (B, proj_dim, h, w), unit length."""
        return self.heads[Head(head).value](features)

    def no_decay_parameters(self) -> list[nn.Parameter]:
        """The backbone's normalisation parameters: DAFormer trains them without weight decay."""
        return norm_parameters(self.segmentor.backbone)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = self.segmentor.param_groups()
        groups["head"] = list(groups["head"]) + list(self.heads.parameters())
        return groups
