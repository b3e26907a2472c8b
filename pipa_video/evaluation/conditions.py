"""Results per condition (ACDC's fog/night/rain/snow, Dark Zurich's time of day) next to the overall one.

The index records each frame's condition (``index.CONDITION_COLUMN``). ``ConditionScorer`` keeps one
``SegEvaluator`` per condition and is fed the same predictions as the overall evaluator, so the
model runs once per frame. The overall number stays the confusion matrix of the whole split (the
published ACDC protocol: DAFormer/HRDA evaluate ``rgb_anon/val`` of all conditions at once), not a
mean over conditions.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from pipa_video.atomic import atomic_write_text
from pipa_video.data.index import CONDITION_COLUMN
from pipa_video.evaluation.metrics import ReduceFn, SegEvaluator
from pipa_video.evaluation.report import ReportContext, markdown_table, write_csv

CONDITION_FILES = dict(csv="per_condition.csv", markdown="per_condition.md")
OVERALL = "overall"


def key_conditions(dataset: Dataset) -> list[str] | None:
    """The condition of every item of ``dataset``, in order; None when its index records none.

    Needs a ``ClipDataset`` (its ``index`` and ``key_frame_table()``); other datasets get None.
    """
    index = getattr(dataset, "index", None)
    if index is None or CONDITION_COLUMN not in index.frames.columns or not hasattr(dataset, "key_frame_table"):
        return None
    return [str(c) for c in dataset.key_frame_table()[CONDITION_COLUMN]]


def fresh_like(evaluator: SegEvaluator) -> SegEvaluator:
    """An empty evaluator with the same classes, reported ids, protocol and ignore index."""
    return SegEvaluator(num_classes=evaluator.num_classes, eval_ids=evaluator.eval_ids.tolist(),
                        protocol=evaluator.protocol, ignore_index=evaluator.ignore_index,
                        class_names=evaluator.class_names)


class ConditionScorer:
    """The overall evaluator (reset here) plus, given ``conditions`` (one per dataset item), one per condition."""

    def __init__(self, overall: SegEvaluator, conditions: Sequence[str] | None) -> None:
        overall.reset()
        self.overall = overall
        self.conditions = list(conditions) if conditions is not None else None
        # Same keys in the same order on every rank: the all-reduces below must pair up.
        self.per_condition = {c: fresh_like(overall) for c in sorted(set(self.conditions or ()))}

    def process(self, item: int, pred: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor) -> None:
        """Score dataset item ``item``: (H, W) or (B, H, W) predictions and train-id labels."""
        self.overall.process(pred, label)
        if self.conditions is not None:
            self.per_condition[self.conditions[item]].process(pred, label)

    def sum_across_ranks(self, reduce_fn: ReduceFn) -> None:
        for evaluator in (self.overall, *self.per_condition.values()):
            evaluator.sum_across_ranks(reduce_fn)

    def evaluate(self) -> dict:
        """``SegEvaluator.evaluate()`` of the whole split, with ``per_condition`` (condition -> the
        same over its frames, conditions without a scored frame left out) when conditions were given."""
        results = self.overall.evaluate()
        if self.conditions is not None:
            results["per_condition"] = {c: e.evaluate() for c, e in self.per_condition.items() if e.num_images}
        return results


def condition_frame(results: dict) -> pd.DataFrame:
    """One row per condition and a last ``overall`` row: mIoU, mAcc, aAcc, images, IoU of each reported class."""
    rows = []
    for name, res in [*results["per_condition"].items(), (OVERALL, results)]:
        row = dict(condition=name, mIoU=res["mIoU"], mAcc=res["mAcc"], aAcc=res["aAcc"], images=res["num_images"])
        row.update({c["name"]: c["IoU"] for c in res["per_class"] if c["evaluated"]})
        rows.append(row)
    return pd.DataFrame(rows)


def condition_report_text(results: dict, context: ReportContext) -> str:
    frame = condition_frame(results)
    headline = ", ".join(f"{r.condition} {r.mIoU:.2f}" for r in frame.itertuples())
    return "\n".join([
        f"# Segmentation evaluation per condition: {headline}", "", *context.lines(),
        f"- protocol definition: {results['protocol_description']}",
        "- per condition: the frames of that condition only; overall: one confusion matrix over the whole split", "",
        markdown_table(frame[["condition", "mIoU", "mAcc", "aAcc", "images"]]), "",
        "IoU per reported class (percent):", "", markdown_table(frame.drop(columns=["mAcc", "aAcc", "images"])), "",
    ])


def report_conditions(out_dir: str | os.PathLike | None, results: dict, context: ReportContext) -> dict[str, Path]:
    """Print the per-condition mIoU and write per_condition.csv / .md under ``out_dir`` (when given).

    Does nothing for results without ``per_condition`` (datasets that record no condition).
    """
    if "per_condition" not in results:
        return {}
    frame = condition_frame(results)
    print("mIoU per condition: " + ", ".join(f"{r.condition} {r.mIoU:.2f} ({r.images} images)"
                                            for r in frame.itertuples()))
    if out_dir is None:
        return {}
    paths = {k: Path(out_dir) / v for k, v in CONDITION_FILES.items()}
    write_csv(paths["csv"], frame)
    atomic_write_text(paths["markdown"], condition_report_text(results, context))
    return paths
