"""What ``pipa-video eval | tc-report`` run, on a model they are given.

Evaluation never reads a checkpoint: the CLI and the demo restore the segmentor with
``engine.checkpoint.load_segmentor`` (which owns the format and the compatibility checks) and pass
the model with its checkpoint path and ``meta``; the trainer's periodic validation passes its live
model. The config's ``evaluation`` section is read in one place (``build_eval_settings``); the split
is read through the training code's index and dataset classes (``data.build``); one pass of the one
inference loop (``loop.inference_on_dataset``) feeds every evaluator: mIoU under a protocol (overall
and per condition) and, with ``temporal``, flicker and flow-warped consistency over every frame of
each sequence.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from pipa_video.config import ConfigError
from pipa_video.data.build import build_eval_dataset
from pipa_video.data.classes import ClassSet, Rider, get_class_set
from pipa_video.data.index import FrameIndex
from pipa_video.evaluation.conditions import key_conditions, report_conditions
from pipa_video.evaluation.evaluator import DatasetEvaluators, SemSegEvaluator, TemporalEvaluator
from pipa_video.evaluation.inference import InferenceMode
from pipa_video.evaluation.loop import (SINGLE_PROCESS, Comm, InferenceSettings, Predictor, PredictorLike,
                                        SavedPredictions, inference_on_dataset)
from pipa_video.evaluation.metrics import Protocol
from pipa_video.evaluation.report import (ReportContext, checkpoint_selection, format_table, per_class_frame,
                                          write_eval_report, write_tc_report)

TC_PROTOCOL = "temporal consistency (DIS optical flow, preset medium, forward-backward check)"
LAYOUT_FPS = {"cityscapes_seq": 17.0, "cityscapes": 17.0}  # Cordts et al. 2016: 17 Hz video


# --- config -> settings --------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalSettings:
    """Everything evaluation reads from a config, as plain values."""

    class_set: ClassSet
    protocol: Protocol
    inference: InferenceSettings
    resize_wh: tuple[int, int] | None  # the network input's (w, h); None = the frame's own size
    tc_resize_wh: tuple[int, int] | None  # temporal consistency's (w, h); None = the predictions' size
    device: str
    num_workers: int

    def inference_summary(self) -> dict:
        s = self.inference
        summary = dict(mode=s.mode.value, resize=self.resize_wh, flip=s.flip, scales=list(s.scales))
        if s.mode is InferenceMode.SLIDE:
            summary.update(window=s.window, stride=s.stride)
        return summary


def _size_wh(value, *, key: str) -> tuple[int, int] | None:
    """None, or ``value`` as two positive ints (w, h); a ConfigError naming ``key`` otherwise."""
    if value is None:
        return None
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ConfigError(f"{key}: expected two positive ints (w, h) or None, got {value!r}")
    return int(value[0]), int(value[1])


def build_eval_settings(cfg: Mapping, *, protocol: str | None = None) -> EvalSettings:
    """The one place where the ``evaluation`` config is read."""
    ev = cfg["evaluation"]
    resize = ev["resize"]
    inference = InferenceSettings(mode=InferenceMode.parse(ev["mode"]), window=tuple(int(v) for v in ev["window"]),
                                  stride=tuple(int(v) for v in ev["stride"]), flip=bool(ev["flip"]),
                                  scales=tuple(float(s) for s in ev["scales"]))
    return EvalSettings(
        class_set=get_class_set(cfg["class_set"]), protocol=Protocol.parse(protocol or ev["protocol"]),
        inference=inference, resize_wh=tuple(int(v) for v in resize) if resize else None,
        tc_resize_wh=_size_wh(ev["tc_resize"], key="evaluation.tc_resize"),  # checked again: cfg may be edited
        device=cfg["runtime"]["device"], num_workers=int(cfg["data"]["num_workers"]))


def inference_device(preference: str) -> torch.device:
    """``runtime.device`` for a single-process command: auto = CUDA when available."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device='cuda' but torch sees no CUDA device")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def make_predictor(model: nn.Module, settings: EvalSettings, *, device: torch.device | str | None = None) -> Predictor:
    """``model`` with the configured inference, on ``device`` (default: ``runtime.device``)."""
    return Predictor(model, settings=settings.inference,
                     device=device if device is not None else inference_device(settings.device))


