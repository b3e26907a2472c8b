"""Every layout reader on a tiny tree written in the real on-disk layout (tests/data/fixtures.py)."""
import cv2
import numpy as np
import pandas as pd
import pytest

from pipa_video.data import io as data_io
from pipa_video.data.classes import IGNORE_INDEX, VIPER_CAR_ID, VIPER_PALETTE, label_lut
from pipa_video.data.index import DatasetError
from pipa_video.data.sources import LAYOUTS, SCAN_COLUMNS, get_layout
from pipa_video.data.sources import layouts as L
from pipa_video.data.sources.viper import ego_vehicle_mask
from tests.data.fixtures import (
    HEIGHT, WIDTH, make_cityscapes_seq_tree, make_cityscapes_tree, make_frame_folder, make_gta_tree,
    make_synthia_seq_tree, make_synthia_tree, make_video, make_viper_tree, random_rgb, write_rgb,
    write_synthia_label,
)

VIPER, CS_SEQ, CS = LAYOUTS["viper"], LAYOUTS["cityscapes_seq"], LAYOUTS["cityscapes"]
SYN_SEQ, SYN, GTA = LAYOUTS["synthia_seq"], LAYOUTS["synthia"], LAYOUTS["gta"]
VIDEO, FOLDER = LAYOUTS["video_file"], LAYOUTS["frame_folder"]


def assert_scan_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(SCAN_COLUMNS)
    pd.testing.assert_frame_equal(actual, expected.astype({"frame": np.int64}), check_dtype=False)


def test_registry_and_unknown_options():
    assert set(LAYOUTS) == {"viper", "cityscapes_seq", "cityscapes", "synthia_seq", "synthia", "gta",
                            "acdc", "dark_zurich", "video_file", "frame_folder"}
    with pytest.raises(KeyError, match="kitti"):
        get_layout("kitti")
    with pytest.raises(TypeError, match="label_stp"):
        VIPER.with_defaults({"label_stp": 1})


# --- VIPER -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("image_ext", ["jpg", "png", ["jpg", "png"]])
def test_viper_scan_jpg_png_and_mixed(tmp_path, image_ext):
    tree = make_viper_tree(tmp_path / "VIPER", frames=range(1, 22), image_ext=image_ext)
    frames = VIPER.scan(tmp_path / "VIPER", split="train")
    assert_scan_equal(frames, tree.frames)
    labelled = frames[frames.raw_label != ""]
    assert labelled.frame.tolist() == [10, 20, 10, 20]  # every 10th frame, both sequences
    assert labelled.raw_label.iloc[0] == "train/cls/001/001_00010.png"


def test_viper_same_frame_as_jpg_and_png_is_an_error(tmp_path):
    make_viper_tree(tmp_path, seqs=(1,), frames=(9, 10))
    jpg = tmp_path / L.viper_image("train", 1, 9, "jpg")
    jpg.with_suffix(".png").write_bytes(jpg.read_bytes())
    with pytest.raises(DatasetError, match=r"frame 9 of sequence 001 appears twice.*001_00009\.(jpg|png)"):
        VIPER.scan(tmp_path)


def test_viper_label_step(tmp_path):
    tree = make_viper_tree(tmp_path, seqs=(1,), frames=range(1, 12))
    extra = L.viper_label("train", 1, 5)  # a cls file off the 10-frame grid
    (tmp_path / extra).write_bytes((tmp_path / L.viper_label("train", 1, 10)).read_bytes())
    step10 = VIPER.scan(tmp_path, label_step=10)
    step1 = VIPER.scan(tmp_path, label_step=1)
    assert step10.loc[step10.raw_label != "", "frame"].tolist() == [10]
    assert step1.loc[step1.raw_label != "", "frame"].tolist() == [5, 10]  # frames with a cls file
    assert len(step1) == len(tree.frames)


def test_viper_palette_and_rgb_labels_give_identical_train_ids(tmp_path):
    pal = make_viper_tree(tmp_path / "pal", seqs=(1,), frames=(10, 20), seed=3)
    make_viper_tree(tmp_path / "rgb", seqs=(1,), frames=(10, 20), seed=3, rgb_labels=True)
    lut = label_lut("viper", "viper15")
    for label, raw in pal.raw_labels.items():
        from_palette = VIPER.read_raw_label(tmp_path / "pal" / label)
        from_rgb = VIPER.read_raw_label(tmp_path / "rgb" / label)
        np.testing.assert_array_equal(from_palette, raw)  # palette index = VIPER id, no colour lookup
        assert from_palette.dtype == np.uint8 and from_palette.shape == (HEIGHT, WIDTH)
        # RGB: van and train share a colour, so train (29) comes back as van (25); all else exact
        np.testing.assert_array_equal(from_rgb, np.where(raw == 29, 25, raw))
        np.testing.assert_array_equal(lut[from_palette], lut[from_rgb])
        assert (lut[from_palette] != IGNORE_INDEX).any()


