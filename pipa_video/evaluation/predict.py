"""``pipa-video predict``: a model's predictions on footage, as pictures, an overlay video and a report.

INPUT is anything ``data_tools/prepare_video.py`` accepts (a video, a photo, a folder of videos,
frame folders and photos) or an index it wrote. A raw input becomes an index in memory
(``data.footage.index_footage``: only decodable frames, the measured frame rate, and the frames of a
video whose random access is not exact extracted to a scratch folder), so every frame is read by the
training code's ``ClipDataset``, exactly as ``adapt`` and ``tc-report`` read it, and goes through the
one inference loop once. Per sequence:

- ``overlay/<sequence>.mp4`` (videos and frame folders: H.264, plays in a browser) or
  ``overlay/<sequence>.png`` (photos): the class colours over the frame, with a class legend;
- ``colour/<sequence>/<frame:06d>.png`` and ``train_ids/<sequence>/<frame:06d>.png`` (readable by
  ``tc-report --predictions OUT/train_ids``), unless ``frames=False`` (``--no-frames``);
- ``summary.json``: input, checkpoint, class set, and per sequence its source file, frames, frame
  rate, overlay file and temporal consistency.

Outputs are written to a folder beside OUT and moved into OUT only when the run completes
(``atomic.staged_dir``): a failed run leaves OUT as it was.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
from torch import nn

from pipa_video.atomic import staged_dir
from pipa_video.data.build import inference_dataset
from pipa_video.data.classes import ClassSet
from pipa_video.data.footage import Kind, RootImages, index_footage
from pipa_video.data.index import INDEX_FILE, FrameIndex, load_index
from pipa_video.data.io import write_png
from pipa_video.evaluation.evaluator import DatasetEvaluators, FrameInput, TemporalEvaluator, frame_inputs
from pipa_video.evaluation.loop import PREDICTION_NAME, inference_on_dataset
from pipa_video.evaluation.report import (OverlayVideoWriter, checkpoint_selection, colorize, legend_panel, overlay,
                                          with_legend, write_colour_png, write_json, write_overlay_png)
from pipa_video.evaluation.runner import build_eval_settings, make_predictor, tc_resolution

DEFAULT_FPS = 10.0  # overlay rate of frame folders, whose rate nothing records
SUMMARY = "summary.json"


@dataclass(frozen=True)
class SequenceInfo:
    """Where one sequence of the input comes from."""

    kind: Kind
    source: Path  # the video, frame folder or photo
    fps: float | None  # a video's measured rate


def index_sequences(index: FrameIndex, kinds: Mapping[str, Kind] | None = None,
                    sources: Mapping[str, Path] | None = None) -> dict[str, SequenceInfo]:
    """Each sequence of ``index`` in order: a video (``meta.videos``), a photo (one frame) or frames."""
    videos = {str(r["sequence"]): r for r in index.meta.videos.values()}
    first_rows = index.frames.groupby("sequence", sort=False).head(1).index
    out = {}
    for row in first_rows:
        name = str(index.frames["sequence"].iat[row])
        count = int((index.frames["sequence"] == name).sum())
        kind = (kinds or {}).get(name) or (Kind.VIDEO if name in videos else Kind.PHOTO if count == 1 else Kind.FRAMES)
        source = (sources or {}).get(name) or index.image_path(row)
        out[name] = SequenceInfo(kind, Path(source), videos[name].get("fps") if name in videos else None)
    return out


@contextlib.contextmanager
def footage_input(input_path: str | os.PathLike, *, root_images: RootImages | str,
                  scratch_beside: Path) -> Iterator[tuple[FrameIndex, dict[str, SequenceInfo]]]:
    """The input's index and sequences: a prepared index as written, raw footage indexed in memory
    (frames it must extract go to a scratch folder beside the output, removed afterwards)."""
    input_path = Path(input_path)
    if input_path.is_dir() and (input_path / INDEX_FILE).is_file():
        index = load_index(input_path)
        yield index, index_sequences(index)
        return
    scratch_beside.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_beside.parent, prefix=f".{scratch_beside.name}.frames-") as scratch:
        footage = index_footage(input_path, scratch, root_images=RootImages(root_images))
        kinds = {name: item.kind for item, name in zip(footage.items, footage.names)}
        sources = {name: item.path for item, name in zip(footage.items, footage.names)}
        yield footage.index, index_sequences(footage.index, kinds, sources)


class PredictionWriter:
    """An evaluator that writes what ``predict`` shows: overlays (video or picture), colour and train-id PNGs.

    ``evaluate()`` closes the last video and returns one summary entry per sequence, in input order.
    """

    name = "outputs"

    def __init__(self, stage: Path, *, class_set: ClassSet, sequences: Mapping[str, SequenceInfo],
                 fps: float | None, save_frames: bool) -> None:
        self.stage, self.class_set, self.sequences = stage, class_set, sequences
        self.fps, self.save_frames = fps, save_frames
        self.reset()

    def reset(self) -> None:
        self.entries: dict[str, dict] = {}
        self.video: OverlayVideoWriter | None = None
        self.legend: np.ndarray | None = None

    def _start(self, frame: FrameInput) -> dict:
        if self.video is not None:
            self.video.close()
            self.video = None
        info = self.sequences[frame.sequence]
        photo = info.kind is Kind.PHOTO
        self.legend = legend_panel(self.class_set, height=frame.rgb.shape[0])
        entry = dict(sequence=frame.sequence, kind=info.kind.value, source=str(info.source), frames=0,
                     fps=None if photo else (self.fps or info.fps),
                     overlay=f"overlay/{frame.sequence}.{'png' if photo else 'mp4'}")
        self.entries[frame.sequence] = entry
        return entry

    def _write_frames(self, frame: FrameInput, pred: np.ndarray) -> None:
        file = PREDICTION_NAME.format(frame=frame.frame)
        write_colour_png(self.stage / "colour" / frame.sequence / file, pred, self.class_set)
        write_png(self.stage / "train_ids" / frame.sequence / file, pred)

    def _write_overlay(self, entry: dict, frame: FrameInput, pred: np.ndarray) -> None:
        shown = overlay(frame.rgb, colorize(pred, self.class_set))
        if entry["kind"] == Kind.PHOTO.value:
            write_overlay_png(self.stage / entry["overlay"], shown, self.legend)
            return
        shown = with_legend(shown, self.legend)
        if self.video is None:
            self.video = OverlayVideoWriter(self.stage / entry["overlay"], fps=entry["fps"] or DEFAULT_FPS,
                                            size_wh=(shown.shape[1], shown.shape[0]))
        self.video.write(shown)

    def process(self, inputs: Mapping[str, Any], predictions) -> None:
        for b, frame in enumerate(frame_inputs(inputs)):
            entry = self.entries.get(frame.sequence) or self._start(frame)
            pred = predictions[b].numpy().astype(np.uint8)
            if self.save_frames:
                self._write_frames(frame, pred)
            self._write_overlay(entry, frame, pred)
            entry["frames"] += 1

    def evaluate(self) -> list[dict]:
        if self.video is not None:
            self.video.close()
            self.video = None
        return list(self.entries.values())


def predict(cfg: Mapping, model: nn.Module, *, input_path: str | os.PathLike, out_dir: str | os.PathLike,
            checkpoint: str | None = None, meta: Mapping | None = None, fps: float | None = None,
            frames: bool = True, root_images: RootImages | str = RootImages.PHOTOS, progress: bool = True) -> dict:
    """Predict every frame of ``input_path`` into ``out_dir`` (see the module docstring); returns the summary
    with ``files``. ``fps`` overrides the overlay videos' rate. Raises ``DatasetError`` for unreadable input."""
    settings = build_eval_settings(cfg)
    cs = settings.class_set
    out_dir = Path(out_dir)
    with staged_dir(out_dir, last=SUMMARY) as stage, \
            footage_input(input_path, root_images=root_images, scratch_beside=out_dir) as (index, sequences):
        dataset = inference_dataset(index, resize=settings.resize_wh, mean=cfg["data"]["mean"], std=cfg["data"]["std"],
                                    all_frames=True, keep_frames=True)
        photos = [name for name, info in sequences.items() if info.kind is Kind.PHOTO]
        evaluators = DatasetEvaluators([
            PredictionWriter(stage, class_set=cs, sequences=sequences, fps=fps, save_frames=frames),
            TemporalEvaluator(num_classes=cs.num_classes, size_wh=settings.tc_resize_wh, skip=photos)])
        results = inference_on_dataset(make_predictor(model, settings), dataset, evaluators,
                                       num_workers=settings.num_workers, progress="predict" if progress else None)
        summary = _summary(results, input_path=input_path, checkpoint=checkpoint, meta=meta, settings=settings)
        write_json(stage / SUMMARY, summary)
    files = dict(summary=str(out_dir / SUMMARY), overlays=[str(out_dir / e["overlay"]) for e in summary["sequences"]])
    if frames:
        files.update(colour=str(out_dir / "colour"), train_ids=str(out_dir / "train_ids"))
    _print_summary(summary, out_dir)
    return dict(summary, files=files)


