"""Evaluation outputs: tables (CSV, markdown, JSON), plots, colour-coded predictions, overlay videos.

Every file is written to a temp file in the same folder, then renamed. Every report opens with its
``ReportContext``: protocol, class set and evaluated classes, split, checkpoint and how it was
selected, and the rider rule the labels were converted with, so that a number never travels
without the conditions it was measured under.
"""
from __future__ import annotations

import fractions
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

from pipa_video.atomic import atomic_path, atomic_write_text, publish, staged_dir, temp_path
from pipa_video.data.classes import ClassSet
from pipa_video.data.io import write_png
from pipa_video.errors import writing

staged_outputs = staged_dir  # the former name: predict stages its outputs beside OUT

UNKNOWN = "unknown"
OVERLAY_ALPHA = 0.5  # weight of the class colours in an overlay
VIDEO_CODEC = "libx264"  # H.264 in mp4 plays in every browser; PyAV's wheels ship libx264
VIDEO_PIX_FMT = "yuv420p"  # the chroma format browsers decode (needs even width and height)
VIDEO_OPTIONS = {"crf": "23", "preset": "veryfast"}
MAX_LEGEND_SEQUENCES = 12  # beyond this, the over-time plot shows the mean and spread over sequences


@dataclass
class ReportContext:
    """The conditions a number was measured under; printed at the top of every report."""

    protocol: str
    class_set: str
    evaluated_classes: list[str]
    split: str
    checkpoint: str = UNKNOWN
    selection: str = UNKNOWN  # how the checkpoint was chosen (checkpoint meta.selection)
    iteration: int | None = None
    rider: str = UNKNOWN  # rider rule the labels were converted with (index meta.json)
    index_dir: str = UNKNOWN
    inference: dict = field(default_factory=dict)
    resolution: str | None = None  # size the numbers were computed at, where it is a choice (TC reports)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [
            f"- protocol: {self.protocol}",
            f"- class set: {self.class_set}; evaluated classes ({len(self.evaluated_classes)}): "
            + ", ".join(self.evaluated_classes),
            f"- split: {self.split} (index {self.index_dir})",
            f"- checkpoint: {self.checkpoint}"
            + (f" (iteration {self.iteration})" if self.iteration is not None else ""),
            f"- checkpoint selection: {self.selection}",
            f"- rider rule of the labels: {self.rider}",
        ]
        if self.resolution:
            lines.append(f"- computed at: {self.resolution}")
        if self.inference:
            lines.append("- inference: " + ", ".join(f"{k}={v}" for k, v in self.inference.items()))
        lines += [f"- note: {n}" for n in self.notes]
        return lines


def checkpoint_selection(meta: dict | None) -> str:
    """How a checkpoint was chosen, from its ``meta.selection``; "unknown" when not recorded."""
    selection = (meta or {}).get("selection")
    return str(selection) if selection else UNKNOWN


# --- atomic writers ------------------------------------------------------------------------------
def write_json(path: str | os.PathLike, obj: dict) -> Path:
    atomic_write_text(path, json.dumps(_json_safe(obj), indent=2) + "\n")
    return Path(path)


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    atomic_write_text(path, frame.to_csv(index=False))
    return Path(path)


def _json_safe(obj):
    """nan/inf become null: strict JSON has no nan."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# --- tables --------------------------------------------------------------------------------------
def per_class_frame(results: dict) -> pd.DataFrame:
    """One row per class of a ``SegEvaluator.evaluate`` result."""
    frame = pd.DataFrame(results["per_class"])
    return frame.rename(columns={"name": "class"})[
        ["train_id", "class", "evaluated", "IoU", "Acc", "gt_pixels", "pred_pixels"]]


def markdown_table(frame: pd.DataFrame, *, float_format: str = "{:.2f}") -> str:
    """A GitHub markdown table (pandas' to_markdown needs tabulate, which is not a dependency)."""
    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            return "nan" if not math.isfinite(v) else float_format.format(v)
        return str(v)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def format_table(frame: pd.DataFrame) -> str:
    """A plain-text table for the terminal."""
    return frame.to_string(index=False, float_format=lambda v: f"{v:.2f}")


# --- plots ---------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_class_iou(frame: pd.DataFrame, path: str | os.PathLike, *, title: str,
                   class_set: ClassSet | None = None) -> Path:
    """Bar chart of the evaluated classes' IoU, bars in the class colours."""
    plt = _pyplot()
    rows = frame[frame["evaluated"]]
    colours = None
    if class_set is not None:
        colours = [np.asarray(class_set.palette[i]) / 255.0 for i in rows["train_id"]]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(rows)), 4.0))
    bars = ax.bar(rows["class"], rows["IoU"].fillna(0.0), color=colours, edgecolor="black", linewidth=0.5)
    for bar, value in zip(bars, rows["IoU"]):  # nan (class absent and never predicted) is not a 0
        ax.annotate("n/a" if not math.isfinite(value) else f"{value:.1f}", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelrotation=60)
    return _save_figure(fig, path)


