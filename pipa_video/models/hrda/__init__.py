"""HRDA multi-resolution segmentation (Hoyer et al., ECCV 2022) around any backbone and decode head.

    model = HRDASegmentor.from_segmentor(segmentor, settings=HRDASettings())
    box = model.sample_detail_box((1024, 1024))       # once per clip batch
    out = model(frames, detail_box=box, return_features=True)   # training
    out.logits            # fused (B, C, 256, 256): the whole input at stride 4
    out.detail.output     # logits / features over ``box`` at stride 4
    out.detail.grid.crop(label), out.detail.grid.sample(label)   # the detail loss's / contrasts' labels
    model.predict(target)    # teacher pseudo-label logits (B, C, 256, 256), detail slide 512 / 256
    model.inference(image)   # test time, any size: (B, C, H, W), slide 1024 / 512, batched
"""
from pipa_video.models.hrda.attention import ScaleAttentionHead, fuse_scales
from pipa_video.models.hrda.geometry import Box, FeatureGrid, required_divisor, sample_detail_box, window_grid
from pipa_video.models.hrda.segmentor import HRDAOutput, HRDASegmentor, HRDASettings, ScaleView
from pipa_video.models.hrda.slide import slide_average, slide_logits

__all__ = [
    "ScaleAttentionHead", "fuse_scales",
    "Box", "FeatureGrid", "required_divisor", "sample_detail_box", "window_grid",
    "HRDAOutput", "HRDASegmentor", "HRDASettings", "ScaleView",
    "slide_average", "slide_logits",
]
