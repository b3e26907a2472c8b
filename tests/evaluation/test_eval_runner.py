"""eval / tc-report end to end on a tiny index with a stand-in segmentor, and their errors.

The CLI restores the checkpoint with ``engine.checkpoint.load_segmentor`` and hands the model to
evaluation; these tests do the same (``eval_fixtures.restore``)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from eval_fixtures import (CLASS_SET, FRAME_HW, PaletteSegmentor, label_map, make_cfg, make_index, restore,
                           save_checkpoint)

from pipa_video.config import ConfigError, validate
from pipa_video.data.classes import get_class_set
from pipa_video.data.build import build_eval_dataset
from pipa_video.data.index import DatasetError
from pipa_video.data.io import write_png
from pipa_video.engine.checkpoint import CheckpointError
from pipa_video.evaluation.loop import Comm, Predictor
from pipa_video.evaluation.runner import build_eval_settings, evaluate, run_split, tc_report

CS = get_class_set(CLASS_SET)
PRESENT = 9  # label_map uses classes 0..8


def run_eval(cfg, ckpt, out_dir, *, swap=None, **kwargs):
    restored = restore(cfg, ckpt, swap=swap)
    return evaluate(cfg, restored.model, checkpoint=restored.path, meta=restored.meta, out_dir=out_dir,
                    progress=False, **kwargs)


def run_tc(cfg, ckpt, out_dir, **kwargs):
    restored = restore(cfg, ckpt)
    return tc_report(cfg, restored.model, checkpoint=restored.path, meta=restored.meta, out_dir=out_dir,
                     progress=False, **kwargs)


def test_evaluate_perfect_and_confused_models(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    out = run_eval(cfg, ckpt, tmp_path / "perfect")
    assert out["mIoU"] == pytest.approx(100.0)
    assert out["num_images"] == 8 and out["protocol"] == "davsn"
    assert out["context"]["selection"] == "last iteration" and out["context"]["iteration"] == 100
    md = (tmp_path / "perfect" / "report.md").read_text()
    assert "checkpoint selection: last iteration" in md and "rider rule of the labels: person" in md
    # road and sidewalk swapped: both IoU 0, the other 7 present classes perfect.
    out = run_eval(cfg, ckpt, tmp_path / "swapped", swap=(0, 1), protocol="unified")
    assert out["protocol"] == "unified"
    assert out["mIoU"] == pytest.approx(100.0 * (PRESENT - 2) / PRESENT)
    iou = pd.read_csv(tmp_path / "swapped" / "per_class.csv").set_index("class")["IoU"]
    assert iou["road"] == 0.0 and iou["sidewalk"] == 0.0 and iou["building"] == 100.0
    assert np.isnan(iou["bicycle"])  # never present, never predicted


def test_evaluate_flags_selection_on_the_evaluated_split(tiny, tmp_path):
    cfg, _, _ = tiny
    ckpt = save_checkpoint(tmp_path / "best.pth", PaletteSegmentor(CS.palette), cfg,
                           selection="best mIoU on data.val")
    out = run_eval(cfg, ckpt, tmp_path / "out")
    assert any("biased upwards" in n for n in out["context"]["notes"])


def _two_ranks(run):
    """Run ``run(comm)`` as rank 1 then rank 0 of two, the collectives standing in for a process group."""
    sent, objects = [], []
    rank1 = Comm(rank=1, world_size=2, reduce_sum=lambda t: sent.append(t.clone()) or t,
                 gather_objects=lambda o: objects.append(o) or [o, o])  # its result is not checked
    run(rank1)
    it = iter(sent)
    rank0 = Comm(rank=0, world_size=2, reduce_sum=lambda t: t + next(it), gather_objects=lambda o: [o, objects[0]])
    return run(rank0)


def test_one_pass_shards_across_ranks_without_double_counting(tiny):
    cfg, _, _ = tiny
    settings = build_eval_settings(cfg)
    predictor = Predictor(PaletteSegmentor(CS.palette, swap=(0, 2)))
    dataset = build_eval_dataset(cfg, "val", all_frames=True, keep_frames=True)

    def run(comm=Comm()):
        return run_split(predictor, dataset, settings, temporal=True, comm=comm)

    single, ranks = run(), _two_ranks(run)
    assert ranks["sem_seg"]["num_images"] == single["sem_seg"]["num_images"] == len(dataset) == 8
    assert ranks["sem_seg"]["mIoU"] == pytest.approx(single["sem_seg"]["mIoU"]) and single["sem_seg"]["mIoU"] < 100.0
    # temporal consistency: whole sequences per rank, merged back in the dataset's order
    assert [s["sequence"] for s in ranks["temporal"]["per_sequence"]] == ["seq_a", "seq_b"]
    assert ranks["temporal"]["overall"] == single["temporal"]["overall"]
    assert ranks["temporal"]["pairs"] == single["temporal"]["pairs"]


def test_eval_reports_temporal_consistency_in_the_same_pass(tiny, tmp_path, monkeypatch):
    cfg, ckpt, _ = tiny
    calls = []
    original = Predictor.__call__
    monkeypatch.setattr(Predictor, "__call__", lambda self, inputs: calls.append(1) or original(self, inputs))
    out = run_eval(cfg, ckpt, tmp_path / "both", temporal=True)
    assert len(calls) == 8  # one model pass per frame for both reports
    assert out["mIoU"] == pytest.approx(100.0) and out["num_images"] == 8
    tc = run_tc(cfg, ckpt, tmp_path / "tc")
    assert out["temporal"]["overall"] == tc["overall"] and out["temporal"]["pairs"] == tc["pairs"]
    assert (tmp_path / "both" / "tc_report.md").is_file() and (tmp_path / "both" / "report.md").is_file()
    assert {"tc_markdown", "markdown"} <= set(out["files"])


def test_checkpoint_class_set_mismatch_is_named(tiny, tmp_path):
    cfg, _, _ = tiny
    ckpt = save_checkpoint(tmp_path / "synthia.pth", PaletteSegmentor(CS.palette), cfg, class_set="synthiaseq12")
    with pytest.raises(CheckpointError, match=r"trained for class set synthiaseq12 \(12 classes\), config asks "
                                              r"for viper15 \(15\) \(class_set\)"):
        run_eval(cfg, ckpt, tmp_path / "out")


def test_checkpoint_model_type_mismatch_is_named(tiny, tmp_path):
    cfg, _, index_dir = tiny
    other = make_cfg(index_dir)
    other.model.backbone.type = "mit_b5"
    ckpt = save_checkpoint(tmp_path / "b5.pth", PaletteSegmentor(CS.palette), other)
    with pytest.raises(CheckpointError, match=r"backbone 'mit_b5'.*asks for backbone 'mit_b0'"):
        run_eval(cfg, ckpt, tmp_path / "out")


def test_strict_load_lists_missing_and_unexpected_keys(tiny, tmp_path):
    cfg, _, _ = tiny
    path = tmp_path / "bad.pth"
    torch.save(dict(model={"head.weight": torch.zeros(3)}, config=cfg.to_dict(), meta=dict(class_set=CLASS_SET),
                    format_version=1), path)
    with pytest.raises(CheckpointError, match=r"(?s)missing \(1\): scale.*unexpected \(1\): head\.weight"):
        run_eval(cfg, str(path), tmp_path / "out")
    torch.save(dict(model={"scale": torch.ones(())}, format_version=1), path)
    with pytest.raises(CheckpointError, match=r"lacks \['config', 'meta'\]"):
        run_eval(cfg, str(path), tmp_path / "out")
    with pytest.raises(CheckpointError, match="not found"):
        run_eval(cfg, str(tmp_path / "nope.pth"), tmp_path / "out")


def test_missing_split_is_named(tiny, tmp_path):
    _, ckpt, _ = tiny
    with pytest.raises(DatasetError, match=r"data\.val\.index is not set"):
        run_eval(make_cfg(None), ckpt, tmp_path / "out")
    with pytest.raises(DatasetError, match=r"data\.val\.index = .*nowhere.*: no such directory"):
        run_eval(make_cfg(tmp_path / "nowhere"), ckpt, tmp_path / "out")
    with pytest.raises(DatasetError, match=r"data\.test\.index is not set"):
        run_eval(make_cfg(None), ckpt, tmp_path / "out", split="test")


def test_tc_report_from_model_and_from_saved_predictions_agree(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    from_model = run_tc(cfg, ckpt, tmp_path / "model")
    overall = from_model["overall"]
    assert overall["sequences"] == 2 and overall["pairs"] == 6
    assert overall["flicker"] > 5.0  # the blocks move one pixel per frame
    assert overall["tc_miou"] > 95.0 and overall["agreement"] > 97.0
    assert overall["acc"] == pytest.approx(100.0)
    files = from_model["files"]
    assert list(pd.read_csv(files["sequences_csv"])["sequence"]) == ["seq_a", "seq_b", "overall"]
    assert "checkpoint selection: last iteration" in open(files["markdown"]).read()

    predictions = tmp_path / "preds"
    for seq, shift in (("seq_a", 0), ("seq_b", 1)):
        for f in range(4):
            write_png(predictions / seq / f"{f:06d}.png", label_map(f + shift))
    from_pngs = tc_report(cfg, out_dir=tmp_path / "pngs", predictions_dir=str(predictions), progress=False)
    for key in ("tc_miou", "agreement", "flicker", "valid_share"):
        assert from_pngs["overall"][key] == pytest.approx(overall[key])
    assert from_pngs["context"]["checkpoint"] == "none"

    one = tc_report(cfg, out_dir=tmp_path / "one", predictions_dir=str(predictions), max_sequences=1,
                    progress=False)
    assert one["overall"]["pairs"] == 3


def test_tc_report_notes_frame_gaps_and_unlabelled_frames(tmp_path):
    index_dir = make_index(tmp_path, sequences=("only",), frames=3, frame_step=2, labelled_every=4)
    cfg = make_cfg(index_dir)
    ckpt = save_checkpoint(tmp_path / "m.pth", PaletteSegmentor(CS.palette), cfg)
    out = run_tc(cfg, ckpt, tmp_path / "tc")
    assert [p["gap"] for p in out["pairs"]] == [2, 2]
    assert any("2 of 2 frame pairs are not consecutive" in n for n in out["context"]["notes"])
    assert out["context"]["selection"] == "unknown"  # the checkpoint records no selection
    # frames 0, 2, 4 with labels on 0 and 4: the pair ending at 2 has none, the one ending at 4 has.
    assert np.isnan(out["pairs"][0]["acc"]) and out["pairs"][1]["acc"] == pytest.approx(100.0)


def test_tc_report_at_tc_resize_states_the_resolution(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    full = run_tc(cfg, ckpt, tmp_path / "full")
    assert full["resolution"] == dict(size_wh=None, computed_wh=[[FRAME_HW[1], FRAME_HW[0]]])
    assert "computed at: 32x24 (w x h): the predictions' own size" in open(full["files"]["markdown"]).read()
    cfg.evaluation.tc_resize = (16, 12)  # (w, h), like evaluation.resize; the frames are 32x24
    half = run_tc(cfg, ckpt, tmp_path / "half")
    assert half["resolution"] == dict(size_wh=[16, 12], computed_wh=[[16, 12]])
    stated = "computed at: 16x12 (w x h) set by evaluation.tc_resize"
    assert stated in open(half["files"]["markdown"]).read()
    summary = json.loads(open(half["files"]["json"]).read())
    assert summary["resolution"]["computed_wh"] == [[16, 12]] and stated[len("computed at: "):] in \
        summary["context"]["resolution"]
    assert half["overall"]["pairs"] == full["overall"]["pairs"] == 6
    assert half["overall"]["acc"] == pytest.approx(100.0)  # labels resized with the predictions


@pytest.mark.parametrize("value", [(16, 0), (16,), (16.5, 12), (True, 12)])
def test_bad_tc_resize_is_a_config_error_naming_the_key(tiny, value):
    cfg, _, _ = tiny
    cfg.evaluation.tc_resize = value
    with pytest.raises(ConfigError, match=r"evaluation\.tc_resize: expected two positive ints \(w, h\)"):
        build_eval_settings(cfg)


def test_tc_resize_is_a_config_key():
    assert validate(dict(evaluation=dict(tc_resize=(1024, 512))))["evaluation"]["tc_resize"] == (1024, 512)
    assert validate({})["evaluation"]["tc_resize"] is None
    with pytest.raises(ConfigError, match="evaluation.tc_resize"):
        validate(dict(evaluation=dict(tc_resize="1024x512")))


def test_tc_report_argument_errors(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    with pytest.raises(ValueError, match="exactly one of --checkpoint"):
        tc_report(cfg, restore(cfg, ckpt).model, out_dir=tmp_path, predictions_dir=str(tmp_path))
    with pytest.raises(ValueError, match="exactly one of --checkpoint"):
        tc_report(cfg, out_dir=tmp_path)
    with pytest.raises(DatasetError, match=r"seq_a/000000\.png not found"):
        tc_report(cfg, out_dir=tmp_path / "o", predictions_dir=str(tmp_path / "empty"), progress=False)
