"""``pipa-video predict``: a model's predictions on footage, as pictures, an overlay video and a report.

INPUT is anything ``data_tools/prepare_video.py`` accepts (a video, a photo, a folder of videos,
frame folders and photos) or an index it wrote. Per sequence:
- ``overlay/<sequence>.mp4`` (videos and frame folders: H.264, plays in a browser) or
  ``overlay/<sequence>.png`` (photos): the class colours over the frame, with a class legend;
- ``colour/<sequence>/<frame:06d>.png`` and ``train_ids/<sequence>/<frame:06d>.png`` (readable by
  ``tc-report --predictions OUT/train_ids``), unless ``frames=False`` (``--no-frames``);
- ``summary.json``: input, checkpoint, class set, and per sequence its source file, frames, frame
  rate, overlay file and temporal consistency.
Videos are decoded in order (exactly; a decoder error names the file and frame), a few frames at a
time, so memory stays flat. Outputs are written to a folder beside OUT and moved into OUT only when
the run completes (``report.staged_outputs``): a failed run leaves OUT as it was.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from pipa_video.data.classes import ClassSet
from pipa_video.data.footage import Item, Kind, RootImages, find_footage, sequence_names
from pipa_video.data.index import INDEX_FILE, DatasetError, load_index
from pipa_video.data.io import VideoFrameReader, read_frame, read_rgb, write_png
from pipa_video.data.video_probe import iter_frames, stream_stats
from pipa_video.evaluation.report import (OverlayVideoWriter, checkpoint_selection, colorize, legend_panel, overlay,
                                          staged_outputs, with_legend, write_colour_png, write_json, write_overlay_png)
from pipa_video.evaluation.runner import (PREDICTION_NAME, ModelBuilder, Predictor, build_eval_settings,
                                          load_checkpoint, load_model, tc_resolution)
from pipa_video.evaluation.temporal import TemporalConsistency

PREDICT_BATCH = 4  # frames decoded and predicted together
DEFAULT_FPS = 10.0  # overlay rate of frame folders, whose rate nothing records
SUMMARY = "summary.json"


@dataclass(frozen=True)
class InputSequence:
    """One sequence of the input: where it comes from and how to read its frames in order."""

    name: str
    kind: Kind
    source: Path  # the video, frame folder or photo
    num_frames: int
    fps: float | None
    frames: Callable[[], Iterator[tuple[int, np.ndarray]]]  # (frame number, RGB uint8)


def _video(item: Item, name: str) -> InputSequence:
    stats = stream_stats(item.path)
    count = stats.packets - int(stats.cut_at_end)  # a cut last packet decodes to a partly grey frame
    if stats.cut_at_end:
        warnings.warn(f"{item.path}: the file ends inside frame {count}; predicting frames 0-{count - 1}", stacklevel=3)
    return InputSequence(name, Kind.VIDEO, item.path, count, stats.fps,
                         lambda: islice(enumerate(iter_frames(item.path)), count))


def _files(files: Sequence[Path]) -> Callable[[], Iterator[tuple[int, np.ndarray]]]:
    return lambda: ((i, read_rgb(p)) for i, p in enumerate(files))


def footage_sequences(input_path: Path, *, root_images: RootImages) -> list[InputSequence]:
    """The sequences of a video, photo or folder (``data.footage`` rules)."""
    items = find_footage(input_path, root_images=root_images)
    root = input_path if input_path.is_dir() else input_path.parent
    out = []
    for item, name in zip(items, sequence_names(items, root)):
        if item.kind is Kind.VIDEO:
            out.append(_video(item, name))
        elif item.kind is Kind.FRAMES:
            out.append(InputSequence(name, Kind.FRAMES, item.path, len(item.frames), None, _files(item.frames)))
        else:
            out.append(InputSequence(name, Kind.PHOTO, item.path, 1, None, _files([item.path])))
    return out


def index_sequences(index_dir: Path) -> list[InputSequence]:
    """The sequences of a prepared index, read exactly as training reads them (extracted frames included)."""
    index = load_index(index_dir)
    groups = index.frames.groupby("sequence", sort=False).indices
    videos = {str(r["sequence"]): r for r in index.meta.videos.values()}
    reader = VideoFrameReader()
    out = []
    for name, rows in groups.items():
        rows = sorted(rows, key=lambda r: index.frames["frame"].iat[r])
        sources = [index.frame_source(r) for r in rows]
        record = videos.get(str(name))
        kind = Kind.VIDEO if record else (Kind.PHOTO if len(rows) == 1 else Kind.FRAMES)
        frames = (lambda s=sources: ((f, read_frame(p, f, reader)) for p, f in s))
        out.append(InputSequence(str(name), kind, index.image_path(rows[0]), len(rows),
                                 record.get("fps") if record else None, frames))
    return out


def input_sequences(input_path: str | os.PathLike, *, root_images: RootImages | str = RootImages.PHOTOS
                    ) -> list[InputSequence]:
    input_path = Path(input_path)
    if input_path.is_dir() and (input_path / INDEX_FILE).is_file():
        return index_sequences(input_path)
    return footage_sequences(input_path, root_images=RootImages(root_images))


def _batches(frames: Iterator[tuple[int, np.ndarray]], size: int) -> Iterator[list[tuple[int, np.ndarray]]]:
    while batch := list(islice(frames, size)):
        yield batch


@dataclass
class _Run:
    """What every sequence of one predict run shares."""

    predictor: Predictor
    class_set: ClassSet
    stage: Path
    tc: TemporalConsistency
    save_frames: bool
    fps: float | None
    progress: object


def _save_frame(run: _Run, name: str, number: int, pred: np.ndarray) -> None:
    file = PREDICTION_NAME.format(frame=number)
    write_colour_png(run.stage / "colour" / name / file, pred, run.class_set)
    write_png(run.stage / "train_ids" / name / file, pred)


def predict_sequence(run: _Run, seq: InputSequence) -> dict:
    """Predict every frame of ``seq`` into the run's stage folder; returns its summary entry."""
    writer, size, legend, count = None, None, None, 0
    overlay_file = f"overlay/{seq.name}.{'png' if seq.kind is Kind.PHOTO else 'mp4'}"
    for batch in _batches(seq.frames(), PREDICT_BATCH):
        numbers, frames = [b[0] for b in batch], [b[1] for b in batch]
        for number, frame in zip(numbers, frames):
            if size is None:
                size, legend = frame.shape[:2], legend_panel(run.class_set, height=frame.shape[0])
            if frame.shape[:2] != size:
                raise DatasetError(f"{seq.source}: frame {number} is {frame.shape[1]}x{frame.shape[0]}, the first is "
                                   f"{size[1]}x{size[0]}; the frames of one sequence share a size")
        for number, frame, pred in zip(numbers, frames, run.predictor.predict_frames(frames)):
            if run.save_frames:
                _save_frame(run, seq.name, number, pred)
            shown = overlay(frame, colorize(pred, run.class_set))
            if seq.kind is Kind.PHOTO:
                write_overlay_png(run.stage / overlay_file, shown, legend)
            else:
                shown = with_legend(shown, legend)
                if writer is None:
                    writer = OverlayVideoWriter(run.stage / overlay_file, fps=run.fps or seq.fps or DEFAULT_FPS,
                                                size_wh=(shown.shape[1], shown.shape[0]))
                writer.write(shown)
                run.tc.process(frame, pred, sequence=seq.name, frame=number)
            count += 1
            run.progress.update()
    if writer is not None:
        writer.close()
    return dict(sequence=seq.name, kind=seq.kind.value, source=str(seq.source), frames=count,
                fps=(run.fps or seq.fps) if seq.kind is not Kind.PHOTO else None, overlay=overlay_file)