def test_viper_rgb_label_with_foreign_colour_names_file_and_colour(tmp_path):
    rgb = np.asarray(VIPER_PALETTE, np.uint8)[np.zeros((HEIGHT, WIDTH), int)]
    rgb[3, 3] = (1, 2, 3)
    path = tmp_path / "bad.png"
    write_rgb(path, rgb)
    with pytest.raises(DatasetError, match=r"bad\.png.*\(1, 2, 3\)"):
        VIPER.read_raw_label(path)


def test_viper_ego_vehicle_mask(tmp_path):
    tree = make_viper_tree(tmp_path, seqs=(1,), frames=(10,))
    (label, raw), = tree.raw_labels.items()
    ego = tree.ego_masks[label]
    mask = VIPER.ignore_mask(VIPER.read_raw_label(tmp_path / label))
    np.testing.assert_array_equal(mask, ego)
    assert (raw[~mask] == VIPER_CAR_ID).sum() == 24  # the other car (top-left blob) stays car
    assert VIPER.ignore_mask(raw, ego_mask=False) is None
    no_ego = raw.copy()
    no_ego[ego] = 3  # road under the bottom centre: nothing to mask
    assert ego_vehicle_mask(no_ego) is None


def test_viper_ego_mask_takes_the_whole_connected_component():
    raw = np.full((8, 8), 3, np.uint8)
    raw[7, 4] = raw[6, 5] = raw[5, 6] = VIPER_CAR_ID  # diagonal chain: 8-connected to the bottom centre
    raw[0, 0] = VIPER_CAR_ID  # unconnected car
    mask = ego_vehicle_mask(raw)
    assert mask.sum() == 3 and mask[5, 6] and not mask[0, 0]


def test_viper_wrong_root_names_missing_folder(tmp_path):
    make_viper_tree(tmp_path / "VIPER", seqs=(1,), frames=(10,))
    with pytest.raises(DatasetError, match=r"train/img not found: expected VIPER/<split>/img/<seq>/") as err:
        VIPER.scan(tmp_path)  # the folder above VIPER
    assert "pass that folder as ROOT" in str(err.value)
    with pytest.raises(DatasetError, match=r"val/img not found"):
        VIPER.scan(tmp_path / "VIPER", split="val")
    with pytest.raises(DatasetError, match="nowhere not found"):
        VIPER.scan(tmp_path / "nowhere")


# --- Cityscapes-Seq ---------------------------------------------------------------------------------
def test_cityscapes_seq_snippets_come_from_gtfine(tmp_path):
    tree = make_cityscapes_seq_tree(tmp_path, split="val")
    frames = CS_SEQ.scan(tmp_path, split="val")
    assert_scan_equal(frames, tree.frames)
    spans = frames.groupby("sequence").frame.agg(["min", "max", "count"])
    assert spans.loc["frankfurt_000000_000294"].tolist() == [275, 304, 30]  # not a 000019 anchor
    assert spans.loc["aachen_000000_000019"].tolist() == [0, 29, 30]
    assert spans.loc["lindau_000000_000005"].tolist() == [0, 15, 16]  # only 5 predecessors exist
    anchors = frames[frames.raw_label != ""]
    assert anchors.sequence.tolist() == ["aachen_000000_000019", "frankfurt_000000_000294",
                                         "lindau_000000_000005"]
    assert anchors.frame.tolist() == [19, 294, 5]
    assert anchors.raw_label.iloc[1] == "gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png"
    np.testing.assert_array_equal(CS_SEQ.read_raw_label(tmp_path / anchors.raw_label.iloc[1]),
                                  tree.raw_labels[anchors.raw_label.iloc[1]])


def test_cityscapes_seq_window_ignores_frames_outside_and_other_files(tmp_path):
    tree = make_cityscapes_seq_tree(tmp_path, split="train", anchors=(("frankfurt", 0, 294),))
    rng = np.random.default_rng(1)
    for frame in (274, 305, 900):  # same city+seq, outside -19..+10
        write_rgb(tmp_path / L.cityscapes_seq_image("train", "frankfurt", 0, frame), random_rgb(rng))
    gt_dir = tmp_path / "gtFine/train/frankfurt"
    (gt_dir / "frankfurt_000000_000294_gtFine_color.png").write_bytes(b"")  # other gtFine products
    (gt_dir / "frankfurt_000000_000294_gtFine_polygons.json").write_text("{}")
    assert_scan_equal(CS_SEQ.scan(tmp_path, split="train"), tree.frames)


