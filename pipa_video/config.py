"""Config loading: mmengine's Python configs (``_base_`` inheritance, ``--cfg-options``), validated.

Every key a config may hold is declared in ``SCHEMA`` with its type, default and, for numbers, the
range it must lie in (``within="[0, 1)"``: brackets include the end, parentheses exclude it; for a
tuple or list the range holds for every element). ``load_config`` merges the file onto the defaults,
applies command-line overrides, and fails on the first unknown key, badly typed or out-of-range value,
or broken relation between keys (``config_relations``), naming the key
(``data.source.crop_sise: unknown key; did you mean crop_size``, ``uda.ema_alpha: expected a value
in [0, 1), got -1``). Builders read the validated config; objects below them take plain keyword arguments.
"""
from __future__ import annotations

import argparse
import ast
import copy
import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from mmengine.config import Config

from pipa_video.config_relations import MIN_INPUT_SIDE, check_relations
from pipa_video.errors import ConfigError  # noqa: F401  (re-exported: the config's error)


@dataclass(frozen=True)
class Range:
    """A closed, open or half-open interval, written as in mathematics: ``[0, 1)``, ``(0, inf)``."""

    low: float
    high: float
    low_closed: bool
    high_closed: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> "Range":
        match = re.fullmatch(r"([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])", text)
        if not match:
            raise ValueError(f"bad range {text!r}; write it like '[0, 1)'")
        return cls(float(match[2]), float(match[3]), match[1] == "[", match[4] == "]", text)

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below  # NaN fails both


@dataclass(frozen=True)
class Spec:
    """A leaf of the schema: allowed types, default, choices, nullability, numeric range, element type/count."""

    types: tuple[type, ...]
    default: Any
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    within: Range | None = None  # every number (or every element of a tuple/list) lies in it
    items: tuple[type, ...] | None = None  # element types of a tuple/list
    length: int | None = None  # element count of a tuple/list


def _numeric(types: tuple[type, ...]) -> tuple[type, ...]:
    return types + (int,) if float in types and int not in types else types  # 1 is a fine float


def opt(types: type | tuple[type, ...], default: Any = None, *, choices: Iterable[Any] | None = None,
        nullable: bool | None = None, within: str | None = None, items: type | None = None,
        length: int | None = None) -> Spec:
    types = _numeric(types if isinstance(types, tuple) else (types,))
    if tuple in types or list in types:
        types = tuple(set(types) | {tuple, list})
    return Spec(types, default, tuple(choices) if choices is not None else None,
                default is None if nullable is None else nullable, Range.parse(within) if within else None,
                _numeric((items,)) if items is not None else None, length)


def size_opt(*, default: Any = None, within: str = f"[{MIN_INPUT_SIDE}, inf)") -> Spec:
    """Two positive ints (an image size), or None."""
    return opt(tuple, default, nullable=default is None, items=int, length=2, within=within)


def _dataset(**overrides: Spec) -> dict:
    """Schema of one dataset section (source, target, val, test)."""
    spec = dict(
        index=opt(str),  # index directory written by data_tools/prepare_*.py
        root=opt(str),  # overrides the data root recorded in the index's meta.json
        # reference frames relative to the key frame, e.g. [-1]; distinct, never 0 (the key frame itself)
        offsets=opt(list, [], items=int, within="(-inf, inf)"),
        keys=opt(str, "labelled", choices=("labelled", "all")),  # which frames can be key frames
        boundary=opt(str, "clamp", choices=("clamp", "skip")),  # reference frames past a sequence end
        resize=size_opt(within="[1, inf)"),  # (w, h) every frame is resized to first, or None
        # True: mmseg's Resize(img_scale=resize) (keep_ratio=True, its default): the largest size with the
        # frame's aspect that fits resize (GTA5 1914x1052 -> 1280x704); False: exactly resize.
        keep_ratio=opt(bool, False),
        # random rescale of that size, e.g. (0.5, 2.0); low <= high
        ratio_range=opt(tuple, nullable=True, items=float, length=2, within="(0, inf)"),
        crop_size=size_opt(),  # (h, w) random crop, or None; >= 32 per side (MIN_INPUT_SIDE)
        cat_max_ratio=opt(float, 1.0, within="(0, 1]"),  # crop retries while one class fills more than this
        flip_prob=opt(float, 0.0, within="[0, 1]"),
        photometric=opt(bool, False),  # per-frame brightness/contrast/saturation/hue jitter
    )
    spec.update(overrides)
    return spec


