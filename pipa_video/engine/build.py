"""``train(cfg)``: the one place a config becomes a training run (data, method, evaluation, trainer, hooks).

The trainer takes plain arguments; this builder reads ``optimizer``, ``schedule`` and ``runtime``,
binds the checkpoint compatibility check (class set, model types, HRDA or not: the same for
``--resume`` and ``load_from``) to the config, hands the collectives down (the memory bank's
``gather``, the evaluators' ``reduce_sum`` / ``gather_objects``) when the run is distributed, and
registers the hooks, among them the one that writes the resolved config next to the run.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from pipa_video.config import ConfigError
from pipa_video.data.build import build_eval_dataset, build_train_loaders
from pipa_video.data.classes import get_class_set
from pipa_video.engine import dist as dist_utils
from pipa_video.engine.checkpoint import (INFERENCE_KEYS, MODEL_KEY, RunHeader, check_compatible, load_checkpoint,
                                          load_weights)
from pipa_video.engine.dist import DistInfo, init_distributed
from pipa_video.engine.hooks import CheckpointHook, ConfigDumpHook, EvalHook, EvaluateFn, LoggerHook, NonFiniteHook
from pipa_video.engine.logger import get_logger, setup_console_logging
from pipa_video.engine.performance import compile_segmentors, configure_backends
from pipa_video.engine.optim import build_optimizer
from pipa_video.engine.schedule import lr_schedule
from pipa_video.engine.seed import seed_everything
from pipa_video.engine.trainer import CompatibilityCheck, LoadersFactory, Trainer, TrainMethod
from pipa_video.uda.build import build_method


# --- collectives handed down ---------------------------------------------------------------------
def eval_comm(dist: DistInfo):
    """The evaluators' collectives for this run (``evaluation.loop.Comm``); one process: none."""
    from pipa_video.evaluation.loop import SINGLE_PROCESS, Comm

    if not dist.is_distributed:
        return SINGLE_PROCESS
    return Comm(rank=dist.rank, world_size=dist.world_size, gather_objects=dist_utils.all_gather_objects,
                reduce_sum=partial(dist_utils.all_reduce_sum_on, device=dist.device))


def val_evaluator(cfg: Mapping[str, Any], dist: DistInfo) -> EvaluateFn | None:
    """Periodic evaluation on the held-out ``data.val`` split (mIoU; the loader's workers read it), or
    None when the config sets none."""
    if not cfg["data"]["val"]["index"]:
        return None
    from pipa_video.evaluation.runner import build_eval_settings, make_predictor, run_split

    settings = build_eval_settings(cfg)
    dataset = build_eval_dataset(cfg, "val")
    comm = eval_comm(dist)

    def evaluate_on_val(model: nn.Module) -> dict:
        results = run_split(make_predictor(model, settings, device=dist.device), dataset, settings, comm=comm)
        return {"mIoU": float(results["sem_seg"]["mIoU"])}

    return evaluate_on_val


def check_sync_batchnorm(module: nn.Module, dist: DistInfo) -> None:
    """``syncbatch`` norms need CUDA ranks: PyTorch's SyncBatchNorm refuses CPU tensors under a process group
    (its forward raises), so a multi-process CPU run is refused here, before training, naming the keys."""
    if dist.is_distributed and dist.device.type != "cuda" and any(
            isinstance(m, nn.SyncBatchNorm) for m in module.modules()):
        raise ConfigError("model.decode_head.norm / model.projection.norm: 'syncbatch' synchronises BatchNorm over "
                          f"CUDA ranks only, this run has {dist.world_size} {dist.device.type} processes; expected "
                          "'batch' or 'group' (or run on GPUs)")


# --- load_from -----------------------------------------------------------------------------------
def init_from_checkpoint(method: TrainMethod, cfg: Mapping[str, Any]) -> None:
    """``load_from``: the checkpoint's segmentor weights into the student, then copied to the teacher.

    The checkpoint must pass the same compatibility check as a resume. The training-only projection
    heads keep their fresh initialisation; nothing else is restored.
    """
    path = cfg["load_from"]
    ckpt = load_checkpoint(path, require=INFERENCE_KEYS)
    check_compatible(ckpt, cfg, path=path)
    load_weights(method.student.segmentor, ckpt[MODEL_KEY], path=path)
    if method.teacher is not None:
        method.teacher.update(method.student, iteration=0)  # alpha 0 at iteration 0: an exact copy
    meta = ckpt.get("meta") or {}
    get_logger().info(
        f"load_from: loaded {len(ckpt[MODEL_KEY])} segmentor tensors from {path} (iteration {meta.get('iteration')}, "
        f"class set {meta.get('class_set')}, selection: {meta.get('selection') or 'unknown'}) into the student"
        + ("; the teacher starts as its copy" if method.teacher is not None else "")
        + "; projection heads, optimiser and schedule start afresh")


