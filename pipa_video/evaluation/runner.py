"""What the ``pipa-video eval | tc-report`` commands run (``predict``: ``evaluation.predict``).

The config is translated in one place (``build_eval_settings``); the model is built and loaded from
a checkpoint in one place (``load_model``) and wrapped in a ``Predictor`` (resize, normalise,
whole/slide inference with test-time augmentation, arg-max at the frame or label size). Everything
else (``evaluate_dataset``, the metric, temporal consistency, the reports) takes plain objects, so
tests and the engine's periodic evaluation can inject a model or a dataset.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from pipa_video.config import size_wh
from pipa_video.data.classes import ClassSet, Rider, get_class_set
from pipa_video.data.index import DatasetError, FrameIndex, load_index
from pipa_video.data.io import VideoFrameReader, read_frame, read_train_ids
from pipa_video.evaluation.inference import InferenceMode, ModelFn, predict_labels
from pipa_video.data.build import check_index_class_set, worker_init
from pipa_video.evaluation.conditions import ConditionScorer, key_conditions, report_conditions
from pipa_video.evaluation.metrics import Protocol, SegEvaluator
from pipa_video.evaluation.report import (ReportContext, checkpoint_selection, format_table, per_class_frame,
                                          write_eval_report, write_tc_report)
from pipa_video.evaluation.temporal import TemporalConsistency
from pipa_video.models.checkpoint import (CheckpointError, load_state_dict_strict,  # CheckpointError: re-exported
                                          read_checkpoint)

DATASET_SECTIONS = ("source", "target", "val", "test")
CHECKPOINT_KEYS = ("model", "config", "meta")
TC_PROTOCOL = "temporal consistency (DIS optical flow, preset medium, forward-backward check)"
PREDICTION_NAME = "{frame:06d}.png"  # <predictions_dir>/<sequence>/<frame:06d>.png, train ids

# model_builder(cfg, num_classes) -> a segmentor with .inference(img) -> logits.
ModelBuilder = Callable[[Mapping, int], nn.Module]


# --- config -> settings --------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalSettings:
    """Everything evaluation reads from a config, as plain values."""

    class_set: ClassSet
    protocol: Protocol
    mode: InferenceMode
    resize_wh: tuple[int, int] | None
    tc_resize_wh: tuple[int, int] | None  # temporal consistency's (w, h); None = the predictions' size
    window: tuple[int, int]
    stride: tuple[int, int]
    flip: bool
    scales: tuple[float, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    device: str
    num_workers: int

    def make_evaluator(self) -> SegEvaluator:
        """A fresh evaluator over this class set's reported classes under this protocol."""
        cs = self.class_set
        return SegEvaluator(num_classes=cs.num_classes, eval_ids=cs.eval_ids, protocol=self.protocol,
                            class_names=cs.names)

    def inference_summary(self) -> dict:
        summary = dict(mode=self.mode.value, resize=self.resize_wh, flip=self.flip, scales=list(self.scales))
        if self.mode is InferenceMode.SLIDE:
            summary.update(window=self.window, stride=self.stride)
        return summary


def build_eval_settings(cfg: Mapping, *, protocol: str | None = None) -> EvalSettings:
    """The one place where the ``evaluation`` (and data normalisation) config is read."""
    ev = cfg["evaluation"]
    resize = ev["resize"]
    return EvalSettings(
        class_set=get_class_set(cfg["class_set"]),
        protocol=Protocol.parse(protocol or ev["protocol"]),
        mode=InferenceMode.parse(ev["mode"]),
        resize_wh=tuple(int(v) for v in resize) if resize else None,
        tc_resize_wh=size_wh(ev["tc_resize"], key="evaluation.tc_resize"),  # checked again: cfg may be edited
        window=tuple(int(v) for v in ev["window"]),
        stride=tuple(int(v) for v in ev["stride"]),
        flip=bool(ev["flip"]),
        scales=tuple(float(s) for s in ev["scales"]),
        mean=tuple(float(v) for v in cfg["data"]["mean"]),
        std=tuple(float(v) for v in cfg["data"]["std"]),
        device=cfg["runtime"]["device"],
        num_workers=int(cfg["data"]["num_workers"]),
    )


