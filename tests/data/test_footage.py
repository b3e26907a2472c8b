"""Own footage: the prepare tool (videos, frame folders, photos), exact frame reading, damaged files.

Every video is generated (``tests/footage_media.py``), none is committed.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipa_video.data.transforms import ClipTensors
from pipa_video.data import io as data_io
from pipa_video.data.build import check_index_class_set
from pipa_video.data.clips import ClipDataset
from pipa_video.data.footage import FootageWarning, main, prepare_footage
from pipa_video.data.index import EXTRACTED, RANDOM_ACCESS, DatasetError, load_index
from pipa_video.data.video_probe import iter_frames, probe_video
from tests.footage_media import (H, W, damaged_msmpeg4_avi, mpeg4_bframes_avi, numbered_frames, sequential_frames,
                                 truncated_mjpeg_avi, write_av, write_photo)

REPO = Path(__file__).resolve().parents[2]


# --- A1: frame-exact reading -----------------------------------------------------------------------
class _Untransformed:
    """A clip transform that hands the decoded frames through untouched (RGB uint8, as read)."""

    def apply(self, frames, labels, rng, *, require=None):
        return ClipTensors(img=frames, label=labels, valid=None, pseudo_valid=None)


def test_random_access_fault_is_found_and_extracted_frames_are_exact(tmp_path):
    video = mpeg4_bframes_avi(tmp_path / "clips" / "drive.avi")
    truth = sequential_frames(video)
    assert len(truth) == 60
    reader = data_io.VideoFrameReader()  # the fault itself: decord's random access returns other frames
    wrong = [k for k in (45, 44, 20, 19, 55) if not np.array_equal(reader.read(video, k), truth[k])]
    assert wrong, "the generated video no longer shows decord's random-access fault"

    probe = probe_video(video)
    assert not probe.random_access_exact and probe.frames == 60
    with pytest.warns(FootageWarning, match=r"drive\.avi: random access returned wrong frames"):
        out = prepare_footage(tmp_path / "clips", tmp_path / "index", quiet=True)
    index = load_index(out)
    record = index.meta.videos["drive.avi"]
    assert record["reading"] == EXTRACTED and record["frames"] == 60
    dataset = ClipDataset(index=index, offsets=[-1], keys="all", boundary="clamp", name="footage",
                          transform=_Untransformed())
    for key in np.random.default_rng(1).permutation(len(dataset))[:12]:  # random keys, as training reads them
        frames = dataset[int(key)]["img"]
        t = int(dataset.index.frames["frame"].iat[dataset.key_rows[key]])
        np.testing.assert_array_equal(frames[0], truth[t])
        np.testing.assert_array_equal(frames[1], truth[max(t - 1, 0)])


def test_video_with_exact_random_access_is_read_from_the_file(tmp_path):
    video = write_av(tmp_path / "drive.mp4", numbered_frames(30), codec="libx264", b_frames=2)
    out = prepare_footage(video, tmp_path / "index", quiet=True)
    index = load_index(out)
    assert index.meta.videos["drive.mp4"]["reading"] == RANDOM_ACCESS
    assert not (out / "frames").exists()
    truth = sequential_frames(video)
    for row in (17, 3, 29):
        path, frame = index.frame_source(row)
        np.testing.assert_array_equal(data_io.read_frame(path, frame), truth[frame])


def test_header_frame_rate_is_checked_against_the_stream(tmp_path):
    # tree.avi's fault: the header says 15 fps, the frames are 1/3 s apart.
    video = write_av(tmp_path / "gaps.avi", numbered_frames(10), codec="mjpeg", rate=15, pts_step=5,
                     pix_fmt="yuvj420p")
    with pytest.warns(FootageWarning, match=r"gaps\.avi: the header says 15\.000 fps, the stream's timestamps "
                                            r"give 3\.000 fps"):
        out = prepare_footage(video, tmp_path / "index", quiet=True)
    record = load_index(out).meta.videos["gaps.avi"]
    assert record["fps"] == pytest.approx(3.0) and record["header_fps"] == pytest.approx(15.0)
    assert record["frames"] == 10


# --- A3: truncated videos ------------------------------------------------------------------------
@pytest.mark.parametrize("share", [0.57, 0.6, 0.62])
def test_truncated_video_indexes_only_decodable_frames_and_warns(tmp_path, share):
    video = truncated_mjpeg_avi(tmp_path / "cut.avi", share)
    with pytest.warns(FootageWarning, match=r"cut\.avi: (\d+) of (\d+) frames decodable") as record:
        out = prepare_footage(video, tmp_path / "index", quiet=True)
    index = load_index(out)
    n = len(index.frames)
    assert 10 < n < 40
    assert re.search(rf"indexing frames 0-{n - 1}", str(record[0].message))
    truth = numbered_frames(40)
    for row in range(n):  # every indexed frame decodes, whole: JPEG error is small, a grey half is not
        path, frame = index.frame_source(row)
        assert np.abs(data_io.read_frame(path, frame).astype(int) - truth[frame][..., ::-1]).mean() < 8


def test_decoder_errors_name_the_file_and_frame(tmp_path):
    video = truncated_mjpeg_avi(tmp_path / "cut.avi", 0.66)  # cut inside a JPEG header: decoders fail there
    probe = probe_video(video)
    assert probe.decode_error and probe.frames == 26
    with pytest.raises(DatasetError, match=r"cut\.avi: cannot decode frame 26: Invalid data"):
        list(iter_frames(video))
    reader = data_io.VideoFrameReader()
    with pytest.raises(DatasetError, match=r"cut\.avi: (cannot decode frame|frame) 2\d"):
        for frame in range(probe.frames, 40):
            reader.read(video, frame)


# --- A2: truncated images ------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_image_is_refused_naming_the_file(tmp_path, ext):
    path = write_photo(tmp_path / f"photo{ext}", 640, 480)
    data_io.read_rgb(path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.4)])
    with pytest.raises(DatasetError, match=rf"photo\{ext}: (truncated|cannot read)"):
        data_io.read_rgb(path)


def test_jpeg_with_trailing_bytes_and_exif_thumbnail_markers_is_accepted(tmp_path):
    path = write_photo(tmp_path / "photo.jpg", 64, 48)
    data = path.read_bytes()
    # An APP1 segment holding an end-of-image marker (as an EXIF thumbnail does) before the scan, and
    # bytes after the real end (as some cameras append): complete, so accepted.
    app1 = b"\xff\xe1" + (2 + 6).to_bytes(2, "big") + b"\xff\xd8\x00\x00\xff\xd9"
    path.write_bytes(data[:2] + app1 + data[2:] + b"trailer")
    assert data_io.read_rgb(path).shape == (48, 64, 3)
    cut = data[:2] + app1 + data[2:len(data) // 2]
    path.write_bytes(cut)  # the thumbnail's marker must not hide the missing end of the image
    with pytest.raises(DatasetError, match="truncated JPEG"):
        data_io.read_rgb(path)


# --- 12.1: one tool, any footage, any class set --------------------------------------------------
def test_videos_frame_folders_and_photos_of_any_size_in_one_root(tmp_path):
    root = tmp_path / "footage"
    write_av(root / "drive.mp4", numbered_frames(8), codec="libx264")
    for i in range(3):
        write_photo(root / "walk" / f"f{i}.png", W, H, seed=i)
    write_photo(root / "street.jpg", 320, 200)
    write_photo(root / "square.jpg", 50, 50)
    out = prepare_footage(root, tmp_path / "index", quiet=True)
    index = load_index(out)
    sizes = index.frames.groupby("sequence").size().to_dict()
    assert sizes == {"drive": 8, "walk": 3, "street": 1, "square": 1}
    assert index.meta.class_set is None and index.class_set is None
    assert list(index.frames.columns) == ["sequence", "frame", "image", "label", "labelled"]
    shapes = {seq: data_io.read_frame(*index.frame_source(i)).shape
              for i, seq in enumerate(index.frames["sequence"])}
    assert shapes["street"] == (200, 320, 3) and shapes["square"] == (50, 50, 3)
    for class_set in ("viper15", "cityscapes19", "synthiaseq12"):  # no re-prepare per class set
        check_index_class_set(index, {"class_set": class_set}, key="data.target.index")

    single = prepare_footage(root / "street.jpg", tmp_path / "one_photo", quiet=True)
    assert load_index(single).frames[["sequence", "frame", "image"]].values.tolist() == [["street", 0, "street.jpg"]]
    as_frames = prepare_footage(root / "walk", tmp_path / "walk", root_images="frames", quiet=True)
    assert load_index(as_frames).frames["frame"].tolist() == [0, 1, 2]


def test_frames_of_one_sequence_must_share_a_size(tmp_path):
    write_photo(tmp_path / "footage" / "run" / "f0.png", W, H)
    write_photo(tmp_path / "footage" / "run" / "f1.png", W + 2, H)
    with pytest.raises(DatasetError, match=r"run/f1\.png is 98x64 but .*f0\.png is 96x64"):
        prepare_footage(tmp_path / "footage", tmp_path / "index", quiet=True)


def test_verify_images_refuses_a_truncated_photo(tmp_path):
    photo = write_photo(tmp_path / "footage" / "cut.jpg", 320, 240)
    photo.write_bytes(photo.read_bytes()[:3000])
    prepare_footage(tmp_path / "footage", tmp_path / "headers_only", quiet=True)  # the header is intact
    with pytest.raises(DatasetError, match=r"cut\.jpg: truncated JPEG"):
        prepare_footage(tmp_path / "footage", tmp_path / "index", verify_images=True, quiet=True)


def test_cli_help_and_errors(tmp_path, capsys):
    help_text = subprocess.run([sys.executable, str(REPO / "data_tools" / "prepare_video.py"), "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert help_text.startswith("usage: prepare_video.py") and "labels/" not in help_text
    assert "--class-set" not in help_text
    (tmp_path / "notes.txt").write_text("x")
    assert main([str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o")]) == 3  # bad data (errors.ExitCode)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prepare_video.py: error: ")
    assert "notes.txt is neither a video nor a photo" in err[0]
    assert main([str(tmp_path / "empty_dir_missing"), "--out", str(tmp_path / "o")]) == 3
    assert not (tmp_path / "o").exists()


def test_cli_summary_and_one_line_warnings(tmp_path):
    video = mpeg4_bframes_avi(tmp_path / "drive.avi")
    run = subprocess.run([sys.executable, str(REPO / "data_tools" / "prepare_video.py"), str(video), "--out",
                          str(tmp_path / "index")], capture_output=True, text=True, check=True)
    assert "drive: 60 frames, 25.000 fps, read by extracted" in run.stdout
    assert re.fullmatch(r"prepare_video.py: warning: .*drive\.avi: random access returned wrong frames .*\n", run.stderr)
    meta = json.loads((tmp_path / "index" / "meta.json").read_text())
    assert meta["class_set"] is None and meta["videos"]["drive.avi"]["frames_dir"] == "frames/drive"
    assert len(list((tmp_path / "index" / "frames" / "drive").glob("*.png"))) == 60
    assert pd.read_csv(tmp_path / "index" / "index.csv")["frame"].tolist() == list(range(60))


# --- the error contract, staged output, FFmpeg's log lines ------------------------------------------
def _prepare_video(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "data_tools" / "prepare_video.py"), *map(str, args)],
                          capture_output=True, text=True, **kw)


def _one_error_line(stderr: str, path) -> str:
    lines = [line for line in stderr.splitlines() if not line.startswith("prepare_video.py: warning: ")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"prepare_video.py: error: ") and str(path) in lines[0], stderr
    return lines[0]


def test_cli_errors_follow_the_error_contract(tmp_path, capsys):
    """README "When things go wrong": one ``prepare_video.py: error:`` line naming the file, exit 3 (data)."""
    photos = tmp_path / "photos"
    photo = write_photo(photos / "cut.jpg", 320, 240)
    photo.write_bytes(photo.read_bytes()[:3000])
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all" * 50)
    cases = [([tmp_path / "missing"], tmp_path / "missing", "not found: expected ROOT is a video"),
             ([photos, "--verify-images"], photo, "truncated JPEG"),
             ([fake], fake, "Invalid data found when processing input; expected a video file")]
    for args, path, what in cases:
        assert main([*map(str, args), "--out", str(tmp_path / "out")]) == 3
        line = _one_error_line(capsys.readouterr().err, path)
        assert what in line and "[Errno" not in line
        assert not (tmp_path / "out").exists()
    run = _prepare_video(fake, "--out", tmp_path / "out")  # the script itself, and --debug's traceback
    assert run.returncode == 3
    _one_error_line(run.stderr, fake)
    debug = _prepare_video(fake, "--out", tmp_path / "out", "--debug")
    assert debug.returncode == 3 and debug.stderr.startswith("Traceback (most recent call last)")
    assert debug.stderr.strip().splitlines()[-1] == run.stderr.strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.mp4", "photos"]


def test_a_failed_prepare_leaves_no_output_and_keeps_the_previous_index(tmp_path):
    root = tmp_path / "footage"
    root.mkdir()
    truncated_mjpeg_avi(root / "cut.avi", 0.66)  # extracted (its reads past the cut are not exact) ...
    (root / "zz.mp4").write_bytes(b"not a video at all" * 50)  # ... before this one fails
    out = tmp_path / "new" / "index"
    run = _prepare_video(root, "--out", out)
    assert run.returncode == 3 and "extracting 26 frames" in run.stdout
    _one_error_line(run.stderr, root / "zz.mp4")
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == []  # no frames/, no staging folder

    (root / "zz.mp4").unlink()
    run = _prepare_video(root, "--out", out, check=True)
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert len([p for p in before if p.parts[0] == "frames"]) == 26
    (root / "zz.mp4").write_bytes(b"not a video at all" * 50)
    assert _prepare_video(root, "--out", out).returncode == 3
    after = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert after == before  # the previous index whole, frames and all
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["index"]


def test_the_published_index_reads_the_published_frames(tmp_path):
    video = mpeg4_bframes_avi(tmp_path / "drive.avi")
    with pytest.warns(FootageWarning):
        out = prepare_footage(video, tmp_path / "index", quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive.avi", "index"]  # the staging folder is gone
    index = load_index(out)
    assert index.meta.root == str(tmp_path) and index.meta.videos["drive.avi"]["frames_dir"] == "frames/drive"
    truth = sequential_frames(video)
    for row in (0, 31, 59):
        path, frame = index.frame_source(row)
        assert path.parent == out / "frames" / "drive" and path.is_file()
        np.testing.assert_array_equal(data_io.read_frame(path, frame), truth[frame])


def test_ffmpeg_log_lines_do_not_reach_the_terminal(tmp_path):
    """A damaged video: FFmpeg's own lines (``[msmpeg4 @ 0x...] Error at MB``) are silenced; the tool's
    warnings remain, one line each."""
    root = tmp_path / "footage"
    damaged_msmpeg4_avi(root / "damaged.avi")  # (write_av makes the folder)
    truncated_mjpeg_avi(root / "cut.avi", 0.66)
    run = _prepare_video(root, "--out", tmp_path / "index", "--quiet", check=True)
    assert run.stderr, "expected the tool's warnings"
    assert all(line.startswith("prepare_video.py: warning: ") for line in run.stderr.splitlines()), run.stderr
    assert " @ 0x" not in run.stderr