# --- one pass over a split -------------------------------------------------------------------------
def split_evaluators(settings: EvalSettings, dataset: Dataset, *, miou: bool = True, temporal: bool = False,
                     comm: Comm = SINGLE_PROCESS) -> DatasetEvaluators:
    """mIoU (per condition where the index records conditions) and/or temporal consistency."""
    evaluators = []
    if miou:
        evaluators.append(SemSegEvaluator(class_set=settings.class_set, protocol=settings.protocol,
                                          conditions=key_conditions(dataset),
                                          reduce_sum=comm.reduce_sum if comm.distributed else None))
    if temporal:
        evaluators.append(TemporalEvaluator(num_classes=settings.class_set.num_classes, size_wh=settings.tc_resize_wh,
                                            gather_objects=comm.gather_objects if comm.distributed else None))
    return DatasetEvaluators(evaluators)


def run_split(predictor: PredictorLike, dataset: Dataset, settings: EvalSettings, *, miou: bool = True,
              temporal: bool = False, comm: Comm = SINGLE_PROCESS, items: Sequence[int] | None = None,
              progress: str | None = None) -> dict:
    """One pass of the inference loop over ``dataset``: ``{"sem_seg": ..., "temporal": ...}`` as asked.

    The dataset holds every frame (``build_eval_dataset(all_frames=True, keep_frames=True)``) when
    ``temporal``; mIoU then scores its labelled frames. Every rank returns the whole split's results.
    """
    evaluators = split_evaluators(settings, dataset, miou=miou, temporal=temporal, comm=comm)
    return inference_on_dataset(predictor, dataset, evaluators, comm=comm, items=items, by_sequence=temporal,
                                num_workers=settings.num_workers, progress=progress)


# --- report context ----------------------------------------------------------------------------------
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
             meta: Mapping | None, extra_notes: Sequence[str] = (), resolution: str | None = None) -> ReportContext:
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


def sequence_rates(index: FrameIndex) -> dict[str, float | None]:
    """Frames per second of each sequence: a footage video's measured rate, a layout's published one."""
    rates = {str(r["sequence"]): r.get("fps") for r in index.meta.videos.values()}
    default = LAYOUT_FPS.get(index.meta.layout)
    return {str(name): rates.get(str(name), default) for name in dict.fromkeys(index.frames["sequence"])}


def tc_resolution(resolution: Mapping) -> str:
    """What a ``TemporalConsistency`` result's ``resolution`` means, for the report."""
    sizes = ", ".join(f"{w}x{h}" for w, h in resolution["computed_wh"]) or "no frame"
    if resolution["size_wh"] is None:
        return f"{sizes} (w x h): the predictions' own size, full resolution (evaluation.tc_resize not set)"
    return (f"{sizes} (w x h) set by evaluation.tc_resize: frames resized with area interpolation, "
            f"predictions and labels with nearest neighbour")


def _tc_notes(results: dict, out_dir: str | os.PathLike) -> list[str]:
    gaps = [p["gap"] for p in results["pairs"] if p["gap"] is not None and p["gap"] != 1]
    if not gaps:
        return []
    # the index skips frames: those pairs are further apart in time than consecutive frames
    return [f"{len(gaps)} of {len(results['pairs'])} frame pairs are not consecutive frames "
            f"(gaps {sorted(set(gaps))[:5]}); see the gap column of {Path(out_dir) / 'tc_pairs.csv'}"]


# --- the commands ------------------------------------------------------------------------------------
def _report_miou(results: dict, context: ReportContext, settings: EvalSettings, out_dir) -> dict:
    files = write_eval_report(out_dir, results, context, class_set=settings.class_set) if out_dir is not None else {}
    cs = settings.class_set
    print("\n".join(context.lines()))
    print(format_table(per_class_frame(results)[lambda f: f["evaluated"]]))
    print(f"mIoU {results['mIoU']:.2f} ({settings.protocol.value} protocol, {len(cs.eval_ids)} classes)")
    files.update(report_conditions(out_dir, results, context))  # ACDC, Dark Zurich: per condition
    return files


def _report_tc(results: dict, context: ReportContext, index: FrameIndex, out_dir) -> dict:
    files = write_tc_report(out_dir, results, context, fps=sequence_rates(index))
    o = results["overall"]
    print("\n".join(context.lines()))
    print(f"TC mIoU {o['tc_miou']:.2f}  agreement {o['agreement']:.2f}  flicker {o['flicker']:.2f}  "
          f"({o['sequences']} sequences, {o['pairs']} frame pairs)")
    return files