def time_from_start(pairs: pd.DataFrame, fps: Mapping[str, float | None]) -> tuple[pd.Series, str]:
    """x of each pair: seconds since its sequence's first frame where every sequence's rate is known,
    else frames since it (or the pair number where frame numbers are unknown)."""
    if pairs["frame"].isna().any():
        return pairs.groupby("sequence", sort=False).cumcount() + 1.0, "frame pair"
    first = (pairs["frame"] - pairs["gap"].fillna(1)).groupby(pairs["sequence"], sort=False).transform("min")
    since = pairs["frame"] - first  # a pair sits at its later frame; the earliest pair's earlier frame is 0
    rates = pairs["sequence"].map(lambda name: fps.get(str(name)))
    if rates.notna().all() and (rates > 0).all():
        return since / rates, "time from the sequence's start (s)"
    return since, "frames from the sequence's start"


def plot_consistency_over_time(pairs: pd.DataFrame, path: str | os.PathLike, *, title: str,
                               fps: Mapping[str, float | None] | None = None,
                               metrics: Sequence[str] = ("tc_miou", "agreement", "flicker")) -> Path:
    """One panel per metric against time from each sequence's start (seconds where ``fps`` gives every
    sequence's rate): one line per sequence with a legend up to ``MAX_LEGEND_SEQUENCES``, beyond that
    the mean over sequences at each time with the 10-90% band."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(metrics), 1, figsize=(8.0, 2.4 * len(metrics)), sharex=True, squeeze=False)
    x, xlabel = time_from_start(pairs, fps or {}) if len(pairs) else (pd.Series(dtype=float), "time")
    sequences = list(dict.fromkeys(pairs["sequence"])) if len(pairs) else []
    for ax, metric in zip(axes[:, 0], metrics):
        if len(sequences) <= MAX_LEGEND_SEQUENCES:
            for name in sequences:
                rows = pairs["sequence"] == name
                ax.plot(x[rows], pairs.loc[rows, metric], marker=".", linewidth=1, label=str(name))
        else:
            grouped = pairs[metric].groupby(x.round(3))
            ax.fill_between(grouped.quantile(0.1).index, grouped.quantile(0.1), grouped.quantile(0.9), alpha=0.3,
                            label="10-90% of sequences")
            ax.plot(grouped.mean().index, grouped.mean(), linewidth=1.5, label=f"mean of {len(sequences)} sequences")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_ylim(0, 100)
    axes[-1, 0].set_xlabel(xlabel)
    axes[0, 0].set_title(title, fontsize=9)
    if sequences:
        axes[0, 0].legend(fontsize=7, loc="lower left", ncol=2 if len(sequences) > 6 else 1)
    return _save_figure(fig, path)


# --- images and video ----------------------------------------------------------------------------
def colorize(pred: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """RGB uint8 (H, W, 3) of train ids in the class set's palette (ignore is black)."""
    return class_set.palette_array()[np.asarray(pred, np.uint8)]


