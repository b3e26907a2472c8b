"""Builders: the one place where the ``data`` (and ``evaluation.resize``) config becomes objects.

``build_clip_dataset(cfg, domain)`` -> ClipDataset for ``data.<domain>``;
``build_train_loaders(cfg, start_iter=...)`` -> infinite iterators of collated source/target batches
(the source from ``data.source``, or from every ``data.sources`` entry: ``data.multisource``);
``build_eval_dataset(cfg, split)`` -> labelled one-frame clips, image resized, labels at full size;
``load_domain_index(cfg, domain)`` -> the index of ``data.<domain>`` (every reader's one path to it).
"""
from __future__ import annotations

import os

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import cv2
import torch
from torch.utils.data import DataLoader

from pipa_video.data.classes import get_class_set
from pipa_video.data.clips import Boundary, ClipDataset, KeyFrames
from pipa_video.data.frame_cache import check_not_cached
from pipa_video.data.index import DatasetError, FrameIndex, load_index
from pipa_video.data.multisource import (MultiSourceDataset, check_annotated, check_reported_classes,
                                         source_annotated_ids, source_sections)
from pipa_video.data.sampling import IterationSampler, MultiSourceSampler, RareClassSampler, SourceKeys
from pipa_video.data.transforms import (ClipOp, ClipTransform, EvalTransform, FrameCrop, Normalize,
                                        PhotoMetricDistortion, RandomCrop, RandomFlip,
                                        RandomRescale, Resize)


class Domain(str, Enum):
    SOURCE = "source"
    TARGET = "target"
    VAL = "val"
    TEST = "test"


EVAL_SPLITS = (Domain.VAL, Domain.TEST)
UDA_SOURCE_ONLY = "source_only"
# Sampler streams: source and target batches of one iteration must not share random draws.
SOURCE_STREAM, TARGET_STREAM = 0, 1


def _domain(domain: str) -> Domain:
    try:
        return Domain(domain)
    except ValueError:
        raise ValueError(f"unknown data domain {domain!r}; expected one of {[d.value for d in Domain]}") from None


