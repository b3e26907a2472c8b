"""Prepare a dataset for training: scan a root, convert its labels to train ids, write its frame index.

``python data_tools/prepare_<layout>.py ROOT --out DIR`` (``main``) and ``prepare(layout, root, DIR)``
both
1. check ROOT against the layout (a wrong root fails fast, naming the missing folder);
2. scan it into frames (``sources.<layout>.scan``);
3. per frame, optionally in a process pool: check the image, read the raw label, refuse raw ids the
   id space does not define, map the rest to train ids (``classes.label_lut``), apply the layout's
   ignore mask (VIPER's ego vehicle), write ``DIR/labels/<raw label path>`` atomically and count
   pixels per class;
4. record the frame numbers missing inside each sequence (``meta.json`` ``gaps``, with a warning):
   training then skips only the clips that need one of them;
5. with ``--cache-size WxH``, write the frame cache at the training resolution
   (``frame_cache.cache_frames``: frames and labels resized once, the index pointing at them);
6. write ``index.csv`` and ``meta.json`` (``index.write_index``);
7. print a summary: sequences, frames, labelled frames and the class histogram.

Steps 3-6 write into a new folder next to DIR (``.DIR.prepare-<random>``), which then replaces DIR
in one step (``atomic.replace_dir``): an interrupted or failed re-run leaves the previous index whole,
and a killed run's folder is removed by the next run. DIR must be new, empty or an index.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipa_video.atomic import new_dir_beside, replace_dir
from pipa_video.data import io as data_io
from pipa_video.data.classes import (
    CLASS_SETS, IGNORE_INDEX, ClassSet, Rider, get_class_set, known_ids, label_lut,
)
from pipa_video.data.frame_cache import FRAMES_DIR, cache_frames, parse_size
from pipa_video.data.index import (CONDITION_COLUMN, INDEX_FILE, LABEL_DIR, META_FILE, DatasetError, IndexMeta,
                                   write_index)
from pipa_video.data.sources import Layout, SizeMismatch, get_layout
from pipa_video.data.sources.base import SPLIT_OPTION, absolute, image_size
from pipa_video.errors import run_command, writing

DEFAULT_SPLIT = "train"
MAX_WARNINGS_SHOWN = 5  # per kind; the rest are counted, so a bad copy does not flood the terminal
DEFAULT_CLI_WORKERS = min(4, os.cpu_count() or 1)


class DatasetWarning(UserWarning):
    """A frame was kept with a caveat, or left out, during prepare; the message names the file."""


@dataclass(frozen=True)
class FrameResult:
    """What converting one frame produced."""

    label: str = ""  # written train-id PNG, relative to the index dir; "" for an unlabelled frame
    counts: np.ndarray | None = None  # (C,) pixels per train id
    pixels: int = 0  # all pixels of the label, ignore included
    skipped: str = ""  # why the frame is left out of the index ("" when kept)
    warning: str = ""  # a caveat the frame was kept with (unknown ids mapped to ignore)


def label_output_path(raw_label: str) -> str:
    """Where a frame's train-id PNG goes, relative to the index dir: mirrors the raw label path."""
    return str(PurePosixPath(LABEL_DIR) / PurePosixPath(raw_label).with_suffix(".png"))


def map_to_train_ids(raw: np.ndarray, lut: np.ndarray, *, id_space: str, path: Path,
                     allow_unknown: bool) -> tuple[np.ndarray, str]:
    """(train ids uint8, warning) of a raw label; raw ids outside ``id_space`` are an error.

    With ``allow_unknown`` those pixels become ignore and the warning names the file and the ids.
    """
    present = np.flatnonzero(np.bincount(raw.ravel()))
    unknown = present[~np.isin(present, known_ids(id_space))]
    warning = ""
    if unknown.size:
        message = (f"{path}: raw ids {unknown.tolist()} are not {id_space} ids "
                   f"(expected {known_ids(id_space).tolist()})")
        if not allow_unknown:
            raise DatasetError(message + "; pass --allow-unknown-ids to map them to ignore (255)")
        warning = message + "; mapped to ignore (255)"
    table = np.full(int(present[-1]) + 1, IGNORE_INDEX, np.uint8)
    usable = min(len(table), len(lut))
    table[:usable] = lut[:usable]
    table[unknown] = IGNORE_INDEX
    return table[raw], warning


