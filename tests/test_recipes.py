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


# --- HRDA and MIC families (docs/recipes.md, "HRDA and MIC families") ----------------------------------------
HRDA = "lhoyer/HRDA"
HRDA_C = f"{HRDA} configs/hrda/gtaHR2csHR_hrda.py"
HRDA_DATA = f"{HRDA} configs/_base_/datasets/uda_gtaHR_to_cityscapesHR_1024x1024.py"
MIC = "lhoyer/MIC"
MIC_C = f"{MIC} seg/configs/mic/gtaHR2csHR_mic_hrda.py"
MIC_EXP = f"{MIC} seg/experiments.py id 80"
UVDA = "SimarKareer/UnifiedVideoDA"
HR_BENCHMARKS = BENCHMARKS + ("cs_to_acdc", "cs_to_darkzurich")
HRDA_CONFIGS = [f"configs/hrda/hrda_mit_b5_{b}.py" for b in HR_BENCHMARKS]
MIC_CONFIGS = [f"configs/mic/mic_hrda_mit_b5_{b}.py" for b in HR_BENCHMARKS]
PIPA_HRDA_CONFIGS = [f"configs/pipa++/pipa++_hrda_mic_mit_b5_{b}.py" for b in HR_BENCHMARKS]

# (key, value, source) shared by HRDA, MIC on HRDA and PiPa++ on HRDA + MIC.
HRDA_ROWS = [
    ("model.type", "hrda", f"{HRDA_C}: type='HRDAEncoderDecoder', decode_head type='HRDAHead'"),
    ("model.hrda.context_scale", 0.5, f"{HRDA_C}: scales=[1, 0.5]"),
    ("model.hrda.detail_crop", (512, 512), f"{HRDA_C}: hr_crop_size"),
    ("model.hrda.crop_divisible", 8, f"{HRDA_C}: crop_coord_divisible"),
    ("model.hrda.attention_classwise", True, f"{HRDA_C}: attention_classwise"),
    ("model.hrda.detail_slide", True, f"{HRDA_C}: hr_slide_inference"),
    ("model.hrda.test_window", (1024, 1024), f"{HRDA_C}: test_cfg crop_size"),
    ("model.hrda.test_stride", (512, 512), f"{HRDA_C}: test_cfg stride"),
    ("model.hrda.detail_loss_weight", 0.1, f"{HRDA_C}: hr_loss_weight"),
    ("model.backbone.type", "mit_b5", f"{HRDA} configs/_base_/models/daformer_sepaspp_mitb5.py"),
    ("model.decode_head.type", "daformer", f"{HRDA_C}: single_scale_head='DAFormerHead'"),
    ("data.source.crop_size", (1024, 1024), HRDA_DATA),
    ("data.target.crop_size", (1024, 1024), HRDA_DATA),
    ("data.source.cat_max_ratio", 0.75, HRDA_DATA),
    ("data.target.cat_max_ratio", 1.0, HRDA_DATA),
    ("data.source.ratio_range", None, f"{HRDA_DATA}: Resize without ratio_range"),
    ("data.target.ratio_range", None, f"{HRDA_DATA}: Resize without ratio_range"),
    ("data.source.rcs.enabled", True, HRDA_C),
    ("data.source.rcs.temperature", 0.01, f"{HRDA_C}: class_temp"),
    ("data.source.rcs.min_pixels", 3000, HRDA_C),
    ("data.source.rcs.min_crop_ratio", 2.0, HRDA_C),
    ("uda.pseudo_ignore_top", 0, f"{HRDA} mmseg/models/uda/dacs.py: crop-aware margins instead"),
    ("uda.pseudo_ignore_bottom", 0, f"{HRDA} mmseg/models/uda/dacs.py: crop-aware margins instead"),
    ("uda.ema_alpha", 0.999, f"{HRDA} configs/_base_/uda/dacs_a999_fdthings.py"),
    ("uda.pseudo_threshold", 0.968, f"{HRDA} configs/_base_/uda/dacs.py"),
    ("uda.feature_distance.weight", 0.005, f"{HRDA} configs/_base_/uda/dacs_a999_fdthings.py"),
    ("data.source_batch_size", 2, f"{HRDA_DATA}: samples_per_gpu=2"),
    ("data.target_batch_size", 2, f"{HRDA_DATA}: samples_per_gpu=2"),
    ("schedule.iters", 40000, f"{HRDA_C}: max_iters=40000"),
    ("optimizer.lr", 6e-5, HRDA_C),
    ("optimizer.head_lr_mult", 10.0, f"{HRDA_C}: head lr_mult=10"),
    ("evaluation.mode", "whole", "ours: HRDA slides itself (model.hrda.test_window); 'slide' is refused"),
]