def test_cityscapes_seq_missing_annotated_frame_is_an_error(tmp_path):
    make_cityscapes_seq_tree(tmp_path, split="val", anchors=(("frankfurt", 0, 294),))
    missing = tmp_path / L.cityscapes_seq_image("val", "frankfurt", 0, 294)
    missing.unlink()
    with pytest.raises(DatasetError, match=r"frankfurt_000000_000294_leftImg8bit\.png not found.*annotated"):
        CS_SEQ.scan(tmp_path, split="val")


def test_cityscapes_seq_unannotated_split(tmp_path):
    tree = make_cityscapes_seq_tree(tmp_path, split="test", anchors=(("berlin", 0, 19), ("berlin", 0, 100)),
                                    with_labels=False)
    with pytest.raises(DatasetError, match=r"gtFine/test not found.*--unannotated"):
        CS_SEQ.scan(tmp_path, split="test")
    frames = CS_SEQ.scan(tmp_path, split="test", unannotated=True)
    # one city+seq holding two separate runs of frames: two sequences, none labelled
    spans = frames.groupby("sequence").frame.agg(["min", "max", "count"])
    assert spans.loc["berlin_000000_000000"].tolist() == [0, 29, 30]
    assert spans.loc["berlin_000000_000081"].tolist() == [81, 110, 30]
    assert (frames.raw_label == "").all() and set(frames.image) == set(tree.frames.image)


def test_cityscapes_seq_wrong_root(tmp_path):
    make_cityscapes_seq_tree(tmp_path / "cs", split="val", anchors=(("lindau", 0, 5),))
    with pytest.raises(DatasetError, match=r"leftImg8bit_sequence/val not found: expected ROOT/leftImg8bit_sequence/"):
        CS_SEQ.scan(tmp_path, split="val")


# --- Cityscapes images ------------------------------------------------------------------------------
def test_cityscapes_images(tmp_path):
    tree = make_cityscapes_tree(tmp_path, split="val")
    frames = CS.scan(tmp_path, split="val")
    assert_scan_equal(frames, tree.frames)
    assert frames.sequence.tolist() == ["frankfurt_000000_000294", "munster_000001_000019"]
    for label, raw in tree.raw_labels.items():
        np.testing.assert_array_equal(CS.read_raw_label(tmp_path / label), raw)
    (tmp_path / tree.frames.raw_label.iloc[0]).unlink()
    with pytest.raises(DatasetError, match=r"frankfurt_000000_000294_gtFine_labelIds\.png not found"):
        CS.scan(tmp_path, split="val")
    assert (CS.scan(tmp_path, split="val", unannotated=True).raw_label == "").all()


# --- SYNTHIA ----------------------------------------------------------------------------------------
def test_synthia_seq_scan_one_or_several_sequences(tmp_path):
    seqs = ("SYNTHIA-SEQS-04-DAWN", "SYNTHIA-SEQS-02-SUMMER")
    tree = make_synthia_seq_tree(tmp_path, seqs=seqs, frames=range(1, 4))
    assert_scan_equal(SYN_SEQ.scan(tmp_path), tree.frames)
    one = SYN_SEQ.scan(tmp_path / "SYNTHIA-SEQS-04-DAWN")  # ROOT = the sequence folder itself
    assert_scan_equal(one, tree.frames[tree.frames.sequence == "SYNTHIA-SEQS-04-DAWN"].reset_index(drop=True))
    assert SYN_SEQ.resolve_root(tmp_path / "SYNTHIA-SEQS-04-DAWN") == tmp_path
    assert one.image.iloc[0] == "SYNTHIA-SEQS-04-DAWN/RGB/Stereo_Left/Omni_F/000001.png"


def test_synthia_label_class_comes_from_r_channel(tmp_path):
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 16, (HEIGHT, WIDTH))
    written_rgb = write_synthia_label(tmp_path / "000001.png", classes, rng)
    assert (written_rgb[..., 1] != classes).all() and (written_rgb[..., 2] != classes).all()
    raw = SYN_SEQ.read_raw_label(tmp_path / "000001.png")
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, classes)


def test_synthia_8bit_label_is_an_error(tmp_path):
    path = tmp_path / "000001.png"
    cv2.imwrite(str(path), np.full((HEIGHT, WIDTH, 3), 3, np.uint8))
    with pytest.raises(DatasetError, match=r"000001\.png is 8-bit; SYNTHIA labels are 16-bit PNGs with the class in the R"):
        SYN_SEQ.read_raw_label(path)
    with pytest.raises(DatasetError, match="is 8-bit"):
        SYN.read_raw_label(path)


