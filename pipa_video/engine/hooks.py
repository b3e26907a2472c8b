"""The trainer's hooks: the non-finite check, logging, checkpoints, periodic evaluation, the config dump.

``engine.build`` registers them in this order, which matters at an iteration where several are due:
``NonFiniteHook`` (the losses before every optimiser step; the whole training state before anything
is logged, saved or evaluated), ``LoggerHook``, ``CheckpointHook`` (``iter_<N>.pth`` / ``latest.pth``),
``EvalHook`` (``data.val``, ``best.pth``). ``ConfigDumpHook`` writes the resolved config once the
work dir is claimed and a resume restored, so a refused or failed start leaves the dir as it was.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pipa_video.engine import dist as dist_utils
from pipa_video.engine.checkpoint import Selection
from pipa_video.engine.finite import check_losses, check_state
from pipa_video.engine.logger import TrainLogger
from pipa_video.engine.seed import rng_preserved
from pipa_video.engine.trainer import BestMetric, HookBase

EvaluateFn = Callable[[nn.Module], Mapping[str, float]]


class PeriodicHook(HookBase):
    """Due every ``interval`` completed iterations and at the last one (``interval=0``: only the last)."""

    def __init__(self, interval: int) -> None:
        if interval < 0:
            raise ValueError(f"interval must be >= 0 (0 = only at the end), got {interval}")
        self.interval = interval

    def is_due(self, done: int) -> bool:
        return done == self.trainer.iters or (self.interval > 0 and done % self.interval == 0)


class NonFiniteHook(HookBase):
    """Stops the run with ``NonFiniteError`` naming the first NaN/inf loss (every iteration, before the
    optimiser step) or tensor of the training state (whenever one of ``watched`` is due: before any
    log line, checkpoint or evaluation). The message names the last intact checkpoint."""

    def __init__(self, watched: Sequence[PeriodicHook]) -> None:
        self.watched = list(watched)

    def after_backward(self, losses: Mapping[str, Tensor]) -> None:
        t = self.trainer
        check_losses(losses, iteration=t.iter, rank=t.dist.rank, where=t.last_good)

    def after_step(self) -> None:
        t = self.trainer
        if any(hook.is_due(t.iter) for hook in self.watched):
            check_state(t.training_state(), iteration=t.iter, rank=t.dist.rank, where=t.last_good,
                        device=t.dist.device)


class LoggerHook(PeriodicHook):
    """Mean losses over the window and over the ranks, learning rates and memory every ``interval``:
    console, CSV, TensorBoard (``engine.logger.TrainLogger``, main process only). The time per
    iteration counts training iterations only, not checkpoint writes or evaluations."""

    def __init__(self, interval: int) -> None:
        super().__init__(max(1, interval))
        self.logger: TrainLogger | None = None

    def before_train(self) -> None:
        t = self.trainer
        self.logger = TrainLogger(t.work_dir, total_iters=t.iters, enabled=t.dist.is_main)
        if t.start_iter:
            self.logger.resume_from(t.start_iter)
        self.window, self.seconds = _LossWindow(), 0.0

    def after_backward(self, losses: Mapping[str, Tensor]) -> None:
        self.window.add(losses)

    def after_step(self) -> None:
        t = self.trainer
        self.seconds += t.step_seconds
        if not self.is_due(t.iter):
            return
        t.last_logged = self.window.mean_over_ranks()
        scalars = {**t.last_logged, **t.current_lrs(), **_memory_stats(t.dist.device)}
        self.logger.log_train(t.iter, scalars, seconds_per_iter=self.seconds / max(1, self.window.iterations))
        self.window, self.seconds = _LossWindow(), 0.0

    def log_eval(self, iteration: int, metrics: Mapping[str, float]) -> None:
        if self.logger is not None:
            self.logger.log_eval(iteration, metrics)

    def after_train(self) -> None:
        if self.logger is not None:
            self.logger.close()


class CheckpointHook(PeriodicHook):
    """``iter_<N>.pth`` every ``interval`` and at the end, ``latest.pth`` pointing at it (main process)."""

    def after_step(self) -> None:
        t = self.trainer
        if not self.is_due(t.iter):
            return
        rng_states = t.rng_states()  # a collective: every rank takes part
        if t.dist.is_main:  # the state was checked for NaN/inf just before
            t.checkpoints.save_periodic(t.payload(t.iter, Selection.LAST.describe(t.metric), {}, rng_states),
                                        iteration=t.iter)


class EvalHook(PeriodicHook):
    """``evaluate_fn(eval model)`` every ``interval`` and at the end (every rank calls it; it puts the model
    in eval mode itself). A new best ``metric`` writes ``best.pth``: selection only on ``data.val``."""

    def __init__(self, interval: int, evaluate_fn: EvaluateFn, *, logger: LoggerHook | None = None) -> None:
        super().__init__(interval)
        self.evaluate_fn = evaluate_fn
        self.logger = logger

    def _evaluate(self) -> dict[str, float]:
        t = self.trainer
        with rng_preserved(), torch.no_grad():  # an evaluation must not shift the training random stream
            raw = self.evaluate_fn(t.method.eval_model())
        metrics = {k: float(v) for k, v in raw.items() if _is_scalar(v)}
        if t.metric not in metrics:
            raise KeyError(f"evaluate_fn returned {sorted(raw)}; the model selection needs {t.metric!r}")
        return metrics

    def after_step(self) -> None:
        t = self.trainer
        if not self.is_due(t.iter):
            return
        metrics = self._evaluate()
        if self.logger is not None:
            self.logger.log_eval(t.iter, metrics)
        value = metrics[t.metric]
        if t.best is not None and value <= t.best.value:
            return
        t.best = BestMetric(t.metric, value, t.iter)
        rng_states = t.rng_states()
        if t.dist.is_main:
            path = t.checkpoints.save_best(t.payload(t.iter, Selection.BEST.describe(t.metric), metrics, rng_states))
            t.log.info(f"new best {t.metric} {value:.4f} at iteration {t.iter}: {path}")


class ConfigDumpHook(HookBase):
    """Writes the resolved config (``config.py``) next to the run, on the main process, before training."""

    def __init__(self, config: Mapping[str, Any], *, name: str = "config.py") -> None:
        self.config, self.name = config, name

    def before_train(self) -> None:
        from mmengine.config import Config

        from pipa_video.config import dump_config

        if self.trainer.dist.is_main:
            dump_config(Config(dict(self.config)), self.trainer.work_dir / self.name)


class _LossWindow:
    """Running sums of the detached losses between two log lines (kept on the device, no syncs)."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.iterations = 0

    def add(self, losses: Mapping[str, Tensor]) -> None:
        self.iterations += 1
        for name, value in losses.items():
            self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
            self.counts[name] = self.counts.get(name, 0) + 1

    def mean_over_ranks(self) -> dict[str, float]:
        """Mean of each term over the window and over every rank (terms may differ between ranks)."""
        names = sorted({n for ranks in dist_utils.all_gather_objects(list(self.sums)) for n in ranks})
        if not names:
            return {}
        device = next(iter(self.sums.values())).device if self.sums else torch.device("cpu")
        totals = torch.stack([self.sums.get(n, torch.zeros((), device=device)) for n in names])
        counts = torch.tensor([float(self.counts.get(n, 0)) for n in names], device=totals.device)
        reduced = dist_utils.all_reduce_sum(torch.cat([totals, counts]))
        totals, counts = reduced[: len(names)], reduced[len(names):]
        return dict(zip(names, (totals / counts.clamp_min(1)).tolist()))


def _is_scalar(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.numel() == 1
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)


def _memory_stats(device: torch.device) -> dict[str, float]:
    if device.type != "cuda":
        return {}
    return {"mem_gb": torch.cuda.max_memory_allocated(device) / 2**30}