SCHEMA: dict = dict(
    class_set=opt(str, "cityscapes19"),  # what the model predicts; indexes must agree
    # A pipa-video checkpoint whose segmentor weights initialise the student and the teacher (e.g. a
    # source-only model to adapt to new footage). Iteration, optimiser and schedule start afresh;
    # --resume continues a run instead. Class set and model types must match the config.
    load_from=opt(str),
    data=dict(
        source=_dataset(
            rcs=dict(
                enabled=opt(bool, False),  # rare-class sampling of source key frames
                temperature=opt(float, 0.01, within="(0, inf)"),
                min_pixels=opt(int, 3000, within="[0, inf)"),  # a frame is a candidate for class c with > min_pixels of c
                # Re-draw the crop (up to 10 times) until it holds > min_pixels * min_crop_ratio pixels of
                # the drawn class (DAFormer 0.5, HRDA 2.0); 0 keeps the first crop.
                min_crop_ratio=opt(float, 0.5, within="[0, inf)"),
            ),
            frame_crop=opt(tuple, nullable=True, items=int, length=4, within="[0, inf)"),  # (top, bottom, left, right) pixels cut off every stored frame
        ),
        target=_dataset(
            frame_crop=opt(tuple, nullable=True, items=int, length=4, within="[0, inf)"),
            # HRDA's crop-aware pseudo-label margins (top, bottom, left, right) in stored-frame pixels, masked
            # before the crop (HRDA/PiPa: (30, 240, 30, 30) on 2048x1024 Cityscapes); None: no margins.
            pseudo_margins=opt(tuple, nullable=True, items=int, length=4, within="[0, inf)"),
        ),
        # Multi-source training (docs/design.md): [] trains on data.source alone, as always. Otherwise each entry
        # is a dict of data.source keys that override it (nested rcs merged) plus `weight` (> 0; weights are
        # normalised over the entries): the share of source batch slots drawn from that source.
        sources=opt(list, [], items=dict),
        val=_dataset(),
        test=_dataset(),
        source_batch_size=opt(int, 2, within="[1, inf)"),
        target_batch_size=opt(int, 2, within="[1, inf)"),  # equal to the source's for self-training (ClassMix pairs)
        num_workers=opt(int, 4, within="[0, inf)"),
        mean=opt(tuple, (123.675, 116.28, 103.53), items=float, length=3, within="[0, 255]"),  # RGB, 0-255
        std=opt(tuple, (58.395, 57.12, 57.375), items=float, length=3, within="(0, inf)"),
    ),
    model=dict(
        # 'encoder_decoder': backbone + decode head; 'hrda': HRDA around the same backbone and head
        # (a half-resolution context crop, a full-resolution detail crop, a learned scale attention).
        type=opt(str, "encoder_decoder", choices=("encoder_decoder", "hrda")),
        backbone=dict(
            # mit_b0..mit_b5, resnet101, or timm:<name> (any timm model with feature extraction; a plain
            # ViT, DINOv2 included, through ViTDet's simple feature pyramid)
            type=opt(str, "mit_b5"),
            pretrained=opt(str),  # local path to ImageNet weights (official mit_bX.pth or converted)
            drop_path_rate=opt(float, 0.1, within="[0, 1)"),
            kwargs=opt(dict, {}),  # timm.create_model keyword arguments of a timm backbone, e.g. dynamic_img_size=True
            pyramid_channels=opt(int, 256, within="[1, inf)"),  # a plain ViT's pyramid maps (ViTDet: 256)
        ),
        decode_head=dict(
            type=opt(str, "daformer", choices=("daformer", "segformer")),
            channels=opt(int, 256, within="[1, inf)"),
            dropout=opt(float, 0.1, within="[0, 1)"),
            # Convolutions on channels-last (NHWC) tensors, 1x1 convs as matmuls: same outputs, faster
            # with cuDNN/bf16 and oneDNN. False keeps the NCHW convolutions (benchmarks compare both).
            channels_last=opt(bool, True),
            # every conv's normalisation: batch (DAFormer), syncbatch (over the ranks; CUDA only), group
            norm=opt(str, "batch", choices=("batch", "syncbatch", "group")),
        ),
        # Read when model.type='hrda'; defaults are lhoyer/HRDA configs/hrda/gtaHR2csHR_hrda.py's.
        hrda=dict(
            context_scale=opt(float, 0.5, within="(0, 1)"),  # scales=[1, 0.5]
            detail_crop=size_opt(default=(512, 512), within="[8, inf)"),  # hr_crop_size (h, w), input pixels
            crop_divisible=opt(int, 8, within="[1, inf)"),  # crop_coord_divisible: feature stride / context scale
            attention_classwise=opt(bool, True),  # one scale-attention map per class
            detail_slide=opt(bool, True),  # hr_slide_inference: pseudo-label detail from sliding windows
            test_window=size_opt(default=(1024, 1024)),  # test_cfg crop_size (h, w): HRDA slides itself
            test_stride=size_opt(default=(512, 512), within="[1, inf)"),  # test_cfg stride (h, w)
            detail_loss_weight=opt(float, 0.1, within="[0, 1)"),  # hr_loss_weight (lambda_d)
        ),
        # the PiPa++ projection heads' normalisation (same choices as decode_head.norm)
        projection=dict(norm=opt(str, "batch", choices=("batch", "syncbatch", "group"))),
    ),
    uda=dict(
        method=opt(str, "self_training", choices=("source_only", "self_training")),
        ema_alpha=opt(float, 0.999, within="[0, 1)"),
        pseudo_threshold=opt(float, 0.968, within="[0, 1]"),
        # 'batch': DAFormer, one weight for the whole batch, the share of pixels with confidence >= threshold;
        # 'image': that share per image; 'pixel': 1 where confident, else 0. Padding never counts.
        pseudo_weight=opt(str, "batch", choices=("batch", "image", "pixel")),
        # rows at the top / bottom of the target crop left out of pseudo-labels (DAFormer); together < the crop height
        pseudo_ignore_top=opt(int, 0, within="[0, inf)"),
        pseudo_ignore_bottom=opt(int, 0, within="[0, inf)"),
        # ClassMix: 'batch' = DAFormer's get_class_masks: per image, half of the classes present in the whole
        # source batch, 255 included; 'image' = half of the image's own classes, 255 excluded.
        classmix_classes=opt(str, "batch", choices=("batch", "image")),
        # Source cross-entropy: 'all_pixels' = mmseg 0.x (mean over every pixel, ignored ones count 0);
        # 'labelled_pixels' = torch's default (mean over the labelled pixels).
        source_ce_average=opt(str, "all_pixels", choices=("all_pixels", "labelled_pixels")),
        # 'batch' = DAFormer: EMA of the parameters only; the teacher runs with dropout/DropPath off but
        # BatchNorm in train mode (each forward normalised by its own batch). 'ema' = eval mode, BatchNorm
        # running statistics averaged with the parameters.
        teacher_norm=opt(str, "batch", choices=("batch", "ema")),
        # 'batch' = DAFormer: one draw per batch decides whether jitter (and blur) apply, parameters per
        # image; 'image' = each image decides on its own.
        strong_aug_draw=opt(str, "batch", choices=("batch", "image")),
        color_jitter_strength=opt(float, 0.2, within="[0, 1]"),  # factors in [1 - s, 1 + s], hue +-s*180 deg
        # Probability of APPLYING the jitter. DAFormer's code passes p=0.2 but jitters when
        # uniform() > p, i.e. with probability 0.8; we keep its behaviour and name it plainly.
        color_jitter_prob=opt(float, 0.8, within="[0, 1]"),
        blur=opt(bool, True),
        # ImageNet feature distance (DAFormer); on only with ImageNet weights (model.backbone.pretrained).
        feature_distance=dict(
            weight=opt(float, 0.005, within="[0, inf)"),  # imnet_feature_dist_lambda; 0 switches the term off
            classes=opt(list, ["traffic light", "traffic sign", "person", "rider", "car", "truck",
                               "bus", "train", "motorcycle", "bicycle"], items=str),  # thing classes, by name
            scale_min_ratio=opt(float, 0.75, within="[0, 1]"),  # a feature cell's class covers at least this share
        ),
        pixel_contrast=dict(
            weight=opt(float, 0.0, within="[0, inf)"),  # alpha; 0 switches the term off
            tau=opt(float, 0.1, within="(0, inf)"),
            # PiPa's code multiplies the loss by tau / base_tau (SupCon's base_temperature, 0.07); None: by 1.
            base_tau=opt(float, nullable=True, within="(0, inf)"),
            proj_dim=opt(int, 256, within="[1, inf)"),
            anchors_per_class=opt(int, 64, within="[1, inf)"),
            bank_size=opt(int, 200, within="[0, inf)"),  # memory-bank entries per class; 0 = no bank
            use_target=opt(bool, False),  # also confident target pseudo-labels
            hard_ratio=opt(float, 0.5, within="[0, 1]"),  # share of anchors that the student misclassifies
        ),
        patch_contrast=dict(
            weight=opt(float, 0.0, within="[0, inf)"),  # beta
            tau=opt(float, 0.1, within="(0, inf)"),
            proj_dim=opt(int, 256, within="[1, inf)"),
            # 'mixed_and_crop': view 1 is the mixed image the student already saw for L_M, view 2 one
            # crop of it (one extra, smaller forward); 'two_crops': two fresh crops (two extra forwards).
            views=opt(str, "mixed_and_crop", choices=("mixed_and_crop", "two_crops")),
            # IoU of the two views' boxes, 0 <= low <= high <= 1
            iou_range=opt(tuple, (0.1, 1.0), items=float, length=2, within="[0, 1]"),
            # each crop's side as a share of the image side; the crop must keep >= 32 px per side
            crop_ratio=opt(float, 0.5, within="(0, 1]"),
            num_anchors=opt(int, 1024, within="[1, inf)"),
        ),
        temporal_contrast=dict(
            weight=opt(float, 0.0, within="[0, inf)"),  # gamma
            tau=opt(float, 0.1, within="(0, inf)"),
            proj_dim=opt(int, 256, within="[1, inf)"),
            reference=opt(str, "teacher", choices=("student", "teacher")),
            confidence=opt(float, 0.968, within="[0, 1]"),
            num_anchors=opt(int, 1024, within="[1, inf)"),
        ),
        # MIC, masked image consistency (lhoyer/MIC); needs self-training (the teacher's pseudo-labels).
        mic=dict(
            weight=opt(float, 0.0, within="[0, inf)"),  # mask_lambda; 0 switches the term off
            mask_ratio=opt(float, 0.7, within="[0, 1)"),  # share of blocks masked
            block_size=opt(int, 64, within="[1, inf)"),  # mask_block_size, pixels of the training input
            # 'target': the target images (MIC's separatetrg* modes); 'source_and_target': half source images
            # with their labels, half target images (MIC's separate* modes, used for ACDC / Dark Zurich).
            images=opt(str, "target", choices=("target", "source_and_target")),
            color_augmentation=opt(bool, True),  # jitter + blur before masking (MIC's *aug modes)
        ),
    ),
    optimizer=dict(
        lr=opt(float, 6e-5, within="(0, inf)"),
        head_lr_mult=opt(float, 10.0, within="[0, inf)"),  # 0 freezes the decode head
        weight_decay=opt(float, 0.01, within="[0, inf)"),
        betas=opt(tuple, (0.9, 0.999), items=float, length=2, within="[0, 1)"),
    ),
    schedule=dict(
        iters=opt(int, 40000, within="[1, inf)"),
        warmup_iters=opt(int, 1500, within="[0, inf)"),  # <= iters
        warmup_ratio=opt(float, 1e-6, within="[0, 1]"),  # warm-up starts at lr * warmup_ratio
        power=opt(float, 1.0, within="[0, inf)"),  # poly decay exponent; 0 keeps lr constant
        min_lr=opt(float, 0.0, within="[0, inf)"),  # <= optimizer.lr
    ),
    evaluation=dict(
        protocol=opt(str, "davsn", choices=("davsn", "unified")),
        mode=opt(str, "whole", choices=("whole", "slide")),
        resize=size_opt(),  # (w, h) network input; logits go back to label size
        # (w, h), same order as resize: temporal consistency (flow, warping, flicker) runs on frames
        # (area) and predictions/labels (nearest) resized to it, since 2048x1024 is slow; None = full
        tc_resize=size_opt(within="[1, inf)"),
        window=size_opt(default=(1024, 1024)),  # slide inference window (h, w)
        stride=size_opt(default=(512, 512), within="[1, inf)"),  # <= window, or pixels are skipped
        flip=opt(bool, False),
        scales=opt(list, [1.0], items=float, within="(0, inf)"),  # at least one
    ),
    runtime=dict(
        seed=opt(int, 0, within="[0, 4294967296)"),
        amp=opt(bool, True),  # bf16 autocast on CUDA; always off on CPU
        log_interval=opt(int, 50, within="[1, inf)"),
        checkpoint_interval=opt(int, 4000, within="[1, inf)"),
        eval_interval=opt(int, 4000, within="[1, inf)"),  # iterations between evaluations on data.val (when set)
        keep_checkpoints=opt(int, 2, within="[1, inf)"),
        device=opt(str, "auto", choices=("auto", "cpu", "cuda")),
        # seconds a process waits for the others at a collective before the run fails (gloo's and
        # NCCL's own default is 30 min); long enough for a checkpoint write or an evaluation.
        dist_timeout_s=opt(float, 600.0, within="(0, inf)"),
        tf32=opt(bool, True),  # TF32 float32 matmuls/convolutions on CUDA (engine.performance)
        compile=opt(bool, False),  # torch.compile the segmentors (student, teacher); first steps compile
    ),
)