def test_synthia_seq_wrong_root_and_missing_labels(tmp_path):
    make_synthia_seq_tree(tmp_path / "data", frames=(1, 2))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no SYNTHIA-Seq sequence in .*empty"):
        SYN_SEQ.scan(tmp_path / "empty")
    label = tmp_path / "data" / L.synthia_seq_label("SYNTHIA-SEQS-04-DAWN", 2)
    label.unlink()
    with pytest.raises(DatasetError, match=r"Omni_F/000002\.png not found: every SYNTHIA-Seq frame has a label"):
        SYN_SEQ.scan(tmp_path / "data")


def test_synthia_rand(tmp_path):
    tree = make_synthia_tree(tmp_path, frames=(0, 7, 12))
    frames = SYN.scan(tmp_path)
    assert_scan_equal(frames, tree.frames)
    assert frames.image.tolist() == ["RGB/0000000.png", "RGB/0000007.png", "RGB/0000012.png"]
    for label, raw in tree.raw_labels.items():
        np.testing.assert_array_equal(SYN.read_raw_label(tmp_path / label), raw)
    assert SYN.id_space == "synthia_rand"
    (tmp_path / "no_labels" / "RGB").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no_labels/GT/LABELS not found: expected ROOT/RGB/"):
        SYN.scan(tmp_path / "no_labels")


# --- GTA5 -------------------------------------------------------------------------------------------
def test_gta_scan_and_palette_labels(tmp_path):
    tree = make_gta_tree(tmp_path, frames=(1, 2, 24966))
    frames = GTA.scan(tmp_path)
    assert_scan_equal(frames, tree.frames)
    for label, raw in tree.raw_labels.items():  # palette index, not the colour OpenCV would give
        np.testing.assert_array_equal(GTA.read_raw_label(tmp_path / label), raw)
    (tmp_path / L.gta_label(2)).unlink()
    with pytest.raises(DatasetError, match=r"labels/00002\.png not found"):
        GTA.scan(tmp_path)
    with pytest.raises(DatasetError, match=r"images not found: expected ROOT/images/"):
        GTA.scan(tmp_path / "labels")


# --- footage ----------------------------------------------------------------------------------------
def test_video_file_written_by_opencv_read_by_decord(tmp_path):
    written = make_video(tmp_path / "drive.mp4", 9)
    frames = VIDEO.scan(tmp_path / "drive.mp4")
    assert frames.frame.tolist() == list(range(9))
    assert set(frames.image) == {"drive.mp4"} and set(frames.sequence) == {"drive"}
    assert (frames.raw_label == "").all()
    assert VIDEO.resolve_root(tmp_path / "drive.mp4") == tmp_path
    reader = data_io.VideoFrameReader()
    for i in (0, 4, 8):
        decoded = reader.read(tmp_path / frames.image.iloc[i], i)
        assert decoded.shape == written[i].shape
        assert np.abs(decoded.astype(int) - written[i]).mean() < 12  # lossy, but the same picture
    # frames differ from each other far more than the coding error
    assert np.abs(reader.read(tmp_path / "drive.mp4", 0).astype(int) - written[4]).mean() > 30


def test_video_folder_and_frame_step(tmp_path):
    make_video(tmp_path / "b.mp4", 5)
    make_video(tmp_path / "a.avi", 7)
    (tmp_path / "notes.txt").write_text("not a video")
    frames = VIDEO.scan(tmp_path, frame_step=3)
    assert frames.groupby("sequence").frame.apply(list).to_dict() == {"a": [0, 3, 6], "b": [0, 3]}


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 100])
def test_unreadable_video_is_an_error_naming_it(tmp_path, content):
    (tmp_path / "broken.mp4").write_bytes(content)
    with pytest.raises(DatasetError, match=r"broken\.mp4"):
        VIDEO.scan(tmp_path)


def test_video_wrong_root(tmp_path):
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DatasetError, match=r"no video files in .*: expected ROOT is a video file"):
        VIDEO.scan(tmp_path)
    with pytest.raises(DatasetError, match=r"x\.txt is not a video file"):
        VIDEO.scan(tmp_path / "x.txt")


def test_frame_folder_natural_order(tmp_path):
    written = make_frame_folder(tmp_path, sequences={"run2": 12, "run10": 3})
    frames = FOLDER.scan(tmp_path)
    for name, paths in written.items():
        seq = frames[frames.sequence == name]
        assert seq.image.tolist() == paths  # frame2 before frame10
        assert seq.frame.tolist() == list(range(len(paths)))
    single = FOLDER.scan(tmp_path / "run2")  # ROOT = one sequence
    assert single.image.tolist() == [p.split("/", 1)[1] for p in written["run2"]]
    assert set(single.sequence) == {"run2"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no image frames in .*empty"):
        FOLDER.scan(tmp_path / "empty")
