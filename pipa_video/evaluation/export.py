"""Benchmark-server exports: the prediction files each official test server accepts, and one zip.

``pipa-video predict --config C --checkpoint K --format cityscapes|acdc|dark_zurich [--index DIR] --out OUT``
predicts every frame of a split's index (``data.test.index`` unless ``--index`` names another, e.g.
the prepared test split) at the frame's own size and writes

- ``OUT/<format>/``: the files in the server's folders, named after the input images;
- ``OUT/<format>_submission.zip``: the same files, ready to upload. It is written to a temp file,
  read back, and renamed into place only when every frame of the index has exactly one prediction
  under the server's matching rule, with the right ids, dtype and size: an archive with missing
  frames is never written;
- ``OUT/<format>_export.json``: index, checkpoint, its selection, inference settings, file counts.

What each server accepts (class set: the 19 Cityscapes classes):

- Cityscapes, pixel-level semantic labeling (www.cityscapes-dataset.com/submit/; the server runs
  cityscapesscripts ``evaluation/evalPixelLevelSemanticLabeling.py``): one PNG per test image with
  Cityscapes **labelIds** (not train ids) at 2048x1024, in any sub-folder, matched by
  ``<city>_<seq>_<frame>*.png`` (``getPrediction``); here ``<city>/<image name>``. 1,525 test images.
- ACDC (acdc.vision.ee.ethz.ch/submit): **train ids** at the input size, 1920x1080, one PNG per
  test image named after it; here ``labelTrainIds/<image name>``, as DAFormer's and HRDA's READMEs
  produce them (``tools.test --format-only imgfile_prefix=labelTrainIds to_label_id=False``).
  2,000 test images (500 per condition).
- Dark Zurich (CodaLab competition 3783, linked from the Dark Zurich page): the archive's top level
  holds ``labelTrainIds/`` (train ids), ``labelTrainIds_invalid/`` (train ids, 255 marks pixels
  predicted invalid) and ``confidence/`` (uint16 PNG, confidence x 65535), each file matched by
  ``<sequence>_frame_<frame>*.png``, 1920x1080. Here ``labelTrainIds_invalid`` marks no pixel
  invalid, so its UIoU equals the IoU; ``confidence`` is the maximum class probability.
  151 test images.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
from torch import nn

from pipa_video.atomic import atomic_path, atomic_write_text, new_dir_beside, replace_dir
from pipa_video.config import ConfigError
from pipa_video.data.classes import (
    CITYSCAPES_LABELID_TO_TRAINID, CITYSCAPES_NAMES, IGNORE_INDEX, cityscapes_trainid_to_labelid, get_class_set,
)
from pipa_video.data.build import check_index_class_set, inference_dataset, load_domain_index
from pipa_video.data.clips import ClipDataset
from pipa_video.data.index import DatasetError, FrameIndex, load_index
from pipa_video.data.io import write_png
from pipa_video.data.sources.base import image_size
from pipa_video.evaluation.evaluator import frame_inputs
from pipa_video.evaluation.loop import Predictor, inference_on_dataset
from pipa_video.evaluation.report import checkpoint_selection
from pipa_video.evaluation.runner import build_eval_settings, make_predictor

LABELS, INVALID, CONFIDENCE = "labelTrainIds", "labelTrainIds_invalid", "confidence"
CONFIDENCE_SCALE = 65535  # Dark Zurich: uint16 confidence maps, 1.0 -> 65535
_TRAINID_TO_LABELID = cityscapes_trainid_to_labelid()

# frame RGB uint8 (H, W, 3) -> (train ids uint8 (H, W), confidence float32 (H, W) in [0, 1])
PredictFn = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


class ExportWarning(UserWarning):
    """The export is valid but the server may not accept it as is (e.g. fewer frames than its test split)."""


@dataclass(frozen=True)
class ServerFormat:
    """What one benchmark server accepts."""

    name: str
    layouts: tuple[str, ...]  # index layouts whose frames this server scores
    folders: tuple[str, ...]  # archive folders that each hold one file per frame ("" = anywhere)
    key_re: re.Pattern  # the part of a file name the server matches a prediction on
    label_ids: bool  # labelIds (Cityscapes) rather than train ids
    test_frames: int  # images of the official test split
    source: str  # where the format is documented


FORMATS: dict[str, ServerFormat] = {f.name: f for f in (
    ServerFormat("cityscapes", ("cityscapes",), ("",), re.compile(r"^(?P<key>[a-z_]+?_\d{6}_\d{6})(?:_|\.png$)"),
                 label_ids=True, test_frames=1525,
                 source="www.cityscapes-dataset.com/submit; cityscapesscripts evalPixelLevelSemanticLabeling.py"),
    ServerFormat("acdc", ("acdc",), (LABELS,), re.compile(r"^(?P<key>[A-Za-z0-9]+_frame_\d{6})(?:_|\.png$)"),
                 label_ids=False, test_frames=2000, source="acdc.vision.ee.ethz.ch/submit"),
    ServerFormat("dark_zurich", ("dark_zurich",), (LABELS, INVALID, CONFIDENCE),
                 re.compile(r"^(?P<key>[A-Za-z0-9]+_frame_\d{6})(?:_|\.png$)"),
                 label_ids=False, test_frames=151, source="codalab.lisn.upsaclay.fr/competitions/3783"),
)}


def get_format(name: str) -> ServerFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise DatasetError(f"unknown server format {name!r}; expected one of {sorted(FORMATS)}") from None


def frame_key(spec: ServerFormat, name: str) -> str | None:
    """The server's matching key of a file name (``berlin_000000_000019``, ``GOPR0475_frame_000041``)."""
    match = spec.key_re.match(PurePosixPath(name).name)
    return match["key"] if match else None