def split_index(cfg: Mapping, split: str) -> FrameIndex:
    """The frame index of ``data.<split>``; errors name the key or the missing directory."""
    if split not in DATASET_SECTIONS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(DATASET_SECTIONS)}")
    section = cfg["data"][split]
    if not section["index"]:
        raise DatasetError(f"data.{split}.index is not set: point it at an index directory written by "
                           f"data_tools/prepare_<dataset>.py (or pass --cfg-options data.{split}.index=DIR)")
    index_dir = Path(section["index"])
    if not index_dir.is_dir():
        raise DatasetError(f"data.{split}.index: directory {index_dir} does not exist")
    index = load_index(index_dir, root=section["root"])
    check_index_class_set(index, cfg, key=f"data.{split}.index")
    return index


# --- checkpoint -> model -------------------------------------------------------------------------
def load_checkpoint(path: str | os.PathLike) -> dict:
    """A pipa-video checkpoint for evaluation: ``read_checkpoint`` (weights only) + the keys it needs."""
    ckpt = read_checkpoint(path)
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: lacks {missing}; expected a dict with {list(CHECKPOINT_KEYS)} "
                              f"as written by the pipa-video engine")
    return ckpt


def _model_types(config: Mapping) -> tuple[str | None, str | None]:
    model = config.get("model") or {}
    return (model.get("backbone") or {}).get("type"), (model.get("decode_head") or {}).get("type")


def check_checkpoint_compatible(ckpt: dict, cfg: Mapping, *, path: str | os.PathLike) -> None:
    """Class set (and number of classes) and model types of the checkpoint must match the config."""
    trained = ckpt["meta"].get("class_set") or ckpt["config"].get("class_set")
    try:
        trained_set = get_class_set(trained)
    except KeyError:
        raise CheckpointError(f"checkpoint {path} records an unknown class set {trained!r}") from None
    wanted = get_class_set(cfg["class_set"])
    if trained_set.name != wanted.name:
        raise CheckpointError(
            f"checkpoint {path} was trained for class set {trained_set.name} ({trained_set.num_classes} classes), "
            f"config asks for {wanted.name} ({wanted.num_classes})")
    got, want = _model_types(ckpt["config"]), _model_types(cfg)
    if got != want:
        raise CheckpointError(
            f"checkpoint {path} holds a model with backbone {got[0]!r} and decode head {got[1]!r}, the config "
            f"asks for backbone {want[0]!r} and decode head {want[1]!r} (model.backbone.type, model.decode_head.type)")


def load_weights_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, path: str | os.PathLike) -> None:
    """Strict load; on failure the error lists missing, unexpected and mis-shaped keys."""
    load_state_dict_strict(model, state_dict, source=f"checkpoint {path}", target="the model built from the config")


def default_model_builder(cfg: Mapping, num_classes: int) -> nn.Module:
    from pipa_video.models import build_segmentor

    return build_segmentor(cfg["model"], num_classes=num_classes)


def load_model(cfg: Mapping, ckpt: dict, *, path: str | os.PathLike,
               model_builder: ModelBuilder | None = None) -> nn.Module:
    """Build the segmentor from the config and load the checkpoint's weights into it (eval mode)."""
    check_checkpoint_compatible(ckpt, cfg, path=path)
    model = (model_builder or default_model_builder)(cfg, get_class_set(cfg["class_set"]).num_classes)
    load_weights_strict(model, ckpt["model"], path=path)
    return model.eval()


def _device(preference: str) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device='cuda' but torch sees no CUDA device")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