def overlay(frame_rgb: np.ndarray, colour_rgb: np.ndarray, *, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """Alpha blend of the class colours over the frame (resized to the prediction's size)."""
    if frame_rgb.shape[:2] != colour_rgb.shape[:2]:
        frame_rgb = cv2.resize(frame_rgb, (colour_rgb.shape[1], colour_rgb.shape[0]), interpolation=cv2.INTER_AREA)
    return cv2.addWeighted(colour_rgb, alpha, frame_rgb, 1.0 - alpha, 0.0)


def write_colour_png(path: str | os.PathLike, pred: np.ndarray, class_set: ClassSet) -> Path:
    write_png(path, cv2.cvtColor(colorize(pred, class_set), cv2.COLOR_RGB2BGR))
    return Path(path)


LEGEND_ROW = 16  # pixels per class in the legend panel


def legend_panel(class_set: ClassSet, *, height: int) -> np.ndarray:
    """RGB (max(height, rows), w, 3): a swatch and the name of every class, one row each."""
    row = max(LEGEND_ROW, min(28, height // max(1, class_set.num_classes)))
    scale = row / 40.0
    names = class_set.names
    text_w = max(cv2.getTextSize(n, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for n in names)
    panel = np.full((max(height, row * len(names) + 8), row + text_w + 16, 3), 255, np.uint8)
    for i, (name, colour) in enumerate(zip(names, class_set.palette)):
        top = 4 + i * row
        cv2.rectangle(panel, (4, top + 2), (row, top + row - 2), tuple(int(c) for c in colour), -1)
        cv2.rectangle(panel, (4, top + 2), (row, top + row - 2), (0, 0, 0), 1)
        cv2.putText(panel, name, (row + 8, top + int(row * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return panel


def with_legend(frame_rgb: np.ndarray, legend: np.ndarray) -> np.ndarray:
    """The frame with the legend panel on its right; a frame shorter than the legend is scaled up to
    its height (small frames stay readable), a taller one gets the legend padded with black."""
    if frame_rgb.shape[0] < legend.shape[0]:
        scale = legend.shape[0] / frame_rgb.shape[0]
        frame_rgb = cv2.resize(frame_rgb, (round(frame_rgb.shape[1] * scale), legend.shape[0]),
                               interpolation=cv2.INTER_LINEAR)
    height = max(frame_rgb.shape[0], legend.shape[0])
    pad = lambda img: np.pad(img, ((0, height - img.shape[0]), (0, 0), (0, 0)))  # noqa: E731
    return np.concatenate([pad(frame_rgb), pad(legend)], axis=1)


def write_overlay_png(path: str | os.PathLike, frame_rgb: np.ndarray, legend: np.ndarray | None = None) -> Path:
    """An overlay picture (a photo's), with the legend when given."""
    image = frame_rgb if legend is None else with_legend(frame_rgb, legend)
    write_png(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return Path(path)


def _even(n: int) -> int:
    return n + n % 2


class OverlayVideoWriter:
    """An H.264 mp4 (browser-playable: yuv420p, moov atom first) encoded by PyAV frame by frame into a
    temp file, renamed into place on ``close``. Frames are resized to ``size_wh``; odd sizes are
    padded by one pixel, as yuv420p needs even ones."""

    def __init__(self, path: str | os.PathLike, *, fps: float, size_wh: tuple[int, int]) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size_wh = tuple(int(s) for s in size_wh)
        self._tmp = temp_path(self.path, keep_suffix=True)
        fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else 10.0
        self.fps = fractions.Fraction(fps).limit_denominator(1001)
        try:
            self._container = av.open(str(self._tmp), "w", format="mp4", options={"movflags": "+faststart"})
            self._stream = self._container.add_stream(VIDEO_CODEC, rate=self.fps, options=dict(VIDEO_OPTIONS))
        except (av.FFmpegError, ValueError) as err:
            self._tmp.unlink(missing_ok=True)
            raise RuntimeError(f"PyAV cannot open an {VIDEO_CODEC} writer for {self.path}: {err}") from None
        self._stream.width, self._stream.height = _even(self.size_wh[0]), _even(self.size_wh[1])
        self._stream.pix_fmt = VIDEO_PIX_FMT
        self.frames = 0

    def write(self, frame_rgb: np.ndarray) -> None:
        import av

        if (frame_rgb.shape[1], frame_rgb.shape[0]) != self.size_wh:
            frame_rgb = cv2.resize(frame_rgb, self.size_wh, interpolation=cv2.INTER_AREA)
        pad = ((0, self._stream.height - frame_rgb.shape[0]), (0, self._stream.width - frame_rgb.shape[1]), (0, 0))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.pad(frame_rgb, pad), np.uint8), format="rgb24")
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> Path:
        if self.frames == 0:
            self.abort()
            raise RuntimeError(f"no frames were written to {self.path}")
        self._container.mux(self._stream.encode())  # flush the encoder's delayed frames
        self._container.close()
        with writing(self.path):
            return publish(self._tmp, self.path)

    def abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # an encoder that failed mid-frame may refuse to close cleanly; the file goes anyway
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "OverlayVideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --- whole reports -------------------------------------------------------------------------------
EVAL_FILES = dict(csv="per_class.csv", markdown="report.md", json="summary.json", plot="per_class_iou.png")
TC_FILES = dict(sequences_csv="tc_sequences.csv", pairs_csv="tc_pairs.csv", markdown="tc_report.md",
                json="tc_summary.json", plot="tc_over_time.png")


def _headline(results: dict) -> pd.DataFrame:
    return pd.DataFrame([{k: results[k] for k in ("mIoU", "mAcc", "aAcc", "num_images")}])


def eval_report_text(results: dict, context: ReportContext) -> str:
    """The markdown report of a ``SegEvaluator.evaluate`` result."""
    frame = per_class_frame(results)
    return "\n".join([
        f"# Segmentation evaluation: mIoU {results['mIoU']:.2f} ({context.protocol} protocol)", "",
        *context.lines(), f"- protocol definition: {results['protocol_description']}", "",
        markdown_table(_headline(results)), "",
        "Per class (IoU and Acc in percent; `evaluated` = enters the mIoU):", "",
        markdown_table(frame), "",
    ])


def write_eval_report(out_dir: str | os.PathLike, results: dict, context: ReportContext, *,
                      class_set: ClassSet | None = None) -> dict[str, Path]:
    """per_class.csv, report.md, summary.json and per_class_iou.png under ``out_dir``."""
    out_dir = Path(out_dir)
    frame = per_class_frame(results)
    paths = {k: out_dir / v for k, v in EVAL_FILES.items()}
    write_csv(paths["csv"], frame)
    atomic_write_text(paths["markdown"], eval_report_text(results, context))
    write_json(paths["json"], dict(context=asdict(context), **results))
    plot_class_iou(frame, paths["plot"], class_set=class_set,
                   title=f"{context.class_set}, {context.protocol} protocol, {context.split}: "
                         f"mIoU {results['mIoU']:.2f}")
    return paths


def tc_frames(tc_results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-sequence rows with an ``overall`` row last, per-pair rows) of a TemporalConsistency result."""
    overall = {k: v for k, v in tc_results["overall"].items() if k != "sequences"}
    sequences = pd.DataFrame([*tc_results["per_sequence"], dict(sequence="overall", **overall)])
    pairs = pd.DataFrame(tc_results["pairs"], columns=["sequence", "frame", "gap", "tc_miou", "flicker",
                                                       "valid_share", "agreement", "acc", "stable_share",
                                                       "stable_acc"])
    return sequences, pairs


TC_DEFINITIONS = (
    "tc_miou: IoU (mean over classes present) between the prediction at t and the prediction at t-1 "
    "warped to t by DIS optical flow, on valid pixels; agreement: share of valid pixels where they are "
    "equal; valid_share: pixels whose flow stays in the image and passes the forward-backward check; "
    "flicker: share of pixels whose class changes between t-1 and t without motion compensation; "
    "acc / stable_share / stable_acc (frames with labels): accuracy on labelled pixels, share of "
    "labelled pixels whose prediction is stable (valid and agreeing), accuracy on those. Percent; "
    "overall rows are pixel-weighted."
)


def tc_report_text(tc_results: dict, context: ReportContext) -> str:
    sequences, _ = tc_frames(tc_results)
    o = tc_results["overall"]
    return "\n".join([
        f"# Temporal consistency: TC mIoU {o['tc_miou']:.2f}, flicker {o['flicker']:.2f}", "",
        *context.lines(), f"- definitions: {TC_DEFINITIONS}", "",
        markdown_table(sequences), "",
    ])


def write_tc_report(out_dir: str | os.PathLike, tc_results: dict, context: ReportContext, *,
                    plot: bool = True, fps: Mapping[str, float | None] | None = None) -> dict[str, Path]:
    """tc_sequences.csv, tc_pairs.csv, tc_report.md, tc_summary.json and tc_over_time.png."""
    out_dir = Path(out_dir)
    sequences, pairs = tc_frames(tc_results)
    paths = {k: out_dir / v for k, v in TC_FILES.items()}
    write_csv(paths["sequences_csv"], sequences)
    write_csv(paths["pairs_csv"], pairs)
    atomic_write_text(paths["markdown"], tc_report_text(tc_results, context))
    write_json(paths["json"], dict(context=asdict(context), definitions=TC_DEFINITIONS,
                                   resolution=tc_results["resolution"], overall=tc_results["overall"],
                                   per_sequence=tc_results["per_sequence"]))
    if plot:
        plot_consistency_over_time(pairs, paths["plot"], fps=fps, title=f"{context.class_set}, {context.split}: "
                                   f"temporal consistency per sequence")
    else:
        paths.pop("plot")
    return paths
