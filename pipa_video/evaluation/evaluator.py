"""Evaluators: one protocol, ``reset() / process(inputs, predictions) / evaluate()`` (detectron2's
``DatasetEvaluator``), so that one inference loop (``evaluation.loop``) feeds every metric in one pass.

``inputs`` is a collated batch of the clip contract (``data.clips``: ``img``, ``label``, ``has_label``,
``meta``, and ``rgb`` when the dataset keeps the frames as read) plus ``item``, each sample's position in
the dataset; ``predictions`` are the model's train ids (B, H, W) int64 at the label's size, or whatever
the loop's predictor returns for evaluators made for it (the server export's labels and confidence).
``evaluate()`` returns a dict; in a multi-process run every rank calls it and gets the whole split's
numbers (the evaluators are handed the collectives they need: ``reduce_sum``, ``gather_objects``).

- ``SemSegEvaluator``: the confusion matrix under a protocol (``metrics.SegEvaluator``), over the
  labelled frames, overall and per condition (``conditions``);
- ``TemporalEvaluator``: flicker and flow-warped consistency over each sequence's frames in order
  (``temporal.TemporalConsistency``);
- ``DatasetEvaluators``: several as one, each result under the evaluator's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from pipa_video.data.classes import ClassSet
from pipa_video.data.index import DatasetError
from pipa_video.evaluation.conditions import ConditionScorer
from pipa_video.evaluation.metrics import Protocol as MetricProtocol
from pipa_video.evaluation.metrics import ReduceFn, SegEvaluator
from pipa_video.evaluation.temporal import TemporalConsistency, merge_states

GatherFn = Callable[[object], list]  # every rank's picklable object, in rank order


class DatasetEvaluator(Protocol):
    """What the inference loop drives (detectron2's ``DatasetEvaluator``)."""

    name: str

    def reset(self) -> None:
        """Forget everything processed (called once before the loop)."""

    def process(self, inputs: Mapping[str, Any], predictions: Any) -> None:
        """Take one batch of inputs and the predictor's output for it."""

    def evaluate(self) -> dict:
        """The results over everything processed on every rank."""


class DatasetEvaluators:
    """Several evaluators as one; ``evaluate()`` gives ``{evaluator.name: its results}``."""

    name = "all"

    def __init__(self, evaluators: Sequence[DatasetEvaluator]) -> None:
        names = [e.name for e in evaluators]
        if len(set(names)) != len(names):
            raise ValueError(f"evaluator names must differ, got {names}")
        self.evaluators = list(evaluators)

    def reset(self) -> None:
        for evaluator in self.evaluators:
            evaluator.reset()

    def process(self, inputs: Mapping[str, Any], predictions: Any) -> None:
        for evaluator in self.evaluators:
            evaluator.process(inputs, predictions)

    def evaluate(self) -> dict:
        return {evaluator.name: evaluator.evaluate() for evaluator in self.evaluators}


@dataclass(frozen=True)
class FrameInput:
    """One sample of a batch, as the evaluators read it (key frame only)."""

    item: int  # position in the dataset
    sequence: str
    frame: int
    label: Tensor | None  # (H, W) int64 train ids, None when the frame has no ground truth
    rgb: np.ndarray | None  # (H, W, 3) uint8 as read, when the dataset keeps frames


def frame_inputs(inputs: Mapping[str, Any]) -> list[FrameInput]:
    """The key frame of every sample of a collated batch."""
    meta, rgb = inputs["meta"], inputs.get("rgb")
    out = []
    for b in range(len(meta["sequence"])):
        labelled = bool(inputs["has_label"][b, 0])
        out.append(FrameInput(item=int(inputs["item"][b]), sequence=str(meta["sequence"][b]),
                              frame=int(meta["frames"][0][b]), label=inputs["label"][b, 0] if labelled else None,
                              rgb=rgb[b, 0].numpy() if rgb is not None else None))
    return out


class SemSegEvaluator:
    """mIoU under a benchmark protocol over the labelled frames, overall and per condition.

    ``conditions``: the condition of every dataset item (ACDC, Dark Zurich; ``conditions.key_conditions``),
    or None. ``reduce_sum`` sums a tensor over ranks (None: one process). ``evaluate`` raises
    ``DatasetError`` when no labelled frame was scored on any rank.
    """

    name = "sem_seg"

    def __init__(self, *, class_set: ClassSet, protocol: MetricProtocol | str,
                 conditions: Sequence[str] | None = None, reduce_sum: ReduceFn | None = None) -> None:
        self.matrix = SegEvaluator(num_classes=class_set.num_classes, eval_ids=class_set.eval_ids,
                                   protocol=protocol, class_names=class_set.names)
        self.conditions = conditions
        self.reduce_sum = reduce_sum
        self.reset()

    def reset(self) -> None:
        self.scorer = ConditionScorer(self.matrix, self.conditions)
        self.skipped = 0

    def process(self, inputs: Mapping[str, Any], predictions: Tensor) -> None:
        for b, frame in enumerate(frame_inputs(inputs)):
            if frame.label is None:
                self.skipped += 1  # a frame without ground truth cannot be scored
                continue
            self.scorer.process(frame.item, predictions[b], frame.label)

    def evaluate(self) -> dict:
        if self.reduce_sum is not None:
            self.scorer.sum_across_ranks(self.reduce_sum)
        if self.matrix.num_images == 0:
            raise DatasetError(f"no labelled key frame to evaluate ({self.skipped} unlabelled ones skipped)")
        return self.scorer.evaluate()


class TemporalEvaluator:
    """Temporal consistency (flicker, flow-warped TC) of the predictions of each sequence, in frame order.

    Needs the frames as read (a dataset with ``keep_frames``) and every frame of a sequence on one
    rank, in order (the loop shards by sequence). ``skip``: sequences left out (photos: no frame
    pairs). ``gather_objects`` collects every rank's sequences (None: one process).
    """

    name = "temporal"

    def __init__(self, *, num_classes: int, size_wh: tuple[int, int] | None = None, skip: Sequence[str] = (),
                 gather_objects: GatherFn | None = None, keep_valid_masks: bool = False) -> None:
        self.tc = TemporalConsistency(num_classes=num_classes, size_wh=size_wh, keep_valid_masks=keep_valid_masks)
        self.skip = set(skip)
        self.gather_objects = gather_objects
        self.reset()

    def reset(self) -> None:
        self.tc.reset()
        self.first_item: dict[str, int] = {}

    def process(self, inputs: Mapping[str, Any], predictions: Tensor) -> None:
        for b, frame in enumerate(frame_inputs(inputs)):
            if frame.sequence in self.skip:
                continue
            if frame.rgb is None:
                raise ValueError("temporal consistency needs the frames as read: build the dataset with keep_frames")
            self.first_item.setdefault(frame.sequence, frame.item)
            label = None if frame.label is None else frame.label.numpy()
            self.tc.process(frame.rgb, _numpy(predictions[b]), label, sequence=frame.sequence, frame=frame.frame)

    def evaluate(self) -> dict:
        if self.gather_objects is not None:
            states = self.gather_objects((self.tc.state(), self.first_item))
            order = {name: item for _, first in states for name, item in first.items()}
            self.tc.load_state(merge_states([state for state, _ in states], order=order))
        return self.tc.evaluate()


def _numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