# --- the trainer ---------------------------------------------------------------------------------
def make_trainer(*, method: TrainMethod, optimizer: torch.optim.Optimizer, lr_schedule: np.ndarray,
                 loaders_factory: LoadersFactory, work_dir: str | os.PathLike, iters: int, log_interval: int,
                 checkpoint_interval: int, eval_interval: int = 0, evaluate_fn: EvaluateFn | None = None,
                 header: RunHeader = RunHeader(), dump_config: bool = True, amp: bool = True,
                 dist: DistInfo | None = None, keep_checkpoints: int = 2, seed: int | None = None,
                 check: CompatibilityCheck | None = None, **trainer_options: Any) -> Trainer:
    """A trainer with the standard hooks, from plain arguments (``build_trainer`` reads them from a config).

    ``dump_config`` writes ``header.config`` to ``WORK_DIR/config.py`` before training;
    ``trainer_options`` go to ``Trainer`` as they are (``metric``, ``forward_context``).
    """
    for name, value in dict(log_interval=log_interval, checkpoint_interval=checkpoint_interval).items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    logger = LoggerHook(log_interval)
    periodic = [logger, CheckpointHook(checkpoint_interval)]
    if evaluate_fn is not None:
        periodic.append(EvalHook(eval_interval, evaluate_fn, logger=logger))
    hooks = [NonFiniteHook(periodic), *periodic] + ([ConfigDumpHook(header.config)] if dump_config else [])
    return Trainer(method=method, optimizer=optimizer, lr_schedule=lr_schedule, loaders_factory=loaders_factory,
                   work_dir=work_dir, iters=iters, hooks=hooks, header=header, amp=amp, dist=dist,
                   keep_checkpoints=keep_checkpoints, seed=seed, check=check, **trainer_options)


def run_header(cfg: Mapping[str, Any]) -> RunHeader:
    """What every checkpoint of the run records: the resolved config as plain values and its class set."""
    config = _plain(cfg)
    class_set = config.get("class_set")
    return RunHeader(config=config, class_set=class_set,
                     num_classes=get_class_set(class_set).num_classes if class_set else None)


def build_trainer(cfg: Mapping[str, Any], *, method: TrainMethod, loaders_factory: LoadersFactory,
                  work_dir: str | os.PathLike, dist: DistInfo, evaluate_fn: EvaluateFn | None = None) -> Trainer:
    """The trainer of a validated config: AdamW with DAFormer's groups, the poly schedule, the hooks."""
    opt, sched, runtime = cfg["optimizer"], cfg["schedule"], cfg["runtime"]
    # DAFormer's released configs exempt the backbone's norm layers from weight decay
    # (custom_keys norm=dict(decay_mult=0.0)); students that say which parameters those are get the same.
    no_decay = method.student.no_decay_parameters() if hasattr(method.student, "no_decay_parameters") else ()
    optimizer = build_optimizer(method.student.param_groups(), lr=opt["lr"], head_lr_mult=opt["head_lr_mult"],
                                weight_decay=opt["weight_decay"], betas=tuple(opt["betas"]), no_decay=no_decay)
    schedule = lr_schedule(base_lr=opt["lr"], iters=sched["iters"], warmup_iters=sched["warmup_iters"],
                           warmup_ratio=sched["warmup_ratio"], power=sched["power"], min_lr=sched["min_lr"])
    return make_trainer(method=method, optimizer=optimizer, lr_schedule=schedule, loaders_factory=loaders_factory,
                        work_dir=work_dir, iters=sched["iters"], log_interval=runtime["log_interval"],
                        checkpoint_interval=runtime["checkpoint_interval"], eval_interval=runtime["eval_interval"],
                        evaluate_fn=evaluate_fn, header=run_header(cfg), amp=runtime["amp"], dist=dist,
                        keep_checkpoints=runtime["keep_checkpoints"], seed=runtime["seed"],
                        check=lambda ckpt, path: check_compatible(ckpt, cfg, path=path))


def train(cfg: Mapping[str, Any], *, work_dir: str | os.PathLike, resume: bool | str = False,
          overwrite: bool = False) -> dict[str, Any]:
    """Train the method a validated config describes; returns the trainer's summary.

    ``resume``: True continues from ``WORK_DIR/latest.pth``, a path from that checkpoint. ``overwrite``
    lets a fresh run delete another run in ``work_dir`` (else ``WorkDirError``).
    """
    dist = init_distributed(cfg["runtime"]["device"], timeout_s=cfg["runtime"]["dist_timeout_s"])
    setup_console_logging(is_main=dist.is_main)  # before building: build-time warnings reach the console
    configure_backends(cfg["runtime"])
    seed_everything(cfg["runtime"]["seed"])  # identical initial weights on every rank; the Trainer reseeds per rank
    method = build_method(cfg, gather=dist_utils.all_gather_cat if dist.is_distributed else None)
    check_sync_batchnorm(method.student, dist)
    if cfg["load_from"]:
        init_from_checkpoint(method, cfg)  # a later --resume overwrites these weights, as it should
    method = method.to(dist.device)
    if cfg["runtime"]["compile"]:
        compile_segmentors(method)  # after .to(): the compiled graphs see the training device
    loaders = partial(_loaders, cfg, dist)
    trainer = build_trainer(cfg, method=method, loaders_factory=loaders, work_dir=Path(work_dir), dist=dist,
                            evaluate_fn=val_evaluator(cfg, dist))
    path = trainer.checkpoints.resume_path(resume) if resume else None
    return trainer.fit(resume=path, overwrite=overwrite)


def _loaders(cfg: Mapping[str, Any], dist: DistInfo, start_iter: int):
    return build_train_loaders(cfg, start_iter=start_iter, rank=dist.rank, world_size=dist.world_size)


def _plain(node: Any) -> Any:
    """A config (mmengine ``Config``/``ConfigDict`` or dict) as plain dicts, lists and tuples."""
    if hasattr(node, "to_dict"):
        node = node.to_dict()
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items() if not str(k).startswith("_")}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, tuple):
        return tuple(_plain(v) for v in node)
    return node

