"""prepare(): labels converted to train ids, the index written last and atomically, errors naming files."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipa_video.data import io as data_io
from pipa_video.data.classes import IGNORE_INDEX, get_class_set, label_lut
from pipa_video.data.index import BASE_COLUMNS, DatasetError, load_index
from pipa_video.data.prepare import DatasetWarning, main, prepare
from pipa_video.data.sources import LAYOUTS
from tests.data.fixtures import (
    HEIGHT, WIDTH, make_cityscapes_seq_tree, make_cityscapes_tree, make_gta_tree, make_synthia_seq_tree,
    make_synthia_tree, make_video, make_viper_tree, write_grey_png,
)

REPO = Path(__file__).resolve().parents[2]

# (layout, builder, tree folder under tmp, prepare kwargs)
CASES = {
    "viper": (lambda r: make_viper_tree(r, seqs=(1, 2), frames=range(8, 22)), {}),
    "cityscapes_seq": (lambda r: make_cityscapes_seq_tree(r, split="val"),
                       dict(split="val", class_set="viper15", rider="ignore")),
    "cityscapes": (lambda r: make_cityscapes_tree(r, split="val"), dict(split="val")),
    "synthia_seq": (lambda r: make_synthia_seq_tree(r, seqs=("SYNTHIA-SEQS-04-DAWN", "SYNTHIA-SEQS-05-FOG")), {}),
    "synthia": (lambda r: make_synthia_tree(r), {}),
    "gta": (lambda r: make_gta_tree(r), {}),
}


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def expected_train_ids(layout: str, tree, label: str, class_set: str, rider: str) -> np.ndarray:
    raw = tree.raw_labels[label]
    train_ids = label_lut(LAYOUTS[layout].id_space, class_set, rider=rider)[raw]
    if layout == "viper":
        train_ids[tree.ego_masks[label]] = IGNORE_INDEX
    return train_ids


@pytest.mark.parametrize("layout", sorted(CASES))
def test_prepare_end_to_end(tmp_path, layout, capsys):
    build, kwargs = CASES[layout]
    tree = build(tmp_path / "data")
    out = prepare(layout, tmp_path / "data", tmp_path / "index", **kwargs)
    spec = LAYOUTS[layout]
    class_set = get_class_set(kwargs.get("class_set", spec.default_class_set))
    rider = kwargs.get("rider", "person")

    frames = pd.read_csv(out / "index.csv", keep_default_na=False, dtype={"sequence": str, "label": str})
    assert list(frames.columns) == list(BASE_COLUMNS) + class_set.column_names()
    assert frames.image.tolist() == tree.frames.image.tolist()
    assert frames.sequence.tolist() == tree.frames.sequence.tolist()
    assert frames.labelled.tolist() == (tree.frames.raw_label != "").tolist()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["layout"] == layout and meta["class_set"] == class_set.name and meta["rider"] == rider
    assert Path(meta["root"]) == tmp_path / "data"

    counts = frames[class_set.column_names()].to_numpy()
    for row, raw_label in zip(frames.itertuples(), tree.frames.raw_label):
        if not raw_label:
            assert row.label == "" and counts[row.Index].sum() == 0
            continue
        assert row.label == f"labels/{raw_label}"  # mirrors the raw label path
        written = data_io.read_train_ids(out / row.label)
        np.testing.assert_array_equal(written, expected_train_ids(layout, tree, raw_label, class_set.name, rider))
        direct = np.bincount(written.ravel(), minlength=256)[: class_set.num_classes]
        np.testing.assert_array_equal(counts[row.Index], direct)
    assert counts.sum() > 0
    assert no_temp_files(out)

    index = load_index(out)  # the index contract loads what prepare wrote
    assert index.image_path(0).is_file()
    summary = capsys.readouterr().out
    assert f"labelled frames: {int(frames.labelled.sum())}" in summary and class_set.names[0] in summary


def test_workers_give_the_same_index(tmp_path):
    make_cityscapes_seq_tree(tmp_path / "data", split="val")
    one = prepare("cityscapes_seq", tmp_path / "data", tmp_path / "one", split="val", class_set="synthiaseq12",
                  quiet=True)
    two = prepare("cityscapes_seq", tmp_path / "data", tmp_path / "two", split="val", class_set="synthiaseq12",
                  workers=2, quiet=True)
    assert (one / "index.csv").read_text() == (two / "index.csv").read_text()


def test_unknown_raw_ids_fail_naming_file_and_ids(tmp_path):
    tree = make_cityscapes_tree(tmp_path / "data", split="val")
    label = tree.frames.raw_label.iloc[1]
    raw = tree.raw_labels[label].copy()
    raw[0, :3] = (40, 41, 200)  # not Cityscapes labelIds
    write_grey_png(tmp_path / "data" / label, raw)
    with pytest.raises(DatasetError, match=r"munster_000001_000019_gtFine_labelIds\.png: raw ids \[40, 41, 200\]"):
        prepare("cityscapes", tmp_path / "data", tmp_path / "index", split="val", quiet=True)
    assert not (tmp_path / "index" / "index.csv").exists()
    assert no_temp_files(tmp_path / "index")

    with pytest.warns(DatasetWarning, match=r"raw ids \[40, 41, 200\].*mapped to ignore"):
        out = prepare("cityscapes", tmp_path / "data", tmp_path / "index", split="val", quiet=True,
                      allow_unknown_ids=True)
    written = data_io.read_train_ids(out / f"labels/{label}")
    assert (written[0, :3] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(written[1:], label_lut("cityscapes", "cityscapes19")[raw[1:]])


def test_failed_prepare_keeps_the_previous_index_whole(tmp_path):
    tree = make_synthia_tree(tmp_path / "data")
    out = prepare("synthia", tmp_path / "data", tmp_path / "index", quiet=True)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (tmp_path / "data" / tree.frames.raw_label.iloc[2]).write_bytes(b"\x89PNG truncated")
    with pytest.raises(DatasetError, match=r"GT/LABELS/0000002\.png"):
        prepare("synthia", tmp_path / "data", tmp_path / "index", quiet=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # the new index replaces it whole
    assert no_temp_files(out) and not [p for p in tmp_path.iterdir() if p.name.startswith(".index")]


def test_corrupt_image_is_an_error_naming_it(tmp_path):
    tree = make_cityscapes_seq_tree(tmp_path / "data", split="val", anchors=(("lindau", 0, 5),))
    bad = tree.frames.image.iloc[3]  # an unlabelled frame: still checked
    (tmp_path / "data" / bad).write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"lindau_000000_000003_leftImg8bit\.png"):
        prepare("cityscapes_seq", tmp_path / "data", tmp_path / "index", split="val", class_set="viper15",
                quiet=True)
    assert not (tmp_path / "index" / "index.csv").exists()


def test_size_mismatch_is_an_error_except_for_gta(tmp_path, capsys):
    tree = make_cityscapes_tree(tmp_path / "cs", split="val")
    label = tree.frames.raw_label.iloc[0]
    write_grey_png(tmp_path / "cs" / label, tree.raw_labels[label][:, :-4])
    with pytest.raises(DatasetError, match=r"frankfurt_000000_000294_gtFine_labelIds\.png: label is 28x16 but image"):
        prepare("cityscapes", tmp_path / "cs", tmp_path / "cs_index", split="val", quiet=True)

    make_gta_tree(tmp_path / "gta", frames=(1, 2, 3, 4), mismatched=(2, 4))
    with pytest.warns(DatasetWarning) as record:
        out = prepare("gta", tmp_path / "gta", tmp_path / "gta_index")
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert re.search(r"labels/00002\.png: label is 30x16 but image .*00002\.png is 32x16; frame skipped", messages[0])
    assert "labels/00004.png" in messages[1]
    frames = pd.read_csv(out / "index.csv")
    assert frames.frame.tolist() == [1, 3]
    assert "skipped (image/label size mismatch): 2" in capsys.readouterr().out


def test_prepare_video_counts_are_zero(tmp_path):
    make_video(tmp_path / "clips" / "drive.mp4", 6)
    out = prepare("video_file", tmp_path / "clips", tmp_path / "index", quiet=True, frame_step=2)
    index = load_index(out)
    assert index.frames.frame.tolist() == [0, 2, 4] and not index.frames.labelled.any()
    assert index.meta.class_set == "cityscapes19"
    assert index.frames[index.class_set.column_names()].to_numpy().sum() == 0
    assert data_io.read_frame(index.image_path(1), 2).shape == (HEIGHT, WIDTH, 3)


def test_cli_wrong_root_and_required_class_set(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--quiet"], layout="gta") == 3  # data
    assert "nowhere not found: expected ROOT/images/" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--out", str(tmp_path / "o")], layout="cityscapes_seq")
    assert "--class-set" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="needs an explicit class set"):
        prepare("cityscapes_seq", tmp_path, tmp_path / "o")


def test_cli_layout_options(tmp_path):
    tree = make_viper_tree(tmp_path / "VIPER", seqs=(1,), frames=(10,))
    label = tree.frames.raw_label.iloc[0]
    code = main([str(tmp_path / "VIPER"), "--out", str(tmp_path / "o"), "--no-ego-mask", "--label-step", "5",
                 "--workers", "1", "--quiet"], layout="viper")
    assert code == 0
    written = data_io.read_train_ids(tmp_path / "o" / f"labels/{label}")
    np.testing.assert_array_equal(written, label_lut("viper", "viper15")[tree.raw_labels[label]])  # car kept


def test_prepare_script_runs(tmp_path):
    make_synthia_seq_tree(tmp_path / "data", frames=(1, 2))
    result = subprocess.run(
        [sys.executable, str(REPO / "data_tools/prepare_synthia_seq.py"), str(tmp_path / "data"),
         "--out", str(tmp_path / "index"), "--workers", "2"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "sequences: 1   frames: 2   labelled frames: 2" in result.stdout
    assert "synthiaseq12" in json.loads((tmp_path / "index" / "meta.json").read_text())["class_set"]
    for name in ("viper", "cityscapes_seq", "synthia_seq", "gta", "synthia", "cityscapes", "video"):
        assert (REPO / f"data_tools/prepare_{name}.py").is_file()
