"""The frame cache of the prepare tools (``--cache-size WxH``): exact resized frames and labels, an index
that points at them and says how they were made, a training pipeline that sees the same clips, and
evaluation that refuses it."""
import json

import cv2
import numpy as np
import pytest

from pipa_video.config import validate
from pipa_video.data import io as data_io
from pipa_video.data.build import build_clip_dataset, build_eval_dataset
from pipa_video.data.frame_cache import FRAMES_DIR, cache_frames, parse_size
from pipa_video.data.index import DatasetError, load_index
from pipa_video.data.prepare import main, prepare
from tests.data.fixtures import HEIGHT, WIDTH, make_cityscapes_seq_tree, make_video

HALF = (WIDTH // 2, HEIGHT // 2)  # (w, h)


@pytest.fixture
def cs_tree(tmp_path):
    tree = make_cityscapes_seq_tree(tmp_path / "data", split="val")
    kwargs = dict(split="val", class_set="viper15", quiet=True)
    plain = prepare("cityscapes_seq", tmp_path / "data", tmp_path / "plain", **kwargs)
    cached = prepare("cityscapes_seq", tmp_path / "data", tmp_path / "cached", cache_size=HALF, **kwargs)
    return tree, load_index(plain), load_index(cached)


def test_index_points_at_exactly_resized_frames_and_labels(cs_tree):
    tree, plain, cached = cs_tree
    assert cached.meta.root == str(cached.index_dir / FRAMES_DIR)
    assert plain.meta.cache is None
    cache = cached.meta.cache
    assert cache["size"] == list(HALF) and cache["format"] == "png"
    assert "INTER_LINEAR" in cache["frame_resampling"] and "INTER_NEAREST" in cache["label_resampling"]
    assert cache["original_root"] == plain.meta.root
    assert cache["original_sizes"] == {f"{WIDTH}x{HEIGHT}": len(plain.frames)}
    assert json.loads((cached.index_dir / "meta.json").read_text())["cache"] == cache
    assert len(cached.frames) == len(plain.frames) and cached.frames.labelled.any()
    # pixel counts stay those of the full-resolution labels (rare-class sampling statistics)
    counts = plain.class_set.column_names()
    assert (cached.frames[counts].to_numpy() == plain.frames[counts].to_numpy()).all()
    for row in range(len(cached.frames)):
        original = tree.images[plain.frames.image.iat[row]]
        frame = data_io.read_rgb(cached.image_path(row))
        np.testing.assert_array_equal(frame, cv2.resize(original, HALF, interpolation=cv2.INTER_LINEAR))
        if cached.frames.labelled.iat[row]:
            full = data_io.read_train_ids(plain.label_path(row))
            small = data_io.read_train_ids(cached.label_path(row))
            assert cached.frames.label.iat[row].startswith(f"labels_{HALF[0]}x{HALF[1]}/")
            np.testing.assert_array_equal(small, cv2.resize(full, HALF, interpolation=cv2.INTER_NEAREST))


def _clip_config(index, resize):
    cfg = validate({"class_set": "viper15", "data": {"source": {
        "index": str(index.index_dir), "offsets": [-1], "resize": resize, "flip_prob": 0.5}}})
    cfg.data.source.crop_size = (6, 10)  # below the config's 32-pixel floor (a real backbone's), fine for the loader
    return cfg


def test_training_clips_from_the_cache_equal_the_uncached_ones(cs_tree):
    """The recipe's first resize to the cache size becomes the identity, and the clip is unchanged:
    the cache resamples once with cv2.resize, the uncached loader once with the equivalent warp."""
    _, plain, cached = cs_tree
    ours = build_clip_dataset(_clip_config(cached, HALF), "source")
    reference = build_clip_dataset(_clip_config(plain, HALF), "source")
    assert len(ours) == len(reference)
    for item in [(k, seed) for k in range(len(ours)) for seed in (0, 1)]:
        a, b = ours[item], reference[item]
        assert a["img"].shape == b["img"].shape == (2, 3, 6, 10)
        # frames: equal up to one grey level of rounding between cv2.resize and cv2.warpAffine
        assert (a["img"] - b["img"]).abs().max() <= 1.0 / 57.0 + 1e-6
        assert (a["label"] == b["label"]).all()


def test_evaluation_refuses_a_cache(cs_tree):
    _, plain, cached = cs_tree
    cfg = validate({"class_set": "viper15", "data": {"val": {"index": str(cached.index_dir)}}})
    with pytest.raises(DatasetError, match=r"data.val.index = .* is a training frame cache .* resized to 16x8"):
        build_eval_dataset(cfg, "val")
    with pytest.raises(DatasetError, match="already a"):
        cache_frames(cached.frames, cached.meta, out_dir=cached.index_dir, size=HALF)


def test_video_frames_are_cached_one_png_per_frame(tmp_path):
    frames = make_video(tmp_path / "clips" / "drive.mp4", 4)
    out = prepare("video_file", tmp_path / "clips", tmp_path / "index", quiet=True, cache_size=HALF)
    index = load_index(out)
    assert index.frames.image.tolist() == [f"drive.mp4/{f:06d}.png" for f in range(4)]
    decoded = data_io.read_frame(tmp_path / "clips" / "drive.mp4", 2)  # the video codec is lossy: compare decoded
    assert decoded.shape == frames[2].shape
    np.testing.assert_array_equal(data_io.read_frame(index.image_path(2), 2),
                                  cv2.resize(decoded, HALF, interpolation=cv2.INTER_LINEAR))


def test_cli_option(tmp_path, capsys):
    make_cityscapes_seq_tree(tmp_path / "data", split="val")
    args = [str(tmp_path / "data"), "--out", str(tmp_path / "o"), "--split", "val", "--class-set", "viper15",
            "--quiet", "--workers", "2"]
    assert main(args + ["--cache-size", f"{HALF[0]}x{HALF[1]}"], layout="cityscapes_seq") == 0
    assert load_index(tmp_path / "o").meta.cache["size"] == list(HALF)
    with pytest.raises(SystemExit):
        main(args + ["--cache-size", "16by8"], layout="cityscapes_seq")
    assert "expected WIDTHxHEIGHT in pixels, e.g. 1024x512" in capsys.readouterr().err
    assert parse_size("1024X512") == (1024, 512)
    with pytest.raises(ValueError):
        parse_size("0x512")