# (benchmark, key, value, source): frames per benchmark at HRDA's resolution.
HR_SOURCE_ROWS = [
    ("gta_to_cs", "data.source.resize", (2560, 1440), HRDA_DATA),
    ("gta_to_cs", "data.source.keep_ratio", True, "mmseg 0.x Resize: 1914x1052 -> 2560x1407"),
    ("synthia_to_cs", "data.source.resize", (2560, 1520),
     f"{HRDA} configs/_base_/datasets/uda_synthiaHR_to_cityscapesHR_1024x1024.py"),
    ("viper_to_csseq", "data.source.resize", (2560, 1440), f"{UVDA} configs/_base_/datasets/uda_viper_CSSeq.py"),
    ("synthiaseq_to_csseq", "data.source.resize", (2560, 1520),
     f"{UVDA} configs/_base_/datasets/uda_synthiaSeq_CSSeq.py"),
    ("synthiaseq_to_csseq", "data.source.frame_crop", None, f"{UVDA}: whole frames (DA-VSN's cut is ours)"),
    ("cs_to_acdc", "data.source.resize", (2048, 1024),
     f"{MIC} seg/configs/_base_/datasets/uda_cityscapesHR_to_acdcHR_1024x1024.py"),
    ("cs_to_darkzurich", "data.source.resize", (2048, 1024),
     f"{MIC} seg/configs/_base_/datasets/uda_cityscapesHR_to_darkzurichHR_1024x1024.py"),
    ("cs_to_acdc", "data.target.resize", (1920, 1080), f"{MIC} uda_cityscapesHR_to_acdcHR_1024x1024.py"),
    ("cs_to_darkzurich", "data.target.resize", (1920, 1080), f"{MIC} uda_cityscapesHR_to_darkzurichHR_1024x1024.py"),
    ("cs_to_acdc", "evaluation.resize", (1920, 1080), f"{MIC} uda_cityscapesHR_to_acdcHR_1024x1024.py: test img_scale"),
    ("cs_to_darkzurich", "evaluation.resize", (1920, 1080), f"{MIC} uda_cityscapesHR_to_darkzurichHR_1024x1024.py"),
    ("cs_to_acdc", "data.target.pseudo_margins", None, f"{MIC_EXP}: plcrop=False"),
    ("cs_to_darkzurich", "data.target.pseudo_margins", None, f"{MIC_EXP}: plcrop=False"),
] + [(b, key, value, source) for b in BENCHMARKS for key, value, source in (
    ("data.target.resize", (2048, 1024), HRDA_DATA),
    ("data.target.pseudo_margins", (30, 240, 30, 30), f"{HRDA_C}: crop_pseudo_margins"),
    ("evaluation.resize", (2048, 1024), f"{HRDA_DATA}: test img_scale=(2048, 1024)"),
)]

# (benchmark set, key, value, source) of the MIC term.
MIC_ROWS = [
    ("uda.mic.weight", 1.0, f"{MIC_C}: mask_lambda=1"),
    ("uda.mic.mask_ratio", 0.7, f"{MIC_C}: mask_generator mask_ratio"),
    ("uda.mic.block_size", 64, f"{MIC_C}: mask_generator mask_block_size"),
]
MIC_MODE_ROWS = [  # mask_mode per benchmark
    *[(b, "uda.mic.images", "target", f"{MIC_C}: mask_mode='separatetrgaug'") for b in BENCHMARKS],
    *[(b, "uda.mic.color_augmentation", True, f"{MIC_C}: mask_mode='separatetrgaug'") for b in BENCHMARKS],
    *[(b, "uda.mic.images", "source_and_target", f"{MIC_EXP}: mask_mode='separate'")
      for b in ("cs_to_acdc", "cs_to_darkzurich")],
    *[(b, "uda.mic.color_augmentation", False, f"{MIC_EXP}: mask_mode='separate'")
      for b in ("cs_to_acdc", "cs_to_darkzurich")],
]


@pytest.mark.parametrize("path", HRDA_CONFIGS + MIC_CONFIGS + PIPA_HRDA_CONFIGS)
@pytest.mark.parametrize("key,value,source", HRDA_ROWS, ids=[r[0] for r in HRDA_ROWS])
def test_hrda_family_row(path, key, value, source):
    actual = _get(_load(path), key)
    assert _same(actual, value), f"{path}: {key} = {actual!r}, published {value!r} ({source})"


@pytest.mark.parametrize("bench,key,value,source", HR_SOURCE_ROWS, ids=[f"{r[0]}-{r[1]}" for r in HR_SOURCE_ROWS])
def test_hrda_benchmark_frames_row(bench, key, value, source):
    paths = [f"configs/hrda/hrda_mit_b5_{bench}.py", f"configs/mic/mic_hrda_mit_b5_{bench}.py",
             f"configs/pipa++/pipa++_hrda_mic_mit_b5_{bench}.py"]
    for path in paths:
        actual = _get(_load(path), key)
        assert _same(actual, value), f"{path}: {key} = {actual!r}, published {value!r} ({source})"