@dataclass(frozen=True)
class FrameConverter:
    """Converts one frame (image path, raw label path); picklable, so a process pool can run it."""

    layout_name: str
    data_root: Path
    out_dir: Path
    lut: np.ndarray | None
    num_classes: int
    layout_opts: dict[str, Any]
    allow_unknown_ids: bool = False
    verify_images: bool = False

    def image_hw(self, path: Path) -> tuple[int, int]:
        if self.verify_images:  # decode every pixel: catches truncated files, costs a full read
            return data_io.read_rgb(path).shape[:2]
        return image_size(path)

    def __call__(self, frame: tuple[str, str]) -> FrameResult:
        image, raw_label = frame
        layout = get_layout(self.layout_name)
        image_path = self.data_root / image
        if layout.frames_are_video:
            return FrameResult()  # the scan already opened every video
        image_hw = self.image_hw(image_path)
        if not raw_label:
            return FrameResult()
        label_path = self.data_root / raw_label
        raw = layout.read_raw_label(label_path)
        if raw.shape[:2] != image_hw:
            message = (f"{label_path}: label is {raw.shape[1]}x{raw.shape[0]} but image {image_path} "
                       f"is {image_hw[1]}x{image_hw[0]}")
            if layout.size_mismatch is SizeMismatch.SKIP:
                return FrameResult(skipped=message)
            raise DatasetError(message)
        train_ids, warning = map_to_train_ids(raw, self.lut, id_space=layout.id_space, path=label_path,
                                              allow_unknown=self.allow_unknown_ids)
        ignore = layout.ignore_mask(raw, **self.layout_opts)
        if ignore is not None:
            train_ids[ignore] = IGNORE_INDEX
        out = label_output_path(raw_label)
        data_io.write_png(self.out_dir / out, train_ids)
        counts = np.bincount(train_ids.ravel(), minlength=256)[: self.num_classes]
        return FrameResult(label=out, counts=counts, pixels=train_ids.size, warning=warning)