# --- what is written per frame ---------------------------------------------------------------------
def frame_files(spec: ServerFormat, image: str, train_ids: np.ndarray,
                confidence: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Archive path -> array of one frame's files; ``image`` is the index's image path.

    ``train_ids`` (H, W) uint8 in 0..18; ``confidence`` (H, W) float in [0, 1] (Dark Zurich only).
    """
    name = PurePosixPath(image).name
    if spec.label_ids:
        return {f"{PurePosixPath(image).parent.name}/{name}": _TRAINID_TO_LABELID[train_ids]}
    files = {f"{LABELS}/{name}": train_ids}
    if CONFIDENCE in spec.folders:
        files[f"{INVALID}/{name}"] = train_ids  # no pixel marked invalid (255): UIoU = IoU
        files[f"{CONFIDENCE}/{name}"] = np.round(np.clip(confidence, 0, 1) * CONFIDENCE_SCALE).astype(np.uint16)
    return files


def allowed_values(spec: ServerFormat, folder: str) -> np.ndarray | None:
    """The ids a file of ``folder`` may hold; None for confidence maps (any uint16)."""
    if folder == CONFIDENCE:
        return None
    if spec.label_ids:
        return np.asarray(sorted(CITYSCAPES_LABELID_TO_TRAINID))
    train_ids = list(range(len(CITYSCAPES_NAMES)))
    return np.asarray(train_ids + [IGNORE_INDEX] if folder == INVALID else train_ids)


def check_index(spec: ServerFormat, index: FrameIndex) -> dict[str, int]:
    """key -> index row of every frame; errors name the index, a foreign layout or class set, two
    frames the server could not tell apart."""
    if index.meta.layout not in spec.layouts:
        raise DatasetError(f"{index.index_dir} was prepared from layout {index.meta.layout!r}; the {spec.name} "
                           f"server scores {'/'.join(spec.layouts)} frames (prepare its test split)")
    if index.class_set.names != CITYSCAPES_NAMES:
        raise DatasetError(f"{index.index_dir} has class set {index.class_set.name!r}; the {spec.name} server "
                           f"scores the 19 Cityscapes classes (cityscapes19)")
    keys: dict[str, int] = {}
    for row, image in enumerate(index.frames["image"]):
        key = frame_key(spec, image)
        if key is None:
            raise DatasetError(f"{index.image_path(row)}: not a {spec.name} image name, the server could not match "
                               f"a prediction named after it")
        if key in keys:
            raise DatasetError(f"{index.image_path(keys[key])} and {index.image_path(row)}: the {spec.name} server "
                               f"matches predictions by name, and both are {key}; export them separately")
        keys[key] = row
    return keys


# --- reading an archive back ---------------------------------------------------------------------
def _folder_of(spec: ServerFormat, name: str) -> str | None:
    for folder in spec.folders:
        if folder == "" or name.startswith(folder + "/"):
            return folder
    return None


def _check_png(data: bytes, name: str, spec: ServerFormat, folder: str, size_hw: tuple[int, int]) -> None:
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    dtype = np.uint16 if folder == CONFIDENCE else np.uint8
    if array is None or array.ndim != 2 or array.dtype != dtype:
        raise DatasetError(f"{name}: expected a single-channel {np.dtype(dtype).name} PNG")
    if array.shape != tuple(size_hw):
        raise DatasetError(f"{name} is {array.shape[1]}x{array.shape[0]}, its image {size_hw[1]}x{size_hw[0]}: "
                           f"the {spec.name} server needs predictions at the input size")
    allowed = allowed_values(spec, folder)
    if allowed is not None:
        present = np.flatnonzero(np.bincount(array.ravel(), minlength=256))
        bad = present[~np.isin(present, allowed)]
        if bad.size:
            raise DatasetError(f"{name} holds ids {bad.tolist()[:10]}; the {spec.name} server expects "
                               f"{'labelIds' if spec.label_ids else 'train ids'} {allowed.tolist()}")


def verify_archive(archive: str | os.PathLike, spec: ServerFormat, index: FrameIndex) -> dict[str, int]:
    """Read ``archive`` back against ``index``: files per folder (``.`` = the whole archive).

    Every frame of the index must have exactly one prediction in each of the server's folders, under
    the server's matching rule, as a single-channel PNG of the right dtype, ids and size (its
    image's). Raises ``DatasetError`` naming the first problem; missing frames are counted.
    """
    keys = check_index(spec, index)
    found: dict[str, dict[str, str]] = {folder: {} for folder in spec.folders}
    with zipfile.ZipFile(archive) as zf:
        for name in (n for n in zf.namelist() if not n.endswith("/")):
            folder, key = _folder_of(spec, name), frame_key(spec, name)
            if folder is None or key not in keys or not name.endswith(".png"):
                raise DatasetError(f"{archive}: {name} is not a prediction of a frame of {index.index_dir}")
            if key in found[folder]:
                raise DatasetError(f"{archive}: {found[folder][key]} and {name} both match frame {key}")
            found[folder][key] = name
        for folder, names in found.items():
            missing = [k for k in keys if k not in names]
            if missing:
                raise DatasetError(
                    f"{archive}: {len(missing)} of {len(keys)} frames of {index.index_dir} have no prediction in "
                    f"{folder + '/' if folder else 'the archive'} (first: {index.image_path(keys[missing[0]])}); "
                    f"the {spec.name} server would reject it")
            for key, name in names.items():
                _check_png(zf.read(name), name, spec, folder, image_size(index.image_path(keys[key])))
    return {folder or ".": len(names) for folder, names in found.items()}


def write_archive(tree: str | os.PathLike, spec: ServerFormat, index: FrameIndex,
                  archive: str | os.PathLike) -> dict[str, int]:
    """Zip every file under ``tree`` (paths relative to it) into ``archive``, only if ``verify_archive``
    passes; otherwise no archive is left behind and the ``DatasetError`` says why."""
    tree = Path(tree)
    with atomic_path(archive) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(p for p in tree.rglob("*") if p.is_file()):
                zf.write(path, path.relative_to(tree).as_posix())
        counts = verify_archive(tmp, spec, index)
    return counts


# --- predicting a split ----------------------------------------------------------------------------
class ScorePredictor:
    """The loop's predictor for an export: a model's train ids and confidence (the maximum class
    probability; of the averaged probabilities with test-time augmentation) at each frame's own size."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def predicting(self):
        return self.predictor.predicting()

    def __call__(self, inputs: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        scores = self.predictor.scores(inputs["img"][:, 0], inputs["label"].shape[-2:])
        confidence, labels = (scores.softmax(dim=1) if self.predictor.passes == 1 else scores).max(dim=1)
        return labels.cpu().numpy().astype(np.uint8), confidence.float().cpu().numpy()


class FramePredictor:
    """A ``PredictFn`` (RGB frame -> train ids, confidence) as the loop's predictor (tests, other models)."""

    def __init__(self, predict_fn: PredictFn) -> None:
        self.predict_fn = predict_fn

    def predicting(self):
        return contextlib.nullcontext()

    def __call__(self, inputs: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.predict_fn(rgb[0].numpy()) for rgb in inputs["rgb"]]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


class ServerFileWriter:
    """An evaluator that writes each frame's server files under ``tree`` (named after its index image)."""

    name = "server_files"

    def __init__(self, tree: Path, spec: ServerFormat, images: Sequence[str]) -> None:
        self.tree, self.spec, self.images = tree, spec, list(images)

    def reset(self) -> None:
        self.written = 0

    def process(self, inputs: Mapping[str, Any], predictions: tuple[np.ndarray, np.ndarray]) -> None:
        for b, frame in enumerate(frame_inputs(inputs)):
            train_ids, confidence = predictions[0][b], predictions[1][b]
            image = self.images[frame.item]
            if train_ids.shape != tuple(inputs["label"].shape[-2:]):
                raise ValueError(f"prediction {train_ids.shape} for {image} of {tuple(inputs['label'].shape[-2:])}")
            for name, array in frame_files(self.spec, image, train_ids, confidence).items():
                write_png(self.tree / name, array)
            self.written += 1

    def evaluate(self) -> dict:
        return dict(frames=self.written)


def write_tree(tree: Path, spec: ServerFormat, dataset: ClipDataset, predictor: Any, *, num_workers: int = 0,
               progress: bool = True) -> None:
    """Predict every frame of ``dataset`` (one pass of the inference loop) and write its server files."""
    writer = ServerFileWriter(tree, spec, dataset.key_frame_table()["image"].astype(str).tolist())
    inference_on_dataset(predictor, dataset, writer, num_workers=num_workers,
                         progress=f"export {spec.name}" if progress else None)


def _warn_if_not_the_test_split(spec: ServerFormat, index: FrameIndex) -> None:
    n = len(index.frames)
    if index.meta.split != "test" or n != spec.test_frames:
        warnings.warn(f"{index.index_dir}: split {index.meta.split!r} with {n} frames; the {spec.name} server "
                      f"scores the test split's {spec.test_frames} frames and rejects other sets", ExportWarning,
                      stacklevel=3)


def export_split(index: FrameIndex, predict: Any, *, fmt: str, out_dir: str | os.PathLike,
                 dataset: ClipDataset | None = None, num_workers: int = 0, progress: bool = True,
                 provenance: Mapping | None = None) -> dict:
    """Write ``OUT/<fmt>/``, ``OUT/<fmt>_submission.zip`` and ``OUT/<fmt>_export.json`` for ``index``.

    ``predict`` is the loop's predictor (``ScorePredictor``) or a ``PredictFn`` of RGB frames;
    ``dataset`` reads ``index`` (default: every frame, as read). The tree is written to a staging
    folder and replaces a previous export's only after the archive passed ``verify_archive``. Raises
    ``DatasetError`` for a foreign index or an existing ``OUT/<fmt>`` that no export wrote. Returns the
    summary written to the JSON file.
    """
    spec = get_format(fmt)
    frames = len(check_index(spec, index))
    out_dir = Path(out_dir)
    tree, archive, manifest = out_dir / spec.name, out_dir / f"{spec.name}_submission.zip", \
        out_dir / f"{spec.name}_export.json"
    if tree.exists() and not manifest.is_file():
        raise DatasetError(f"{tree} exists and no export wrote it (no {manifest.name}); choose another --out")
    _warn_if_not_the_test_split(spec, index)
    predictor = predict if hasattr(predict, "predicting") else FramePredictor(predict)
    dataset = dataset or inference_dataset(index, resize=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                                           keep_frames=True)
    staging = new_dir_beside(tree, tag=".staging-")
    try:
        write_tree(staging, spec, dataset, predictor, num_workers=num_workers, progress=progress)
        counts = write_archive(staging, spec, index, archive)
        replace_dir(staging, tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary = dict(format=spec.name, server=spec.source, index=str(index.index_dir), split=index.meta.split,
                   frames=frames, official_test_frames=spec.test_frames, files=counts, tree=str(tree),
                   archive=str(archive), **(provenance or {}))
    atomic_write_text(manifest, json.dumps(summary, indent=2) + "\n")
    print(f"{frames} frames -> {archive} ({spec.name} server: {spec.source})")
    return summary


def export_for_server(cfg: Mapping, model: nn.Module, *, fmt: str, out_dir: str | os.PathLike,
                      checkpoint: str | None = None, meta: Mapping | None = None,
                      index_dir: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """``pipa-video predict --format``: ``model``'s predictions of ``index_dir`` (default
    ``data.test.index``) in ``fmt``'s files and archive; see ``export_split``."""
    spec = get_format(fmt)
    trained = get_class_set(cfg["class_set"])
    if trained.names != CITYSCAPES_NAMES:  # its train ids are not the server's: 3 could be 'sky', not 'wall'
        raise ConfigError(f"class_set: the {spec.name} server scores the 19 Cityscapes classes (cityscapes19); "
                          f"this model predicts {trained.name} ({trained.num_classes} classes)")
    if index_dir:
        index = load_index(index_dir)
        check_index_class_set(index, cfg, key=f"--index {index_dir}")
    else:
        index = load_domain_index(cfg, "test")
    settings = build_eval_settings(cfg)
    dataset = inference_dataset(index, resize=settings.resize_wh, mean=cfg["data"]["mean"], std=cfg["data"]["std"])
    provenance = dict(checkpoint=str(checkpoint), selection=checkpoint_selection(meta),
                      iteration=(meta or {}).get("iteration"), inference=settings.inference_summary())
    return export_split(index, ScorePredictor(make_predictor(model, settings)), fmt=fmt, out_dir=out_dir,
                        dataset=dataset, num_workers=settings.num_workers, progress=progress, provenance=provenance)
