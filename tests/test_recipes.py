"""Parity of the shipped recipe configs with the published code (docs/recipes.md): one test per row.

Each row is (config key, expected value, source). The expected value is the published one, or, where
docs/recipes.md justifies a deviation, ours; a changed config (or schema default) fails here by name.
"""
from pathlib import Path

import pytest

from pipa_video.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DAFORMER = "lhoyer/DAFormer"
DAF_EXP = f"{DAFORMER} configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py"
DAF_DATA = f"{DAFORMER} configs/_base_/datasets/uda_gta_to_cityscapes_512x512.py"
DAF_UDA = f"{DAFORMER} configs/_base_/uda/dacs.py"
DAF_STEP = f"{DAFORMER} mmseg/models/uda/dacs.py"
PIPA = "chen742/PiPa"
PAPER = "PiPa++ paper (../shared/docs/method.md)"

BENCHMARKS = ("gta_to_cs", "synthia_to_cs", "viper_to_csseq", "synthiaseq_to_csseq")
DAFORMER_CONFIGS = [f"configs/baselines/dacs_mit_b5_{b}.py" for b in BENCHMARKS]
PIPA_CONFIGS = [f"configs/pipa++/pipa++_mit_b5_{b}.py" for b in BENCHMARKS]

# (key, value, source) shared by the DAFormer baseline and PiPa++ on DAFormer.
DAFORMER_ROWS = [
    ("data.source.ratio_range", None, f"{DAF_DATA}: Resize without ratio_range"),
    ("data.target.ratio_range", None, f"{DAF_DATA}: Resize without ratio_range"),
    ("data.source.crop_size", (512, 512), DAF_DATA),
    ("data.target.crop_size", (512, 512), DAF_DATA),
    ("data.source.cat_max_ratio", 0.75, DAF_DATA),
    ("data.target.cat_max_ratio", 1.0, f"{DAF_DATA}: RandomCrop(crop_size) without cat_max_ratio"),
    ("data.source.flip_prob", 0.5, DAF_DATA),
    ("data.target.flip_prob", 0.5, DAF_DATA),
    ("data.source.photometric", False, f"{DAF_DATA}: PhotoMetricDistortion commented out"),
    ("data.target.photometric", False, DAF_DATA),
    ("data.target.resize", (1024, 512), DAF_DATA),
    ("data.target.keep_ratio", True, "mmseg 0.x Resize: keep_ratio=True by default"),
    ("data.target.pseudo_margins", None, f"{DAF_EXP}: on-crop margins, not HRDA's crop-aware ones"),
    ("data.source.rcs.enabled", True, DAF_EXP),
    ("data.source.rcs.temperature", 0.01, DAF_EXP),
    ("data.source.rcs.min_pixels", 3000, DAF_EXP),
    ("data.source.rcs.min_crop_ratio", 0.5, DAF_EXP),
    ("data.source_batch_size", 2, f"{DAF_DATA}: samples_per_gpu=2"),
    ("data.target_batch_size", 2, f"{DAF_DATA}: samples_per_gpu=2"),
    ("uda.method", "self_training", DAF_STEP),
    ("uda.pseudo_threshold", 0.968, DAF_UDA),
    ("uda.pseudo_weight", "batch", f"{DAF_STEP}: torch.sum(ps_large_p) / ps_size"),
    ("uda.pseudo_ignore_top", 15, DAF_EXP),
    ("uda.pseudo_ignore_bottom", 120, DAF_EXP),
    ("uda.classmix_classes", "batch", f"{DAFORMER} mmseg/models/utils/dacs_transforms.py: get_class_masks"),
    ("uda.source_ce_average", "all_pixels", f"{DAFORMER} mmseg/models/losses/cross_entropy_loss.py"),
    ("uda.teacher_norm", "batch", f"{DAF_STEP}: _update_ema, dropout/DropPath off only"),
    ("uda.ema_alpha", 0.999, DAF_EXP),
    ("uda.color_jitter_strength", 0.2, DAF_UDA),
    ("uda.color_jitter_prob", 0.8, f"{DAF_UDA}: p=0.2, applied when uniform() > p"),
    ("uda.blur", True, DAF_UDA),
    ("uda.strong_aug_draw", "batch", f"{DAF_STEP}: one random.uniform per batch"),
    ("uda.feature_distance.weight", 0.005, DAF_EXP),
    ("uda.feature_distance.classes", ["traffic light", "traffic sign", "person", "rider", "car", "truck", "bus", "train",
                        "motorcycle", "bicycle"], f"{DAF_EXP}: classes [6, 7, 11, ..., 18]"),
    ("uda.feature_distance.scale_min_ratio", 0.75, DAF_EXP),
    ("optimizer.lr", 6e-5, DAF_EXP),
    ("optimizer.head_lr_mult", 10.0, DAF_EXP),
    ("optimizer.weight_decay", 0.01, f"{DAFORMER} configs/_base_/schedules/adamw.py"),
    ("optimizer.betas", (0.9, 0.999), f"{DAFORMER} configs/_base_/schedules/adamw.py"),
    ("schedule.warmup_iters", 1500, f"{DAFORMER} configs/_base_/schedules/poly10warm.py"),
    ("schedule.warmup_ratio", 1e-6, f"{DAFORMER} configs/_base_/schedules/poly10warm.py"),
    ("schedule.power", 1.0, f"{DAFORMER} configs/_base_/schedules/poly10warm.py"),
    ("schedule.min_lr", 0.0, f"{DAFORMER} configs/_base_/schedules/poly10warm.py"),
    ("schedule.iters", 40000, f"{DAF_EXP}: max_iters=40000; {PAPER}: 40k"),
    ("model.backbone.type", "mit_b5", f"{DAFORMER} configs/_base_/models/daformer_conv1_mitb5.py"),
    ("model.backbone.drop_path_rate", 0.1, f"{DAFORMER} mmseg/models/backbones/mix_transformer.py"),
    ("model.decode_head.type", "daformer", f"{DAFORMER} configs/_base_/models/daformer_sepaspp_mitb5.py"),
    ("model.decode_head.channels", 256, f"{DAFORMER} configs/_base_/models/daformer_conv1_mitb5.py"),
    ("model.decode_head.dropout", 0.1, f"{DAFORMER} configs/_base_/models/daformer_conv1_mitb5.py"),
    ("evaluation.resize", (1024, 512), f"{DAF_DATA}: test_pipeline img_scale=(1024, 512)"),
    ("evaluation.mode", "whole", f"{DAFORMER} configs/_base_/models/daformer_conv1_mitb5.py: test_cfg"),
]

