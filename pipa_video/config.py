"""Config loading: mmengine's Python configs (``_base_`` inheritance, ``--cfg-options``), validated.

Every key a config may hold is declared in ``SCHEMA`` with its type and default. ``load_config``
merges the file onto the defaults, applies command-line overrides, and fails on the first unknown
key or badly typed value, naming it (``data.source.crop_sise: unknown key; did you mean crop_size``).
Builders read the validated config; objects below them take plain keyword arguments.
"""
from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported for the CLI)


class ConfigError(ValueError):
    """A config key or value is wrong; the message names the dotted key."""


@dataclass(frozen=True)
class Spec:
    """A leaf of the schema: allowed types, default, optional choices, optional nullability."""

    types: tuple[type, ...]
    default: Any
    choices: tuple[Any, ...] | None = None
    nullable: bool = False


def opt(types: type | tuple[type, ...], default: Any = None, *, choices: Iterable[Any] | None = None,
        nullable: bool | None = None) -> Spec:
    types = types if isinstance(types, tuple) else (types,)
    if float in types and int not in types:
        types = types + (int,)  # 1 is a fine float
    if tuple in types or list in types:
        types = tuple(set(types) | {tuple, list})
    return Spec(types, default, tuple(choices) if choices is not None else None,
                default is None if nullable is None else nullable)


