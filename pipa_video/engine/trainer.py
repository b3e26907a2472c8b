"""The training loop: iterations of a ``TrainMethod`` plus hooks (detectron2's ``TrainerBase`` / ``HookBase``).

The loop knows nothing about self-training, configs or files beyond its checkpoints. One iteration:
fetch the batches (their randomness is the loaders', keyed by (seed, iteration, rank)), set every
group's learning rate from the precomputed schedule, zero the gradients, run ``method.train_step``
(forward and backward of every loss term), let the hooks see the losses (``after_backward``: the
non-finite check stops the run there, before the optimiser touches the weights), ``optimizer.step()``,
give every rank rank 0's student buffers (BatchNorm running statistics; DDP does the same before each
forward, and the EMA teacher averages them, so the teachers, and the checkpoint, agree across ranks),
``method.after_step()`` (the EMA teacher), then every hook's ``after_step``. Logging, checkpoints,
periodic evaluation and the training state's NaN/inf check are hooks (``engine.hooks``);
``engine.build`` assembles them from the config.

Precision: the trainer hands the method a forward-context factory (``set_forward_context``): bf16
autocast on CUDA when ``amp``, else a null context. The method enters it around its forwards only,
never around a backward.

The main process holds the work dir's lock for the run (``engine.workdir``). Exact resume: a
checkpoint holds the method state, the optimiser, the step and every rank's RNG state; the loaders are
rebuilt for the start iteration. Fetching batches and evaluating run inside ``rng_preserved`` so
neither shifts the training random stream: a run resumed at step k matches an uninterrupted one bit
for bit.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from pipa_video.engine import dist as dist_utils
from pipa_video.engine import workdir
from pipa_video.engine.checkpoint import (RESERVED_KEYS, TRAINING_KEYS, CheckpointError, CheckpointManager, Key,
                                          RunHeader, load_checkpoint, make_meta)
from pipa_video.engine.dist import DistInfo, move_to_device  # noqa: F401  (move_to_device: re-exported)
from pipa_video.engine.logger import get_logger, setup_console_logging
from pipa_video.engine.seed import capture_rng_state, restore_rng_state, rng_preserved, seed_everything
from pipa_video.errors import NonFiniteError, WorkDirError

LoadersFactory = Callable[[int], "tuple[Iterator[dict], Iterator[dict] | None]"]
ForwardContext = Callable[[], contextlib.AbstractContextManager]
CompatibilityCheck = Callable[[Mapping[str, Any], Path], None]  # (checkpoint, path) -> raises CheckpointError

NonFiniteLossError = NonFiniteError  # the former name; NaN/inf losses and state both raise NonFiniteError


@runtime_checkable
class TrainMethod(Protocol):
    """What the engine needs from a training method (``uda.step`` implements it).

    ``student`` holds everything the optimiser trains, must already be on the training device and, for
    ``engine.build``, exposes ``param_groups() -> {"backbone": [...], "head": [...]}``.
    Every grad-enabled forward through the wrapped student must be followed by its backward before the
    next forward (DDP reduces gradients during each backward). ``checkpoint_state`` may hold only
    tensors and plain Python values, must not use the engine's reserved keys (``checkpoint.Key``),
    and ``load_checkpoint_state`` must load in place (the optimiser keeps references to the parameters).
    """

    student: nn.Module

    def wrap_student(self, wrapper: Callable[[nn.Module], nn.Module]) -> None: ...

    def set_forward_context(self, factory: ForwardContext) -> None:
        """``factory()`` is entered around every student and teacher forward, never around a backward."""

    def train_step(self, source: dict, target: dict | None, *, iteration: int) -> dict[str, Tensor]:
        """Forward and backward of every term at 0-based ``iteration``; detached scalar losses by name."""

    def after_step(self, *, iteration: int) -> None:
        """After ``optimizer.step()`` (the EMA teacher update), same 0-based ``iteration``."""

    def checkpoint_state(self) -> dict: ...

    def load_checkpoint_state(self, state: dict) -> None: ...

    def eval_model(self) -> nn.Module: ...


class HookBase:
    """A hook into the loop; ``trainer`` is set when the trainer takes it. Every method is optional."""

    trainer: "Trainer"

    def before_train(self) -> None:
        """After the work dir is claimed and a resume restored, before the first iteration."""

    def after_backward(self, losses: Mapping[str, Tensor]) -> None:
        """The iteration's detached scalar losses, before the optimiser step (``trainer.iter`` is 0-based)."""

    def after_step(self) -> None:
        """After the optimiser step and the method's ``after_step``; ``trainer.iter`` = completed iterations."""

    def after_train(self) -> None:
        """Always called, also when training stops with an error."""


@dataclass
class BestMetric:
    metric: str
    value: float
    iteration: int


