"""Segmentation models: backbones (MiT via timm's PVTv2, ResNet), decode heads, the Segmentor,
and strict loading of official backbone checkpoints."""
from pipa_video.models.backbones import BACKBONE_NAMES, MIT_ARCHS, MixVisionTransformer, build_backbone
from pipa_video.models.build import FrozenBackbone, build_imagenet_backbone, build_segmentor
from pipa_video.models.checkpoint import CheckpointError, load_backbone_weights
from pipa_video.models.heads import HEAD_NAMES, DAFormerHead, SegFormerHead, build_decode_head
from pipa_video.models.segmentor import SegOutput, Segmentor

__all__ = [
    "BACKBONE_NAMES", "MIT_ARCHS", "MixVisionTransformer", "build_backbone",
    "FrozenBackbone", "build_imagenet_backbone", "build_segmentor",
    "CheckpointError", "load_backbone_weights",
    "HEAD_NAMES", "DAFormerHead", "SegFormerHead", "build_decode_head",
    "SegOutput", "Segmentor",
]
