"""model.type='hrda': the builder wraps any backbone and head, and the config refuses what HRDA cannot do."""
import pytest

from pipa_video.config import ConfigError, validate
from pipa_video.models.build import build_segmentor
from pipa_video.models.hrda import HRDASegmentor
from pipa_video.models.segmentor import Segmentor


def _cfg(hrda=None, **overrides):
    model = {"type": "hrda", "backbone": {"type": "mit_demo", "pretrained": None},
             "decode_head": {"type": "segformer", "channels": 16},
             "hrda": {"detail_crop": (64, 64), "test_window": (128, 128), "test_stride": (64, 64), **(hrda or {})}}
    cfg = {"class_set": "viper15", "model": model,
           "data": {"source": {"crop_size": (128, 128)}, "target": {"crop_size": (128, 128)}}}
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return validate(cfg)


@pytest.mark.parametrize("head", ["segformer", "daformer"])
def test_hrda_wraps_the_configured_backbone_and_head(head):
    cfg = _cfg(**{"model.decode_head.type": head})
    model = build_segmentor(cfg.model, num_classes=15)
    assert isinstance(model, HRDASegmentor) and type(model.decode_head).__name__.lower().startswith(head)
    s = model.settings
    assert (s.detail_crop, s.test_window, s.test_stride, s.context_scale) == ((64, 64), (128, 128), (64, 64), 0.5)
    cfg.model.type = "encoder_decoder"
    assert isinstance(build_segmentor(cfg.model, num_classes=15), Segmentor)


@pytest.mark.parametrize("overrides, message", [
    ({"evaluation.mode": "slide"}, "evaluation.mode: expected 'whole' with model.type='hrda'"),
    ({"model.hrda.detail_crop": (60, 64)}, "model.hrda.detail_crop: expected multiples of crop_divisible=8"),
    ({"model.hrda.crop_divisible": 4}, "model.hrda.crop_divisible: expected a multiple of 8"),
    ({"model.hrda.detail_crop": (192, 192)}, "data.source.crop_size: with model.type='hrda'"),
    ({"data.target.crop_size": (124, 124), "data.source.crop_size": (124, 124)}, "data.source.crop_size"),
    ({"model.hrda.test_stride": (256, 256)}, "model.hrda.test_stride: expected at most test_window"),
    ({"uda.patch_contrast.weight": 0.1, "model.hrda.detail_crop": (32, 32)}, "HRDA detail crop"),
])
def test_what_hrda_cannot_do_is_refused_at_load_time_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _cfg(**overrides)
