"""MIC: masked image consistency (Hoyer et al., "MIC: Masked Image Consistency for Context-Enhanced
Domain Adaptation", CVPR 2023).

The student segments a colour-augmented copy of the target image in which 70% of the 64x64 blocks are
blanked out, against the teacher's pseudo-labels of the UNMASKED target image with their confidence
weight (the same pseudo-labels, threshold 0.968 and weight as self-training: MIC's config sets
``mask_pseudo_threshold='same'`` and ``mask_alpha='same'``), loss weight 1::

    mic = MaskedImageConsistency(MICSettings(), mean=..., std=...)
    masked = mic.masked_target(target_img, pseudo_label=pseudo.label, pseudo_weight=pseudo.weight)
    loss = mic.loss(student(masked.img), masked)          # SegLoss: plain or HRDA output
    (mic.weight * loss.total).backward()

Order, as MIC: colour jitter and blur of the normalised image (``uda.mix.strong_augment``), THEN the
mask, multiplied into the normalised image, so masked pixels are exactly 0 (the dataset mean colour).
The mask is drawn on the block grid (``round(H / 64)`` x ``round(W / 64)``, a block kept when its
uniform draw exceeds the ratio) and upsampled with nearest interpolation. Randomness comes from
torch's global generators (as ``uda.mix``), so a resumed run masks as an uninterrupted one. Drawing
the view and computing the loss are separate; nothing syncs with the host.

Source: lhoyer/MIC ``seg/mmseg/models/uda/masking_consistency_module.py`` (``mask_mode='separatetrgaug'``),
``seg/mmseg/models/utils/masking_transforms.py`` (``BlockMaskGenerator``),
``seg/configs/mic/gtaHR2csHR_mic_hrda.py`` (ratio 0.7, block 64, ``mask_lambda=1``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pipa_video.models.hrda import HRDAOutput
from pipa_video.models.segmentor import SegOutput
from pipa_video.uda.hrda_loss import DETAIL_LOSS_WEIGHT, CrossEntropy, SegLoss, segmentation_loss, weighted_ce
from pipa_video.uda.mix import AugDraw, strong_augment

MASK_RATIO = 0.7  # mask_generator.mask_ratio
MASK_BLOCK_SIZE = 64  # mask_generator.mask_block_size (pixels of the training input)
MIC_WEIGHT = 1.0  # mask_lambda


@dataclass(frozen=True)
class MICSettings:
    """MIC's settings; defaults from lhoyer/MIC ``seg/configs/mic/gtaHR2csHR_mic_hrda.py`` and DACS's
    colour augmentation (strength 0.2, applied with probability 0.8; blur with probability 0.5; one
    apply/blur decision for the whole masked batch, ``random.uniform`` once each in MIC's module)."""

    mask_ratio: float = MASK_RATIO
    block_size: int = MASK_BLOCK_SIZE
    weight: float = MIC_WEIGHT
    color_augmentation: bool = True  # MIC's mask modes ending in 'aug' ('separatetrgaug'); False: 'separate'
    jitter_strength: float = 0.2
    jitter_prob: float = 0.8
    blur: bool = True  # MIC draws its blur decision whatever DACS's ``blur`` flag says
    draw: AugDraw = AugDraw.BATCH  # one jitter / blur decision per batch (MIC); 'image': per image

    def __post_init__(self) -> None:
        if not 0 <= self.mask_ratio < 1:
            raise ValueError(f"uda.mic.mask_ratio must lie in [0, 1), got {self.mask_ratio}")
        if self.block_size < 1:
            raise ValueError(f"uda.mic.block_size must be a positive number of pixels, got {self.block_size}")
        if self.weight < 0:
            raise ValueError(f"uda.mic.weight must be >= 0, got {self.weight}")


def block_mask(batch: int, size: tuple[int, int], *, mask_ratio: float, block_size: int,
               device: torch.device | str | None = None) -> Tensor:
    """(B, 1, H, W) float mask, 1 = visible, 0 = masked; each block masked with probability ``mask_ratio``.

    The grid has ``round(H / block_size)`` x ``round(W / block_size)`` blocks (at least 1; MIC's
    zero-block grid for images under half a block would fail), upsampled to (H, W) by nearest
    interpolation, as MIC's ``BlockMaskGenerator.generate_mask``.
    """
    h, w = size
    grid = (batch, 1, max(1, round(h / block_size)), max(1, round(w / block_size)))
    keep = (torch.rand(grid, device=device) > mask_ratio).float()
    return F.interpolate(keep, size=(h, w), mode="nearest")


@dataclass
class MaskedTarget:
    """The student's MIC input and its targets (all at the target image's size H x W)."""

    img: Tensor  # (B, 3, H, W) normalised: colour-augmented, then masked (masked pixels exactly 0)
    label: Tensor  # (B, H, W) long: the teacher's pseudo-labels of the UNMASKED target image
    weight: Tensor  # (B, H, W) float: their confidence weight (incl. ignored margins), unchanged by the mask
    mask: Tensor  # (B, 1, H, W) float: 1 visible, 0 masked


class MaskedImageConsistency:
    """MIC's masked view (randomness) and its loss (none): see the module docstring."""

    def __init__(self, settings: MICSettings = MICSettings(), *, mean: tuple[float, float, float],
                 std: tuple[float, float, float]) -> None:
        self.settings = settings
        self.mean = torch.tensor(mean)
        self.std = torch.tensor(std)

    @property
    def weight(self) -> float:
        """Weight of the MIC loss in the total (MIC's ``mask_lambda``, 1)."""
        return self.settings.weight

    def masked_target(self, target_img: Tensor, *, pseudo_label: Tensor, pseudo_weight: Tensor) -> MaskedTarget:
        """Augment and mask ``target_img`` (B, 3, H, W, normalised); keep the given pseudo-labels.

        ``pseudo_label`` (B, H, W) and ``pseudo_weight`` (B, H, W) must be the teacher's on the
        unmasked ``target_img`` (self-training's, before ClassMix). Raises ``ValueError`` on shapes.
        """
        b, _, h, w = target_img.shape
        if tuple(pseudo_label.shape) != (b, h, w) or tuple(pseudo_weight.shape) != (b, h, w):
            raise ValueError(f"MIC: pseudo-labels {tuple(pseudo_label.shape)} and weights {tuple(pseudo_weight.shape)} "
                             f"must be (B, H, W) = {(b, h, w)} of the target image")
        s = self.settings
        img = target_img
        if s.color_augmentation:
            img = strong_augment(img, mean=self.mean, std=self.std, jitter_strength=s.jitter_strength,
                                 jitter_prob=s.jitter_prob, blur=s.blur, draw=s.draw)
        mask = block_mask(b, (h, w), mask_ratio=s.mask_ratio, block_size=s.block_size, device=target_img.device)
        return MaskedTarget(img=img * mask.to(img.dtype), label=pseudo_label, weight=pseudo_weight, mask=mask)

    def loss(self, out: SegOutput | HRDAOutput, masked: MaskedTarget, *, detail_weight: float = DETAIL_LOSS_WEIGHT,
             ce: CrossEntropy = weighted_ce) -> SegLoss:
        """The student's segmentation loss on the masked image (HRDA: fused + 0.1 detail, as MIC on HRDA).

        Unweighted: the caller adds ``self.weight * loss.total`` and logs ``loss.named('mic')``.
        """
        return segmentation_loss(out, masked.label, masked.weight, detail_weight=detail_weight, ce=ce)