# --- prediction ----------------------------------------------------------------------------------
class Predictor:
    """Frames or normalised batches -> arg-max train ids, with the configured inference."""

    def __init__(self, model_fn: ModelFn, *, settings: EvalSettings, device: torch.device | str = "cpu") -> None:
        self.model_fn = model_fn
        self.settings = settings
        self.device = torch.device(device)
        self._mean = torch.tensor(settings.mean).view(1, 3, 1, 1)
        self._std = torch.tensor(settings.std).view(1, 3, 1, 1)

    @classmethod
    def from_model(cls, model: nn.Module, *, settings: EvalSettings) -> "Predictor":
        device = _device(settings.device)
        model = model.to(device).eval()
        return cls(model.inference, settings=settings, device=device)

    @torch.inference_mode()
    def predict_batch(self, img: torch.Tensor, *, out_size: Sequence[int]) -> torch.Tensor:
        """(B, H, W) int64 train ids on the CPU of a normalised batch (B, 3, h, w)."""
        s = self.settings
        labels = predict_labels(self.model_fn, img.to(self.device, torch.float32), mode=s.mode, window=s.window,
                                stride=s.stride, flip=s.flip, scales=s.scales, out_size=tuple(out_size))
        return labels.cpu()

    def normalise(self, frames_rgb: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 frames of one size -> (B, 3, h, w) float, resized to ``evaluation.resize``."""
        if self.settings.resize_wh is not None:
            frames_rgb = [cv2.resize(f, self.settings.resize_wh, interpolation=cv2.INTER_LINEAR) for f in frames_rgb]
        img = torch.from_numpy(np.stack(frames_rgb)).permute(0, 3, 1, 2).float()
        return (img - self._mean) / self._std

    def predict_frames(self, frames_rgb: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 (H, W) train ids at each frame's own size (frames of one batch share a size)."""
        sizes = {f.shape[:2] for f in frames_rgb}
        if len(sizes) != 1:
            raise ValueError(f"frames of one batch must share a size, got {sorted(sizes)}")
        labels = self.predict_batch(self.normalise(frames_rgb), out_size=sizes.pop())
        return list(labels.numpy().astype(np.uint8))


# --- evaluation ----------------------------------------------------------------------------------
def _rank_and_world() -> tuple[int, int]:
    if torch_dist.is_available() and torch_dist.is_initialized():
        return torch_dist.get_rank(), torch_dist.get_world_size()
    return 0, 1


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks; NCCL only reduces CUDA tensors."""
    device = torch.device("cuda", torch.cuda.current_device()) if torch_dist.get_backend() == "nccl" else "cpu"
    tensor = tensor.to(device)
    torch_dist.all_reduce(tensor)
    return tensor.cpu()


def evaluate_dataset(predictor: Predictor, dataset: Dataset, *, evaluator: SegEvaluator, num_workers: int = 0,
                     rank: int = 0, world_size: int = 1, reduce_fn=None, progress: bool = True) -> dict:
    """Run ``predictor`` over the labelled key frames of ``dataset`` (clip samples) and evaluate.

    Frames are sharded ``rank::world_size`` (no padding, so no frame counts twice) and the confusion
    matrices summed with ``reduce_fn`` when ``world_size > 1``; ACDC / Dark Zurich add ``per_condition``.
    """
    from tqdm import tqdm

    items = range(rank, len(dataset), world_size)
    loader = DataLoader(Subset(dataset, items), batch_size=1, num_workers=num_workers, worker_init_fn=worker_init)
    scorer = ConditionScorer(evaluator, key_conditions(dataset))
    skipped = 0
    for item, sample in zip(items, tqdm(loader, desc="evaluate", disable=not progress or rank != 0)):
        if not bool(sample["has_label"][0, 0]):
            skipped += 1  # a key frame without ground truth cannot be scored
            continue
        label = sample["label"][:, 0]
        pred = predictor.predict_batch(sample["img"][:, 0], out_size=label.shape[-2:])
        scorer.process(item, pred, label)
    if world_size > 1:
        scorer.sum_across_ranks(reduce_fn or _all_reduce_sum)
    if evaluator.num_images == 0:
        raise DatasetError(f"no labelled key frame to evaluate ({skipped} unlabelled ones skipped)")
    return scorer.evaluate()


def protocol_notes(*, protocol: Protocol, rider: str, class_set: ClassSet, selection: str, split: str) -> list[str]:
    """Warnings a reader of the number needs: mismatched rider rule, selection on the evaluated split."""
    notes = []
    if "rider" not in class_set.names:
        expected = Rider.PERSON.value if protocol is Protocol.DAVSN else Rider.IGNORE.value
        if rider != expected:
            notes.append(f"labels were converted with rider={rider}, the {protocol.value} protocol uses "
                         f"rider={expected}: numbers are not comparable with published {protocol.value} results")
    if f"data.{split}" in selection and "best" in selection.lower():
        notes.append(f"the checkpoint was selected on data.{split}, the split evaluated here: this number "
                     f"is biased upwards (model selection on the evaluation set)")
    return notes


def _context(*, settings: EvalSettings, protocol: str, split: str, index: FrameIndex, checkpoint: str | None,
             meta: dict | None, extra_notes: Sequence[str] = (), resolution: str | None = None) -> ReportContext:
    selection = checkpoint_selection(meta) if checkpoint else "none (saved predictions)"
    notes = list(extra_notes)
    if protocol in {p.value for p in Protocol}:
        notes = protocol_notes(protocol=Protocol(protocol), rider=index.meta.rider, class_set=settings.class_set,
                               selection=selection, split=split) + notes
    cs = settings.class_set
    return ReportContext(
        protocol=protocol, class_set=cs.name, evaluated_classes=[cs.names[i] for i in cs.eval_ids], split=split,
        checkpoint=str(checkpoint) if checkpoint else "none", selection=selection,
        iteration=(meta or {}).get("iteration"), rider=index.meta.rider, index_dir=str(index.index_dir),
        inference=settings.inference_summary() if checkpoint else {}, resolution=resolution, notes=notes)


def default_dataset_builder(cfg: Mapping, split: str) -> Dataset:
    from pipa_video.data.build import build_eval_dataset

    return build_eval_dataset(cfg, split)


def evaluate(cfg: Mapping, *, checkpoint: str, out_dir: str | os.PathLike | None, protocol: str | None = None,
             split: str = "val", model_builder: ModelBuilder | None = None,
             dataset_builder: Callable[[Mapping, str], Dataset] | None = None, progress: bool = True) -> dict:
    """``pipa-video eval``: mIoU of a checkpoint on ``data.<split>``; writes the report to ``out_dir``."""
    settings = build_eval_settings(cfg, protocol=protocol)
    index = split_index(cfg, split)
    ckpt = load_checkpoint(checkpoint)
    predictor = Predictor.from_model(load_model(cfg, ckpt, path=checkpoint, model_builder=model_builder),
                                     settings=settings)
    dataset = (dataset_builder or default_dataset_builder)(cfg, split)
    rank, world_size = _rank_and_world()
    cs = settings.class_set
    evaluator = settings.make_evaluator()
    results = evaluate_dataset(predictor, dataset, evaluator=evaluator, num_workers=settings.num_workers,
                               rank=rank, world_size=world_size, progress=progress)
    context = _context(settings=settings, protocol=settings.protocol.value, split=split, index=index,
                       checkpoint=checkpoint, meta=ckpt["meta"])
    files = {}
    if rank == 0:
        if out_dir is not None:
            files = write_eval_report(out_dir, results, context, class_set=cs)
        print("\n".join(context.lines()))
        print(format_table(per_class_frame(results)[lambda f: f["evaluated"]]))
        print(f"mIoU {results['mIoU']:.2f} ({settings.protocol.value} protocol, {len(cs.eval_ids)} classes)")
        files.update(report_conditions(out_dir, results, context))  # ACDC, Dark Zurich: per condition
    return dict(results, context=asdict(context), files={k: str(v) for k, v in files.items()})


# --- temporal consistency report -----------------------------------------------------------------
def _sequence_rows(index: FrameIndex, max_sequences: int | None) -> Iterator[tuple[str, list[int]]]:
    frames = index.frames
    names = list(dict.fromkeys(frames["sequence"]))
    if max_sequences is not None:
        names = names[:max_sequences]
    groups = frames.groupby("sequence", sort=False).indices
    for name in names:
        yield name, sorted(groups[name], key=lambda row: frames["frame"].iat[row])


LAYOUT_FPS = {"cityscapes_seq": 17.0, "cityscapes": 17.0}  # Cordts et al. 2016: 17 Hz video


def sequence_rates(index: FrameIndex) -> dict[str, float | None]:
    """Frames per second of each sequence: a footage video's measured rate, a layout's published one."""
    rates = {str(r["sequence"]): r.get("fps") for r in index.meta.videos.values()}
    default = LAYOUT_FPS.get(index.meta.layout)
    return {str(name): rates.get(str(name), default) for name in dict.fromkeys(index.frames["sequence"])}


def saved_prediction(predictions_dir: str | os.PathLike, sequence: str, frame: int) -> np.ndarray:
    path = Path(predictions_dir) / str(sequence) / PREDICTION_NAME.format(frame=int(frame))
    if not path.is_file():
        raise DatasetError(f"prediction {path} not found: --predictions must hold a train-id PNG "
                           f"<sequence>/<frame:06d>.png for every frame of the split (predict writes them "
                           f"to OUT/train_ids/)")
    return read_train_ids(path)


def tc_resolution(resolution: Mapping) -> str:
    """What a ``TemporalConsistency`` result's ``resolution`` means, for the report."""
    sizes = ", ".join(f"{w}x{h}" for w, h in resolution["computed_wh"]) or "no frame"
    if resolution["size_wh"] is None:
        return f"{sizes} (w x h): the predictions' own size, full resolution (evaluation.tc_resize not set)"
    return (f"{sizes} (w x h) set by evaluation.tc_resize: frames resized with area interpolation, "
            f"predictions and labels with nearest neighbour")


def tc_report(cfg: Mapping, *, out_dir: str | os.PathLike, checkpoint: str | None = None,
              predictions_dir: str | None = None, split: str = "val", max_sequences: int | None = None,
              model_builder: ModelBuilder | None = None, progress: bool = True) -> dict:
    """``pipa-video tc-report``: temporal consistency over every frame of each sequence of a split.

    Predictions come from ``checkpoint`` (run here) or from ``predictions_dir`` (``--predictions``: saved
    train-id PNGs, e.g. ``predict``'s ``OUT/train_ids``). ``tc_over_time.png`` plots seconds from each
    sequence's start where the rate is known (footage: measured at prepare time; Cityscapes: 17 fps).
    """
    from tqdm import tqdm

    if (checkpoint is None) == (predictions_dir is None):
        raise ValueError("tc-report needs exactly one of --checkpoint (run the model) or --predictions DIR "
                         "(read saved <sequence>/<frame:06d>.png train-id predictions)")
    settings = build_eval_settings(cfg)
    index = split_index(cfg, split)
    meta, predictor = None, None
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        meta = ckpt["meta"]
        predictor = Predictor.from_model(load_model(cfg, ckpt, path=checkpoint, model_builder=model_builder),
                                         settings=settings)
    tc = TemporalConsistency(num_classes=settings.class_set.num_classes, size_wh=settings.tc_resize_wh)
    videos = VideoFrameReader()
    sequences = list(_sequence_rows(index, max_sequences))
    bar = tqdm(total=sum(len(rows) for _, rows in sequences), desc="tc-report", disable=not progress)
    for name, rows in sequences:
        for row in rows:
            path, frame_id = index.frame_source(row)
            frame = read_frame(path, frame_id, videos)
            if predictor is not None:
                pred = predictor.predict_frames([frame])[0]
            else:
                pred = saved_prediction(predictions_dir, name, frame_id)
            label_path = index.label_path(row)
            label = read_train_ids(label_path) if label_path is not None else None
            tc.process(frame, pred, label, sequence=name, frame=frame_id)
            bar.update()
    bar.close()
    results = tc.evaluate()
    notes = [] if checkpoint else [f"predictions read from {predictions_dir}"]
    gaps = [p["gap"] for p in results["pairs"] if p["gap"] is not None and p["gap"] != 1]
    if gaps:  # the index skips frames: those pairs are further apart in time than consecutive frames
        notes.append(f"{len(gaps)} of {len(results['pairs'])} frame pairs are not consecutive frames "
                     f"(gaps {sorted(set(gaps))[:5]}); see the gap column of {Path(out_dir) / 'tc_pairs.csv'}")
    context = _context(settings=settings, protocol=TC_PROTOCOL, split=split, index=index, checkpoint=checkpoint,
                       meta=meta, extra_notes=notes, resolution=tc_resolution(results["resolution"]))
    files = write_tc_report(out_dir, results, context, fps=sequence_rates(index))
    o = results["overall"]
    print("\n".join(context.lines()))
    print(f"TC mIoU {o['tc_miou']:.2f}  agreement {o['agreement']:.2f}  flicker {o['flicker']:.2f}  "
          f"({o['sequences']} sequences, {o['pairs']} frame pairs)")
    return dict(results, context=asdict(context), files={k: str(v) for k, v in files.items()})
