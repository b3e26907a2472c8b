"""The GTA5 + SYNTHIA -> Cityscapes (multi-source) configs: every DAFormer / PiPa++ parity row of
tests/test_recipes.py holds for each source, plus the multi-source rows of docs/recipes.md; and the
``data.sources`` config contract (entries over ``data.source``, checked at load time)."""
import re
from pathlib import Path

import numpy as np
import pytest

from pipa_video.config import ConfigError, load_config, validate
from tests.test_recipes import DAF_DATA, DAFORMER, DAFORMER_ROWS, PIPA_ROWS, _get, _same

ROOT = Path(__file__).resolve().parents[1]
BENCH = "gta+synthia_to_cs"
DACS, PIPA, SOURCE_ONLY = (f"configs/baselines/dacs_mit_b5_{BENCH}.py", f"configs/pipa++/pipa++_mit_b5_{BENCH}.py",
                           f"configs/baselines/source_only_mit_b5_{BENCH}.py")
DAF_SYN = f"{DAFORMER} configs/_base_/datasets/uda_synthia_to_cityscapes_512x512.py"
MADAN = "Luodian/MADAN"
# (key, value, source) of the multi-source rows (docs/recipes.md, "Multi-source").
MULTI_SOURCE_ROWS = [
    ("class_set", "cityscapes19", f"{MADAN} scripts/eval_fcn.py: 19-class mIoU (and 16-class)"),
    ("data.sources.0.index", "data/index/gta", "README: prepare_gta.py --out data/index/gta"),
    ("data.sources.0.resize", (1280, 720), DAF_DATA),
    ("data.sources.0.keep_ratio", True, "mmseg 0.x Resize: 1914x1052 -> 1280x704"),
    ("data.sources.0.weight", 0.5, f"{MADAN} cycada/data/cyclesynthia_cyclegta5.py: index % 2"),
    ("data.sources.1.index", "data/index/synthia", "README: prepare_synthia.py --out data/index/synthia"),
    ("data.sources.1.resize", (1280, 760), DAF_SYN),
    ("data.sources.1.keep_ratio", True, DAF_SYN),
    ("data.sources.1.weight", 0.5, f"{MADAN} cycada/data/cyclesynthia_cyclegta5.py: index % 2"),
]


def _load(path, cache={}):
    if path not in cache:
        cache[path] = load_config(ROOT / path)
    return cache[path]


def _value(cfg, key):
    parts = key.split(".")
    if parts[:2] == ["data", "sources"]:
        return _get(cfg.data.sources[int(parts[2])], ".".join(parts[3:]))
    return _get(cfg, key)


def _source_rows():
    """DAFormer's data.source rows, for data.source (the shared keys) and for each resolved entry."""
    rows = []
    for key, value, source in DAFORMER_ROWS:
        if key.startswith("data.source."):
            rows += [(key.replace("data.source.", f"data.sources.{i}."), value, source) for i in (0, 1)]
    return rows


@pytest.mark.parametrize("path", [DACS, PIPA])
@pytest.mark.parametrize("key,value,source", DAFORMER_ROWS + _source_rows() + MULTI_SOURCE_ROWS,
                         ids=[r[0] for r in DAFORMER_ROWS + _source_rows() + MULTI_SOURCE_ROWS])
def test_multi_source_daformer_row(path, key, value, source):
    actual = _value(_load(path), key)
    assert _same(actual, value), f"{path}: {key} = {actual!r}, expected {value!r} ({source})"


@pytest.mark.parametrize("key,value,source", PIPA_ROWS, ids=[r[0] for r in PIPA_ROWS])
def test_multi_source_pipa_row(key, value, source):
    actual = _value(_load(PIPA), key)
    assert _same(actual, value), f"{PIPA}: {key} = {actual!r}, expected {value!r} ({source})"


def test_baseline_pipa_and_source_only_share_the_data():
    base, pipa, source_only = (_load(p).to_dict() for p in (DACS, PIPA, SOURCE_ONLY))
    assert base["data"] == pipa["data"] == source_only["data"] and source_only["uda"]["method"] == "source_only"
    for cfg in (base, pipa):
        for key in ("pixel_contrast", "patch_contrast", "temporal_contrast"):
            cfg["uda"].pop(key)
    assert base == pipa