def _dataset(**overrides: Spec) -> dict:
    """Schema of one dataset section (source, target, val, test)."""
    spec = dict(
        index=opt(str),  # index directory written by data_tools/prepare_*.py
        root=opt(str),  # overrides the data root recorded in the index's meta.json
        offsets=opt(list, []),  # reference frames relative to the key frame, e.g. [-1]
        keys=opt(str, "labelled", choices=("labelled", "all")),  # which frames can be key frames
        boundary=opt(str, "clamp", choices=("clamp", "skip")),  # reference frames past a sequence end
        resize=opt(tuple, nullable=True),  # (w, h) every frame is resized to first, or None
        ratio_range=opt(tuple, nullable=True),  # random rescale of that size, e.g. (0.5, 2.0)
        crop_size=opt(tuple, nullable=True),  # (h, w) random crop, or None
        cat_max_ratio=opt(float, 1.0),  # crop retries while one class fills more than this
        flip_prob=opt(float, 0.0),
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
                temperature=opt(float, 0.01),
                min_pixels=opt(int, 3000),
            ),
        ),
        target=_dataset(),
        val=_dataset(),
        test=_dataset(),
        source_batch_size=opt(int, 2),
        target_batch_size=opt(int, 2),
        num_workers=opt(int, 4),
        mean=opt(tuple, (123.675, 116.28, 103.53)),
        std=opt(tuple, (58.395, 57.12, 57.375)),
    ),
    model=dict(
        backbone=dict(
            type=opt(str, "mit_b5"),  # mit_b0..mit_b5, resnet101
            pretrained=opt(str),  # local path to ImageNet weights (official mit_bX.pth or converted)
            drop_path_rate=opt(float, 0.1),
        ),
        decode_head=dict(
            type=opt(str, "daformer", choices=("daformer", "segformer")),
            channels=opt(int, 256),
            dropout=opt(float, 0.1),
            # Convolutions on channels-last (NHWC) tensors, 1x1 convs as matmuls: same outputs, faster
            # with cuDNN/bf16 and oneDNN. False keeps the NCHW convolutions (benchmarks compare both).
            channels_last=opt(bool, True),
        ),
    ),
    uda=dict(
        method=opt(str, "self_training", choices=("source_only", "self_training")),
        ema_alpha=opt(float, 0.999),
        pseudo_threshold=opt(float, 0.968),
        pseudo_weight=opt(str, "image", choices=("image", "pixel")),
        pseudo_ignore_top=opt(int, 0),  # rows at the top of target frames left out of pseudo-labels
        pseudo_ignore_bottom=opt(int, 0),
        color_jitter_strength=opt(float, 0.2),
        # Probability of APPLYING the jitter. DAFormer's code passes p=0.2 but jitters when
        # uniform() > p, i.e. with probability 0.8; we keep its behaviour and name it plainly.
        color_jitter_prob=opt(float, 0.8),
        blur=opt(bool, True),
        fd_weight=opt(float, 0.005),  # ImageNet feature distance; on only with pretrained weights
        fd_classes=opt(list, ["traffic light", "traffic sign", "person", "rider", "car", "truck",
                               "bus", "train", "motorcycle", "bicycle"]),
        fd_scale_min_ratio=opt(float, 0.75),
        pixel_contrast=dict(
            weight=opt(float, 0.0),  # alpha; 0 switches the term off
            tau=opt(float, 0.1),
            proj_dim=opt(int, 256),
            anchors_per_class=opt(int, 64),
            bank_size=opt(int, 200),  # memory-bank entries per class
            use_target=opt(bool, False),  # also confident target pseudo-labels
            hard_ratio=opt(float, 0.5),  # share of anchors that the student misclassifies
        ),
        patch_contrast=dict(
            weight=opt(float, 0.0),  # beta
            tau=opt(float, 0.1),
            proj_dim=opt(int, 256),
            # 'mixed_and_crop': view 1 is the mixed image the student already saw for L_M, view 2 one
            # crop of it (one extra, smaller forward); 'two_crops': two fresh crops (two extra forwards).
            views=opt(str, "mixed_and_crop", choices=("mixed_and_crop", "two_crops")),
            iou_range=opt(tuple, (0.1, 1.0)),  # IoU of the two views' boxes
            crop_ratio=opt(float, 0.5),  # each crop's side as a share of the image side
            num_anchors=opt(int, 1024),
        ),
        temporal_contrast=dict(
            weight=opt(float, 0.0),  # gamma
            tau=opt(float, 0.1),
            proj_dim=opt(int, 256),
            reference=opt(str, "teacher", choices=("student", "teacher")),
            confidence=opt(float, 0.968),
            num_anchors=opt(int, 1024),
        ),
    ),
    optimizer=dict(
        lr=opt(float, 6e-5),
        head_lr_mult=opt(float, 10.0),
        weight_decay=opt(float, 0.01),
        betas=opt(tuple, (0.9, 0.999)),
    ),
    schedule=dict(
        iters=opt(int, 40000),
        warmup_iters=opt(int, 1500),
        warmup_ratio=opt(float, 1e-6),
        power=opt(float, 1.0),
        min_lr=opt(float, 0.0),
    ),
    evaluation=dict(
        protocol=opt(str, "davsn", choices=("davsn", "unified")),
        mode=opt(str, "whole", choices=("whole", "slide")),
        resize=opt(tuple, nullable=True),  # (w, h) network input; logits go back to label size
        # (w, h), same order as resize: temporal consistency (flow, warping, flicker) runs on frames
        # (area) and predictions/labels (nearest) resized to it, since 2048x1024 is slow; None = full
        tc_resize=opt(tuple, nullable=True),
        window=opt(tuple, (1024, 1024)),  # slide inference window (h, w)
        stride=opt(tuple, (512, 512)),
        flip=opt(bool, False),
        scales=opt(list, [1.0]),
    ),
    runtime=dict(
        seed=opt(int, 0),
        amp=opt(bool, True),  # bf16 autocast on CUDA; always off on CPU
        log_interval=opt(int, 50),
        checkpoint_interval=opt(int, 4000),
        eval_interval=opt(int, 4000),  # iterations between evaluations on data.val (when set)
        keep_checkpoints=opt(int, 2),
        device=opt(str, "auto", choices=("auto", "cpu", "cuda")),
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
    _check_relations(checked)
    return Config(checked)


def size_wh(value: Any, *, key: str) -> tuple[int, int] | None:
    """None, or ``value`` as two positive ints (w, h); a ConfigError naming ``key`` otherwise."""
    if value is None:
        return None
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ConfigError(f"{key}: expected two positive ints (w, h) or None, got {value!r}")
    return int(value[0]), int(value[1])


def _check_relations(cfg: dict) -> None:
    """Constraints between keys, named like single-key errors."""
    sched = cfg["schedule"]
    if sched["iters"] < 1:
        raise ConfigError(f"schedule.iters: must be >= 1, got {sched['iters']}")
    if not 0 <= sched["warmup_iters"] <= sched["iters"]:
        raise ConfigError(f"schedule.warmup_iters: must be in [0, schedule.iters={sched['iters']}], "
                          f"got {sched['warmup_iters']}")
    for key in ("log_interval", "checkpoint_interval", "eval_interval"):
        if cfg["runtime"][key] < 1:
            raise ConfigError(f"runtime.{key}: must be >= 1, got {cfg['runtime'][key]}")
    size_wh(cfg["evaluation"]["tc_resize"], key="evaluation.tc_resize")
    patch = cfg["uda"]["patch_contrast"]
    if not 0 < patch["crop_ratio"] <= 1:
        raise ConfigError(f"uda.patch_contrast.crop_ratio: must be in (0, 1], got {patch['crop_ratio']}")
    iou = patch["iou_range"]
    if len(iou) != 2 or not 0 <= iou[0] <= iou[1] <= 1:
        raise ConfigError(f"uda.patch_contrast.iou_range: must be (low, high) with 0 <= low <= high <= 1, got {iou}")
    if patch["weight"] > 0 and patch["views"] == "mixed_and_crop" and not iou[0] <= patch["crop_ratio"] ** 2 <= iou[1]:
        raise ConfigError(f"uda.patch_contrast.crop_ratio: with views='mixed_and_crop' the crop covers crop_ratio^2 = "
                          f"{patch['crop_ratio'] ** 2:.3f} of the mixed view, outside iou_range {tuple(iou)}")


def _to_plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_to_plain(v) for v in node]
    return node


def load_config(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> Config:
    """Load a Python config file with ``_base_`` inheritance, apply ``key=value`` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    cfg = Config.fromfile(str(path))
    if overrides:
        cfg.merge_from_dict(dict(overrides))
    return validate(cfg.to_dict())


def dump_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config next to a run (temp file, then rename)."""
    from pipa_video.data.index import atomic_write_text

    plain = {k: v for k, v in cfg.to_dict().items() if not k.startswith("_")}
    atomic_write_text(path, Config(plain).pretty_text)