def _pair(value, key: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if len(value) != 2:
        raise ValueError(f"{key}: expected two numbers, got {value!r}")
    return int(value[0]), int(value[1])


def _borders(value, key: str) -> tuple[int, int, int, int] | None:
    """None, or (top, bottom, left, right) as four ints >= 0."""
    if value is None:
        return None
    if len(value) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ValueError(f"{key}: expected (top, bottom, left, right), four ints >= 0, or None; got {value!r}")
    return tuple(int(v) for v in value)


def build_clip_transform(section: Mapping, *, mean, std, key: str) -> ClipTransform:
    """Training transform of one ``data.<domain>`` section (``key`` names it in errors).

    Order as DAFormer: [cut ``frame_crop`` off the stored frame,] resize to ``resize``, random rescale by
    ``ratio_range``, random crop, flip, photometric jitter, normalise. The geometric steps compose
    into one resampling. ``pseudo_margins`` (target) are in the coordinates of the frame after ``frame_crop``.
    """
    ops: list[ClipOp] = []
    frame_crop = _borders(section.get("frame_crop"), f"{key}.frame_crop")
    if frame_crop is not None and any(frame_crop):
        ops.append(FrameCrop(borders=frame_crop))
    resize = _pair(section["resize"], f"{key}.resize")
    if resize is not None:
        ops.append(Resize(size=resize, keep_ratio=bool(section["keep_ratio"])))
    if section["ratio_range"] is not None:
        low, high = map(float, section["ratio_range"])
        if not 0 < low <= high:
            raise ValueError(f"{key}.ratio_range: expected 0 < low <= high, got {section['ratio_range']!r}")
        ops.append(RandomRescale(base_size=None, ratio_range=(low, high)))
    crop_size = _pair(section["crop_size"], f"{key}.crop_size")
    if crop_size is not None:
        ops.append(RandomCrop(crop_size=crop_size, cat_max_ratio=float(section["cat_max_ratio"])))
    if section["flip_prob"] > 0:
        ops.append(RandomFlip(prob=float(section["flip_prob"])))
    if section["photometric"]:
        ops.append(PhotoMetricDistortion())
    return ClipTransform(ops, normalize=Normalize(mean=tuple(mean), std=tuple(std)),
                         pseudo_margins=_borders(section.get("pseudo_margins"), f"{key}.pseudo_margins"))


def load_domain_index(cfg: Mapping, domain: str | Domain) -> FrameIndex:
    """The frame index of ``data.<domain>``: the one path from a config to an index (training, validation,
    ``eval``, ``tc-report``, ``predict --format``). Errors name the key; the index's class set must be the
    config's (``check_index_class_set``)."""
    domain = _domain(domain)
    section = cfg["data"][domain.value]
    key = f"data.{domain.value}.index"
    if section["index"] is None:
        raise DatasetError(f"{key} is not set: point it at an index directory written by "
                           f"data_tools/prepare_<dataset>.py (or pass --cfg-options {key}=DIR)")
    if not Path(section["index"]).is_dir():
        raise DatasetError(f"{key} = {section['index']!r}: no such directory (an index directory "
                           f"holds index.csv and meta.json)")
    index = load_index(section["index"], root=section["root"])
    check_index_class_set(index, cfg, key=key)
    return index



def check_index_class_set(index: FrameIndex, cfg: Mapping, *, key: str) -> None:
    """The index's labels must name the same classes, in the same order, as ``cfg.class_set``.

    An index without labels (footage: class set None, or an older one with no labelled frame) has
    no classes to disagree with and serves any class set.
    """
    wanted = get_class_set(cfg["class_set"])
    if index.class_set is None or not index.frames["labelled"].any():
        return
    if index.class_set.names != wanted.names:
        raise DatasetError(
            f"{key} = {str(index.index_dir)!r} was prepared for class set {index.class_set.name!r} "
            f"({list(index.class_set.names)}), but class_set is {wanted.name!r} "
            f"({list(wanted.names)}): their classes differ; re-run the prepare tool with "
            f"--class-set {wanted.name} or change class_set")


def _dataset_name(index: FrameIndex) -> str:
    return f"{index.meta.layout}/{index.meta.split}"


def build_clip_dataset(cfg: Mapping, domain: str) -> ClipDataset:
    """The ClipDataset of ``data.<domain>`` with its training transform."""
    domain = _domain(domain)
    index = load_domain_index(cfg, domain)
    section = cfg["data"][domain.value]
    transform = build_clip_transform(section, mean=cfg["data"]["mean"], std=cfg["data"]["std"],
                                     key=f"data.{domain.value}")
    return ClipDataset(index=index, offsets=list(section["offsets"]), keys=KeyFrames(section["keys"]),
                       boundary=Boundary(section["boundary"]), transform=transform,
                       name=_dataset_name(index), class_crop_min_pixels=_class_crop_min_pixels(section, domain))


def _class_crop_min_pixels(section: Mapping, domain: Domain) -> float:
    """DAFormer's rare-class re-crop threshold, min_pixels * min_crop_ratio (0: no re-crop)."""
    rcs = section.get("rcs")
    if domain is not Domain.SOURCE or rcs is None or not rcs["enabled"]:
        return 0.0
    if rcs["min_crop_ratio"] < 0:
        raise ValueError(f"data.source.rcs.min_crop_ratio: must be >= 0, got {rcs['min_crop_ratio']}")
    return float(rcs["min_pixels"]) * float(rcs["min_crop_ratio"])


def build_eval_dataset(cfg: Mapping, split: str = "val", *, all_frames: bool = False,
                       keep_frames: bool = False) -> ClipDataset:
    """One-frame clips of ``data.<split>``: its labelled frames (``all_frames``: every frame, in sequence
    order), image resized to ``evaluation.resize`` (when set), labels at their original resolution;
    ``keep_frames`` adds the frames as read (``rgb``)."""
    domain = _domain(split)
    if domain not in EVAL_SPLITS:
        raise ValueError(f"evaluation split must be one of {[d.value for d in EVAL_SPLITS]}, got {split!r}")
    index = load_domain_index(cfg, domain)
    check_not_cached(index, key=f"data.{domain.value}.index")  # evaluation scores full-resolution labels
    return inference_dataset(index, resize=_pair(cfg["evaluation"]["resize"], "evaluation.resize"),
                             mean=cfg["data"]["mean"], std=cfg["data"]["std"], all_frames=all_frames,
                             keep_frames=keep_frames)


def inference_dataset(index: FrameIndex, *, resize: tuple[int, int] | None, mean, std, all_frames: bool = True,
                      keep_frames: bool = False) -> ClipDataset:
    """One-frame clips of any index (a split, a footage index built in memory) for inference: labelled
    frames only, or ``all_frames`` in (sequence, frame) order; frames resized to ``resize`` = (w, h)."""
    transform = EvalTransform(resize=resize, normalize=Normalize(mean=tuple(mean), std=tuple(std)),
                              keep_frames=keep_frames)
    keys = KeyFrames.ALL if all_frames else KeyFrames.LABELLED
    return ClipDataset(index=index, offsets=[], keys=keys, boundary=Boundary.CLAMP, transform=transform,
                       name=_dataset_name(index))


def worker_init(worker_id: int) -> None:
    """``worker_init_fn`` of every DataLoader: one torch and one OpenCV thread per worker process.

    Workers are already parallel with each other and with the main process; a thread pool per
    worker oversubscribes the cores (on a small CPU machine that costs an order of magnitude, see
    docs/design.md). torch's worker loop also sets one torch thread, but OpenCV's pool (resize,
    remap in the transforms) keeps one thread per core unless told. Module level: picklable for spawn.
    """
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


# Batches each worker keeps ready. With ``num_workers`` workers, ``num_workers * PREFETCH_FACTOR``
# batches are in flight: enough to absorb one slow clip (a large rescale) without starving the GPU.
PREFETCH_FACTOR = 4


def usable_workers(requested: int) -> int:
    """``data.num_workers`` capped at the CPUs this process may use: more workers than cores only
    compete for them (torch warns), and the batches do not depend on the worker count."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(int(requested), cpus)


def _loader(dataset: ClipDataset | MultiSourceDataset, sampler: IterationSampler | MultiSourceSampler,
            cfg: Mapping) -> DataLoader:
    """The training DataLoader: persistent workers that prefetch, and page-locked (pinned) batches
    when training on CUDA, so that the trainer's ``non_blocking`` copies overlap with compute."""
    workers = usable_workers(cfg["data"]["num_workers"])
    pin = torch.cuda.is_available() and cfg["runtime"]["device"] != "cpu"
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=pin, worker_init_fn=worker_init,
                      prefetch_factor=PREFETCH_FACTOR if workers > 0 else None)