def _check(node: Any, schema: Any, path: str) -> Any:
    """Return ``node`` merged onto the schema defaults, raising ``ConfigError`` on the first fault."""
    if isinstance(schema, Spec):
        if node is None:
            if schema.nullable or schema.default is None:
                return None
            raise ConfigError(f"{path}: None is not allowed (expected {_type_names(schema.types)})")
        if isinstance(node, bool) and bool not in schema.types:
            raise ConfigError(f"{path}: got bool {node!r}, expected {_type_names(schema.types)}")
        if not isinstance(node, schema.types):
            raise ConfigError(f"{path}: got {type(node).__name__} {node!r}, expected {_type_names(schema.types)}")
        if schema.choices is not None and node not in schema.choices:
            raise ConfigError(f"{path}: {node!r} is not one of {list(schema.choices)}")
        if isinstance(node, (list, tuple)):
            _check_elements(node, schema, path)
        elif schema.within is not None and node not in schema.within:
            raise ConfigError(f"{path}: expected a value in {schema.within.text}, got {node!r}")
        return node
    if not isinstance(node, Mapping):
        raise ConfigError(f"{path}: expected a dict of {sorted(schema)}, got {type(node).__name__}")
    unknown = [k for k in node if k not in schema]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(schema), n=1)
        hint = f"; did you mean {close[0]!r}" if close else f"; allowed keys: {sorted(schema)}"
        raise ConfigError(f"{_join(path, key)}: unknown key{hint}")
    return {k: _check(node.get(k, _default(sub)), sub, _join(path, k)) for k, sub in schema.items()}


