"""``train(cfg)``: wires data, method, evaluation and the Trainer together for one run."""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import nn

from pipa_video.data.build import build_eval_dataset, build_train_loaders
from pipa_video.engine.dist import DistInfo, all_gather_cat, init_distributed
from pipa_video.engine.logger import get_logger, setup_console_logging
from pipa_video.engine.performance import compile_segmentors, configure_backends
from pipa_video.engine.seed import seed_everything
from pipa_video.engine.trainer import build_trainer
from pipa_video.uda.build import build_method
from pipa_video.uda.step import SelfTrainingMethod


def _val_evaluator(cfg: Mapping[str, Any], dist: DistInfo) -> Callable[[nn.Module], dict] | None:
    """Periodic evaluation on the held-out ``data.val`` split, or None when the config sets none."""
    if not cfg["data"]["val"]["index"]:
        return None
    from pipa_video.evaluation.runner import Predictor, build_eval_settings, evaluate_dataset

    settings = build_eval_settings(cfg)
    dataset = build_eval_dataset(cfg, "val")

    def evaluate_on_val(model: nn.Module) -> dict:
        was_training = model.training
        model.eval()
        results = evaluate_dataset(Predictor(model.inference, settings=settings, device=dist.device), dataset,
                                   evaluator=settings.make_evaluator(), rank=dist.rank, world_size=dist.world_size, progress=False)
        model.train(was_training)
        return {"mIoU": float(results["mIoU"])}

    return evaluate_on_val


def init_from_checkpoint(method: SelfTrainingMethod, cfg: Mapping[str, Any]) -> None:
    """``load_from``: the checkpoint's segmentor weights into the student, then copied to the teacher.

    The training-only projection heads keep their fresh initialisation; nothing else is restored.
    """
    from pipa_video.evaluation.runner import check_checkpoint_compatible, load_checkpoint, load_weights_strict

    path = cfg["load_from"]
    ckpt = load_checkpoint(path)
    check_checkpoint_compatible(ckpt, cfg, path=path)
    load_weights_strict(method.student.segmentor, ckpt["model"], path=path)
    if method.teacher is not None:
        method.teacher.update(method.student, iteration=0)  # alpha 0 at iteration 0: an exact copy
    meta = ckpt.get("meta") or {}
    get_logger().info(
        f"load_from: loaded {len(ckpt['model'])} segmentor tensors from {path} (iteration {meta.get('iteration')}, "
        f"class set {meta.get('class_set')}, selection: {meta.get('selection') or 'unknown'}) into the student"
        + ("; the teacher starts as its copy" if method.teacher is not None else "")
        + "; projection heads, optimiser and schedule start afresh")


def train(cfg: Mapping[str, Any], *, work_dir: str | os.PathLike, resume: bool | str = False,
          overwrite: bool = False) -> dict[str, Any]:
    """Train the method a validated config describes; returns the trainer's summary.

    ``overwrite`` lets a fresh run delete another run in ``work_dir`` (else ``WorkDirError``).
    """
    dist = init_distributed(cfg["runtime"]["device"], timeout_s=cfg["runtime"]["dist_timeout_s"])
    setup_console_logging(is_main=dist.is_main)  # before building: build-time warnings reach the console
    configure_backends(cfg["runtime"])
    seed_everything(cfg["runtime"]["seed"])  # identical initial weights on every rank; the Trainer reseeds per rank
    method = build_method(cfg, gather=all_gather_cat if dist.is_distributed else None)  # the memory bank's gather
    if cfg["load_from"]:
        init_from_checkpoint(method, cfg)  # a later --resume overwrites these weights, as it should
    method = method.to(dist.device)
    if cfg["runtime"]["compile"]:
        compile_segmentors(method)  # after .to(): the compiled graphs see the training device
    loaders = partial(_loaders, cfg, dist)
    trainer = build_trainer(cfg, method=method, loaders_factory=loaders, work_dir=Path(work_dir), dist=dist,
                            evaluate_fn=_val_evaluator(cfg, dist))
    return trainer.fit(resume=resume, overwrite=overwrite)


def _loaders(cfg: Mapping[str, Any], dist: DistInfo, start_iter: int):
    return build_train_loaders(cfg, start_iter=start_iter, rank=dist.rank, world_size=dist.world_size)