def _rare_class_sampler(section: Mapping, dataset: ClipDataset, *,
                        classes: Sequence[int] | None = None) -> RareClassSampler | None:
    """DAFormer's rare-class sampling over ``dataset``'s key frames when ``section.rcs`` enables it."""
    rcs = section["rcs"]
    if not rcs["enabled"]:
        return None
    return RareClassSampler.from_frames(dataset.key_frame_table(), columns=dataset.index.class_set.column_names(),
                                        temperature=float(rcs["temperature"]), min_pixels=int(rcs["min_pixels"]),
                                        classes=classes)


def _source_batches(cfg: Mapping, *, start_iter: int, rank: int, world_size: int) -> Iterator[dict]:
    """Batches of the one source ``data.source``."""
    data = cfg["data"]
    source = build_clip_dataset(cfg, Domain.SOURCE.value)
    source_sampler = IterationSampler(num_keys=len(source), batch_size=int(data["source_batch_size"]),
                                      seed=int(cfg["runtime"]["seed"]), start_iter=start_iter, rank=rank,
                                      world_size=world_size, stream=SOURCE_STREAM,
                                      rcs=_rare_class_sampler(data["source"], source))
    return iter(_loader(source, source_sampler, cfg))


@contextmanager
def _named(key: str) -> Iterator[None]:
    """Errors raised for the section given as ``data.source`` name it ``key`` (``data.sources[i]``)."""
    try:
        yield
    except ValueError as error:  # DatasetError, ConfigError and the transforms' ValueError
        raise type(error)(str(error).replace("data.source.", f"{key}.")) from error