def _check_elements(node: list | tuple, spec: Spec, path: str) -> None:
    if spec.length is not None and len(node) != spec.length:
        raise ConfigError(f"{path}: expected {spec.length} values, got {node!r}")
    for value in node:
        if spec.items is not None and (isinstance(value, bool) or not isinstance(value, spec.items)):
            raise ConfigError(f"{path}: expected {_type_names(spec.items)} values, got {type(value).__name__} "
                              f"{value!r} in {node!r}")
        if spec.within is not None and value not in spec.within:
            raise ConfigError(f"{path}: expected every value in {spec.within.text}, got {value!r} in {node!r}")


def _default(schema: Any) -> Any:
    if isinstance(schema, Spec):
        return copy.deepcopy(schema.default)
    return {k: _default(v) for k, v in schema.items()}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(sorted({t.__name__ for t in types}))


def default_config() -> Config:
    return Config(_default(SCHEMA))


def validate(cfg: Mapping) -> Config:
    """Validate a config dict (minus mmengine's bookkeeping keys) and fill in every default."""
    plain = {k: v for k, v in dict(cfg).items() if not k.startswith("_")}
    checked = _check(_to_plain(plain), SCHEMA, "")
    checked["data"]["sources"] = resolve_sources(checked["data"])
    check_relations(checked)
    return Config(checked)


