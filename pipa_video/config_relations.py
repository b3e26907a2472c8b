"""Relations between config keys, checked by ``config.validate`` after every key's own type and range.

Each error names the key to change and what was expected, like the single-key errors:
``data.target.crop_size: expected data.source.crop_size=(512, 512) (ClassMix pastes ...), got (256, 256)``.
"""
from __future__ import annotations

from typing import Any

from pipa_video.errors import ConfigError

# The backbones' first spatial reduction (MiT: an 8x8 kernel on the stride-4 map) and deepest stride
# (32) need at least this many pixels per side of every image the student sees (crops, patch crops).
MIN_INPUT_SIDE = 32
FEATURE_STRIDE = 4  # the segmentor's features are at 1/4 of the input; patch crops align to it


def check_relations(cfg: dict) -> None:
    """Constraints between keys, named like single-key errors (each key's own range is checked before)."""
    sched, opt_cfg = cfg["schedule"], cfg["optimizer"]
    if sched["warmup_iters"] > sched["iters"]:
        raise ConfigError(f"schedule.warmup_iters: must be in [0, schedule.iters={sched['iters']}], "
                          f"got {sched['warmup_iters']}")
    if sched["min_lr"] > opt_cfg["lr"]:
        raise ConfigError(f"schedule.min_lr: expected at most optimizer.lr={opt_cfg['lr']}, got {sched['min_lr']}")
    from pipa_video.data.classes import CLASS_SETS

    if cfg["class_set"] not in CLASS_SETS:
        raise ConfigError(f"class_set: {cfg['class_set']!r} is not one of {sorted(CLASS_SETS)}")
    for section in ("source", "target", "val", "test"):
        _check_clip_section(cfg["data"][section], f"data.{section}")
    _check_sources(cfg["data"])
    if cfg["uda"]["method"] == "self_training" and cfg["data"]["target"]["index"] is not None:
        _check_mixing(cfg)
    _check_patch(cfg)
    if cfg["model"]["type"] == "hrda":
        _check_hrda(cfg)
    ev = cfg["evaluation"]
    if ev["mode"] == "slide" and any(s > w for s, w in zip(ev["stride"], ev["window"])):
        raise ConfigError(f"evaluation.stride: expected at most evaluation.window={tuple(ev['window'])} per side "
                          f"(a larger stride skips pixels), got {tuple(ev['stride'])}")
    if not ev["scales"]:
        raise ConfigError("evaluation.scales: expected at least one scale, got []")


def _check_clip_section(section: dict, key: str) -> None:
    ratio = section["ratio_range"]
    if ratio is not None and ratio[0] > ratio[1]:
        raise ConfigError(f"{key}.ratio_range: expected (low, high) with low <= high, got {tuple(ratio)}")
    offsets = section["offsets"]
    if 0 in offsets or len(set(offsets)) != len(offsets):
        raise ConfigError(f"{key}.offsets: expected distinct non-zero frame steps (0 is the key frame itself), "
                          f"got {list(offsets)}")


def _check_sources(data: dict) -> None:
    """Frames of several sources share a batch: each names its index, all have one crop size and clip length."""
    if not data["sources"]:
        return
    from pipa_video.data.multisource import source_sections
    first_key, first = source_sections(data)[0]
    for key, section in source_sections(data):
        _check_clip_section(section, key)
        if section["index"] is None:
            raise ConfigError(f"{key}.index: not set; every entry of data.sources names its source's index directory")
        if section["crop_size"] is None:
            raise ConfigError(f"{key}.crop_size: expected a crop size, not None: frames of every source are "
                              f"stacked into one batch")
        if tuple(section["crop_size"]) != tuple(first["crop_size"]):
            raise ConfigError(f"{key}.crop_size: expected {_tuple(first['crop_size'])} as {first_key}.crop_size "
                              f"(frames of every source are stacked into one batch), "
                              f"got {_tuple(section['crop_size'])}")
        if len(section["offsets"]) != len(first["offsets"]):
            raise ConfigError(f"{key}.offsets: expected {len(first['offsets'])} reference frames as "
                              f"{first_key}.offsets={list(first['offsets'])} (clips of every source are stacked "
                              f"into one batch), got {list(section['offsets'])}")


def _check_mixing(cfg: dict) -> None:
    """ClassMix pastes source image i onto target image i: same batch size, same crop size."""
    data = cfg["data"]
    if data["source_batch_size"] != data["target_batch_size"]:
        raise ConfigError(f"data.target_batch_size: expected data.source_batch_size={data['source_batch_size']} "
                          f"(ClassMix pairs source and target images), got {data['target_batch_size']}")
    from pipa_video.data.multisource import source_sections

    source_key, source_section = source_sections(data)[0]  # several sources share one crop size
    source, target = source_section["crop_size"], data["target"]["crop_size"]
    if source is not None and target is not None and tuple(source) != tuple(target):
        raise ConfigError(f"data.target.crop_size: expected {source_key}.crop_size={_tuple(source)} (ClassMix "
                          f"pastes source pixels onto target images of the same size), got {_tuple(target)}")
    uda = cfg["uda"]
    ignored = uda["pseudo_ignore_top"] + uda["pseudo_ignore_bottom"]
    if target is not None and ignored >= target[0]:
        raise ConfigError(f"uda.pseudo_ignore_bottom: pseudo_ignore_top + pseudo_ignore_bottom = {ignored} rows "
                          f"leave nothing of the {target[0]}-row target crop; expected fewer")


