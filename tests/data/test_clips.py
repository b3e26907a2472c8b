from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import default_collate

from pipa_video.data import io
from pipa_video.data.classes import IGNORE_INDEX, get_class_set
from pipa_video.data.clips import ClipDataset
from pipa_video.data.index import DatasetError, IndexMeta, load_index, write_index
from pipa_video.data.transforms import (ClipTransform, EvalTransform, Normalize, PhotoMetricDistortion,
                                        RandomCrop, RandomFlip, RandomRescale)

IDENTITY = Normalize(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
PLAIN = ClipTransform([], normalize=IDENTITY)
SIZE = (12, 8)  # (w, h)
CLASS_SET = "viper15"


def write_tiny_index(root: Path, sequences: dict[str, list[int]], *, labelled=lambda seq, frame: True,
                     size=SIZE, label_size=None) -> Path:
    """Frames whose red channel is the frame number and green the sequence's position; labels are
    (frame % 5) everywhere. Returns the index directory."""
    cs = get_class_set(CLASS_SET)
    rows = []
    for s, (seq, frames) in enumerate(sorted(sequences.items())):
        for frame in frames:
            image = f"img/{seq}/{frame:04d}.png"
            rgb = np.zeros((size[1], size[0], 3), np.uint8)
            rgb[..., 0], rgb[..., 1] = frame, 10 * s
            io.write_png(root / image, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            label, counts = "", np.zeros(cs.num_classes, np.int64)
            if labelled(seq, frame):
                lw, lh = label_size or size
                label = f"labels/{seq}_{frame:04d}.png"
                io.write_png(root / "index" / label, np.full((lh, lw), frame % 5, np.uint8))
                counts[frame % 5] = lw * lh
            rows.append(dict(sequence=seq, frame=frame, image=image, label=label, labelled=bool(label),
                             **dict(zip(cs.column_names(), counts))))
    write_index(root / "index", pd.DataFrame(rows), IndexMeta(layout="test", root=str(root), class_set=CLASS_SET))
    return root / "index"


def dataset(index_dir, offsets, *, keys="labelled", boundary="clamp", transform=PLAIN, **kw) -> ClipDataset:
    return ClipDataset(index=load_index(index_dir), offsets=offsets, keys=keys, boundary=boundary,
                       transform=transform, name="tiny", **kw)


def decoded(sample) -> list[tuple[int, int]]:
    """(sequence position, frame number) of every frame of a sample, read from its pixels."""
    img = sample["img"]
    return [(int(img[t, 1, 0, 0]) // 10, int(img[t, 0, 0, 0])) for t in range(img.shape[0])]


def clips_of(ds) -> list[list[int]]:
    return [ds[i]["meta"]["frames"] for i in range(len(ds))]


def test_clamp_at_sequence_start_with_negative_offsets(tmp_path):
    ds = dataset(write_tiny_index(tmp_path, {"a": [3, 4, 5, 6]}), [-2, -1])
    assert clips_of(ds) == [[3, 3, 3], [4, 3, 3], [5, 3, 4], [6, 4, 5]]
    sample = ds[1]
    assert decoded(sample) == [(0, 4), (0, 3), (0, 3)]  # pixels of the clamped frames, not just names
    assert sample["meta"] == {"dataset": "tiny", "sequence": "a", "frames": [4, 3, 3], "offsets": [0, -2, -1]}


def test_clamp_at_sequence_end_with_positive_offsets(tmp_path):
    ds = dataset(write_tiny_index(tmp_path, {"a": [0, 1, 2]}), [1, 2])
    assert clips_of(ds) == [[0, 1, 2], [1, 2, 2], [2, 2, 2]]


def test_skip_drops_keys_whose_references_leave_the_sequence(tmp_path):
    index_dir = write_tiny_index(tmp_path, {"a": [0, 1, 2, 3, 4], "b": [10, 11]})
    assert clips_of(dataset(index_dir, [-2, -1], boundary="skip")) == [[2, 0, 1], [3, 1, 2], [4, 2, 3]]
    assert clips_of(dataset(index_dir, [1], boundary="skip")) == [[0, 1], [1, 2], [2, 3], [3, 4], [10, 11]]


def test_clips_never_leave_their_sequence(tmp_path):
    # "b" follows "a" in the index, and "a"'s last frame number is b's first minus one.
    ds = dataset(write_tiny_index(tmp_path, {"a": [0, 1, 2], "b": [3, 4]}), [-1, 1])
    by_key = {tuple(ds[i]["meta"]["frames"]): decoded(ds[i]) for i in range(len(ds))}
    assert by_key[(3, 3, 4)] == [(1, 3), (1, 3), (1, 4)]  # b's first frame, never a's frame 2
    assert by_key[(2, 1, 2)] == [(0, 2), (0, 1), (0, 2)]  # a's last frame, never b's frame 3


def test_one_frame_sequences(tmp_path):
    index_dir = write_tiny_index(tmp_path, {"a": [7], "b": [0, 1]})
    assert clips_of(dataset(index_dir, [-1, 1])) == [[7, 7, 7], [0, 0, 1], [1, 0, 1]]
    assert clips_of(dataset(index_dir, [-1], boundary="skip")) == [[1, 0]]
    only = write_tiny_index(tmp_path / "only", {"a": [7]})
    with pytest.raises(DatasetError, match="no key frames"):
        dataset(only, [-1], boundary="skip")
    assert clips_of(dataset(only, [])) == [[7]]


def test_a_gap_inside_a_sequence_skips_only_the_clips_that_need_it(tmp_path, caplog):
    index_dir = write_tiny_index(tmp_path, {"seq_x": [0, 1, 3, 4], "seq_y": [0, 1, 2]})
    with caplog.at_level("WARNING", logger="pipa_video"):
        ds = dataset(index_dir, [-1])
    assert clips_of(ds) == [[0, 0], [1, 0], [4, 3], [0, 0], [1, 0], [2, 1]]  # key 3 of seq_x needs frame 2
    assert "skipping 1 of 7 clips that need a frame missing from their sequence (e.g. 'seq_x' frame 2, " \
           "for key frame 3)" in caplog.text
    assert clips_of(dataset(index_dir, [1], boundary="skip")) == [[0, 1], [3, 4], [0, 1], [1, 2]]
    assert clips_of(dataset(index_dir, [])) == [[0], [1], [3], [4], [0], [1], [2]]
    only_gaps = write_tiny_index(tmp_path / "gaps", {"seq_z": [0, 2, 4]})
    with pytest.raises(DatasetError, match="every clip needs a missing frame"):
        dataset(only_gaps, [-1], boundary="skip")


def test_key_frame_selection(tmp_path):
    index_dir = write_tiny_index(tmp_path, {"a": list(range(6))}, labelled=lambda seq, f: f % 3 == 2)
    assert clips_of(dataset(index_dir, [-1])) == [[2, 1], [5, 4]]
    assert len(dataset(index_dir, [-1], keys="all")) == 6
    with pytest.raises(ValueError, match="keys='some'"):
        dataset(index_dir, [-1], keys="some")


def test_only_the_key_label_is_read_unless_asked(tmp_path):
    index_dir = write_tiny_index(tmp_path, {"a": [0, 1, 2, 3]}, labelled=lambda seq, f: f != 1)
    sample = dataset(index_dir, [-1, -2])[2]  # key 3, references 2 (labelled), 1 (unlabelled)
    assert sample["has_label"].tolist() == [True, False, False]
    assert sample["label"].dtype == torch.int64 and sample["label"].shape == (3, SIZE[1], SIZE[0])
    assert bool((sample["label"][0] == 3).all()) and bool((sample["label"][1:] == IGNORE_INDEX).all())
    sample = dataset(index_dir, [-1, -2], load_reference_labels=True)[2]
    assert sample["has_label"].tolist() == [True, True, False]
    assert bool((sample["label"][1] == 2).all()) and bool((sample["label"][2] == IGNORE_INDEX).all())
    unlabelled_key = dataset(index_dir, [], keys="all")[1]
    assert unlabelled_key["has_label"].tolist() == [False]


def test_seeded_items_are_deterministic(tmp_path):
    index_dir = write_tiny_index(tmp_path, {"a": list(range(4))}, size=(40, 30))
    random = ClipTransform([RandomRescale(base_size=None, ratio_range=(0.5, 2.0)), RandomCrop(crop_size=(16, 16)),
                            RandomFlip(prob=0.5), PhotoMetricDistortion()], normalize=IDENTITY)
    ds = dataset(index_dir, [-1], transform=random)
    first, again, other = ds[(2, 123)], ds[(2, 123)], ds[(2, 124)]
    assert torch.equal(first["img"], again["img"]) and torch.equal(first["label"], again["label"])
    assert first["img"].shape == (2, 3, 16, 16)
    outputs = {ds[(2, seed)]["img"].numpy().tobytes() for seed in range(8)}
    assert len(outputs) > 4 and other["meta"] == first["meta"]
    assert ds[2]["img"].shape == (2, 3, 16, 16)  # a plain int works too (fresh entropy)


def test_samples_carry_validity_masks_and_the_class_redraw(tmp_path):
    index_dir = write_tiny_index(tmp_path, {"a": list(range(4))}, size=(40, 30))
    crop = ClipTransform([RandomCrop(crop_size=(16, 64))], normalize=IDENTITY)  # wider than the frame
    ds = dataset(index_dir, [-1], transform=crop, class_crop_min_pixels=10.0)
    sample = ds[(2, 5)]
    assert sample["valid"].shape == (2, 16, 64) and sample["pseudo_valid"].shape == (16, 64)
    assert sample["valid"][:, :, :40].all() and not sample["valid"][:, :, 40:].any()
    # with a class id the crop is re-drawn until it holds > 10 pixels of it; class 2 fills frame 2 here
    assert torch.equal(ds[(2, 5, 2)]["label"], sample["label"])  # met at once: same draw as without
    batch = default_collate([ds[(1, 0)], ds[(2, 1, 2)]])
    assert batch["valid"].shape == (2, 2, 16, 64) and batch["pseudo_valid"].shape == (2, 16, 64)


def test_one_frame_clips_collate_to_batches(tmp_path):
    ds = dataset(write_tiny_index(tmp_path, {"a": [0, 1, 2]}), [])
    batch = default_collate([ds[0], ds[2]])
    assert batch["img"].shape == (2, 1, 3, SIZE[1], SIZE[0]) and batch["img"].dtype == torch.float32
    assert batch["label"].shape == (2, 1, SIZE[1], SIZE[0])
    assert batch["has_label"].shape == (2, 1)
    assert batch["meta"]["sequence"] == ["a", "a"] and batch["meta"]["frames"][0].tolist() == [0, 2]
    assert batch["meta"]["offsets"][0].tolist() == [0, 0]


def test_eval_transform_keeps_labels_at_original_size(tmp_path):
    index_dir = write_tiny_index(tmp_path, {"a": [0, 1]}, size=(32, 16))
    ds = dataset(index_dir, [], transform=EvalTransform(resize=(16, 8), normalize=IDENTITY))
    sample = ds[1]
    assert sample["img"].shape == (1, 3, 8, 16) and sample["label"].shape == (1, 16, 32)
    assert bool((sample["label"] == 1).all())


def test_label_size_mismatch_names_the_file(tmp_path):
    index_dir = write_tiny_index(tmp_path, {"a": [0]}, label_size=(6, 4))
    with pytest.raises(DatasetError, match=r"a_0000\.png: label is 6x4 but its image .* is 12x8"):
        dataset(index_dir, [])[0]


def test_bad_offsets_are_rejected(tmp_path):
    index_dir = write_tiny_index(tmp_path, {"a": [0, 1]})
    with pytest.raises(ValueError, match="offsets must be integers"):
        dataset(index_dir, [-1.5])


def test_video_file_frames(tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (32, 16))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for frame in range(6):
        writer.write(np.full((16, 32, 3), 40 * frame, np.uint8))
    writer.release()
    cs = get_class_set(CLASS_SET)
    rows = pd.DataFrame([dict(sequence="clip", frame=f, image="clip.mp4", label="", labelled=False,
                              **{c: 0 for c in cs.column_names()}) for f in range(6)])
    write_index(tmp_path / "index", rows, IndexMeta(layout="video_file", root=str(tmp_path), class_set=CLASS_SET))
    ds = dataset(tmp_path / "index", [-1, -3], keys="all")
    sample = ds[4]
    assert sample["meta"]["frames"] == [4, 3, 1]
    np.testing.assert_allclose(sample["img"].mean(dim=(1, 2, 3)).numpy(), [160, 120, 40], atol=8)
    assert sample["has_label"].tolist() == [False, False, False]
    assert ds._videos is not None and len(ds._videos._open) == 1  # one open reader, reused
