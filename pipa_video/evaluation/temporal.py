"""Temporal consistency of video predictions, measured with OpenCV optical flow (no flow network).

For consecutive frames t-1, t of one sequence:

- flicker rate: share of pixels whose predicted class changes between t-1 and t (no motion
  compensation; a moving camera flickers even when the segmentation is perfect);
- flow-warped consistency (the unified video-DA baseline's TC): the prediction at t-1 is warped to t
  with DIS optical flow computed on the grey frames (flow from t to t-1, nearest-neighbour remap), and
  compared with the prediction at t: IoU (mean over classes present) and pixel agreement. Pixels
  whose flow leaves the image or fails the forward-backward check (occlusions, Sundaram et al. 2010:
  ``|a + b|^2 < 0.01 (|a|^2 + |b|^2) + 0.5``) are masked out;
- with ground truth at t: the share of labelled pixels whose prediction is stable (valid and equal
  to the warped previous prediction) and the accuracy on them, next to the accuracy on all labelled
  pixels.

``TemporalConsistency`` accumulates these per sequence and overall. Overall numbers are
pixel-weighted: sums of pixel counts (and one confusion matrix) over every frame pair. All numbers
are in percent. By default they are computed at the predictions' size; ``size_wh`` (config
``evaluation.tc_resize``) computes them on frames (area) and predictions and labels (nearest)
resized to (w, h) instead, since two DIS flows and the warping per frame are slow at 2048x1024.
The result's ``resolution`` says which size was used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from pipa_video.data.classes import IGNORE_INDEX

# Forward-backward consistency (Sundaram et al. 2010, used by Ruder et al. 2016 and later TC metrics).
FB_RELATIVE = 0.01
FB_ABSOLUTE = 0.5

# flow_fn(grey_from, grey_to) -> (H, W, 2) float32 flow such that grey_from(x) ~ grey_to(x + flow(x)).
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def dis_flow_fn(preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> FlowFn:
    """OpenCV's DIS optical flow as a ``FlowFn`` (one estimator object, reused across calls)."""
    dis = cv2.DISOpticalFlow_create(preset)

    def flow(grey_from: np.ndarray, grey_to: np.ndarray) -> np.ndarray:
        return dis.calc(np.ascontiguousarray(grey_from), np.ascontiguousarray(grey_to), None)

    return flow


