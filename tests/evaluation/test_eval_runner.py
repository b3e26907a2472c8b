"""eval / tc-report end to end on a tiny index with a stand-in segmentor, and their errors."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from eval_fixtures import (CLASS_SET, FRAME_HW, IndexClips, PaletteSegmentor, label_map, make_cfg, make_index,
                           palette_builder, save_checkpoint)

from pipa_video.config import ConfigError, validate
from pipa_video.data.classes import get_class_set
from pipa_video.data.index import DatasetError
from pipa_video.data.io import write_png
from pipa_video.evaluation.metrics import SegEvaluator
from pipa_video.evaluation.runner import (CheckpointError, Predictor, build_eval_settings, evaluate,
                                          evaluate_dataset, tc_report)

CS = get_class_set(CLASS_SET)
PRESENT = 9  # label_map uses classes 0..8


def run_eval(cfg, ckpt, out_dir, *, swap=None, **kwargs):
    return evaluate(cfg, checkpoint=ckpt, out_dir=out_dir, model_builder=palette_builder(swap),
                    dataset_builder=lambda cfg, split: IndexClips(cfg["data"][split]["index"]), progress=False,
                    **kwargs)


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


def test_evaluate_shards_across_ranks_without_double_counting(tiny):
    cfg, _, index_dir = tiny
    settings = build_eval_settings(cfg)
    predictor = Predictor(PaletteSegmentor(CS.palette, swap=(0, 2)).inference, settings=settings)
    dataset = IndexClips(index_dir)

    def evaluator():
        return SegEvaluator(num_classes=CS.num_classes, eval_ids=CS.eval_ids, protocol="davsn")

    single = evaluate_dataset(predictor, dataset, evaluator=evaluator(), progress=False)
    sent = []
    evaluate_dataset(predictor, dataset, evaluator=evaluator(), rank=1, world_size=2, progress=False,
                     reduce_fn=lambda t: sent.append(t.clone()) or t)
    rank0 = evaluate_dataset(predictor, dataset, evaluator=evaluator(), rank=0, world_size=2, progress=False,
                             reduce_fn=lambda t: t + sent[0])
    assert rank0["num_images"] == single["num_images"] == len(dataset)
    assert rank0["mIoU"] == pytest.approx(single["mIoU"])
    assert single["mIoU"] < 100.0


def test_checkpoint_class_set_mismatch_is_named(tiny, tmp_path):
    cfg, _, _ = tiny
    ckpt = save_checkpoint(tmp_path / "synthia.pth", PaletteSegmentor(CS.palette), cfg, class_set="synthiaseq12")
    with pytest.raises(CheckpointError, match=r"trained for class set synthiaseq12 \(12 classes\), config asks "
                                              r"for viper15 \(15\)"):
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
    torch.save(dict(model={"head.weight": torch.zeros(3)}, config=cfg.to_dict(), meta=dict(class_set=CLASS_SET)),
               path)
    with pytest.raises(CheckpointError, match=r"(?s)missing \(1\): scale.*unexpected \(1\): head\.weight"):
        run_eval(cfg, str(path), tmp_path / "out")
    torch.save(dict(model={"scale": torch.ones(())}), path)
    with pytest.raises(CheckpointError, match=r"lacks \['config', 'meta'\]"):
        run_eval(cfg, str(path), tmp_path / "out")
    with pytest.raises(CheckpointError, match="not found"):
        run_eval(cfg, str(tmp_path / "nope.pth"), tmp_path / "out")


def test_missing_split_is_named(tiny, tmp_path):
    _, ckpt, _ = tiny
    with pytest.raises(DatasetError, match=r"data\.val\.index is not set"):
        run_eval(make_cfg(None), ckpt, tmp_path / "out")
    with pytest.raises(DatasetError, match=r"data\.val\.index: directory .*nowhere does not exist"):
        run_eval(make_cfg(tmp_path / "nowhere"), ckpt, tmp_path / "out")
    with pytest.raises(DatasetError, match=r"data\.test\.index is not set"):
        run_eval(make_cfg(None), ckpt, tmp_path / "out", split="test")


def test_tc_report_from_model_and_from_saved_predictions_agree(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    from_model = tc_report(cfg, out_dir=tmp_path / "model", checkpoint=ckpt, model_builder=palette_builder(),
                           progress=False)
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
    out = tc_report(cfg, out_dir=tmp_path / "tc", checkpoint=ckpt, model_builder=palette_builder(), progress=False)
    assert [p["gap"] for p in out["pairs"]] == [2, 2]
    assert any("2 of 2 frame pairs are not consecutive" in n for n in out["context"]["notes"])
    assert out["context"]["selection"] == "unknown"  # the checkpoint records no selection
    # frames 0, 2, 4 with labels on 0 and 4: the pair ending at 2 has none, the one ending at 4 has.
    assert np.isnan(out["pairs"][0]["acc"]) and out["pairs"][1]["acc"] == pytest.approx(100.0)


def test_tc_report_at_tc_resize_states_the_resolution(tiny, tmp_path):
    cfg, ckpt, _ = tiny
    kwargs = dict(checkpoint=ckpt, model_builder=palette_builder(), progress=False)
    full = tc_report(cfg, out_dir=tmp_path / "full", **kwargs)
    assert full["resolution"] == dict(size_wh=None, computed_wh=[[FRAME_HW[1], FRAME_HW[0]]])
    assert "computed at: 32x24 (w x h): the predictions' own size" in open(full["files"]["markdown"]).read()
    cfg.evaluation.tc_resize = (16, 12)  # (w, h), like evaluation.resize; the frames are 32x24
    half = tc_report(cfg, out_dir=tmp_path / "half", **kwargs)
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
        tc_report(cfg, out_dir=tmp_path, checkpoint=ckpt, predictions_dir=str(tmp_path))
    with pytest.raises(ValueError, match="exactly one of --checkpoint"):
        tc_report(cfg, out_dir=tmp_path)
    with pytest.raises(DatasetError, match=r"seq_a/000000\.png not found"):
        tc_report(cfg, out_dir=tmp_path / "o", predictions_dir=str(tmp_path / "empty"), progress=False)