def _check_patch(cfg: dict) -> None:
    patch = cfg["uda"]["patch_contrast"]
    iou = patch["iou_range"]
    if iou[0] > iou[1]:
        raise ConfigError(f"uda.patch_contrast.iou_range: expected (low, high) with low <= high, got {tuple(iou)}")
    if patch["weight"] <= 0 or cfg["uda"]["method"] != "self_training":
        return
    if patch["views"] == "mixed_and_crop" and not iou[0] <= patch["crop_ratio"] ** 2 <= iou[1]:
        raise ConfigError(f"uda.patch_contrast.crop_ratio: with views='mixed_and_crop' the crop covers crop_ratio^2 = "
                          f"{patch['crop_ratio'] ** 2:.3f} of the mixed view, outside iou_range {tuple(iou)}")
    crop, name = cfg["data"]["target"]["crop_size"], "target crop (data.*.crop_size)"
    if cfg["model"]["type"] == "hrda" and patch["views"] == "mixed_and_crop":
        crop, name = cfg["model"]["hrda"]["detail_crop"], "HRDA detail crop (model.hrda.detail_crop)"  # the view
    if crop is not None:
        sides = [max(FEATURE_STRIDE, int(s * patch["crop_ratio"]) // FEATURE_STRIDE * FEATURE_STRIDE) for s in crop]
        if min(sides) < MIN_INPUT_SIDE:
            raise ConfigError(f"uda.patch_contrast.crop_ratio: a {patch['crop_ratio']} crop of the {_tuple(crop)} "
                              f"{name} is {tuple(sides)} pixels; expected at least {MIN_INPUT_SIDE} per side "
                              f"(the backbone's input minimum): raise crop_ratio or the crop")


def _check_hrda(cfg: dict) -> None:
    """HRDA slides itself at test time; its crops must align with the context grid and fit the training crops."""
    hrda, ev = cfg["model"]["hrda"], cfg["evaluation"]
    if ev["mode"] == "slide":
        raise ConfigError("evaluation.mode: expected 'whole' with model.type='hrda' (HRDA slides its own windows, "
                          "model.hrda.test_window / test_stride), got 'slide'")
    ratio = FEATURE_STRIDE / hrda["context_scale"]
    if ratio != round(ratio):
        raise ConfigError(f"model.hrda.context_scale: feature stride {FEATURE_STRIDE} / context_scale must be an "
                          f"integer (e.g. 0.5), got {hrda['context_scale']}")
    if hrda["crop_divisible"] % round(ratio):
        raise ConfigError(f"model.hrda.crop_divisible: expected a multiple of {round(ratio)} (feature stride / "
                          f"context scale), got {hrda['crop_divisible']}")
    if any(s % hrda["crop_divisible"] for s in hrda["detail_crop"]):
        raise ConfigError(f"model.hrda.detail_crop: expected multiples of crop_divisible={hrda['crop_divisible']}, "
                          f"got {_tuple(hrda['detail_crop'])}")
    if any(s > w for s, w in zip(hrda["test_stride"], hrda["test_window"])):
        raise ConfigError(f"model.hrda.test_stride: expected at most test_window={_tuple(hrda['test_window'])} "
                          f"per side, got {_tuple(hrda['test_stride'])}")
    for section in ("source", "target"):
        _check_hrda_crop(cfg["data"][section]["crop_size"], f"data.{section}.crop_size", hrda)


def _check_hrda_crop(crop: Any, key: str, hrda: dict) -> None:
    if crop is None:
        return
    divisible, detail = hrda["crop_divisible"], hrda["detail_crop"]
    if any(s % divisible for s in crop) or any(s < d for s, d in zip(crop, detail)):
        raise ConfigError(f"{key}: with model.type='hrda' expected multiples of model.hrda.crop_divisible="
                          f"{divisible} no smaller than model.hrda.detail_crop={_tuple(detail)}, got {_tuple(crop)}")
    if min(crop) * hrda["context_scale"] < MIN_INPUT_SIDE:
        raise ConfigError(f"{key}: the HRDA context crop ({_tuple(crop)} x {hrda['context_scale']}) must keep at "
                          f"least {MIN_INPUT_SIDE} px per side (the backbone's input minimum), got {_tuple(crop)}")


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value
