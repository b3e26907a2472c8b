"""ACDC and Dark Zurich readers and prepare tools on trees in their published layouts (adverse_fixtures)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cityscapesscripts.helpers.labels import trainId2label

from pipa_video.data import io as data_io
from pipa_video.data.classes import cityscapes_trainid_to_labelid, label_lut
from pipa_video.data.index import BASE_COLUMNS, DatasetError, load_index
from pipa_video.data.prepare import prepare
from pipa_video.data.sources import LAYOUTS
from pipa_video.data.sources import layouts as L
from tests.data.adverse_fixtures import SCAN_COLUMNS, make_acdc_tree, make_dark_zurich_tree
from tests.data.fixtures import write_grey_png

ACDC, DZ = LAYOUTS["acdc"], LAYOUTS["dark_zurich"]
REPO = Path(__file__).resolve().parents[2]
LUT = label_lut("cityscapes", "cityscapes19")


def assert_scan(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == SCAN_COLUMNS
    pd.testing.assert_frame_equal(actual, expected.astype({"frame": np.int64}), check_dtype=False)


def test_trainid_to_labelid_inverts_the_cityscapesscripts_table():
    table = cityscapes_trainid_to_labelid()
    for train_id in range(19):
        assert table[train_id] == trainId2label[train_id].id
    assert LUT[table[255]] == 255 and LUT[table[np.arange(19)]].tolist() == list(range(19))


# --- ACDC ----------------------------------------------------------------------------------------
def test_acdc_scan_lists_frames_not_references_with_their_condition(tmp_path):
    tree = make_acdc_tree(tmp_path, split="val", conditions=("fog", "night", "rain", "snow"))
    frames = ACDC.scan(tmp_path, split="val")
    assert_scan(frames, tree.frames)
    assert sorted(frames.condition.unique()) == ["fog", "night", "rain", "snow"]
    assert not frames.image.str.contains("_ref").any()  # rgb_anon/<c>/val_ref/ exists but is not listed
    assert len(list(tmp_path.rglob("*_rgb_ref_anon.png"))) == len(frames)
    assert frames.raw_label.str.endswith("_gt_labelTrainIds.png").all()


@pytest.mark.parametrize("kinds, suffix", [(("labelids",), "_gt_labelIds.png"),
                                           (("trainids",), "_gt_labelTrainIds.png"),
                                           (("labelids", "trainids"), "_gt_labelTrainIds.png")])
def test_acdc_both_label_kinds_give_the_same_train_ids(tmp_path, kinds, suffix):
    tree = make_acdc_tree(tmp_path, conditions=("night",), kinds=kinds, seed=4)
    frames = ACDC.scan(tmp_path, split="val", conditions="night")
    assert frames.raw_label.str.endswith(suffix).all()
    for label in frames.raw_label:
        raw = ACDC.read_raw_label(tmp_path / label)
        np.testing.assert_array_equal(LUT[raw], LUT[tree.raw_labels[label]])
        assert (LUT[raw] != 255).any()


def test_acdc_test_split_is_unlabelled(tmp_path):
    tree = make_acdc_tree(tmp_path, split="test", conditions=L.ACDC_CONDITIONS)
    assert not (tmp_path / "gt").exists()
    frames = ACDC.scan(tmp_path, split="test")
    assert (frames.raw_label == "").all() and frames.image.tolist() == tree.frames.image.tolist()


def test_acdc_labelled_split_without_gt_fails_unless_unannotated(tmp_path):
    tree = make_acdc_tree(tmp_path, split="train", conditions=("snow",))
    (tmp_path / "gt").rename(tmp_path / "gt_moved")
    with pytest.raises(DatasetError, match=r"gt/snow/train not found.*--unannotated"):
        ACDC.scan(tmp_path, split="train", conditions="snow")
    frames = ACDC.scan(tmp_path, split="train", conditions="snow", unannotated=True)
    assert (frames.raw_label == "").all() and len(frames) == len(tree.frames)


def test_acdc_missing_label_file_names_the_image(tmp_path):
    tree = make_acdc_tree(tmp_path, conditions=("fog",))
    (tmp_path / tree.frames.raw_label.iloc[1]).unlink()
    with pytest.raises(DatasetError, match=r"GOPR0475_frame_000120_gt_labelTrainIds\.png or "
                                           r"GOPR0475_frame_000120_gt_labelIds\.png: label of .*"
                                           r"GOPR0475_frame_000120_rgb_anon\.png"):
        ACDC.scan(tmp_path, split="val", conditions="fog")


def test_acdc_condition_selection_and_its_errors(tmp_path):
    make_acdc_tree(tmp_path, conditions=("fog", "night"))
    frames = ACDC.scan(tmp_path, split="val", conditions="night")
    assert set(frames.condition) == {"night"} and frames.sequence.str.startswith("night_").all()
    with pytest.raises(DatasetError, match=r"--conditions 'night,sunny'.*fog,night,rain,snow; unknown \['sunny'\]"):
        ACDC.scan(tmp_path, split="val", conditions="night,sunny")
    with pytest.raises(DatasetError, match=r"rgb_anon/rain/val not found: expected .*present: \['fog', 'night'\]"):
        ACDC.scan(tmp_path, split="val")  # all four conditions asked, two present
    with pytest.raises(DatasetError, match=r"ACDC has no split 'validation'"):
        ACDC.scan(tmp_path, split="validation", conditions="fog")
    with pytest.raises(DatasetError, match=r"nowhere not found: expected ROOT/rgb_anon/<condition>"):
        ACDC.scan(tmp_path / "nowhere", split="val")


def test_acdc_recordings_shared_between_conditions_stay_apart(tmp_path):
    same = {c: "GOPR0001" for c in L.ACDC_CONDITIONS}
    tree = make_acdc_tree(tmp_path, conditions=("rain", "snow"), sequences=same)
    frames = ACDC.scan(tmp_path, split="val", conditions="rain,snow")
    assert_scan(frames, tree.frames)
    assert set(frames.sequence) == {"rain_GOPR0001", "snow_GOPR0001"}


def test_acdc_hrda_flattened_layout(tmp_path):
    tree = make_acdc_tree(tmp_path, split="train", conditions=("fog", "night"), flattened=True)
    frames = ACDC.scan(tmp_path, split="train")
    assert_scan(frames, tree.frames)
    assert set(frames.condition) == {"unknown"} and set(frames.sequence) == {"GOPR0475", "GOPR0351"}
    with pytest.raises(DatasetError, match=r"flattened layout .* --conditions night cannot select"):
        ACDC.scan(tmp_path, split="train", conditions="night")


# --- Dark Zurich ---------------------------------------------------------------------------------
def test_dark_zurich_val_night_labelled_without_references(tmp_path):
    tree = make_dark_zurich_tree(tmp_path, split="val", kinds=("labelids", "trainids"))
    frames = DZ.scan(tmp_path, split="val")
    assert_scan(frames, tree.frames)
    assert (tmp_path / "rgb_anon/val_ref/day/GOPR0356_ref").is_dir()
    assert frames.raw_label.str.endswith("_gt_labelTrainIds.png").all()
    assert set(frames.condition) == {"night"}


def test_dark_zurich_train_times_and_unlabelled_splits(tmp_path):
    make_dark_zurich_tree(tmp_path, split="train", times=("day", "twilight", "night"),
                          sequences=("GOPR0345", "GOPR0351"))
    night = DZ.scan(tmp_path, split="train")  # the default: the night images UDA trains on
    assert set(night.condition) == {"night"} and len(night) == 6 and (night.raw_label == "").all()
    both = DZ.scan(tmp_path, split="train", time="night,day")
    assert set(both.condition) == {"day", "night"} and len(both) == 12
    make_dark_zurich_tree(tmp_path, split="test")
    assert (DZ.scan(tmp_path, split="test").raw_label == "").all()
    with pytest.raises(DatasetError, match=r"--time 'dusk'"):
        DZ.scan(tmp_path, split="train", time="dusk")
    with pytest.raises(DatasetError, match=r"rgb_anon/val/night not found"):
        DZ.scan(tmp_path, split="val")


def test_dark_zurich_val_without_gt_is_an_error(tmp_path):
    make_dark_zurich_tree(tmp_path, split="val")
    (tmp_path / "gt").rename(tmp_path / "gt_moved")
    with pytest.raises(DatasetError, match=r"gt/val/night not found: .*labels only the night images of val"):
        DZ.scan(tmp_path, split="val")


# --- prepare -------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout, build, kwargs", [
    ("acdc", lambda r: make_acdc_tree(r, conditions=("fog", "night"), kinds=("labelids",)),
     dict(split="val", conditions="fog,night")),
    ("acdc", lambda r: make_acdc_tree(r, split="train", flattened=True), dict(split="train")),
    ("dark_zurich", lambda r: make_dark_zurich_tree(r, split="val"), dict(split="val")),
])
def test_prepare_writes_conditions_and_train_ids(tmp_path, capsys, layout, build, kwargs):
    tree = build(tmp_path / "data")
    out = prepare(layout, tmp_path / "data", tmp_path / "index", **kwargs)
    frames = pd.read_csv(out / "index.csv", keep_default_na=False, dtype={"sequence": str, "label": str})
    class_columns = [c for c in frames.columns if c.startswith("px_")]
    assert list(frames.columns) == [*BASE_COLUMNS, "condition", *class_columns] and len(class_columns) == 19
    assert frames.condition.tolist() == tree.frames.condition.tolist()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["conditions"] == sorted(set(tree.frames.condition)) and meta["class_set"] == "cityscapes19"
    for row, raw_label in zip(frames.itertuples(), tree.frames.raw_label):
        np.testing.assert_array_equal(data_io.read_train_ids(out / row.label), LUT[tree.raw_labels[raw_label]])
    index = load_index(out)
    assert index.frames.condition.tolist() == tree.frames.condition.tolist()
    summary = capsys.readouterr().out
    for condition, count in tree.frames.condition.value_counts().items():
        assert f"{condition} {count} frames" in summary


def test_prepare_rejects_bad_train_ids_and_corrupt_labels_naming_the_file(tmp_path):
    tree = make_acdc_tree(tmp_path / "data", conditions=("night",))
    label = tree.frames.raw_label.iloc[0]
    ids = LUT[tree.raw_labels[label]]
    ids[0, :2] = (19, 200)
    write_grey_png(tmp_path / "data" / label, ids)
    with pytest.raises(DatasetError, match=r"GOPR0351_frame_000041_gt_labelTrainIds\.png: values \[19, 200\] "
                                           r"are not Cityscapes train ids"):
        prepare("acdc", tmp_path / "data", tmp_path / "index", split="val", conditions="night", quiet=True)
    assert not (tmp_path / "index" / "index.csv").exists()
    (tmp_path / "data" / label).write_bytes(b"\x89PNG truncated")
    with pytest.raises(DatasetError, match=r"GOPR0351_frame_000041_gt_labelTrainIds\.png"):
        prepare("acdc", tmp_path / "data", tmp_path / "index", split="val", conditions="night", quiet=True)


def test_unknown_label_ids_in_a_labelids_file_fail_naming_it(tmp_path):
    tree = make_dark_zurich_tree(tmp_path / "data", kinds=("labelids",))
    label = tree.frames.raw_label.iloc[2]
    raw = tree.raw_labels[label].copy()
    raw[3, 3] = 77
    write_grey_png(tmp_path / "data" / label, raw)
    with pytest.raises(DatasetError, match=r"GOPR0356_frame_000003_gt_labelIds\.png: raw ids \[77\]"):
        prepare("dark_zurich", tmp_path / "data", tmp_path / "index", split="val", quiet=True)


@pytest.mark.parametrize("script, build, args, expect", [
    ("prepare_acdc.py", lambda r: make_acdc_tree(r, split="test", conditions=("fog", "night", "rain", "snow")),
     ["--split", "test"], "sequences: 4   frames: 8   labelled frames: 0"),
    ("prepare_acdc.py", lambda r: make_acdc_tree(r, conditions=("fog", "night")),
     ["--split", "val", "--conditions", "night,fog"], "sequences: 2   frames: 4   labelled frames: 4"),
    ("prepare_dark_zurich.py", lambda r: make_dark_zurich_tree(r, split="train", times=("day", "night")),
     ["--split", "train"], "sequences: 1   frames: 3   labelled frames: 0"),
])
def test_prepare_scripts_run(tmp_path, script, build, args, expect):
    build(tmp_path / "data")
    result = subprocess.run([sys.executable, str(REPO / "data_tools" / script), str(tmp_path / "data"), *args,
                             "--out", str(tmp_path / "index"), "--workers", "1"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert expect in result.stdout and "conditions: " in result.stdout


def test_prepare_script_wrong_root_is_one_error_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "data_tools/prepare_dark_zurich.py"), str(tmp_path / "dz"),
                             "--split", "val", "--out", str(tmp_path / "index")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 3  # data error (exit codes: pipa_video/errors.py)
    assert result.stderr.strip().splitlines() == [
        f"prepare_dark_zurich.py: error: {tmp_path / 'dz'} not found: expected {DZ.expected}"]
