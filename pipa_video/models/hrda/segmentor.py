"""HRDA: a context crop at half resolution, a detail crop at full resolution, and a learned scale
attention that fuses their predictions, around ANY backbone and decode head of this project.

Three ways through the model, all taking a normalised batch (B, 3, H, W) at the detail scale (full
resolution; in training, the data pipeline's context crop, e.g. 1024x1024):

- ``forward(img, detail_box=...)`` (training): context = the whole input downscaled by
  ``context_scale``; detail = ``detail_box`` of the input at full resolution; fused logits over the
  whole input. Each part states the input region and stride it covers (``FeatureGrid``).
- ``predict(img)`` (teacher, pseudo-labels; HRDA's ``encode_decode``): context as above; detail
  logits from overlapping sliding windows over the whole full-resolution input, fused everywhere.
- ``inference(img)`` (evaluation, prediction, tc-report; HRDA's test ``slide_inference``): batched
  sliding windows (1024, stride 512) over the image, each window through ``predict``; logits at the
  input size, the interface ``evaluation.inference`` and ``runner.Predictor`` already call.

One backbone and one decode head serve both scales (shared weights, as HRDA). Source: Hoyer et
al., ECCV 2022; lhoyer/HRDA ``mmseg/models/segmentors/hrda_encoder_decoder.py``,
``mmseg/models/decode_heads/hrda_head.py``, ``configs/hrda/gtaHR2csHR_hrda.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipa_video.models.hrda.attention import ATTENTION_CHANNELS, ATTENTION_DROPOUT, ScaleAttentionHead, fuse_scales
from pipa_video.models.hrda.geometry import Box, FeatureGrid, required_divisor, sample_detail_box, window_grid
from pipa_video.models.hrda.slide import pad_to_multiple, slide_average, slide_logits
from pipa_video.models.segmentor import SegOutput, Segmentor


@dataclass(frozen=True)
class HRDASettings:
    """HRDA's settings; every default is the value of lhoyer/HRDA ``configs/hrda/gtaHR2csHR_hrda.py``
    (or of ``HRDAHead``'s signature where the config keeps the default)."""

    context_scale: float = 0.5  # scales=[1, 0.5]: context at half resolution, detail at full
    detail_crop: tuple[int, int] = (512, 512)  # hr_crop_size (input pixels, at full resolution)
    crop_divisible: int = 8  # crop_coord_divisible: output stride 4 x downscale factor 2
    attention_classwise: bool = True  # attention_classwise: one attention map per class
    attention_channels: int = ATTENTION_CHANNELS  # HRDAHead attention_embed_dim default
    attention_dropout: float = ATTENTION_DROPOUT  # dropout_ratio of the head config
    fixed_attention: float | None = None  # HRDAHead fixed_attention: None = learned
    detail_slide: bool = True  # hr_slide_inference: pseudo-label detail from sliding windows
    detail_slide_overlap: bool = True  # hr_slide_overlapping: detail windows detail_crop // 2 apart
    test_window: tuple[int, int] = (1024, 1024)  # test_cfg crop_size
    test_stride: tuple[int, int] = (512, 512)  # test_cfg stride
    test_batched: bool = True  # test_cfg batched_slide

    def __post_init__(self) -> None:
        if not 0 < self.context_scale < 1:
            raise ValueError(f"model.hrda.context_scale must lie in (0, 1), got {self.context_scale}")
        if self.fixed_attention is not None and not 0 <= self.fixed_attention <= 1:
            raise ValueError(f"model.hrda.fixed_attention must lie in [0, 1] or be None, got {self.fixed_attention}")
        if min(*self.detail_crop, *self.test_window, *self.test_stride) <= 0:
            raise ValueError(f"model.hrda: detail_crop {self.detail_crop}, test_window {self.test_window} and "
                             f"test_stride {self.test_stride} must be positive")

    @property
    def detail_slide_stride(self) -> tuple[int, int]:
        if not self.detail_slide_overlap:
            return self.detail_crop
        return tuple(max(1, side // 2) for side in self.detail_crop)  # type: ignore[return-value]


@dataclass
class ScaleView:
    """One branch's output and where it lies: ``grid.region`` (input pixels) at ``grid.stride`` px per cell."""

    output: SegOutput  # logits (B, C, *grid.shape); features and backbone maps when requested
    grid: FeatureGrid


@dataclass
class HRDAOutput:
    """Training output of :class:`HRDASegmentor` for an input of H x W pixels.

    - ``logits``: fused logits (B, C, H/4, W/4): the whole input at stride 4 (``grid``).
    - ``context``: logits (B, C, H/8, W/8), unscaled by the attention; the whole input at stride 8
      (input pixels; stride 4 of the half-resolution image). With ``return_features``, its decoder
      features (B, channels, H/8, W/8) and backbone maps (HRDA's ``feature_scale=0.5``: the
      ImageNet feature distance uses these against the ImageNet backbone on the downscaled input).
    - ``detail``: logits (B, C, h/4, w/4) over the detail box (h x w input pixels) at stride 4, and
      with ``return_features`` its decoder features (B, channels, h/4, w/4): the features for the
      contrasts, labelled by ``detail.grid.sample(label)``.
    - ``attention``: the sigmoid scale attention masked to the detail box, (B, C or 1, H/8, W/8).
    """

    logits: Tensor
    context: ScaleView
    detail: ScaleView
    attention: Tensor

    @property
    def grid(self) -> FeatureGrid:
        """Where ``logits`` lie: the whole input at the detail branch's stride."""
        return FeatureGrid(region=self.context.grid.region, stride=self.detail.grid.stride)

    @property
    def detail_box(self) -> Box:
        """The detail crop in input pixels (the region of the 0.1-weighted detail loss)."""
        return self.detail.grid.region


class HRDASegmentor(nn.Module):
    """Multi-resolution segmentor: backbone + decode head shared by both scales, + scale attention.

    ``backbone`` maps (B, 3, H, W) to four maps at strides 4..32 and describes them in
    ``feature_info``; ``decode_head`` maps them to ``(logits, fused)`` at the first map's stride.
    State-dict keys are ``backbone.*``, ``decode_head.*`` and ``scale_attention.*``, so a plain
    :class:`Segmentor`'s weights are a subset. Raises ``ValueError`` on inconsistent settings.
    """

    PARAM_GROUPS = ("backbone", "head")

    def __init__(self, *, backbone: nn.Module, decode_head: nn.Module, num_classes: int,
                 settings: HRDASettings = HRDASettings()) -> None:
        super().__init__()
        head_classes = getattr(decode_head, "num_classes", num_classes)
        if head_classes != num_classes:
            raise ValueError(f"decode head predicts {head_classes} classes, segmentor expects {num_classes}")
        self.backbone = backbone
        self.decode_head = decode_head
        self.num_classes = num_classes
        self.settings = settings
        self.feature_stride = int(backbone.feature_info[0]["reduction"])
        self.divisor = required_divisor(feature_stride=self.feature_stride, context_scale=settings.context_scale)
        self._check_settings()
        self.scale_attention = None
        if settings.fixed_attention is None:
            self.scale_attention = ScaleAttentionHead(
                in_channels=[info["num_chs"] for info in backbone.feature_info], num_classes=num_classes,
                classwise=settings.attention_classwise, channels=settings.attention_channels,
                dropout=settings.attention_dropout)

    def _check_settings(self) -> None:
        s = self.settings
        if s.crop_divisible % self.divisor:
            raise ValueError(f"model.hrda.crop_divisible={s.crop_divisible} must be a multiple of {self.divisor} "
                             f"(feature stride {self.feature_stride} / context scale {s.context_scale})")
        if any(side % s.crop_divisible for side in s.detail_crop):
            raise ValueError(f"model.hrda.detail_crop {s.detail_crop} must be a multiple of "
                             f"crop_divisible={s.crop_divisible}")

    @classmethod
    def from_segmentor(cls, segmentor: Segmentor, *, settings: HRDASettings = HRDASettings()) -> "HRDASegmentor":
        """HRDA around an existing segmentor's backbone and decode head (the modules are shared)."""
        return cls(backbone=segmentor.backbone, decode_head=segmentor.decode_head,
                   num_classes=segmentor.num_classes, settings=settings)

    @property
    def feature_channels(self) -> int:
        """Channels of the decoder features (``SegOutput.features``) of either branch."""
        return self.decode_head.channels

    @property
    def context_stride(self) -> int:
        """Input pixels per context cell (8 for stride 4 at scale 0.5)."""
        return self.divisor

    # --- pieces ---------------------------------------------------------------------------
    def single_scale(self, img: Tensor, *, return_features: bool = False) -> SegOutput:
        """Backbone + decode head on ``img`` as given: logits (B, C, h/4, w/4) of that image.

        The branch both scales run; also the forward for auxiliary views that must share the detail
        branch's grid (a patch-contrast crop, a reference frame cut to the detail box).
        """
        backbone_features = self.backbone(img)
        logits, fused = self.decode_head(backbone_features)
        if not return_features:
            return SegOutput(logits=logits)
        return SegOutput(logits=logits, features=fused, backbone_features=list(backbone_features))

    def context_image(self, img: Tensor) -> Tensor:
        """The input bilinearly downscaled by ``context_scale``: (B, 3, H*s, W*s) (mmseg ``resize``)."""
        s = self.settings.context_scale
        size = (int(img.shape[-2] * s), int(img.shape[-1] * s))
        return F.interpolate(img, size=size, mode="bilinear", align_corners=False)

    def sample_detail_box(self, image_hw: tuple[int, int], *, generator: torch.Generator | None = None) -> Box:
        """A random detail crop for an ``image_hw`` input (see ``geometry.sample_detail_box``).

        Sample once per clip batch and pass the box to the forward of every frame.
        """
        return sample_detail_box(image_hw, self.settings.detail_crop, divisible=self.settings.crop_divisible,
                                 generator=generator)

    def _attention(self, context: SegOutput) -> Tensor:
        logits = context.logits
        if self.scale_attention is None:
            return logits.new_full((logits.shape[0], 1, *logits.shape[-2:]), float(self.settings.fixed_attention))
        return torch.sigmoid(self.scale_attention(context.backbone_features))

    def _check_input(self, img: Tensor) -> None:
        if img.ndim != 4 or img.shape[1] != 3:
            raise ValueError(f"HRDA expects a normalised image batch (B, 3, H, W), got shape {tuple(img.shape)}")
        if img.shape[-2] % self.divisor or img.shape[-1] % self.divisor:
            raise ValueError(f"HRDA input {img.shape[-2]}x{img.shape[-1]} must be a multiple of {self.divisor} px "
                             f"(feature stride {self.feature_stride} / context scale {self.settings.context_scale}); "
                             f"use inference() for arbitrary sizes")

    # --- training ---------------------------------------------------------------------------
    def forward(self, img: Tensor, *, detail_box: Box | None = None, return_features: bool = False) -> HRDAOutput:
        """Training forward of a batch (B, 3, H, W), H and W multiples of ``divisor`` (8).

        ``detail_box`` (input pixels, corners multiples of ``divisor``; one box for the whole batch,
        as HRDA): pass the same box for every frame of a clip; None draws one from torch's global
        generator. Raises ``ValueError`` for misaligned sizes or boxes.
        """
        self._check_input(img)
        whole = Box.whole(img.shape[-2:])
        box = self.sample_detail_box(tuple(img.shape[-2:])) if detail_box is None else detail_box
        if not whole.contains(box):
            raise ValueError(f"detail box {box} leaves the {whole.height}x{whole.width} input")
        context = self.single_scale(self.context_image(img), return_features=True)
        detail = self.single_scale(box.crop(img), return_features=return_features)
        context_grid = FeatureGrid(region=whole, stride=self.context_stride)
        detail_grid = FeatureGrid(region=box, stride=self.feature_stride)
        self._check_grid("context", context.logits, context_grid)
        self._check_grid("detail", detail.logits, detail_grid)
        fused, attention = fuse_scales(
            context_logits=context.logits, detail_logits=detail.logits, attention=self._attention(context),
            ratio=self.context_stride // self.feature_stride, detail_cells=box.scaled_down(self.feature_stride),
            context_cells=box.scaled_down(self.context_stride))
        if not return_features:
            context = SegOutput(logits=context.logits)
        return HRDAOutput(logits=fused, context=ScaleView(context, context_grid),
                          detail=ScaleView(detail, detail_grid), attention=attention)

    @staticmethod
    def _check_grid(name: str, logits: Tensor, grid: FeatureGrid) -> None:
        if tuple(logits.shape[-2:]) != grid.shape:
            raise ValueError(f"HRDA {name} logits are {tuple(logits.shape[-2:])} cells but the {name} grid "
                             f"{grid.region} at stride {grid.stride} has {grid.shape}: the decode head's "
                             f"output stride differs from the backbone's first feature map")

    # --- teacher and test time ----------------------------------------------------------------
    def detail_slide(self, img: Tensor) -> Tensor:
        """Detail logits (B, C, H/4, W/4) of the whole input from overlapping detail-crop windows.

        Windows of ``detail_crop`` (clipped to the input), ``detail_crop // 2`` apart, batched, logits
        averaged per cell (HRDA's ``hr_slide_inference`` with ``hr_slide_overlapping``).
        """
        s = self.settings
        windows = window_grid(img.shape[-2:], window=s.detail_crop, stride=s.detail_slide_stride)
        return slide_average(lambda x: self.single_scale(x).logits, img, windows=windows,
                             out_stride=self.feature_stride, batched=True)

    def predict(self, img: Tensor) -> Tensor:
        """Fused logits (B, C, H/4, W/4) of the whole input: teacher pseudo-labels (HRDA ``encode_decode``).

        H and W must be multiples of ``divisor`` (``ValueError`` otherwise). Gradient mode is the
        caller's (the teacher runs it under ``torch.no_grad``).
        """
        self._check_input(img)
        context = self.single_scale(self.context_image(img), return_features=True)
        detail = self.detail_slide(img) if self.settings.detail_slide else self.single_scale(img).logits
        fused, _ = fuse_scales(context_logits=context.logits, detail_logits=detail, attention=self._attention(context),
                               ratio=self.context_stride // self.feature_stride, detail_cells=None, context_cells=None)
        return fused

    def window_logits(self, img: Tensor) -> Tensor:
        """``predict`` on windows of any size, upsampled to their size: (n, C, h, w).

        A window whose sides are not multiples of ``divisor`` is replicate-padded at the bottom and
        right first and the padding cut off the logits (only images smaller than the test window in
        a side not divisible by 8 need it; the published sizes never do).
        """
        padded, (h, w) = pad_to_multiple(img, self.divisor)
        logits = F.interpolate(self.predict(padded), size=padded.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :h, :w]

    def inference(self, img: Tensor) -> Tensor:
        """Logits (B, C, H, W) at the input size, any H and W: HRDA's test-time batched slide.

        Windows ``test_window`` (1024) every ``test_stride`` (512), each window through ``predict``
        and upsampled to its size, logits averaged over overlaps. Evaluation config: use mode
        ``whole`` around it (the model slides itself).
        """
        s = self.settings
        return slide_logits(self.window_logits, img, window=s.test_window, stride=s.test_stride,
                            batched=s.test_batched)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``backbone`` (base lr) and ``head`` (lr x head_lr_mult): decode head and scale attention,
        as HRDA's ``custom_keys=dict(head=dict(lr_mult=10.0))`` matches ``decode_head.scale_attention``."""
        head = list(self.decode_head.parameters())
        if self.scale_attention is not None:
            head += list(self.scale_attention.parameters())
        return {"backbone": list(self.backbone.parameters()), "head": head}