def to_grey(frame_rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """uint8 grey frame at ``size_hw`` (the prediction size)."""
    grey = frame_rgb if frame_rgb.ndim == 2 else cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
    if grey.shape != tuple(size_hw):
        grey = cv2.resize(grey, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(grey, dtype=np.uint8)


def resize_nearest(values: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """``values`` (H, W) at ``size_wh`` = (w, h), nearest pixel centre: class ids must not be blended."""
    h, w = values.shape
    out_w, out_h = size_wh
    if (out_w, out_h) == (w, h):
        return values
    rows = np.minimum(((np.arange(out_h) + 0.5) * (h / out_h)).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * (w / out_w)).astype(np.int64), w - 1)
    return values[rows[:, None], cols[None, :]]


def _sample_coords(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel samples from: (x + flow_x, y + flow_y) as float32 maps for cv2.remap."""
    h, w = flow.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    return xs, ys


def _sq_norm(flow: np.ndarray) -> np.ndarray:
    return np.einsum("hwc,hwc->hw", flow, flow)  # several times faster than (f ** 2).sum(-1)


def warp_nearest(values: np.ndarray, flow: np.ndarray, *, coords=None) -> np.ndarray:
    """``values`` (H, W) sampled at x + flow(x), nearest neighbour (class ids must not be blended)."""
    map_x, map_y = coords if coords is not None else _sample_coords(flow)
    return cv2.remap(values, map_x, map_y, interpolation=cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_INDEX)


def inside_mask(flow: np.ndarray, *, coords=None) -> np.ndarray:
    """True where x + flow(x) stays inside the image."""
    h, w = flow.shape[:2]
    map_x, map_y = coords if coords is not None else _sample_coords(flow)
    return (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)


def fb_consistent_mask(flow_t_to_prev: np.ndarray, flow_prev_to_t: np.ndarray, *,
                       relative: float = FB_RELATIVE, absolute: float = FB_ABSOLUTE, coords=None) -> np.ndarray:
    """True where following a flow to t-1 and the other flow back lands where it started.

    a = flow t -> t-1 at x; b = flow t-1 -> t at x + a (bilinear). Consistent when
    |a + b|^2 < relative * (|a|^2 + |b|^2) + absolute.
    """
    map_x, map_y = coords if coords is not None else _sample_coords(flow_t_to_prev)
    b = cv2.remap(flow_prev_to_t, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = flow_t_to_prev
    return _sq_norm(a + b) < relative * (_sq_norm(a) + _sq_norm(b)) + absolute


@dataclass
class PairStats:
    """Pixel counts of one frame pair (or a sum of many): every ratio is computed from these."""

    pixels: int = 0
    changed: int = 0  # prediction at t differs from the prediction at t-1 (no warping)
    valid: int = 0  # flow inside the image and forward-backward consistent
    agree: int = 0  # valid and prediction at t equals the warped prediction at t-1
    labelled: int = 0  # ground truth known at t
    correct: int = 0
    stable_labelled: int = 0  # labelled and agree
    stable_correct: int = 0

    def add(self, other: "PairStats") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def ratios(self) -> dict:
        return dict(
            flicker=_ratio(self.changed, self.pixels),
            valid_share=_ratio(self.valid, self.pixels),
            agreement=_ratio(self.agree, self.valid),
            acc=_ratio(self.correct, self.labelled),
            stable_share=_ratio(self.stable_labelled, self.labelled),
            stable_acc=_ratio(self.stable_correct, self.stable_labelled),
        )


def _ratio(num: int, den: int) -> float:
    """In percent, like every number this module reports; nan when nothing was counted."""
    return 100.0 * num / den if den else float("nan")


def miou_present(matrix: np.ndarray) -> float:
    """Mean IoU over classes present in either map (union > 0); nan when nothing was counted."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()) if present.any() else float("nan")


def pair_consistency(pred_prev: np.ndarray, pred: np.ndarray, *, flow_t_to_prev: np.ndarray,
                     flow_prev_to_t: np.ndarray, num_classes: int, label: np.ndarray | None = None,
                     ignore_index: int = IGNORE_INDEX) -> tuple[PairStats, np.ndarray, np.ndarray]:
    """Counts, the (C, C) matrix (warped t-1 vs t on valid pixels) and the valid mask of one pair."""
    coords = _sample_coords(flow_t_to_prev)
    warped = warp_nearest(pred_prev.astype(np.uint8), flow_t_to_prev, coords=coords)
    valid = inside_mask(flow_t_to_prev, coords=coords) & fb_consistent_mask(flow_t_to_prev, flow_prev_to_t,
                                                                            coords=coords)
    valid &= warped != IGNORE_INDEX
    agree = valid & (warped == pred)
    index = warped[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    matrix = np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    stats = PairStats(pixels=pred.size, changed=int((pred != pred_prev).sum()), valid=int(valid.sum()),
                      agree=int(agree.sum()))
    if label is not None:
        known = label != ignore_index
        correct = known & (pred == label)
        stats.labelled, stats.correct = int(known.sum()), int(correct.sum())
        stats.stable_labelled = int((known & agree).sum())
        stats.stable_correct = int((correct & agree).sum())
    return stats, matrix, valid


@dataclass
class _Sequence:
    stats: PairStats = field(default_factory=PairStats)
    matrix: np.ndarray | None = None
    frames: int = 0


class TemporalConsistency:
    """Feed the frames of each sequence in order; ``evaluate`` gives per-sequence and overall numbers."""

    def __init__(self, *, num_classes: int, flow_fn: FlowFn | None = None, ignore_index: int = IGNORE_INDEX,
                 keep_valid_masks: bool = False, size_wh: tuple[int, int] | None = None) -> None:
        if num_classes > 255:
            raise ValueError("temporal consistency stores predictions as uint8: at most 255 classes")
        if size_wh is not None and (len(size_wh) != 2 or min(size_wh) < 1):
            raise ValueError(f"size_wh must be two positive ints (w, h), got {size_wh!r}")
        self.num_classes = num_classes
        self.size_wh = None if size_wh is None else (int(size_wh[0]), int(size_wh[1]))
        self.flow_fn = flow_fn or dis_flow_fn()
        self.ignore_index = ignore_index
        self.keep_valid_masks = keep_valid_masks  # for tests and visualisation
        self.reset()

    def reset(self) -> None:
        self.sequences: dict[str, _Sequence] = {}
        self.pairs: list[dict] = []
        self.valid_masks: list[np.ndarray] = []
        self._current: str | None = None
        self._prev: tuple[np.ndarray, np.ndarray, int | None] | None = None  # grey, pred, frame
        self.computed_wh: dict[tuple[int, int], None] = {}  # sizes the pairs were computed at, in order

    def process(self, frame_rgb: np.ndarray, pred: np.ndarray, label: np.ndarray | None = None, *,
                sequence: str, frame: int | None = None) -> dict | None:
        """Add the next frame of ``sequence``; returns the pair's numbers (None for a first frame)."""
        pred = np.asarray(pred)
        if pred.ndim != 2:
            raise ValueError(f"expected an (H, W) prediction, got shape {pred.shape}")
        if pred.size and (pred.min() < 0 or pred.max() >= self.num_classes):
            raise ValueError(f"sequence {sequence!r} frame {frame}: prediction ids {pred.min()}..{pred.max()} "
                             f"outside the train ids 0..{self.num_classes - 1}")
        if label is not None and np.asarray(label).shape != pred.shape:
            raise ValueError(f"sequence {sequence!r} frame {frame}: label {np.asarray(label).shape} "
                             f"does not match the prediction {pred.shape}")
        if sequence != self._current:
            if sequence in self.sequences:
                raise ValueError(f"sequence {sequence!r} was already processed and appears again: feed "
                                 f"the frames of each sequence together and in order")
            self.sequences[sequence] = _Sequence(matrix=np.zeros((self.num_classes,) * 2, np.int64))
            self._current, self._prev = sequence, None
        seq = self.sequences[sequence]
        seq.frames += 1
        if self.size_wh is not None:
            pred = resize_nearest(pred, self.size_wh)
            label = None if label is None else resize_nearest(np.asarray(label), self.size_wh)
        self.computed_wh[(pred.shape[1], pred.shape[0])] = None
        grey = to_grey(frame_rgb, pred.shape)
        pred = pred.astype(np.uint8)
        row = None
        if self._prev is not None:
            row = self._add_pair(seq, grey, pred, label, sequence=sequence, frame=frame)
        self._prev = (grey, pred, frame)
        return row

    def _add_pair(self, seq: _Sequence, grey: np.ndarray, pred: np.ndarray, label: np.ndarray | None, *,
                  sequence: str, frame: int | None) -> dict:
        grey_prev, pred_prev, frame_prev = self._prev
        if grey_prev.shape != grey.shape:
            raise ValueError(f"sequence {sequence!r}: frame {frame} has size {grey.shape}, the previous "
                             f"frame {grey_prev.shape}; predictions of one sequence must share a size")
        stats, matrix, valid = pair_consistency(
            pred_prev, pred, flow_t_to_prev=self.flow_fn(grey, grey_prev),
            flow_prev_to_t=self.flow_fn(grey_prev, grey), num_classes=self.num_classes,
            label=None if label is None else np.asarray(label), ignore_index=self.ignore_index)
        seq.stats.add(stats)
        seq.matrix += matrix
        if self.keep_valid_masks:
            self.valid_masks.append(valid)
        gap = frame - frame_prev if frame is not None and frame_prev is not None else None
        row = dict(sequence=sequence, frame=frame, gap=gap, tc_miou=100.0 * miou_present(matrix), **stats.ratios())
        self.pairs.append(row)
        return row

    def state(self) -> dict:
        """What ``evaluate`` reads, as picklable values: to gather the sequences of several ranks."""
        return dict(sequences=dict(self.sequences), pairs=list(self.pairs), computed_wh=list(self.computed_wh))

    def load_state(self, state: dict) -> None:
        """Replace what was processed by ``state`` (e.g. ``merge_states`` of every rank's)."""
        self.reset()
        self.sequences = dict(state["sequences"])
        self.pairs = list(state["pairs"])
        self.computed_wh = dict.fromkeys(tuple(wh) for wh in state["computed_wh"])

    def evaluate(self) -> dict:
        """``overall`` and ``per_sequence`` ratios (flicker, agreement, tc_miou, ...), ``pairs`` and
        ``resolution``: the requested ``size_wh`` (None: the predictions' size) and every (w, h) computed at."""
        per_sequence = []
        total, total_matrix = PairStats(), np.zeros((self.num_classes,) * 2, np.int64)
        for name, seq in self.sequences.items():
            total.add(seq.stats)
            total_matrix += seq.matrix
            per_sequence.append(dict(sequence=name, frames=seq.frames, pairs=max(seq.frames - 1, 0),
                                     tc_miou=100.0 * miou_present(seq.matrix), **seq.stats.ratios()))
        overall = dict(sequences=len(self.sequences), frames=sum(s.frames for s in self.sequences.values()),
                       pairs=len(self.pairs), tc_miou=100.0 * miou_present(total_matrix), **total.ratios())
        resolution = dict(size_wh=None if self.size_wh is None else list(self.size_wh),
                          computed_wh=[list(wh) for wh in self.computed_wh])
        return dict(overall=overall, per_sequence=per_sequence, pairs=list(self.pairs), resolution=resolution)


def merge_states(states: list[dict], *, order: dict[str, int]) -> dict:
    """One ``TemporalConsistency.state`` from several ranks' (each holding whole sequences), sequences and
    pairs in ``order`` (sequence -> its first position in the dataset)."""
    sequences = {name: seq for state in states for name, seq in state["sequences"].items()}
    names = sorted(sequences, key=lambda name: order.get(name, len(order)))
    rank = {name: i for i, name in enumerate(names)}
    pairs = sorted((p for state in states for p in state["pairs"]), key=lambda p: rank[p["sequence"]])
    sizes = dict.fromkeys(tuple(wh) for state in states for wh in state["computed_wh"])
    return dict(sequences={n: sequences[n] for n in names}, pairs=pairs, computed_wh=list(sizes))