# (benchmark, key, value, source): the source domain's frames per benchmark.
SOURCE_ROWS = [
    ("gta_to_cs", "data.source.resize", (1280, 720), DAF_DATA),
    ("gta_to_cs", "data.source.keep_ratio", True, "mmseg 0.x Resize: 1914x1052 -> 1280x704"),
    ("synthia_to_cs", "data.source.resize", (1280, 760),
     f"{DAFORMER} configs/_base_/datasets/uda_synthia_to_cityscapes_512x512.py"),
    ("viper_to_csseq", "data.source.resize", (1280, 720), "datasets.md: VIPER trained at 1280x720"),
    ("synthiaseq_to_csseq", "data.source.frame_crop", (0, 120, 0, 0),
     "Dayan-Guan/DA-VSN davsn/dataset/SynthiaSeq.py: image[:-120]"),
    ("synthiaseq_to_csseq", "data.source.resize", None, "Dayan-Guan/DA-VSN davsn/scripts/train.py: (1280, 760)"),
    ("viper_to_csseq", "data.source.offsets", [-1], "DA-VSN / TPS clips (t, t-1)"),
    ("synthiaseq_to_csseq", "data.source.offsets", [-1], "DA-VSN / TPS clips (t, t-1)"),
    ("viper_to_csseq", "data.target.offsets", [-1], "DA-VSN / TPS clips (t, t-1)"),
    ("synthiaseq_to_csseq", "data.target.offsets", [-1], "DA-VSN / TPS clips (t, t-1)"),
]

# (key, value, source) of the contrasts in PiPa++ on DAFormer.
PIPA_ROWS = [
    ("uda.pixel_contrast.weight", 0.1, f"{PAPER}; {PIPA} PiPa_DAFormer/mmseg/models/decode_heads/decode_head.py"),
    ("uda.pixel_contrast.tau", 0.1, f"{PIPA} decode_head.py: temperature = 0.1"),
    ("uda.pixel_contrast.base_tau", None, f"{PAPER}; {PIPA} scales by 0.1 / 0.07 (base_tau=0.07)"),
    ("uda.pixel_contrast.proj_dim", 256, f"{PIPA} PiPa_DAFormer/mmseg/models/segmentors/encoder_decoder.py"),
    ("uda.pixel_contrast.anchors_per_class", 64, f"ours; {PIPA} min(1024 // classes, 100)"),
    ("uda.pixel_contrast.hard_ratio", 0.5, f"{PIPA} decode_head.py: _hard_anchor_sampling"),
    ("uda.pixel_contrast.bank_size", 200, f"{PAPER}: a few hundred per class; {PIPA}: none"),
    ("uda.pixel_contrast.use_target", False, f"{PIPA} decode_head.py: pixel contrast in stage 1 only"),
    ("uda.patch_contrast.weight", 0.1, f"{PAPER}; {PIPA} PiPa_DAFormer/mmseg/models/uda/dacs.py weight_unsup"),
    ("uda.patch_contrast.tau", 0.1, f"{PIPA} PiPa_DAFormer/mmseg/models/uda/dacs.py: temp = 0.1"),
    ("uda.patch_contrast.iou_range", (0.1, 1.0), f"{PIPA} configs/cac/config.json: iou_bound"),
    ("uda.patch_contrast.views", "mixed_and_crop", "ours (docs/design.md)"),
    ("uda.patch_contrast.crop_ratio", 0.5, "ours (docs/design.md)"),
    ("uda.patch_contrast.num_anchors", 1024, f"ours; {PIPA} selected_num = 1600"),
    ("uda.temporal_contrast.weight", 0.1, PAPER),
    ("uda.temporal_contrast.tau", 0.1, PAPER),
    ("uda.temporal_contrast.reference", "teacher", "ours"),
    ("uda.temporal_contrast.confidence", 0.968, "ours: DAFormer's pseudo-label threshold"),
    ("uda.temporal_contrast.num_anchors", 1024, "ours"),
]


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _same(actual, expected):
    if isinstance(expected, (tuple, list)):
        return actual is not None and list(actual) == list(expected)
    if isinstance(expected, float):
        return actual == pytest.approx(expected, rel=1e-12)
    return actual == expected


