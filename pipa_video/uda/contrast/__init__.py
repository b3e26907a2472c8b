"""PiPa++ contrastive losses: pixel-wise, patch-wise and flow-free temporal InfoNCE.

One ``nn.Module`` per loss, each taking keyword-only tensors and returning a scalar:

- :class:`PixelContrastLoss`: class-balanced supervised InfoNCE with a :class:`ClassMemoryBank`.
- :class:`PatchContrastLoss`: the same image cell in two crops (:mod:`.crops` gives the geometry).
- :class:`TemporalContrastLoss`: the same location in the key and a reference frame.

All are sync-free (fixed shapes plus validity masks) and built on :func:`supervised_infonce`. The
projection heads that feed them live in :mod:`pipa_video.models.projection`.
"""
from pipa_video.uda.contrast.crops import (Correspondence, CropBox, CropPair, apply_crop, crop_size,
                                           overlap_correspondence, sample_crop_pair)
from pipa_video.uda.contrast.infonce import supervised_infonce
from pipa_video.uda.contrast.memory_bank import ClassMemoryBank
from pipa_video.uda.contrast.patch import PatchContrastLoss
from pipa_video.uda.contrast.pixel import PixelContrastLoss
from pipa_video.uda.contrast.sampling import (AnchorSample, ClassBalancedSample, downsample_labels,
                                              sample_class_balanced, sample_uniform)
from pipa_video.uda.contrast.temporal import TemporalContrastLoss

__all__ = [
    "AnchorSample", "ClassBalancedSample", "ClassMemoryBank", "Correspondence", "CropBox", "CropPair",
    "PatchContrastLoss", "PixelContrastLoss", "TemporalContrastLoss", "apply_crop",
    "crop_size", "downsample_labels", "overlap_correspondence", "sample_class_balanced", "sample_crop_pair",
    "sample_uniform", "supervised_infonce",
]
