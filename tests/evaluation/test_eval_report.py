"""Report files: CSV/markdown/JSON content and context, plots, colour images, overlay video."""
import json

import numpy as np
import pandas as pd
import pytest

from pipa_video.data.classes import VIPER15
from pipa_video.evaluation.metrics import SegEvaluator
from pipa_video.evaluation.report import (OverlayVideoWriter, ReportContext, checkpoint_selection, colorize,
                                          markdown_table, overlay, write_eval_report, write_tc_report)
from pipa_video.evaluation.temporal import TemporalConsistency


@pytest.fixture
def context():
    return ReportContext(protocol="davsn", class_set="viper15", evaluated_classes=list(VIPER15.names),
                         split="val", checkpoint="/runs/a/iter_4000.pth", selection="last iteration",
                         iteration=4000, rider="person", index_dir="/idx/cs_seq_val",
                         inference=dict(mode="whole", resize=(64, 32)))


@pytest.fixture
def eval_results(rng):
    ev = SegEvaluator(num_classes=15, eval_ids=VIPER15.eval_ids, protocol="davsn", class_names=VIPER15.names)
    label = rng.integers(0, 10, (16, 20))  # classes 10..14 never in the ground truth
    pred = np.where(rng.random((16, 20)) < 0.7, label, rng.integers(0, 14, (16, 20)))  # 14 never predicted
    ev.process(pred, label)
    return ev.evaluate()


def no_temp_files(folder):
    return not [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_eval_report_files_and_context(tmp_path, context, eval_results):
    paths = write_eval_report(tmp_path, eval_results, context, class_set=VIPER15)
    csv = pd.read_csv(paths["csv"])
    assert list(csv["class"]) == list(VIPER15.names)
    np.testing.assert_allclose(csv["IoU"], [r["IoU"] for r in eval_results["per_class"]], equal_nan=True)
    md = paths["markdown"].read_text()
    for needle in ("protocol: davsn", "class set: viper15", "evaluated classes (15)", "split: val",
                   "/runs/a/iter_4000.pth (iteration 4000)", "checkpoint selection: last iteration",
                   "rider rule of the labels: person", f"mIoU {eval_results['mIoU']:.2f}", "| road |"):
        assert needle in md, needle
    summary = json.loads(paths["json"].read_text())  # strict JSON: nan became null
    assert summary["context"]["selection"] == "last iteration"
    assert summary["mIoU"] == pytest.approx(eval_results["mIoU"])
    assert summary["per_class"][14]["IoU"] is None and np.isnan(eval_results["per_class"][14]["IoU"])
    assert paths["plot"].stat().st_size > 1000
    assert no_temp_files(tmp_path)


def test_checkpoint_selection_is_read_from_meta():
    assert checkpoint_selection({"selection": "best mIoU on data.val (held-out split)"}).startswith("best mIoU")
    assert checkpoint_selection({"iteration": 10}) == "unknown"
    assert checkpoint_selection(None) == "unknown"


def test_markdown_table():
    text = markdown_table(pd.DataFrame({"class": ["road", "sky"], "IoU": [91.234, float("nan")]}))
    assert text.splitlines() == ["| class | IoU |", "| --- | --- |", "| road | 91.23 |", "| sky | nan |"]


def test_colorize_and_overlay():
    pred = np.array([[0, 8], [255, 1]], np.uint8)
    colour = colorize(pred, VIPER15)
    assert tuple(colour[0, 0]) == VIPER15.palette[0]
    assert tuple(colour[0, 1]) == VIPER15.palette[8]  # sky
    assert tuple(colour[1, 0]) == (0, 0, 0)  # ignore
    frame = np.full((2, 2, 3), 200, np.uint8)
    blended = overlay(frame, colour, alpha=0.25)
    np.testing.assert_allclose(blended.astype(float), 0.25 * colour + 0.75 * 200, atol=1)


def test_overlay_video_is_readable_with_decord(tmp_path):
    import decord

    path = tmp_path / "overlay.mp4"
    with OverlayVideoWriter(path, fps=5, size_wh=(64, 48)) as writer:
        for i in range(6):
            writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    reader = decord.VideoReader(str(path))
    assert len(reader) == 6
    assert reader[0].shape == (48, 64, 3)
    assert abs(float(reader[5].asnumpy().mean()) - 200) < 10
    assert no_temp_files(tmp_path)


def test_aborted_video_leaves_nothing(tmp_path):
    path = tmp_path / "overlay.mp4"
    with pytest.raises(KeyboardInterrupt):
        with OverlayVideoWriter(path, fps=5, size_wh=(32, 32)) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_tc_report_files(tmp_path, context, rng):
    zero_flow = lambda a, b: np.zeros((*a.shape, 2), np.float32)  # noqa: E731
    tc = TemporalConsistency(num_classes=3, flow_fn=zero_flow)
    for seq in ("seq_a", "seq_b"):
        for frame in range(4):
            tc.process(np.zeros((8, 8, 3), np.uint8), rng.integers(0, 3, (8, 8)), sequence=seq, frame=frame)
    paths = write_tc_report(tmp_path, tc.evaluate(), context)
    sequences = pd.read_csv(paths["sequences_csv"])
    assert list(sequences["sequence"]) == ["seq_a", "seq_b", "overall"]
    assert list(sequences["pairs"]) == [3, 3, 6]
    assert len(pd.read_csv(paths["pairs_csv"])) == 6
    md = paths["markdown"].read_text()
    assert "checkpoint selection: last iteration" in md and "| overall |" in md
    assert json.loads(paths["json"].read_text())["overall"]["pairs"] == 6
    assert paths["plot"].stat().st_size > 1000
    assert no_temp_files(tmp_path)


def test_over_time_plot_measures_seconds_from_each_sequence_start():
    from pipa_video.evaluation.report import time_from_start

    pairs = pd.DataFrame(dict(sequence=["a", "a", "b", "b"], frame=[101, 102, 7, 9], gap=[1, 1, 2, 2]))
    x, label = time_from_start(pairs, {"a": 10.0, "b": 2.0})
    assert x.tolist() == [0.1, 0.2, 1.0, 2.0] and label == "time from the sequence's start (s)"
    x, label = time_from_start(pairs, {"a": 10.0})  # b's rate unknown: frames for every sequence
    assert x.tolist() == [1, 2, 2, 4] and label == "frames from the sequence's start"