def _summary(results: dict, *, input_path, checkpoint: str | None, meta: Mapping | None, settings) -> dict:
    entries = results["outputs"]
    summary = dict(input=str(input_path), checkpoint=str(checkpoint), selection=checkpoint_selection(meta),
                   class_set=settings.class_set.name, inference=settings.inference_summary(),
                   frames=sum(e["frames"] for e in entries), sequences=entries)
    tc = results["temporal"]
    if tc["pairs"]:
        per_sequence = {r["sequence"]: r for r in tc["per_sequence"]}
        for entry in entries:
            entry["temporal_consistency"] = per_sequence.get(entry["sequence"])
        summary.update(temporal_consistency=tc["overall"], temporal_consistency_resolution=tc_resolution(tc["resolution"]))
    return summary


def _print_summary(summary: dict, out_dir: Path) -> None:
    line = f"{summary['frames']} frames of {len(summary['sequences'])} sequences -> {out_dir}"
    if "temporal_consistency" in summary:
        o = summary["temporal_consistency"]
        line += f"; TC mIoU {o['tc_miou']:.2f}, flicker {o['flicker']:.2f}"
    print(line)
    for entry in summary["sequences"]:
        print(f"  {entry['sequence']}: {entry['frames']} frames from {entry['source']} -> {out_dir / entry['overlay']}")
