"""The training loop: schedule, precision, DDP, non-finite checks, checkpoints, logging, evaluation.

The loop knows nothing about self-training; it drives any ``TrainMethod``. One iteration:
set every group's learning rate from the precomputed schedule, zero the gradients, run
``method.train_step`` (forward and backward of every loss term, under bf16 autocast on CUDA when
``amp``), stop on a non-finite loss before the optimiser touches the weights, ``optimizer.step()``,
give every rank rank 0's student buffers (BatchNorm running statistics; DDP does the same before each
forward, and the EMA teacher averages them, so the teachers, and the checkpoint, agree across ranks),
``method.after_step()`` (the EMA teacher). At each log interval and before every checkpoint the whole
training state is checked for NaN/inf (``engine.finite``); no checkpoint ever holds one.

The main process holds the work dir's lock for the run (``engine.workdir``): a second run on the same
dir, or a fresh run into a dir holding another run (without ``overwrite``), is refused.

Exact resume: a checkpoint holds the method state, the optimiser, the step and every rank's RNG
state; the loaders are rebuilt for the start iteration (their batches depend only on seed, iteration
and rank). Fetching batches and evaluating run inside ``rng_preserved`` so neither shifts the
training random stream: a run resumed at step k matches an uninterrupted one bit for bit.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from pipa_video.engine import dist as dist_utils
from pipa_video.engine import workdir
from pipa_video.engine.checkpoint import (FORMAT_VERSION, RESERVED_KEYS, TRAINING_KEYS, CheckpointError,
                                          CheckpointManager, Key, Selection, load_checkpoint, make_meta)
from pipa_video.engine.dist import DistInfo, move_to_device  # noqa: F401  (move_to_device: re-exported)
from pipa_video.engine.finite import check_losses, check_state
from pipa_video.engine.logger import TrainLogger, get_logger, setup_console_logging
from pipa_video.engine.seed import capture_rng_state, restore_rng_state, rng_preserved, seed_everything
from pipa_video.errors import NonFiniteError, WorkDirError

CONFIG_NAME = "config.py"
DEFAULT_METRIC = "mIoU"

EvaluateFn = Callable[[nn.Module], Mapping[str, float]]
LoadersFactory = Callable[[int], "tuple[Iterator[dict], Iterator[dict] | None]"]


@runtime_checkable
class TrainMethod(Protocol):
    """What the engine needs from a training method (``uda.step`` implements it).

    ``student`` holds everything the optimiser trains, must already be on the training device and, for
    ``build_trainer``, exposes ``param_groups() -> {"backbone": [...], "head": [...]}``.
    Every grad-enabled forward through the wrapped student must be followed by its backward before the
    next forward (DDP reduces gradients during each backward). ``checkpoint_state`` may hold only
    tensors and plain Python values, must not use the engine's reserved keys (``checkpoint.Key``),
    and ``load_checkpoint_state`` must load in place (the optimiser keeps references to the
    parameters).
    """

    student: nn.Module

    def wrap_student(self, wrapper: Callable[[nn.Module], nn.Module]) -> None: ...

    def train_step(self, source: dict, target: dict | None, *, iteration: int) -> dict[str, Tensor]:
        """Forward and backward of every term at 0-based ``iteration``; detached scalar losses by name."""

    def after_step(self, *, iteration: int) -> None:
        """After ``optimizer.step()`` (the EMA teacher update), same 0-based ``iteration``."""

    def checkpoint_state(self) -> dict: ...

    def load_checkpoint_state(self, state: dict) -> None: ...

    def eval_model(self) -> nn.Module: ...


NonFiniteLossError = NonFiniteError  # the former name; NaN/inf losses and state both raise NonFiniteError


@dataclass
class BestMetric:
    metric: str
    value: float
    iteration: int


class Trainer:
    """Runs ``iters`` iterations of a ``TrainMethod``; see the module docstring."""

    def __init__(self, *, method: TrainMethod, optimizer: torch.optim.Optimizer, lr_schedule: np.ndarray,
                 loaders_factory: LoadersFactory, work_dir: str | os.PathLike, config: Mapping[str, Any],
                 iters: int, log_interval: int, checkpoint_interval: int, eval_interval: int,
                 evaluate_fn: EvaluateFn | None = None, amp: bool = True, device: torch.device | str | None = None,
                 dist: DistInfo | None = None, keep_checkpoints: int = 2, seed: int | None = None,
                 metric: str = DEFAULT_METRIC) -> None:
        _check_positive(iters=iters, log_interval=log_interval, checkpoint_interval=checkpoint_interval)
        if eval_interval < 0:
            raise ValueError(f"runtime.eval_interval must be >= 0 (0 = only at the end), got {eval_interval}")
        lr_schedule = np.asarray(lr_schedule, dtype=np.float64)
        if lr_schedule.shape != (iters,):
            raise ValueError(f"lr_schedule has shape {lr_schedule.shape}, expected ({iters},) (one rate per iteration)")
        for group in optimizer.param_groups:
            if "lr_mult" not in group:
                raise ValueError("optimizer groups need an 'lr_mult' entry; build the optimizer with "
                                 "engine.optim.build_optimizer")
        self.dist = dist or DistInfo(device=torch.device(device) if device is not None else torch.device("cpu"))
        if device is not None and torch.device(device) != self.dist.device:
            raise ValueError(f"device {device} differs from dist.device {self.dist.device}")
        self.method = method
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.loaders_factory = loaders_factory
        self.work_dir = Path(work_dir)
        self.config = _plain(config)
        self.iters = iters
        self.log_interval = log_interval
        self.checkpoint_interval = checkpoint_interval
        self.eval_interval = eval_interval
        self.evaluate_fn = evaluate_fn
        self.amp = amp
        self.seed = seed
        self.metric = metric
        self.checkpoints = CheckpointManager(self.work_dir, keep=keep_checkpoints)
        self.best: BestMetric | None = None
        self.log = get_logger()
        self._wrapped = False

    # ------------------------------------------------------------------ public
    def fit(self, resume: bool | str | os.PathLike = False, *, overwrite: bool = False) -> dict[str, Any]:
        """Train to ``iters``; ``resume=True`` continues from ``work_dir/latest.pth``, ``resume=PATH`` from PATH.

        A fresh run refuses a work dir holding another run unless ``overwrite`` (which deletes that
        run's checkpoints and logs); raises ``WorkDirError`` then, or when another run holds the lock.
        """
        started = time.perf_counter()
        self._check_device()
        self.method.student.train()
        setup_console_logging(is_main=self.dist.is_main)
        lock = self._claim_work_dir(resume=bool(resume), overwrite=overwrite)
        try:
            return self._fit(resume, started)
        finally:
            if lock is not None:
                lock.release()

    def _claim_work_dir(self, *, resume: bool, overwrite: bool) -> "workdir.WorkDirLock | None":
        """The main process locks and checks the work dir; every rank raises its error, if any."""
        lock, error = None, None
        if self.dist.is_main:
            try:
                lock = workdir.claim(self.work_dir, resume=resume, overwrite=overwrite)
            except WorkDirError as err:
                error = str(err)
        errors = [e for e in dist_utils.all_gather_objects(error) if e]
        if errors:
            raise WorkDirError(errors[0])
        return lock

    def _fit(self, resume: bool | str | os.PathLike, started: float) -> dict[str, Any]:
        start_iter, rng_state = self._restore(resume) if resume else (0, None)
        if self.dist.is_main:  # after a successful restore: a failed resume leaves the dir as it was
            self._write_config()
        if not resume and self.seed is not None:
            seed_everything(self.seed, rank=self.dist.rank)
        self._check_replicas_identical()
        self._wrap_for_ddp()
        with rng_preserved():  # building loaders (e.g. a DataLoader's base seed) must not shift training RNG
            source_iter, target_iter = self.loaders_factory(start_iter)
        if rng_state is not None:
            restore_rng_state(rng_state)
        logger = TrainLogger(self.work_dir, total_iters=self.iters, enabled=self.dist.is_main)
        if resume:
            logger.resume_from(start_iter)
        try:
            last_losses = self._loop(start_iter, source_iter, target_iter, logger)
        finally:
            logger.close()
        dist_utils.barrier()
        return dict(iterations=self.iters, start_iteration=start_iter,
                    wall_time_s=time.perf_counter() - started, last_losses=last_losses,
                    best=asdict(self.best) if self.best else None,
                    final_checkpoint=str(self.checkpoints.latest_path))

    # ------------------------------------------------------------------ the loop
    def _loop(self, start_iter: int, source_iter: Iterator[dict], target_iter: Iterator[dict] | None,
              logger: TrainLogger) -> dict[str, float]:
        window = _LossWindow()
        last_logged: dict[str, float] = {}
        window_start = time.perf_counter()
        for iteration in range(start_iter, self.iters):
            losses = self._train_iteration(iteration, source_iter, target_iter)
            window.add(losses)
            done = iteration + 1
            is_last = done == self.iters
            log_due = done % self.log_interval == 0 or is_last
            checkpoint_due = done % self.checkpoint_interval == 0 or is_last
            eval_due = self.evaluate_fn is not None and (
                is_last or (self.eval_interval > 0 and done % self.eval_interval == 0))
            if log_due or checkpoint_due or eval_due:
                self._check_state(done)
            if log_due:
                seconds = (time.perf_counter() - window_start) / max(1, window.iterations)
                last_logged = window.mean_over_ranks()
                logger.log_train(done, {**last_logged, **self._current_lrs(), **_memory_stats(self.dist.device)},
                                 seconds_per_iter=seconds)
                window, window_start = _LossWindow(), time.perf_counter()
            if checkpoint_due or eval_due:
                paused = time.perf_counter()
                self._save_and_evaluate(done, checkpoint_due=checkpoint_due, eval_due=eval_due, logger=logger)
                window_start += time.perf_counter() - paused  # time/iter and ETA count training only
        return last_logged

    def _train_iteration(self, iteration: int, source_iter: Iterator[dict],
                         target_iter: Iterator[dict] | None) -> dict[str, Tensor]:
        with rng_preserved():  # the loaders' randomness is theirs: keyed by (seed, iteration, rank)
            source = next(source_iter)
            target = next(target_iter) if target_iter is not None else None
        source = move_to_device(source, self.dist.device)
        target = move_to_device(target, self.dist.device) if target is not None else None
        self._set_lr(iteration)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            losses = self.method.train_step(source, target, iteration=iteration)
        losses = self._check_losses(losses, iteration)
        self.optimizer.step()
        dist_utils.broadcast_buffers(self.method.student)
        self.method.after_step(iteration=iteration)
        return losses

    def _set_lr(self, iteration: int) -> None:
        base = float(self.lr_schedule[iteration])
        for group in self.optimizer.param_groups:
            group["lr"] = base * group["lr_mult"]

    def _current_lrs(self) -> dict[str, float]:
        return {f"lr/{g.get('name', i)}": float(g["lr"]) for i, g in enumerate(self.optimizer.param_groups)}

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp and self.dist.device.type == "cuda":  # bf16 needs no loss scaling; never on CPU
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _check_losses(self, losses: Mapping[str, Tensor], iteration: int) -> dict[str, Tensor]:
        """Detach and validate the returned losses; raise ``NonFiniteLossError`` on NaN/inf on any rank."""
        if not isinstance(losses, Mapping) or not losses:
            raise TypeError(f"train_step returned {losses!r} at iteration {iteration}; expected a non-empty "
                            "dict of scalar tensors")
        checked = {}
        for name, value in losses.items():
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise TypeError(f"train_step returned {name}={value!r} at iteration {iteration}; "
                                "expected a scalar tensor")
            checked[name] = value.detach().float().reshape(())
        check_losses(checked, iteration=iteration, rank=self.dist.rank, where=self._last_good)
        return checked

    def _check_state(self, done: int) -> None:
        """Every floating tensor of what a checkpoint would hold (method state, optimiser) must be finite."""
        names = {id(p): name for name, p in self.method.student.named_parameters()}
        moments = {names.get(id(p), str(i)): s for i, (p, s) in enumerate(self.optimizer.state.items())}
        state = {**self.method.checkpoint_state(), Key.OPTIMIZER.value: moments}
        check_state(state, iteration=done, rank=self.dist.rank, where=self._last_good, device=self.dist.device)

    def _last_good(self) -> str:
        """Where the user's run stands after a stop: the newest checkpoint (all finite), or none."""
        latest = self.checkpoints.latest_path
        if latest.is_file():
            return f"the last checkpoint, {latest}, is intact (every tensor finite) to resume from once the cause is fixed"
        return f"no checkpoint was written to {self.work_dir}"

    # ------------------------------------------------------------------ checkpoints and evaluation
    def _save_and_evaluate(self, done: int, *, checkpoint_due: bool, eval_due: bool, logger: TrainLogger) -> None:
        # Every rank's generators go into the file so that each rank resumes its own random stream.
        rng_states = dist_utils.all_gather_objects(capture_rng_state())
        if checkpoint_due and self.dist.is_main:  # the state was checked for NaN/inf just before
            payload = self._payload(done, Selection.LAST.describe(self.metric), {}, rng_states)
            self.checkpoints.save_periodic(payload, iteration=done)
        if not eval_due:
            return
        metrics = self._evaluate()
        if not self.dist.is_main:
            return
        logger.log_eval(done, metrics)
        value = metrics[self.metric]
        if self.best is None or value > self.best.value:
            self.best = BestMetric(self.metric, value, done)
            payload = self._payload(done, Selection.BEST.describe(self.metric), metrics, rng_states)
            self.checkpoints.save_best(payload)
            self.log.info(f"new best {self.metric} {value:.4f} at iteration {done}: {self.checkpoints.best_path}")

    def _evaluate(self) -> dict[str, float]:
        """``evaluate_fn`` on the eval model (every rank calls it), in eval mode, without gradients."""
        model = self.method.eval_model()
        modes = {m: m.training for m in model.modules()}
        model.eval()
        try:
            with rng_preserved(), torch.no_grad():
                raw = self.evaluate_fn(model)
        finally:
            for module, training in modes.items():
                module.training = training
        metrics = {k: float(v) for k, v in raw.items() if _is_scalar(v)}
        if self.metric not in metrics:
            raise KeyError(f"evaluate_fn returned {sorted(raw)}; the model selection needs {self.metric!r}")
        return metrics

    def _payload(self, step: int, selection: str, metrics: Mapping[str, float],
                 rng_states: list) -> dict[str, Any]:
        method_state = self.method.checkpoint_state()
        clash = RESERVED_KEYS & set(method_state)
        if clash:
            raise KeyError(f"method.checkpoint_state() uses keys reserved by the engine: {sorted(clash)}")
        class_set = self.config.get("class_set")
        return {
            **method_state,
            Key.OPTIMIZER.value: self.optimizer.state_dict(),
            Key.STEP.value: step,
            Key.RNG.value: rng_states,
            Key.CONFIG.value: self.config,
            Key.TRAINER.value: {"best": asdict(self.best) if self.best else None},
            Key.META.value: make_meta(class_set=class_set, num_classes=_num_classes(class_set), iteration=step,
                                      selection=selection, metrics=metrics),
            Key.FORMAT_VERSION.value: FORMAT_VERSION,
        }

    def _restore(self, resume: bool | str | os.PathLike) -> tuple[int, dict | None]:
        """Load the method, optimiser and best metric; return the start iteration and this rank's RNG."""
        path = self.checkpoints.latest_path if resume is True else Path(resume)
        if resume is True and not path.exists():
            raise CheckpointError(f"{path}: not found, so there is nothing to resume in {self.work_dir}; expected a "
                                  "checkpoint: pass its path to --resume, or start afresh (--overwrite if the dir "
                                  "holds a run's logs)")
        payload = load_checkpoint(path, require=TRAINING_KEYS)
        self._check_compatible(payload, path)
        self.method.load_checkpoint_state({k: v for k, v in payload.items() if k not in RESERVED_KEYS})
        try:
            self.optimizer.load_state_dict(payload[Key.OPTIMIZER.value])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: optimizer state does not match this model's parameter groups ({e})") from e
        self.best = self._restore_best(payload)
        step = int(payload[Key.STEP.value])
        self.log.info(f"resumed from {path} at iteration {step}")
        return step, self._rank_rng_state(payload[Key.RNG.value], path, step)

    def _check_compatible(self, payload: Mapping[str, Any], path: Path) -> None:
        step = payload[Key.STEP.value]
        if step > self.iters:
            raise CheckpointError(f"{path} is at iteration {step}, beyond schedule.iters={self.iters}")
        saved, current = payload[Key.META.value].get("class_set"), self.config.get("class_set")
        if saved != current:
            raise CheckpointError(f"{path} was trained for class set {saved!r}, the config asks for {current!r}")

    def _restore_best(self, payload: Mapping[str, Any]) -> BestMetric | None:
        # best.pth can be newer than latest.pth (evaluation runs after the periodic save): trust it first.
        if self.checkpoints.best_path.is_file():
            try:
                meta = load_checkpoint(self.checkpoints.best_path, mmap=True)[Key.META.value]
                if self.metric in meta.get("metrics", {}):
                    return BestMetric(self.metric, float(meta["metrics"][self.metric]), int(meta["iteration"]))
            except CheckpointError as e:
                self.log.warning(f"ignoring unreadable {self.checkpoints.best_path}: {e}")
        saved = (payload.get(Key.TRAINER.value) or {}).get("best")
        return BestMetric(**saved) if saved and saved["metric"] == self.metric else None

    def _rank_rng_state(self, rng_states: list, path: Path, step: int) -> dict | None:
        if len(rng_states) == self.dist.world_size:
            return rng_states[self.dist.rank]
        self.log.warning(f"{path} holds RNG states of {len(rng_states)} ranks but {self.dist.world_size} run now: "
                         "reseeding, so the run continues correctly but not bit-identically")
        # Offset by the step so the continuation does not replay the random stream of iteration 0.
        seed_everything((self.seed or 0) + step * self.dist.world_size, rank=self.dist.rank)
        return None

    # ------------------------------------------------------------------ set-up checks
    def _write_config(self) -> None:
        from mmengine.config import Config

        from pipa_video.config import dump_config

        dump_config(Config(self.config), self.work_dir / CONFIG_NAME)

    def _check_device(self) -> None:
        wrong = {str(p.device) for p in self.method.student.parameters() if p.device != self.dist.device}
        if wrong:
            raise RuntimeError(f"student parameters are on {sorted(wrong)}, training runs on {self.dist.device}; "
                               "move the method to the device before building the optimizer")

    def _check_replicas_identical(self) -> None:
        """Every rank must start from the same weights: DDP syncs the student, nothing syncs the teacher."""
        if not self.dist.is_distributed:
            return
        checksum = dist_utils.state_checksum(self.method.checkpoint_state()).to(self.dist.device)
        sums = dist_utils.all_gather_cat(checksum.reshape(1))
        if not torch.all(sums == sums[0]):
            raise RuntimeError("the method's weights differ across ranks before training; build the model with "
                               "the same seed on every rank (seed_everything(seed) before building, the trainer "
                               "reseeds per rank afterwards)")

    def _wrap_for_ddp(self) -> None:
        if self.dist.is_distributed and not self._wrapped:
            self.method.wrap_student(lambda module: dist_utils.wrap_ddp(module, self.dist.device))
            self._wrapped = True


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
        means = (totals / counts.clamp_min(1)).tolist()
        return dict(zip(names, means))


def build_trainer(cfg: Mapping[str, Any], *, method: TrainMethod, loaders_factory: LoadersFactory,
                  work_dir: str | os.PathLike, dist: DistInfo, evaluate_fn: EvaluateFn | None = None) -> Trainer:
    """Read ``optimizer``, ``schedule`` and ``runtime`` from a validated config."""
    from pipa_video.engine.optim import build_optimizer
    from pipa_video.engine.schedule import lr_schedule

    opt, sched, runtime = cfg["optimizer"], cfg["schedule"], cfg["runtime"]
    # DAFormer's released configs exempt the backbone's norm layers from weight decay
    # (custom_keys norm=dict(decay_mult=0.0)); students that say which parameters those are get the same.
    no_decay = method.student.no_decay_parameters() if hasattr(method.student, "no_decay_parameters") else ()
    optimizer = build_optimizer(method.student.param_groups(), lr=opt["lr"], head_lr_mult=opt["head_lr_mult"],
                                weight_decay=opt["weight_decay"], betas=tuple(opt["betas"]), no_decay=no_decay)
    schedule = lr_schedule(base_lr=opt["lr"], iters=sched["iters"], warmup_iters=sched["warmup_iters"],
                           warmup_ratio=sched["warmup_ratio"], power=sched["power"], min_lr=sched["min_lr"])
    return Trainer(method=method, optimizer=optimizer, lr_schedule=schedule, loaders_factory=loaders_factory,
                   work_dir=work_dir, config=cfg, iters=sched["iters"], log_interval=runtime["log_interval"],
                   checkpoint_interval=runtime["checkpoint_interval"], eval_interval=runtime["eval_interval"],
                   evaluate_fn=evaluate_fn, amp=runtime["amp"], dist=dist,
                   keep_checkpoints=runtime["keep_checkpoints"], seed=runtime["seed"])


# ---------------------------------------------------------------------- helpers
def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


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


def _num_classes(class_set: str | None) -> int | None:
    if class_set is None:
        return None
    from pipa_video.data.classes import get_class_set

    return get_class_set(class_set).num_classes


def _is_scalar(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.numel() == 1
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)


def _memory_stats(device: torch.device) -> dict[str, float]:
    if device.type != "cuda":
        return {}
    return {"mem_gb": torch.cuda.max_memory_allocated(device) / 2**30}
