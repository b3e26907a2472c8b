"""Evaluation per condition (ACDC / Dark Zurich indexes record one per frame) next to the whole split."""
import numpy as np
import pandas as pd
import pytest
from eval_fixtures import PaletteSegmentor, label_map, restore, save_checkpoint

from pipa_video.config import validate
from pipa_video.data.build import build_eval_dataset
from pipa_video.data.classes import get_class_set
from pipa_video.data.index import IndexMeta, write_index
from pipa_video.data.io import write_png
from pipa_video.evaluation.loop import Comm, Predictor
from pipa_video.evaluation.metrics import SegEvaluator
from pipa_video.evaluation.runner import build_eval_settings, evaluate, run_split

CS = get_class_set("cityscapes19")
PRESENT = 9  # label_map draws classes 0..8


def make_index(base, *, conditions=("fog", "night", "night"), swapped=("night",), with_column=True):
    """One frame per entry of ``conditions``; frames of a ``swapped`` condition are painted with road
    and sidewalk exchanged, so the palette model gets exactly those two classes wrong there."""
    root, index_dir = base / "root", base / "index"
    rows = []
    for i, condition in enumerate(conditions):
        label = label_map(i)
        painted = label.copy()
        if condition in swapped:
            painted[label == 0], painted[label == 1] = 1, 0
        image = f"{condition}_GOPR{i:04d}/GOPR{i:04d}_frame_{i:06d}_rgb_anon.png"
        write_png(root / image, CS.palette_array()[painted][..., ::-1])
        write_png(index_dir / f"labels/{i}.png", label)
        counts = np.bincount(label.ravel(), minlength=CS.num_classes)[: CS.num_classes]
        row = dict(sequence=f"{condition}_GOPR{i:04d}", frame=i, image=image, label=f"labels/{i}.png", labelled=True)
        if with_column:
            row["condition"] = condition
        rows.append(dict(row, **dict(zip(CS.column_names(), counts.tolist()))))
    meta = IndexMeta(layout="acdc", root=str(root), class_set=CS.name, split="val",
                     conditions=sorted(set(conditions)) if with_column else [])
    write_index(index_dir, pd.DataFrame(rows), meta)
    return index_dir


def make_cfg(index_dir):
    return validate(dict(class_set=CS.name, data=dict(val=dict(index=str(index_dir)), num_workers=0),
                         model=dict(backbone=dict(type="mit_b0"), decode_head=dict(type="segformer")),
                         runtime=dict(device="cpu")))


def test_per_condition_and_whole_split_results(tmp_path, capsys):
    cfg = make_cfg(make_index(tmp_path))
    ckpt = save_checkpoint(tmp_path / "m.pth", PaletteSegmentor(CS.palette), cfg, class_set=CS.name,
                           selection="last iteration")
    restored = restore(cfg, ckpt)
    out = evaluate(cfg, restored.model, checkpoint=restored.path, meta=restored.meta, out_dir=tmp_path / "report",
                   split="val", progress=False)
    per = out["per_condition"]
    assert sorted(per) == ["fog", "night"]
    assert per["fog"]["mIoU"] == pytest.approx(100.0) and per["fog"]["num_images"] == 1
    assert per["night"]["mIoU"] == pytest.approx(100.0 * (PRESENT - 2) / PRESENT) and per["night"]["num_images"] == 2
    # The overall number is one confusion matrix over all frames, as an evaluator fed every frame computes it.
    whole = SegEvaluator(num_classes=CS.num_classes, eval_ids=CS.eval_ids, protocol="davsn")
    for i, condition in enumerate(("fog", "night", "night")):
        pred = label_map(i)
        if condition == "night":
            pred = np.where(pred == 0, 1, np.where(pred == 1, 0, pred))
        whole.process(pred, label_map(i))
    assert out["mIoU"] == pytest.approx(whole.evaluate()["mIoU"]) and out["num_images"] == 3
    table = pd.read_csv(tmp_path / "report" / "per_condition.csv").set_index("condition")
    assert table.loc["overall", "mIoU"] == pytest.approx(out["mIoU"]) and table.loc["night", "road"] == 0.0
    md = (tmp_path / "report" / "per_condition.md").read_text()
    assert "checkpoint selection: last iteration" in md and "split: val" in md and "davsn" in md
    assert "mIoU per condition: fog 100.00 (1 images), night 77.78 (2 images), overall" in capsys.readouterr().out


def test_per_condition_results_sum_across_ranks(tmp_path):
    cfg = make_cfg(make_index(tmp_path, conditions=("fog", "night", "rain", "night", "snow")))
    settings = build_eval_settings(cfg)
    predictor = Predictor(PaletteSegmentor(CS.palette))
    dataset = build_eval_dataset(cfg, "val")

    def run(comm=Comm()):
        return run_split(predictor, dataset, settings, comm=comm)["sem_seg"]

    single = run()
    sent = []
    run(Comm(rank=1, world_size=2, reduce_sum=lambda t: sent.append(t.clone()) or t))
    it = iter(sent)
    rank0 = run(Comm(rank=0, world_size=2, reduce_sum=lambda t: t + next(it)))
    assert sorted(rank0["per_condition"]) == ["fog", "night", "rain", "snow"]
    for condition, res in single["per_condition"].items():
        assert rank0["per_condition"][condition]["num_images"] == res["num_images"]
        assert rank0["per_condition"][condition]["mIoU"] == pytest.approx(res["mIoU"])
    assert single["per_condition"]["night"]["num_images"] == 2 and single["per_condition"]["night"]["mIoU"] < 100


def test_an_index_without_conditions_reports_none(tmp_path):
    cfg = make_cfg(make_index(tmp_path, with_column=False))
    ckpt = save_checkpoint(tmp_path / "m.pth", PaletteSegmentor(CS.palette), cfg, class_set=CS.name)
    out = evaluate(cfg, restore(cfg, ckpt).model, out_dir=tmp_path / "report", split="val", progress=False)
    assert "per_condition" not in out and not (tmp_path / "report" / "per_condition.csv").exists()