def _tc_context(results: dict, settings: EvalSettings, *, split: str, index: FrameIndex, checkpoint: str | None,
                meta: Mapping | None, out_dir, extra: Sequence[str] = ()) -> ReportContext:
    return _context(settings=settings, protocol=TC_PROTOCOL, split=split, index=index, checkpoint=checkpoint,
                    meta=meta, extra_notes=[*extra, *_tc_notes(results, out_dir)],
                    resolution=tc_resolution(results["resolution"]))


def evaluate(cfg: Mapping, model: nn.Module, *, checkpoint: str | None = None, meta: Mapping | None = None,
             out_dir: str | os.PathLike | None = None, protocol: str | None = None, split: str = "val",
             temporal: bool = False, progress: bool = True) -> dict:
    """``pipa-video eval``: mIoU of ``model`` on ``data.<split>`` and, with ``temporal``, its temporal
    consistency over every frame of each sequence, in one pass; writes the reports to ``out_dir``.

    ``checkpoint`` and ``meta`` say where the model came from (the report states its selection).
    Returns the mIoU results with ``context``, ``files`` and, with ``temporal``, ``temporal``.
    """
    settings = build_eval_settings(cfg, protocol=protocol)
    dataset = build_eval_dataset(cfg, split, all_frames=temporal, keep_frames=temporal)
    results = run_split(make_predictor(model, settings), dataset, settings, temporal=temporal,
                        progress="evaluate" if progress else None)
    miou = results["sem_seg"]
    context = _context(settings=settings, protocol=settings.protocol.value, split=split, index=dataset.index,
                       checkpoint=checkpoint, meta=meta)
    files = _report_miou(miou, context, settings, out_dir)
    out = dict(miou, context=asdict(context))
    if temporal:
        tc = results["temporal"]
        tc_context = _tc_context(tc, settings, split=split, index=dataset.index, checkpoint=checkpoint, meta=meta,
                                 out_dir=out_dir or ".")
        if out_dir is not None:
            files.update({f"tc_{k}": v for k, v in _report_tc(tc, tc_context, dataset.index, out_dir).items()})
        out["temporal"] = dict(tc, context=asdict(tc_context))
    return dict(out, files={k: str(v) for k, v in files.items()})


def tc_report(cfg: Mapping, model: nn.Module | None = None, *, out_dir: str | os.PathLike,
              checkpoint: str | None = None, meta: Mapping | None = None, predictions_dir: str | None = None,
              split: str = "val", max_sequences: int | None = None, progress: bool = True) -> dict:
    """``pipa-video tc-report``: temporal consistency over every frame of each sequence of a split.

    Predictions come from ``model`` (run here) or from ``predictions_dir`` (``--predictions``: saved
    train-id PNGs, e.g. ``predict``'s ``OUT/train_ids``). ``tc_over_time.png`` plots seconds from each
    sequence's start where the rate is known (footage: measured at prepare time; Cityscapes: 17 fps).
    """
    if (model is None) == (predictions_dir is None):
        raise ValueError("tc-report needs exactly one of --checkpoint (run the model) or --predictions DIR "
                         "(read saved <sequence>/<frame:06d>.png train-id predictions)")
    settings = build_eval_settings(cfg)
    dataset = build_eval_dataset(cfg, split, all_frames=True, keep_frames=True)
    predictor = make_predictor(model, settings) if model is not None else SavedPredictions(predictions_dir)
    results = run_split(predictor, dataset, settings, miou=False, temporal=True,
                        items=_first_sequences(dataset, max_sequences),
                        progress="tc-report" if progress else None)["temporal"]
    notes = [] if model is not None else [f"predictions read from {predictions_dir}"]
    context = _tc_context(results, settings, split=split, index=dataset.index,
                          checkpoint=checkpoint if model is not None else None, meta=meta, out_dir=out_dir,
                          extra=notes)
    files = _report_tc(results, context, dataset.index, out_dir)
    return dict(results, context=asdict(context), files={k: str(v) for k, v in files.items()})


def _first_sequences(dataset, max_sequences: int | None) -> list[int] | None:
    """The items of the first ``max_sequences`` sequences (all when None)."""
    if max_sequences is None:
        return None
    sequences = dataset.key_frame_table()["sequence"].astype(str)
    keep = set(list(dict.fromkeys(sequences))[:max_sequences])
    return [i for i, name in enumerate(sequences) if name in keep]
