"""Semantic segmentation metrics over a confusion matrix, under the two benchmark protocols.

The matrix is ``C x C`` int64 with rows = ground truth and columns = prediction, accumulated with
``np.bincount`` (detectron2's ``SemSegEvaluator`` style). Two protocols differ only in which pixels
enter it (../shared/docs/datasets.md, "Evaluation protocols"):

- ``davsn``: every pixel with a known ground truth. A prediction of a class outside the reported
  set (a 19-class head's extra classes, SYNTHIA-Seq's trained-but-unreported fence) stays in the
  matrix as a false positive of that class and a false negative of the true one, i.e. an error.
- ``unified``: pixels whose ground truth OR prediction is a class outside the reported set are
  dropped before counting (the unified video-DA baseline).

IoU = diag / (row + col - diag); mIoU = nanmean over the reported classes; a class that is neither in
the ground truth nor predicted has IoU nan and does not enter the mean. Numbers are in percent.
"""
from __future__ import annotations

from enum import Enum
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch

from pipa_video.data.classes import IGNORE_INDEX


E = TypeVar("E", bound=Enum)


def parse_enum(cls: type[E], value: E | str, *, what: str) -> E:
    """``cls(value)``, or a ``ValueError`` naming ``what`` and the valid values (config typos read well)."""
    try:
        return cls(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not one of {[m.value for m in cls]}") from None


class Protocol(str, Enum):
    DAVSN = "davsn"
    UNIFIED = "unified"

    @classmethod
    def parse(cls, value: "Protocol | str") -> "Protocol":
        return parse_enum(cls, value, what="evaluation protocol")


PROTOCOL_DESCRIPTIONS = {
    Protocol.DAVSN: ("DA-VSN protocol: one confusion matrix over the whole split, IoU = diag / "
                     "(row + col - diag), mIoU = nanmean over the reported classes; a prediction of "
                     "a class outside the reported set counts as an error"),
    Protocol.UNIFIED: ("unified-baseline protocol: pixels whose ground truth or prediction is a class "
                       "outside the reported set are dropped, then one confusion matrix over the "
                       "whole split, mIoU = nanmean over the reported classes"),
}

# An all-reduce that sums a tensor across ranks: returns the summed tensor, or None when it reduced
# in place (as torch.distributed.all_reduce does).
ReduceFn = Callable[[torch.Tensor], "torch.Tensor | None"]


def confusion_matrix(pred: np.ndarray, label: np.ndarray, *, num_classes: int,
                     ignore_index: int = IGNORE_INDEX, keep_ids: np.ndarray | None = None) -> np.ndarray:
    """(C, C) int64 counts of (ground truth, prediction) over pixels whose label is not ignored.

    ``keep_ids`` (unified protocol): only pixels whose label AND prediction are among these ids count.
    """
    label = label.reshape(-1)
    pred = pred.reshape(-1)
    keep = label != ignore_index
    if keep_ids is not None:
        # A boolean look-up table is much faster than np.isin on millions of pixels.
        is_kept = np.zeros(max(num_classes, ignore_index + 1), bool)
        is_kept[keep_ids] = True
        keep &= is_kept[label] & is_kept[pred]
    index = label[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _check_ids(values: np.ndarray, *, num_classes: int, allowed_extra: tuple[int, ...], what: str) -> None:
    in_range = (values >= 0) & (values < num_classes)
    for extra in allowed_extra:
        in_range |= values == extra
    if in_range.all():
        return
    present = np.unique(values)
    bad = present[((present < 0) | (present >= num_classes)) & ~np.isin(present, allowed_extra)]
    if bad.size:
        extra = f" or {allowed_extra[0]}" if allowed_extra else ""
        raise ValueError(f"{what} contain ids {bad.tolist()[:10]}; expected train ids 0..{num_classes - 1}{extra}")


class SegEvaluator:
    """Accumulates a confusion matrix over a split and reports IoU under one protocol."""

    def __init__(self, *, num_classes: int, eval_ids: Sequence[int], protocol: Protocol | str,
                 ignore_index: int = IGNORE_INDEX, class_names: Sequence[str] | None = None) -> None:
        self.num_classes = int(num_classes)
        self.eval_ids = np.asarray(sorted(eval_ids), np.int64)
        if self.eval_ids.size == 0 or self.eval_ids.min() < 0 or self.eval_ids.max() >= self.num_classes:
            raise ValueError(f"eval_ids {list(eval_ids)} must be a non-empty subset of 0..{self.num_classes - 1}")
        self.protocol = Protocol.parse(protocol)
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        self.reset()

    def reset(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.num_images = 0

    def process(self, pred: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor) -> None:
        """Add one (H, W) or a batch (B, H, W) of integer predictions and train-id labels."""
        pred, label = _to_numpy(pred), _to_numpy(label)
        if pred.shape != label.shape:
            raise ValueError(f"got predictions whose size does not match the labels: prediction "
                             f"{tuple(pred.shape)} vs label {tuple(label.shape)}; upsample the "
                             f"prediction to the label size before evaluating")
        if pred.ndim not in (2, 3):
            raise ValueError(f"expected (H, W) or (B, H, W) predictions, got shape {tuple(pred.shape)}")
        _check_ids(pred, num_classes=self.num_classes, allowed_extra=(), what="predictions")
        _check_ids(label, num_classes=self.num_classes, allowed_extra=(self.ignore_index,), what="labels")
        keep_ids = self.eval_ids if self.protocol is Protocol.UNIFIED else None
        self.matrix += confusion_matrix(pred, label, num_classes=self.num_classes,
                                        ignore_index=self.ignore_index, keep_ids=keep_ids)
        self.num_images += 1 if pred.ndim == 2 else pred.shape[0]

    def sum_across_ranks(self, reduce_fn: ReduceFn) -> None:
        """Replace this rank's counts by their sum over all ranks (one all-reduce of an int64 tensor)."""
        packed = torch.from_numpy(np.append(self.matrix.reshape(-1), self.num_images).astype(np.int64))
        summed = reduce_fn(packed)
        summed = (packed if summed is None else summed).cpu().numpy()
        self.matrix = summed[:-1].reshape(self.num_classes, self.num_classes).copy()
        self.num_images = int(summed[-1])

    def evaluate(self) -> dict:
        """Per-class IoU / accuracy and the means over the reported classes, in percent."""
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        gt = m.sum(1)
        predicted = m.sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = tp / (gt + predicted - tp)
            acc = tp / gt
        ev = self.eval_ids
        gt_eval = gt[ev].sum()
        mean_or_nan = lambda x: float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")  # noqa: E731
        per_class = [
            dict(train_id=c, name=self.class_names[c], evaluated=bool(c in ev), IoU=_pct(iou[c]),
                 Acc=_pct(acc[c]), gt_pixels=int(gt[c]), pred_pixels=int(predicted[c]))
            for c in range(self.num_classes)
        ]
        return dict(
            protocol=self.protocol.value,
            protocol_description=PROTOCOL_DESCRIPTIONS[self.protocol],
            evaluated_classes=[self.class_names[c] for c in ev],
            mIoU=_pct(mean_or_nan(iou[ev])),
            mAcc=_pct(mean_or_nan(acc[ev])),
            # Pixel accuracy over pixels whose ground truth is a reported class.
            aAcc=_pct(tp[ev].sum() / gt_eval if gt_eval else float("nan")),
            num_images=self.num_images,
            num_pixels=int(m.sum()),
            per_class=per_class,
        )


def _pct(x: float) -> float:
    return float(100.0 * x)


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