def convert_frames(converter: FrameConverter, frames: pd.DataFrame, *, workers: int,
                   quiet: bool) -> list[FrameResult]:
    tasks = list(zip(frames["image"], frames["raw_label"]))
    progress = dict(total=len(tasks), desc=f"prepare {converter.layout_name}", unit="frame",
                    disable=quiet, dynamic_ncols=True)
    if workers <= 1 or len(tasks) < 2:
        return [converter(t) for t in tqdm(tasks, **progress)]
    chunksize = max(1, min(64, len(tasks) // (workers * 8)))
    with multiprocessing.Pool(workers) as pool:
        return list(tqdm(pool.imap(converter, tasks, chunksize=chunksize), **progress))


def index_table(frames: pd.DataFrame, results: list[FrameResult], class_set: ClassSet) -> pd.DataFrame:
    """The index rows (``index.BASE_COLUMNS`` + pixel counts) of the frames that were kept."""
    keep = np.array([not r.skipped for r in results], dtype=bool)
    kept = [r for r in results if not r.skipped]
    table = frames.loc[keep, ["sequence", "frame", "image"]].reset_index(drop=True)
    table["label"] = [r.label for r in kept]
    table["labelled"] = table["label"] != ""
    if CONDITION_COLUMN in frames.columns:  # ACDC, Dark Zurich: weather / time of day per frame
        table[CONDITION_COLUMN] = frames.loc[keep, CONDITION_COLUMN].to_numpy()
    counts = np.zeros((len(kept), class_set.num_classes), np.int64)
    for row, result in enumerate(kept):
        if result.counts is not None:
            counts[row] = result.counts
    for column, values in zip(class_set.column_names(), counts.T):
        table[column] = values
    return table


def warn_some(messages: list[str], *, what: str) -> None:
    for message in messages[:MAX_WARNINGS_SHOWN]:
        warnings.warn(message, DatasetWarning, stacklevel=3)
    if len(messages) > MAX_WARNINGS_SHOWN:
        warnings.warn(f"... and {len(messages) - MAX_WARNINGS_SHOWN} more frames {what}", DatasetWarning,
                      stacklevel=3)


def summary_text(table: pd.DataFrame, class_set: ClassSet, *, total_pixels: int, skipped: int,
                 header: str) -> str:
    counts = table[class_set.column_names()].sum(axis=0).to_numpy()
    lines = [header,
             f"  sequences: {table['sequence'].nunique()}   frames: {len(table)}   "
             f"labelled frames: {int(table['labelled'].sum())}"
             + (f"   skipped (image/label size mismatch): {skipped}" if skipped else "")]
    if CONDITION_COLUMN in table.columns:
        per = table[CONDITION_COLUMN].value_counts().sort_index()
        lines.append("  conditions: " + ", ".join(f"{name} {count} frames" for name, count in per.items()))
    if total_pixels:
        width = max(len(n) for n in class_set.names + ("(ignore)",))
        lines.append(f"  {'class':<{width}}  {'pixels':>14}  share")
        for name, count in zip(class_set.names, counts):
            lines.append(f"  {name:<{width}}  {int(count):>14}  {100 * count / total_pixels:5.1f} %")
        ignored = total_pixels - int(counts.sum())
        lines.append(f"  {'(ignore)':<{width}}  {ignored:>14}  {100 * ignored / total_pixels:5.1f} %")
    return "\n".join(lines)


def sequence_gaps(table: pd.DataFrame) -> dict[str, list[list[int]]]:
    """Per sequence with a hole, the runs ``[first, last]`` of frame numbers missing between its first
    and last indexed frame (a missing file, a frame skipped for a size mismatch).

    A sequence's spacing is the gcd of its frame steps, so a deliberately subsampled one (every 2nd
    video frame, ``--frame-step 2``) has no gaps; a run then lists the missing frames at that spacing.
    """
    gaps = {}
    for name, numbers in table.groupby("sequence", sort=True)["frame"]:
        present = np.unique(numbers.to_numpy(np.int64))
        steps = np.diff(present)
        spacing = int(np.gcd.reduce(steps)) if steps.size else 1
        holes = np.flatnonzero(steps > spacing)
        if holes.size:
            gaps[str(name)] = [[int(present[h] + spacing), int(present[h + 1] - spacing)] for h in holes]
    return gaps


def warn_gaps(gaps: dict[str, list[list[int]]]) -> None:
    if not gaps:
        return
    missing = sum(1 for runs in gaps.values() for _ in runs)
    name, runs = next(iter(gaps.items()))
    first, last = runs[0]
    example = f"frame {first}" if first == last else f"frames {first}-{last}"
    warnings.warn(f"{len(gaps)} sequence(s) lack frames inside them ({missing} gap(s), e.g. {name!r}: {example}); "
                  "recorded in meta.json 'gaps': training skips only the clips that need them",
                  DatasetWarning, stacklevel=3)


_INDEX_ENTRIES = (INDEX_FILE, META_FILE, LABEL_DIR)


def staging_dir(out_dir: Path) -> Path:
    """A new, empty folder next to ``out_dir`` to build the index in; stale ones of killed runs removed.

    ``out_dir`` must be new, empty or an index (it is replaced whole at the end): anything else is a
    ``DatasetError``, so a mistyped ``--out`` never swaps away someone's files.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"{out_dir}: exists and is not a directory; expected an index directory to write")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not any((out_dir / n).exists() for n in _INDEX_ENTRIES):
        raise DatasetError(f"{out_dir}: holds files that are not a pipa-video index; expected a new or empty "
                           "folder, or an index written by a prepare tool (it is replaced whole)")
    prefix = f".{out_dir.name}.prepare-"
    with writing(out_dir):  # a read-only or full output location fails here, naming it
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.parent.glob(prefix + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        return new_dir_beside(out_dir, tag=".prepare-")


def resolve_class_set(layout: Layout, class_set: ClassSet | str | None) -> ClassSet:
    if class_set is None:
        if layout.default_class_set is None:
            raise DatasetError(f"layout {layout.name!r} needs an explicit class set (--class-set), one of "
                               f"{sorted(CLASS_SETS)}: it must match the source domain's")
        class_set = layout.default_class_set
    return class_set if isinstance(class_set, ClassSet) else get_class_set(class_set)


def prepare(layout: str, root: str | os.PathLike, out_dir: str | os.PathLike, *, split: str | None = None,
            class_set: ClassSet | str | None = None, rider: Rider | str = Rider.PERSON, workers: int = 1,
            quiet: bool = False, allow_unknown_ids: bool = False, verify_images: bool = False,
            cache_size: tuple[int, int] | None = None, **layout_opts: Any) -> Path:
    """Scan ``root`` as ``layout``, write train-id labels and the frame index; returns the index dir.

    ``split`` goes to layouts that have splits (VIPER, Cityscapes) and is recorded in ``meta.json``;
    ``layout_opts`` are the layout's own options (``LAYOUTS[layout].options``). ``cache_size`` (w, h)
    also writes a frame cache at that size and points the index at it (``data.frame_cache``).
    """
    spec = get_layout(layout)
    class_set = resolve_class_set(spec, class_set)
    rider = Rider(rider)
    if spec.uses_split and split is not None:
        layout_opts[SPLIT_OPTION] = split
    opts = spec.with_defaults(layout_opts)
    split = opts.get(SPLIT_OPTION, split or DEFAULT_SPLIT)
    out_dir = absolute(out_dir)

    frames = spec.scan(root, **opts)  # checks the root first
    data_root = spec.resolve_root(root, **opts)
    staging = staging_dir(out_dir)
    converter = FrameConverter(
        layout_name=spec.name, data_root=data_root, out_dir=staging,
        lut=label_lut(spec.id_space, class_set, rider=rider) if spec.has_labels else None,
        num_classes=class_set.num_classes, layout_opts=opts,
        allow_unknown_ids=allow_unknown_ids, verify_images=verify_images,
    )
    try:
        results = convert_frames(converter, frames, workers=workers, quiet=quiet)
        table = index_table(frames, results, class_set)
        if table.empty:
            raise DatasetError(f"{root}: every frame was skipped; nothing to index")
        conditions = sorted(set(table[CONDITION_COLUMN])) if CONDITION_COLUMN in table.columns else []
        gaps = sequence_gaps(table)
        meta = IndexMeta(layout=spec.name, root=str(data_root), class_set=class_set.name, rider=rider.value,
                         split=split, conditions=conditions, gaps=gaps)
        if cache_size is not None:  # written into the staging folder; its root is where the swap puts it
            table, meta = cache_frames(table, meta, out_dir=staging, size=cache_size, workers=workers, quiet=quiet)
            meta.root = str(Path(out_dir).absolute() / FRAMES_DIR)
        write_index(staging, table, meta)
        replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    warn_gaps(gaps)
    warn_some([r.warning for r in results if r.warning], what="had unknown raw ids mapped to ignore")
    skipped = [r.skipped for r in results if r.skipped]
    warn_some([f"{m}; frame skipped" for m in skipped], what="skipped for an image/label size mismatch")
    if not quiet:
        header = (f"prepared {spec.name} {root} (split {split}, class set {class_set.name}, rider "
                  f"{rider.value}) -> {out_dir / INDEX_FILE}")
        print(summary_text(table, class_set, total_pixels=sum(r.pixels for r in results if not r.skipped),
                           skipped=len(skipped), header=header))
    return out_dir


# --- command line ---------------------------------------------------------------------------------
def add_layout_option(parser: argparse.ArgumentParser, option) -> None:
    if option.type is bool:
        parser.add_argument(option.flag, dest=option.name, action=argparse.BooleanOptionalAction,
                            default=option.default,
                            help=f"{option.help} (default: {'on' if option.default else 'off'})")
    else:
        parser.add_argument(option.flag, dest=option.name, type=option.type, default=option.default,
                            help=f"{option.help} (default: {option.default})")


def _size_arg(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser(layout: Layout) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"prepare_{layout.name}.py",
        description=f"{layout.doc} Writes DIR/index.csv, DIR/meta.json and DIR/labels/. "
                    f"Expected layout: {layout.expected}.",
    )
    parser.add_argument("root", type=Path, help="dataset root")
    parser.add_argument("--out", type=Path, required=True, help="index directory to write")
    split_option = next((o for o in layout.options if o.name == SPLIT_OPTION), None)
    parser.add_argument("--split", default=split_option.default if split_option else DEFAULT_SPLIT,
                        help=split_option.help if split_option else "recorded in meta.json")
    parser.add_argument("--class-set", choices=sorted(CLASS_SETS), default=layout.default_class_set,
                        required=layout.default_class_set is None,
                        help="class set of the labels" + ("" if layout.has_labels else
                                                          " (names the pixel-count columns only)"))
    parser.add_argument("--rider", choices=[r.value for r in Rider], default=Rider.PERSON.value,
                        help="Cityscapes rider without a rider class: merge into person (DA-VSN) or ignore")
    parser.add_argument("--workers", type=int, default=DEFAULT_CLI_WORKERS, help="conversion processes")
    if layout.has_labels:
        parser.add_argument("--allow-unknown-ids", action="store_true",
                            help="map raw ids the dataset does not define to ignore, with a warning")
    if not layout.frames_are_video:
        parser.add_argument("--verify-images", action="store_true",
                            help="decode every image fully (default: read headers only)")
    parser.add_argument("--cache-size", type=_size_arg, metavar="WxH",
                        help="also write every frame and label resized to WxH (the recipe's first resize, e.g. "
                             "1024x512 for Cityscapes in DAFormer) and point the index at them: a training-only "
                             "frame cache, a quarter of the pixels to decode (see data/frame_cache.py)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error too")
    for option in layout.options:
        if option.name != SPLIT_OPTION:
            add_layout_option(parser, option)
    return parser


def main(argv: Sequence[str] | None = None, *, layout: str) -> int:
    """``data_tools/prepare_<layout>.py``: one error line and the exit code of its kind (``pipa_video.errors``)."""
    spec = get_layout(layout)
    parser = build_parser(spec)
    args = parser.parse_args(argv)
    layout_opts = {o.name: getattr(args, o.name) for o in spec.options if o.name != SPLIT_OPTION}

    def run() -> int:
        prepare(spec.name, args.root, args.out, split=args.split, class_set=args.class_set, rider=args.rider,
                workers=args.workers, quiet=args.quiet,
                allow_unknown_ids=getattr(args, "allow_unknown_ids", False),
                verify_images=getattr(args, "verify_images", False), cache_size=args.cache_size, **layout_opts)
        return 0

    return run_command(run, prog=parser.prog, debug=args.debug)