@pytest.mark.parametrize("path", MIC_CONFIGS + PIPA_HRDA_CONFIGS)
@pytest.mark.parametrize("key,value,source", MIC_ROWS, ids=[r[0] for r in MIC_ROWS])
def test_mic_row(path, key, value, source):
    actual = _get(_load(path), key)
    assert _same(actual, value), f"{path}: {key} = {actual!r}, published {value!r} ({source})"


@pytest.mark.parametrize("bench,key,value,source", MIC_MODE_ROWS, ids=[f"{r[0]}-{r[1]}" for r in MIC_MODE_ROWS])
def test_mic_mode_row(bench, key, value, source):
    paths = [f"configs/mic/mic_hrda_mit_b5_{bench}.py", f"configs/pipa++/pipa++_hrda_mic_mit_b5_{bench}.py"]
    for path in paths:
        actual = _get(_load(path), key)
        assert _same(actual, value), f"{path}: {key} = {actual!r}, published {value!r} ({source})"


@pytest.mark.parametrize("path", PIPA_HRDA_CONFIGS)
@pytest.mark.parametrize("key,value,source", PIPA_ROWS, ids=[r[0] for r in PIPA_ROWS])
def test_pipa_on_hrda_row(path, key, value, source):
    actual = _get(_load(path), key)
    assert _same(actual, value), f"{path}: {key} = {actual!r}, expected {value!r} ({source})"


def _without(cfg, *keys):
    cfg = _load(cfg).to_dict()
    for key in keys:
        cfg["uda"].pop(key)
    return cfg


@pytest.mark.parametrize("bench", HR_BENCHMARKS)
def test_hrda_mic_and_hrda_differ_only_in_mic(bench):
    assert _without(f"configs/hrda/hrda_mit_b5_{bench}.py", "mic") == \
        _without(f"configs/mic/mic_hrda_mit_b5_{bench}.py", "mic")


@pytest.mark.parametrize("bench", HR_BENCHMARKS)
def test_pipa_on_hrda_mic_and_hrda_mic_differ_only_in_the_contrasts(bench):
    contrasts = ("pixel_contrast", "patch_contrast", "temporal_contrast")
    assert _without(f"configs/mic/mic_hrda_mit_b5_{bench}.py", *contrasts) == \
        _without(f"configs/pipa++/pipa++_hrda_mic_mit_b5_{bench}.py", *contrasts)


def test_demo_hrda_mic_configs_differ_from_their_daformer_twins_only_in_hrda_and_mic():
    hrda = _load("configs/demo/hrda_mic_synthetic.py").to_dict()
    pipa_hrda = _load("configs/demo/pipa++_hrda_mic_synthetic.py").to_dict()
    for cfg in (hrda, pipa_hrda):
        assert cfg["model"]["type"] == "hrda" and cfg["uda"]["mic"]["weight"] == 1.0
    for twin, cfg in (("configs/demo/dacs_synthetic.py", hrda), ("configs/demo/pipa++_synthetic.py", pipa_hrda)):
        base = _load(twin).to_dict()
        for c in (base, cfg):
            c["model"].pop("type"), c["model"].pop("hrda"), c["uda"].pop("mic")
        assert base == cfg, twin
    contrasts = ("pixel_contrast", "patch_contrast", "temporal_contrast")
    assert _without("configs/demo/hrda_mic_synthetic.py", *contrasts) == \
        _without("configs/demo/pipa++_hrda_mic_synthetic.py", *contrasts)


def test_every_hrda_and_mic_row_is_in_the_parity_table():
    doc = (ROOT / "docs" / "recipes.md").read_text()
    keys = {r[0] for r in HRDA_ROWS + MIC_ROWS} | {r[1] for r in HR_SOURCE_ROWS + MIC_MODE_ROWS}
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"docs/recipes.md lacks rows for {missing}"


HR_NATIVE = {"gta_to_cs": (1914, 1052), "synthia_to_cs": (1280, 760), "viper_to_csseq": (1920, 1080),
             "synthiaseq_to_csseq": (1280, 760), "cs_to_acdc": (2048, 1024), "cs_to_darkzurich": (2048, 1024)}
HR_TARGET = {"cs_to_acdc": (1920, 1080), "cs_to_darkzurich": (1920, 1080)}


@pytest.mark.parametrize("bench", HR_BENCHMARKS)
def test_hrda_pipelines_never_pad_a_crop(bench):
    """At HRDA's resolution every 1024x1024 crop lies inside the resized frame, on either domain."""
    import numpy as np

    from pipa_video.data.build import build_clip_transform

    cfg = _load(f"configs/hrda/hrda_mit_b5_{bench}.py")
    for domain, (w, h) in (("source", HR_NATIVE[bench]), ("target", HR_TARGET.get(bench, CITYSCAPES))):
        transform = build_clip_transform(cfg.data[domain], mean=cfg.data.mean, std=cfg.data.std, key=domain)
        frame, label = np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8)
        for seed in range(3):
            out = transform.apply([frame], [label], np.random.default_rng(seed))
            assert out.img.shape[-2:] == (1024, 1024) and bool(out.valid.all()), (bench, domain, seed)