SOURCE_WEIGHT = opt(float, within="(0, inf)")  # data.sources[i].weight


def resolve_sources(data: Mapping[str, Any]) -> list[dict]:
    """``data.sources`` as full source sections: each entry merged onto ``data.source`` (nested dicts key by
    key), validated against its schema and keeping its ``weight``. Raises ``ConfigError`` naming
    ``data.sources[i].<key>`` (unknown key, bad value, missing or non-positive weight)."""
    resolved = []
    for i, entry in enumerate(data["sources"]):
        key = f"data.sources[{i}]"
        entry = dict(entry)
        if entry.get("weight") is None:
            raise ConfigError(f"{key}.weight: required: the source's sampling weight (> 0)")
        weight = _check(entry.pop("weight"), SOURCE_WEIGHT, f"{key}.weight")
        section = _check(_merged(data["source"], entry), SCHEMA["data"]["source"], key)
        resolved.append({**section, "weight": weight})
    return resolved


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict:
    out = copy.deepcopy(dict(base))
    for k, v in override.items():
        out[k] = _merged(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else copy.deepcopy(v)
    return out


def _to_plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_to_plain(v) for v in node]
    return node


def load_config(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> Config:
    """Load a Python config file with ``_base_`` inheritance, apply ``key=value`` overrides, validate.

    A text value of ``overrides`` (what ``--cfg-options`` collects) is parsed by ``parse_override``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    cfg = Config.fromfile(str(path))
    return validate(merge_overrides(cfg, overrides).to_dict())


def merge_overrides(cfg: Config, overrides: Mapping[str, Any] | None) -> Config:
    """``cfg`` with ``--cfg-options`` merged in: text values parsed against the schema (``parse_override``)."""
    if overrides:
        cfg.merge_from_dict({k: parse_override(k, v) if isinstance(v, str) else v for k, v in overrides.items()})
    return cfg


class DictAction(argparse.Action):
    """``--cfg-options KEY=VALUE ...`` as ``{key: text}``, the text exactly as given (spaces, non-ASCII).

    mmengine's DictAction removes every space (``val.strip('\'"').replace(' ', '')`` in its
    ``_parse_iterable``), so ``data.val.index='/x/val ü'`` became ``/x/valü``; ``load_config`` parses the
    text against the schema instead.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        options = dict(getattr(namespace, self.dest, None) or {})
        for item in values or []:
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                parser.error(f"{option_string}: expected KEY=VALUE, got {item!r}")
            options[key.strip()] = text
        setattr(namespace, self.dest, options)