def test_every_multi_source_row_is_in_the_parity_table():
    doc = (ROOT / "docs" / "recipes.md").read_text()
    section = doc[doc.index("## Multi-source"):]
    keys = {re.sub(r"^data\.sources\.(\d+)\.", r"data.sources[\1].", r[0]) for r in MULTI_SOURCE_ROWS}
    missing = sorted(k for k in keys if f"`{k}`" not in section)
    assert not missing, f"docs/recipes.md, Multi-source, lacks rows for {missing}"


@pytest.mark.parametrize("entry,size", [(0, (1914, 1052)), (1, (1280, 760))])
def test_each_source_pipeline_never_pads_a_crop(entry, size):
    from pipa_video.data.build import build_clip_transform

    cfg = _load(DACS)
    transform = build_clip_transform(cfg.data.sources[entry], mean=cfg.data.mean, std=cfg.data.std, key="source")
    w, h = size
    for seed in range(5):
        frame, label = np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8)
        out = transform.apply([frame], [label], np.random.default_rng(seed))
        assert out.img.shape[-2:] == (512, 512) and bool(out.valid.all())


# --- the data.sources contract -----------------------------------------------------------------------
def _cfg(sources, **source):
    return dict(data=dict(source=dict(index="a", crop_size=(64, 64), rcs=dict(enabled=True, min_pixels=5), **source),
                          target=dict(index="t", crop_size=(64, 64)), sources=sources))


def test_entries_override_data_source_key_by_key():
    cfg = validate(_cfg([dict(weight=1), dict(index="b", weight=3, resize=(80, 40), rcs=dict(min_pixels=9))]))
    first, second = cfg.data.sources
    assert (first.index, first.weight, first.rcs.min_pixels, first.resize) == ("a", 1, 5, None)
    assert (second.index, second.weight, second.rcs.min_pixels, second.rcs.enabled) == ("b", 3, 9, True)
    assert tuple(second.resize) == (80, 40) and tuple(second.crop_size) == (64, 64)
    assert validate(cfg.to_dict()).data.sources == cfg.data.sources  # a saved, resolved config reloads the same
    assert validate(_cfg([])).data.sources == []  # the single-source default


@pytest.mark.parametrize("sources,message", [
    ([dict(weight=1), dict(index="b")], r"data\.sources\[1\]\.weight: required"),
    ([dict(weight=0), dict(index="b", weight=1)], r"data\.sources\[0\]\.weight: expected a value in \(0, inf\)"),
    ([dict(weight=-1)], r"data\.sources\[0\]\.weight: expected a value in \(0, inf\)"),
    ([dict(weight=True)], r"data\.sources\[0\]\.weight: got bool"),
    ([dict(weight=1), dict(index="b", weight=1, crop_size=(32, 32))],
     r"data\.sources\[1\]\.crop_size: expected \(64, 64\) as data\.sources\[0\]\.crop_size"),
    ([dict(weight=1), dict(index="b", weight=1, offsets=[-1])], r"data\.sources\[1\]\.offsets: expected 0 reference"),
    ([dict(weight=1), dict(index="b", weight=1, crop_sise=(64, 64))], r"data\.sources\[1\]\.crop_sise: unknown key"),
    ([dict(weight=1, rcs=dict(temprature=1))], r"data\.sources\[0\]\.rcs\.temprature: unknown key"),
    ([dict(weight=1, index=None)], r"data\.sources\[0\]\.index: not set"),
    ([3], r"data\.sources: expected dict values"),
])
def test_bad_entries_fail_at_load_time_naming_the_entry(sources, message):
    with pytest.raises(ConfigError, match=message):
        validate(_cfg(sources))


def test_the_target_crop_must_match_every_source():
    expected = r"data\.target\.crop_size: expected data\.sources\[0\]\.crop_size=\(48, 48\)"
    with pytest.raises(ConfigError, match=expected):
        validate(_cfg([dict(weight=1, crop_size=(48, 48)), dict(index="b", weight=1, crop_size=(48, 48))]))
    crop_none = _cfg([dict(weight=1), dict(index="b", weight=1)], resize=(64, 64))
    crop_none["data"]["source"]["crop_size"] = None
    with pytest.raises(ConfigError, match=r"data\.sources\[0\]\.crop_size: expected a crop size, not None"):
        validate(crop_none)
