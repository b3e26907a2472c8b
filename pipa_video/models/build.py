"""Builders: the one place the ``model`` config section is read."""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from pipa_video.config import ConfigError
from pipa_video.errors import PipaError
from pipa_video.models.backbones import build_backbone
from pipa_video.models.heads import build_decode_head
from pipa_video.models.hrda import HRDASegmentor, HRDASettings
from pipa_video.models.segmentor import Segmentor


def _get(cfg: Mapping, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"model.{dotted}: missing (validate the config with pipa_video.config)")
        node = node[part]
    return node


def _get_or(cfg: Mapping, dotted: str, default: Any) -> Any:
    """A key added after configs were saved (a checkpoint's config may lack it): its schema default."""
    try:
        return _get(cfg, dotted)
    except ConfigError:
        return default


def build_segmentor(model_cfg: Mapping, *, num_classes: int, load_pretrained: bool = True) -> Segmentor | HRDASegmentor:
    """Backbone (random init, or ImageNet weights from ``model.backbone.pretrained``) + decode head,
    wrapped in HRDA when ``model.type='hrda'`` (:func:`build_hrda`).

    ``load_pretrained=False`` skips the ImageNet weights (a model built to load a checkpoint into:
    the checkpoint overwrites them, and the file need not exist where the checkpoint is used).
    """
    backbone = _backbone(model_cfg, pretrained=_get(model_cfg, "backbone.pretrained") if load_pretrained else None)
    head = build_decode_head(
        _get(model_cfg, "decode_head.type"),
        in_channels=[info["num_chs"] for info in backbone.feature_info],
        num_classes=num_classes,
        channels=int(_get(model_cfg, "decode_head.channels")),
        dropout=float(_get(model_cfg, "decode_head.dropout")),
        channels_last=bool(_get_or(model_cfg, "decode_head.channels_last", True)),
        norm=_get_or(model_cfg, "decode_head.norm", "batch"),
    )
    segmentor = Segmentor(backbone=backbone, decode_head=head, num_classes=num_classes)
    if model_cfg.get("type", "encoder_decoder") == "hrda":
        return build_hrda(segmentor, model_cfg["hrda"])
    return segmentor


def hrda_settings(hrda_cfg: Mapping) -> HRDASettings:
    """``model.hrda`` as :class:`HRDASettings` (the detail loss weight is the step's: ``uda.build``)."""
    return HRDASettings(context_scale=float(hrda_cfg["context_scale"]), detail_crop=tuple(hrda_cfg["detail_crop"]),
                        crop_divisible=int(hrda_cfg["crop_divisible"]),
                        attention_classwise=bool(hrda_cfg["attention_classwise"]),
                        detail_slide=bool(hrda_cfg["detail_slide"]), test_window=tuple(hrda_cfg["test_window"]),
                        test_stride=tuple(hrda_cfg["test_stride"]))


def build_hrda(segmentor: Segmentor, hrda_cfg: Mapping) -> HRDASegmentor:
    """HRDA around ``segmentor``'s backbone and decode head (its scale attention is initialised here)."""
    try:
        return HRDASegmentor.from_segmentor(segmentor, settings=hrda_settings(hrda_cfg))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _backbone(model_cfg: Mapping, *, pretrained: str | None, drop_path_rate: float | None = None) -> nn.Module:
    """The ``model.backbone`` section as a backbone (``models.backbones.build_backbone``)."""
    try:
        return build_backbone(
            _get(model_cfg, "backbone.type"), pretrained=pretrained,
            drop_path_rate=float(_get(model_cfg, "backbone.drop_path_rate") if drop_path_rate is None else drop_path_rate),
            kwargs=_get_or(model_cfg, "backbone.kwargs", {}),
            pyramid_channels=int(_get_or(model_cfg, "backbone.pyramid_channels", 256)))
    except PipaError:
        raise  # a missing or mismatched weights file keeps its own kind (CheckpointError) and text
    except ValueError as err:  # an unknown name, kwargs for a MiT, a timm model without four strides
        raise ConfigError(f"model.backbone: {err}") from err


class FrozenBackbone(nn.Module):
    """A backbone with no trainable parameters that stays in eval mode, whatever ``.train()`` says.

    Keeping eval mode matters for BN backbones (ResNet): the ImageNet reference features of the
    feature-distance loss must not drift with the running statistics of the training data.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        self.backbone.requires_grad_(False)
        self.feature_info = getattr(backbone, "feature_info", None)

    def train(self, mode: bool = True) -> "FrozenBackbone":
        super().train(False)
        return self

    def forward(self, img: Tensor) -> list[Tensor]:
        return self.backbone(img)


def build_imagenet_backbone(model_cfg: Mapping) -> FrozenBackbone:
    """A frozen copy of the configured backbone with its ImageNet weights (feature-distance loss).

    Requires ``model.backbone.pretrained``: without ImageNet weights the distance has no meaning.
    """
    pretrained = _get(model_cfg, "backbone.pretrained")
    if pretrained is None:
        raise ConfigError("model.backbone.pretrained: the ImageNet feature distance needs ImageNet weights; "
                          "set it or switch the loss off (uda.feature_distance.weight=0)")
    return FrozenBackbone(_backbone(model_cfg, pretrained=pretrained, drop_path_rate=0.0))