def _with_source(cfg: Mapping, section: Mapping) -> dict:
    """``cfg`` with ``section`` as ``data.source`` (what ``build_clip_dataset`` reads)."""
    return {**{k: cfg[k] for k in cfg.keys()}, "data": {**cfg["data"], "source": section}}


def build_source_datasets(cfg: Mapping) -> list[ClipDataset]:
    """One ClipDataset per source the run trains on (``data.sources`` entries, else ``data.source``);
    errors name the entry. Raises ``DatasetError`` as ``build_clip_dataset``."""
    datasets = []
    for key, section in source_sections(cfg["data"]):
        with _named(key):
            datasets.append(build_clip_dataset(_with_source(cfg, section), Domain.SOURCE.value))
    return datasets


def build_multi_source(cfg: Mapping, *, start_iter: int, rank: int = 0,
                       world_size: int = 1) -> tuple[MultiSourceDataset, MultiSourceSampler]:
    """Dataset and batch sampler mixing the ``data.sources`` entries by weight.

    Each source keeps its own class map; its rare-class sampling draws only the classes it annotates.
    Raises ``DatasetError`` for a missing or mismatched index, labels of a class the source's dataset
    does not annotate, or a reported class no source annotates (``data.multisource``).
    """
    class_set = get_class_set(cfg["class_set"])
    datasets = build_source_datasets(cfg)
    keys, annotated = [], []
    for (key, section), dataset in zip(source_sections(cfg["data"]), datasets):
        annotated.append(source_annotated_ids(dataset.index, class_set))
        check_annotated(dataset.index, class_set, annotated[-1], key=f"{key}.index")
        with _named(key):
            rcs = _rare_class_sampler(section, dataset, classes=annotated[-1])
        keys.append(SourceKeys(num_keys=len(dataset), weight=float(section["weight"]), rcs=rcs))
    check_reported_classes(class_set, annotated)
    sampler = MultiSourceSampler(sources=keys, batch_size=int(cfg["data"]["source_batch_size"]),
                                 seed=int(cfg["runtime"]["seed"]), start_iter=start_iter, rank=rank,
                                 world_size=world_size, stream=SOURCE_STREAM)
    return MultiSourceDataset(datasets), sampler


def _multi_source_batches(cfg: Mapping, *, start_iter: int, rank: int, world_size: int) -> Iterator[dict]:
    dataset, sampler = build_multi_source(cfg, start_iter=start_iter, rank=rank, world_size=world_size)
    return iter(_loader(dataset, sampler, cfg))


def build_train_loaders(cfg: Mapping, *, start_iter: int, rank: int = 0,
                        world_size: int = 1) -> tuple[Iterator[dict], Iterator[dict] | None]:
    """Infinite iterators of collated (source, target) batches starting at iteration ``start_iter``.

    The source batches come from ``data.source``, or, when ``data.sources`` lists several, from all of
    them by weight (a batch may hold frames of several sources; ``meta["source"]`` says which). Target
    is None for ``uda.method='source_only'`` or when ``data.target.index`` is unset. Batch ``i``
    depends only on (runtime.seed, i, rank), so a resumed run continues exactly.
    """
    data, seed = cfg["data"], int(cfg["runtime"]["seed"])
    build_sources = _multi_source_batches if data.get("sources") else _source_batches
    source_batches = build_sources(cfg, start_iter=start_iter, rank=rank, world_size=world_size)
    if cfg["uda"]["method"] == UDA_SOURCE_ONLY or data["target"]["index"] is None:
        return source_batches, None
    target = build_clip_dataset(cfg, Domain.TARGET.value)
    target_sampler = IterationSampler(num_keys=len(target), batch_size=int(data["target_batch_size"]),
                                      seed=seed, start_iter=start_iter, rank=rank,
                                      world_size=world_size, stream=TARGET_STREAM)
    return source_batches, iter(_loader(target, target_sampler, cfg))