class Trainer:
    """Runs ``iters`` iterations of a ``TrainMethod`` with ``hooks``; see the module docstring.

    ``header`` is what every checkpoint records besides the state (the resolved config, the class set);
    ``check`` vets a checkpoint before a resume (``engine.checkpoint.check_compatible`` bound to the
    config by the builder). ``metric`` is the evaluation metric that selects ``best.pth``.
    ``forward_context`` replaces ``autocast_context`` as the factory handed to the method (tests).
    """

    def __init__(self, *, method: TrainMethod, optimizer: torch.optim.Optimizer, lr_schedule: np.ndarray,
                 loaders_factory: LoadersFactory, work_dir: str | os.PathLike, iters: int,
                 hooks: Sequence[HookBase] = (), header: RunHeader = RunHeader(), amp: bool = True,
                 dist: DistInfo | None = None, keep_checkpoints: int = 2, seed: int | None = None,
                 metric: str = "mIoU", check: CompatibilityCheck | None = None,
                 forward_context: ForwardContext | None = None) -> None:
        self.iters = _positive(iters=iters)
        self.lr_schedule = _schedule(lr_schedule, iters)
        _check_groups(optimizer)
        self.method, self.optimizer, self.loaders_factory = method, optimizer, loaders_factory
        self.work_dir, self.header, self.amp = Path(work_dir), header, amp
        self.dist = dist or DistInfo()
        self.seed, self.metric, self.check = seed, metric, check
        self.forward_context = forward_context or self.autocast_context
        self.checkpoints = CheckpointManager(self.work_dir, keep=keep_checkpoints)
        self.best: BestMetric | None = None
        self.iter = 0
        self.start_iter = 0
        self.step_seconds = 0.0  # the last iteration's duration (batches, step, optimiser), for the log
        self.last_logged: dict[str, float] = {}
        self.hooks: list[HookBase] = []
        self.register_hooks(hooks)
        self.log = get_logger()
        self._wrapped = False

    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        for hook in hooks:
            hook.trainer = self
            self.hooks.append(hook)

    # ------------------------------------------------------------------ public
    def fit(self, resume: str | os.PathLike | None = None, *, overwrite: bool = False) -> dict[str, Any]:
        """Train to ``iters``, from the checkpoint ``resume`` when given (``CheckpointManager.resume_path``).

        A fresh run refuses a work dir holding another run unless ``overwrite`` (which deletes that
        run's checkpoints and logs); raises ``WorkDirError`` then, or when another run holds the lock.
        """
        started = time.perf_counter()
        self._check_device()
        self.method.student.train()
        setup_console_logging(is_main=self.dist.is_main)
        lock = self._claim_work_dir(resume=resume is not None, overwrite=overwrite)
        try:
            self._fit(Path(resume) if resume is not None else None)
        finally:
            if lock is not None:
                lock.release()
        return dict(iterations=self.iters, start_iteration=self.start_iter,
                    wall_time_s=time.perf_counter() - started, last_losses=self.last_logged,
                    best=asdict(self.best) if self.best else None, final_checkpoint=str(self.checkpoints.latest_path))

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

    def _fit(self, resume: Path | None) -> None:
        rng_state = self._restore(resume) if resume is not None else None
        if resume is None and self.seed is not None:
            seed_everything(self.seed, rank=self.dist.rank)
        self._check_replicas_identical()
        self._wrap_for_ddp()
        self._hand_forward_context()
        with rng_preserved():  # building loaders (e.g. a DataLoader's base seed) must not shift training RNG
            source_iter, target_iter = self.loaders_factory(self.start_iter)
        if rng_state is not None:
            restore_rng_state(rng_state)
        try:
            for hook in self.hooks:
                hook.before_train()
            self._loop(source_iter, target_iter)
        finally:
            for hook in self.hooks:
                hook.after_train()
        dist_utils.barrier()

    # ------------------------------------------------------------------ the loop
    def _loop(self, source_iter: Iterator[dict], target_iter: Iterator[dict] | None) -> None:
        for iteration in range(self.start_iter, self.iters):
            self.iter = iteration
            self.run_step(source_iter, target_iter)
            self.iter = iteration + 1
            for hook in self.hooks:
                hook.after_step()

    def run_step(self, source_iter: Iterator[dict], target_iter: Iterator[dict] | None) -> None:
        """One iteration (see the module docstring); ``step_seconds`` records its duration."""
        started = time.perf_counter()
        with rng_preserved():  # the loaders' randomness is theirs: keyed by (seed, iteration, rank)
            source = next(source_iter)
            target = next(target_iter) if target_iter is not None else None
        source = move_to_device(source, self.dist.device)
        target = move_to_device(target, self.dist.device) if target is not None else None
        self._set_lr(self.iter)
        self.optimizer.zero_grad(set_to_none=True)
        losses = _scalar_losses(self.method.train_step(source, target, iteration=self.iter), self.iter)
        for hook in self.hooks:
            hook.after_backward(losses)
        self.optimizer.step()
        dist_utils.broadcast_buffers(self.method.student)
        self.method.after_step(iteration=self.iter)
        self.step_seconds = time.perf_counter() - started

    def autocast_context(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA when ``amp`` (bf16 needs no loss scaling), else nothing; never on CPU."""
        if self.amp and self.dist.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _hand_forward_context(self) -> None:
        setter = getattr(self.method, "set_forward_context", None)
        if setter is not None:
            setter(self.forward_context)
        elif not isinstance(self.forward_context(), contextlib.nullcontext):
            # A method without set_forward_context (a test's toy method) can only train in full precision.
            raise TypeError(f"{type(self.method).__name__} has no set_forward_context(factory): it cannot run its "
                            "forwards under autocast; implement it or set runtime.amp=False")

    def _set_lr(self, iteration: int) -> None:
        base = float(self.lr_schedule[iteration])
        for group in self.optimizer.param_groups:
            group["lr"] = base * group["lr_mult"]

    def current_lrs(self) -> dict[str, float]:
        return {f"lr/{g.get('name', i)}": float(g["lr"]) for i, g in enumerate(self.optimizer.param_groups)}

    def last_good(self) -> str:
        """Where the user's run stands after a stop: the newest checkpoint (all finite), or none."""
        latest = self.checkpoints.latest_path
        if latest.is_file():
            # Finite is not healthy: steps taken under the cause (a too-high learning rate) may already be in it.
            return (f"the last checkpoint, {latest}, holds only finite tensors; once the cause is fixed resume from it, "
                    f"or from an earlier iter_N.pth if the cause was already acting when it was written")
        return f"no checkpoint was written to {self.work_dir}"

    # ------------------------------------------------------------------ checkpoint payload and restore
    def training_state(self) -> dict[str, Any]:
        """What a checkpoint holds of the run's tensors: the method's state and the optimiser's moments."""
        names = {id(p): name for name, p in self.method.student.named_parameters()}
        moments = {names.get(id(p), str(i)): s for i, (p, s) in enumerate(self.optimizer.state.items())}
        return {**self.method.checkpoint_state(), Key.OPTIMIZER.value: moments}

    def payload(self, step: int, selection: str, metrics: Mapping[str, float], rng_states: list) -> dict[str, Any]:
        """A checkpoint of the run at ``step`` (``selection`` says how it was chosen)."""
        method_state = self.method.checkpoint_state()
        clash = RESERVED_KEYS & set(method_state)
        if clash:
            raise KeyError(f"method.checkpoint_state() uses keys reserved by the engine: {sorted(clash)}")
        return {
            **method_state,
            Key.OPTIMIZER.value: self.optimizer.state_dict(),
            Key.STEP.value: step,
            Key.RNG.value: rng_states,
            Key.CONFIG.value: self.header.config,
            Key.TRAINER.value: {"best": asdict(self.best) if self.best else None},
            Key.META.value: make_meta(class_set=self.header.class_set, num_classes=self.header.num_classes,
                                      iteration=step, selection=selection, metrics=metrics),
        }

    def rng_states(self) -> list:
        """Every rank's generators (a collective): each rank resumes its own random stream."""
        return dist_utils.all_gather_objects(capture_rng_state())

    def _restore(self, path: Path) -> dict | None:
        """Load the method, optimiser and best metric; set the start iteration; return this rank's RNG."""
        payload = load_checkpoint(path, require=TRAINING_KEYS)
        if self.check is not None:
            self.check(payload, path)
        step = int(payload[Key.STEP.value])
        if step > self.iters:
            raise CheckpointError(f"{path} is at iteration {step}, beyond schedule.iters={self.iters}")
        self.method.load_checkpoint_state({k: v for k, v in payload.items() if k not in RESERVED_KEYS})
        try:
            self.optimizer.load_state_dict(payload[Key.OPTIMIZER.value])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: optimizer state does not match this model's parameter groups ({e})") from e
        self.best = self._restore_best(payload)
        self.start_iter = self.iter = step
        self.log.info(f"resumed from {path} at iteration {step}")
        return self._rank_rng_state(payload[Key.RNG.value], path, step)

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


# ---------------------------------------------------------------------- helpers
def _positive(**values: int) -> int:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    return next(iter(values.values()))


def _schedule(lr_schedule: np.ndarray, iters: int) -> np.ndarray:
    schedule = np.asarray(lr_schedule, dtype=np.float64)
    if schedule.shape != (iters,):
        raise ValueError(f"lr_schedule has shape {schedule.shape}, expected ({iters},) (one rate per iteration)")
    return schedule


def _check_groups(optimizer: torch.optim.Optimizer) -> None:
    for group in optimizer.param_groups:
        if "lr_mult" not in group:
            raise ValueError("optimizer groups need an 'lr_mult' entry; build the optimizer with "
                             "engine.optim.build_optimizer")


def _scalar_losses(losses: Mapping[str, Tensor], iteration: int) -> dict[str, Tensor]:
    """``train_step``'s losses detached as float scalars; a ``TypeError`` naming what is not one."""
    if not isinstance(losses, Mapping) or not losses:
        raise TypeError(f"train_step returned {losses!r} at iteration {iteration}; expected a non-empty "
                        "dict of scalar tensors")
    checked = {}
    for name, value in losses.items():
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise TypeError(f"train_step returned {name}={value!r} at iteration {iteration}; "
                            "expected a scalar tensor")
        checked[name] = value.detach().float().reshape(())
    return checked