def parse_override(key: str, text: str) -> Any:
    """The value of ``--cfg-options key=text``.

    A key whose schema type is ``str`` takes the text verbatim (a quoted Python literal is unquoted;
    ``None`` is None). Other keys read Python literals (``1e-4``, ``(512, 512)``, ``[-1]``), ``true`` /
    ``false`` / ``none`` in any case, and mmengine's unbracketed lists (``a,b``); text that is none of
    these stays text, so validation names the key and the expected type.
    """
    spec = _spec_at(key)
    if spec is not None and spec.types == (str,):
        if text == "None":
            return None
        quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""
        return ast.literal_eval(text) if quoted else text
    return _parse_value(text)


def _spec_at(key: str) -> Spec | None:
    node: Any = SCHEMA
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Spec) else None


def _parse_value(text: str) -> Any:
    stripped = text.strip()
    if stripped.lower() in ("true", "false", "none", "null"):
        return {"true": True, "false": False}.get(stripped.lower())
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    bracketed = stripped[:1] in "([" and stripped[-1:] == {"(": ")", "[": "]"}.get(stripped[:1])
    if bracketed or "," in stripped:
        items = [_parse_value(part.strip()) for part in _split_top_level(stripped[1:-1] if bracketed else stripped)]
        return tuple(items) if stripped[:1] == "(" and bracketed else items
    return text


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets; an empty text is no element."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()] if len(parts) > 1 or text.strip() else []


def dump_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config next to a run (temp file, then rename)."""
    from pipa_video.atomic import atomic_write_text

    plain = {k: v for k, v in cfg.to_dict().items() if not k.startswith("_")}
    atomic_write_text(path, Config(plain).pretty_text)