_CACHE: dict = {}


def _load(path):
    if path not in _CACHE:
        _CACHE[path] = load_config(ROOT / path)
    return _CACHE[path]


@pytest.mark.parametrize("path", DAFORMER_CONFIGS + PIPA_CONFIGS)
@pytest.mark.parametrize("key,value,source", DAFORMER_ROWS, ids=[r[0] for r in DAFORMER_ROWS])
def test_daformer_family_row(path, key, value, source):
    actual = _get(_load(path), key)
    assert _same(actual, value), f"{path}: {key} = {actual!r}, published {value!r} ({source})"


@pytest.mark.parametrize("bench,key,value,source", SOURCE_ROWS, ids=[f"{r[0]}-{r[1]}" for r in SOURCE_ROWS])
def test_benchmark_frames_row(bench, key, value, source):
    for path in (f"configs/baselines/dacs_mit_b5_{bench}.py", f"configs/pipa++/pipa++_mit_b5_{bench}.py"):
        actual = _get(_load(path), key)
        assert _same(actual, value), f"{path}: {key} = {actual!r}, published {value!r} ({source})"


@pytest.mark.parametrize("path", PIPA_CONFIGS)
@pytest.mark.parametrize("key,value,source", PIPA_ROWS, ids=[r[0] for r in PIPA_ROWS])
def test_pipa_row(path, key, value, source):
    actual = _get(_load(path), key)
    assert _same(actual, value), f"{path}: {key} = {actual!r}, expected {value!r} ({source})"


def test_baseline_and_pipa_differ_only_in_the_contrasts():
    """PiPa++ on DAFormer keeps DAFormer's data, step and schedule: the comparison isolates the contrasts."""
    for benchmark in BENCHMARKS:
        base = _load(f"configs/baselines/dacs_mit_b5_{benchmark}.py").to_dict()
        pipa = _load(f"configs/pipa++/pipa++_mit_b5_{benchmark}.py").to_dict()
        contrasts = ("pixel_contrast", "patch_contrast", "temporal_contrast")
        for cfg in (base, pipa):
            for key in contrasts:
                cfg["uda"].pop(key)
        assert base == pipa, benchmark


def test_every_row_is_in_the_parity_table():
    doc = (ROOT / "docs" / "recipes.md").read_text()
    keys = {r[0] for r in DAFORMER_ROWS + PIPA_ROWS} | {r[1] for r in SOURCE_ROWS}
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"docs/recipes.md lacks rows for {missing}"


NATIVE_SIZES = {"gta_to_cs": (1914, 1052), "synthia_to_cs": (1280, 760), "viper_to_csseq": (1920, 1080),
                "synthiaseq_to_csseq": (1280, 760)}
CITYSCAPES = (2048, 1024)


@pytest.mark.parametrize("bench", BENCHMARKS)
def test_published_pipelines_never_pad_a_crop(bench):
    """The audit measured 30% of target crops padded under ratio_range (0.5, 2.0); the published
    pipelines (no random rescale, frames no smaller than the crop) pad nothing, on either domain."""
    import numpy as np

    from pipa_video.data.build import build_clip_transform

    cfg = _load(f"configs/baselines/dacs_mit_b5_{bench}.py")
    for domain, (w, h) in (("source", NATIVE_SIZES[bench]), ("target", CITYSCAPES)):
        transform = build_clip_transform(cfg.data[domain], mean=cfg.data.mean, std=cfg.data.std, key=domain)
        frame, label = np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8)
        for seed in range(10):
            out = transform.apply([frame], [label], np.random.default_rng(seed))
            assert out.img.shape[-2:] == (512, 512) and bool(out.valid.all()), (bench, domain, seed)
