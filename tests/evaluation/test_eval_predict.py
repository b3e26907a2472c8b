"""predict on footage (videos, frame folders, photos, an index): outputs, legend, H.264, all-or-nothing."""
import json
import os
import stat

import cv2
import numpy as np
import pytest
from eval_fixtures import CLASS_SET, FRAME_HW, label_map, paint, palette_builder, restore

from pipa_video.cli import main
from pipa_video.data.classes import get_class_set
from pipa_video.data.footage import prepare_footage
from pipa_video.data.index import DatasetError
from pipa_video.data.io import read_train_ids, write_png
from pipa_video.evaluation.predict import predict
from pipa_video.evaluation.runner import tc_report
from tests.footage_media import corrupt_mjpeg_avi, mpeg4_bframes_avi, sequential_frames, truncated_mjpeg_avi

CS = get_class_set(CLASS_SET)


def write_h264(path, frames_rgb, fps=5):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = frames_rgb[0].shape[1], frames_rgb[0].shape[0], "yuv420p"
        for rgb in frames_rgb:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


def video_info(path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return stream.codec_context.name, stream.codec_context.pix_fmt, frames


def run(cfg, ckpt, input_path, out, **kwargs):
    restored = restore(cfg, ckpt)
    return predict(cfg, restored.model, checkpoint=restored.path, meta=restored.meta, input_path=input_path,
                   out_dir=out, progress=False, **kwargs)


def model_tc(cfg, ckpt, out):
    restored = restore(cfg, ckpt)
    return tc_report(cfg, restored.model, checkpoint=restored.path, meta=restored.meta, out_dir=out, progress=False)


def frames6():
    return [paint(label_map(f)) for f in range(6)]


def test_video_and_frame_folder_give_browser_video_with_legend_pngs_and_summary(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    root = tmp_path / "footage"
    write_h264(root / "drive.mp4", frames6())
    for i, f in enumerate(frames6()):
        write_png(root / "walk" / f"frame_{i}.png", f[..., ::-1])
    out = run(cfg, ckpt, root, tmp_path / "out")
    assert out["frames"] == 12 and [s["sequence"] for s in out["sequences"]] == ["drive", "walk"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    drive = summary["sequences"][0]
    assert drive["source"] == str(root / "drive.mp4") and drive["overlay"] == "overlay/drive.mp4"
    assert drive["fps"] == pytest.approx(5.0) and drive["temporal_consistency"]["pairs"] == 5
    assert summary["temporal_consistency"]["pairs"] == 10 and summary["selection"] == "last iteration"
    codec, pix_fmt, decoded = video_info(tmp_path / "out" / "overlay" / "walk.mp4")
    assert (codec, pix_fmt, len(decoded)) == ("h264", "yuv420p", 6)
    assert decoded[0].shape[1] > FRAME_HW[1] + 40  # the legend panel beside the frame
    assert decoded[0].shape[0] >= 16 * CS.num_classes  # one legend row per class
    colour = sorted((tmp_path / "out" / "colour" / "walk").glob("*.png"))
    assert [p.name for p in colour] == [f"{i:06d}.png" for i in range(6)]
    ids = read_train_ids(tmp_path / "out" / "train_ids" / "walk" / "000003.png")
    assert (ids == label_map(3)).mean() > 0.8  # lossless frames: most pixels right at the 2x down-sampled input


def test_saved_predictions_feed_tc_report(tiny, tmp_path):
    cfg, ckpt, index_dir = tiny
    from_model = model_tc(cfg, ckpt, tmp_path / "m")
    out = run(cfg, ckpt, index_dir, tmp_path / "out")  # an index as input: the same frames, the same names
    assert [s["sequence"] for s in out["sequences"]] == ["seq_a", "seq_b"]
    saved = tc_report(cfg, out_dir=tmp_path / "s", predictions_dir=out["files"]["train_ids"], progress=False)
    assert saved["overall"]["tc_miou"] == pytest.approx(from_model["overall"]["tc_miou"])


def test_photos_of_any_size_and_a_single_photo(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    root = tmp_path / "photos"
    write_png(root / "wide.png", paint(label_map(0, hw=(20, 60)))[..., ::-1])
    write_png(root / "small.jpg", paint(label_map(1, hw=(16, 16)))[..., ::-1])
    out = run(cfg, ckpt, root, tmp_path / "out", frames=False)
    kinds = {s["sequence"]: (s["kind"], s["overlay"]) for s in out["sequences"]}
    assert kinds == {"small": ("photo", "overlay/small.png"), "wide": ("photo", "overlay/wide.png")}
    assert "temporal_consistency" not in out  # photos have no frame pairs
    assert cv2.imread(str(tmp_path / "out" / "overlay" / "wide.png")).shape[1] > 60
    assert not (tmp_path / "out" / "colour").exists() and not (tmp_path / "out" / "train_ids").exists()
    one = run(cfg, ckpt, root / "wide.png", tmp_path / "one")
    assert one["frames"] == 1 and (tmp_path / "one" / "train_ids" / "wide" / "000000.png").is_file()


def test_every_output_is_readable_by_everyone(tiny, tmp_path):
    cfg, ckpt, index_dir = tiny
    old = os.umask(0o022)
    try:
        run(cfg, ckpt, index_dir, tmp_path / "out")
        model_tc(cfg, ckpt, tmp_path / "tc")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] + list((tmp_path / "tc").iterdir())
    assert any(p.name == "tc_over_time.png" for p in files) and any(p.suffix == ".mp4" for p in files)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert set(modes.values()) == {0o644}, modes


def test_a_failed_run_leaves_nothing_half_written(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    root = tmp_path / "footage"
    (root / "walk").mkdir(parents=True)
    for i, f in enumerate(frames6()):
        cv2.imwrite(str(root / "walk" / f"{i}.jpg"), f)
    good = run(cfg, ckpt, root, tmp_path / "out")
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    cut = root / "walk" / "4.jpg"
    cut.write_bytes(cut.read_bytes()[:300])
    with pytest.raises(DatasetError, match=r"walk/4\.jpg: [Tt]runcated"):
        run(cfg, ckpt, root, tmp_path / "out")
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before  # untouched
    with pytest.raises(DatasetError):
        run(cfg, ckpt, root, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]  # the stage folders are gone
    assert good["frames"] == 6


def test_a_video_that_stops_decoding_is_predicted_up_to_its_last_decodable_frame(tiny, tmp_path, capsys,
                                                                                monkeypatch):
    """As prepare_video.py indexes it (the same footage code reads predict's input): frames 0-9, a warning."""
    cfg, ckpt, _ = tiny
    monkeypatch.setattr("pipa_video.engine.checkpoint.build_for_checkpoint", palette_builder())
    video = corrupt_mjpeg_avi(tmp_path / "cut.avi", frame=10)
    cfg_path = tmp_path / "cfg.py"
    cfg.dump(str(cfg_path))
    with pytest.warns(UserWarning, match=r"cut\.avi: 10 of \d+ frames decodable \(decoding stopped at frame 10: "
                                         r"Invalid data"):
        code = main(["predict", "--config", str(cfg_path), "--checkpoint", ckpt, "--input", str(video),
                     "--out", str(tmp_path / "out")])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 10 and summary["sequences"][0]["source"] == str(video)


def test_input_errors_name_the_input(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(DatasetError, match="cannot read video .*broken.mp4"):
        run(cfg, ckpt, broken, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no videos, frame folders or photos in .*empty"):
        run(cfg, ckpt, tmp_path / "empty", tmp_path / "out")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="notes.txt is neither a video nor a photo"):
        run(cfg, ckpt, tmp_path / "notes.txt", tmp_path / "out")
    with pytest.raises(DatasetError, match="missing.mp4 not found"):
        run(cfg, ckpt, tmp_path / "missing.mp4", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prepared_footage_index_is_predicted_from_its_extracted_frames(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    video = mpeg4_bframes_avi(tmp_path / "drive.avi")
    with pytest.warns(UserWarning, match="random access returned wrong frames"):
        index = prepare_footage(video, tmp_path / "index", quiet=True)
    from_index = run(cfg, ckpt, index, tmp_path / "a")
    from_video = run(cfg, ckpt, video, tmp_path / "b")
    assert from_index["frames"] == from_video["frames"] == len(sequential_frames(video)) == 60
    for f in (0, 31, 59):
        a = read_train_ids(tmp_path / "a" / "train_ids" / "drive" / f"{f:06d}.png")
        b = read_train_ids(tmp_path / "b" / "train_ids" / "drive" / f"{f:06d}.png")
        np.testing.assert_array_equal(a, b)