def predict(cfg: Mapping, *, checkpoint: str, input_path: str | os.PathLike, out_dir: str | os.PathLike,
            model_builder: ModelBuilder | None = None, fps: float | None = None, frames: bool = True,
            root_images: RootImages | str = RootImages.PHOTOS, progress: bool = True) -> dict:
    """Predict every frame of ``input_path`` into ``out_dir`` (see the module docstring); returns the summary
    with ``files``. ``fps`` overrides the overlay videos' rate. Raises ``DatasetError`` for unreadable input."""
    from tqdm import tqdm

    settings = build_eval_settings(cfg)
    ckpt = load_checkpoint(checkpoint)
    predictor = Predictor.from_model(load_model(cfg, ckpt, path=checkpoint, model_builder=model_builder),
                                     settings=settings)
    sequences = input_sequences(input_path, root_images=root_images)
    cs = settings.class_set
    tc = TemporalConsistency(num_classes=cs.num_classes, size_wh=settings.tc_resize_wh)
    with staged_outputs(out_dir, last=SUMMARY) as stage, \
            tqdm(total=sum(s.num_frames for s in sequences), desc="predict", disable=not progress) as bar:
        run = _Run(predictor, cs, stage, tc, frames, fps, bar)
        entries = [predict_sequence(run, seq) for seq in sequences]
        summary = _summary(cfg, checkpoint=checkpoint, ckpt=ckpt, input_path=input_path, entries=entries, tc=tc,
                           settings=settings)
        write_json(stage / SUMMARY, summary)
    out_dir = Path(out_dir)
    files = dict(summary=str(out_dir / SUMMARY), overlays=[str(out_dir / e["overlay"]) for e in entries])
    if frames:
        files.update(colour=str(out_dir / "colour"), train_ids=str(out_dir / "train_ids"))
    _print_summary(summary, out_dir)
    return dict(summary, files=files)


def _summary(cfg: Mapping, *, checkpoint: str, ckpt: dict, input_path, entries: list[dict], tc: TemporalConsistency,
             settings) -> dict:
    summary = dict(input=str(input_path), checkpoint=str(checkpoint), selection=checkpoint_selection(ckpt["meta"]),
                   class_set=settings.class_set.name, inference=settings.inference_summary(),
                   frames=sum(e["frames"] for e in entries), sequences=entries)
    if tc.pairs:
        results = tc.evaluate()
        per_sequence = {r["sequence"]: r for r in results["per_sequence"]}
        for entry in entries:
            entry["temporal_consistency"] = per_sequence.get(entry["sequence"])
        summary.update(temporal_consistency=results["overall"],
                       temporal_consistency_resolution=tc_resolution(results["resolution"]))
    return summary


def _print_summary(summary: dict, out_dir: Path) -> None:
    line = f"{summary['frames']} frames of {len(summary['sequences'])} sequences -> {out_dir}"
    if "temporal_consistency" in summary:
        o = summary["temporal_consistency"]
        line += f"; TC mIoU {o['tc_miou']:.2f}, flicker {o['flicker']:.2f}"
    print(line)
    for entry in summary["sequences"]:
        print(f"  {entry['sequence']}: {entry['frames']} frames from {entry['source']} -> {out_dir / entry['overlay']}")
