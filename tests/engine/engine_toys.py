"""A toy training method and toy loaders for the engine tests (tiny MLP on synthetic tensors).

The method draws from every global generator (dropout and input noise from torch, a python and a
numpy draw), so only an exact RNG restore reproduces a run. The loaders are keyed by
(seed, iteration, rank) like the real ones, and also draw from the global generators on their
first ``next`` (as a DataLoader does when it starts), which the trainer must keep out of the training
stream.
"""
from __future__ import annotations

import contextlib
import copy
import os
import random
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipa_video.engine.checkpoint import RunHeader

IN_DIM, HIDDEN, NUM_CLASSES, BATCH = 4, 8, 3, 4
TOY_HEADER = RunHeader(config={"class_set": "cityscapes19"}, class_set="cityscapes19", num_classes=19)


class ToyNet(nn.Module):
    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(IN_DIM, HIDDEN), nn.LayerNorm(HIDDEN), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(HIDDEN, NUM_CLASSES)
        self.proj = nn.Linear(HIDDEN, 2)  # a training-only head, unused by some forwards

    def forward(self, x: torch.Tensor, with_proj: bool = False):
        feats = self.backbone(x)
        return (self.head(feats), self.proj(feats)) if with_proj else self.head(feats)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()),
                "head": list(self.head.parameters()) + list(self.proj.parameters())}


class ToyMethod:
    """Source CE + teacher-pseudo-labelled target CE + a projection term; EMA teacher."""

    def __init__(self, *, init_seed: int, dropout: float = 0.3, noise: float = 0.1, jitter: float = 0.01,
                 nan_at: int | None = None, fail_at: int | None = None) -> None:
        torch.manual_seed(init_seed)
        self.student = ToyNet(dropout)
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self._forward = self.student
        self.noise = noise
        self.jitter = jitter
        self.nan_at = nan_at
        self.fail_at = fail_at
        self.steps_seen = torch.zeros((), dtype=torch.long)
        self.autocast_seen: list[bool] = []
        self.forward_context = contextlib.nullcontext

    def set_forward_context(self, factory) -> None:
        """The engine's precision context, entered around forwards only (interface 1)."""
        self.forward_context = factory

    def to(self, device) -> "ToyMethod":
        self.student.to(device)
        self.teacher.to(device)
        return self

    def wrap_student(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        self._forward = wrapper(self.student)

    def train_step(self, source: dict, target: dict | None, *, iteration: int) -> dict[str, torch.Tensor]:
        if self.fail_at is not None and iteration == self.fail_at:
            raise KeyboardInterrupt(f"simulated crash at iteration {iteration}")
        jitter = 1.0 + self.jitter * (random.random() + float(np.random.rand()))
        x = source["img"] * jitter + self.noise * torch.randn_like(source["img"])
        with self.forward_context():
            self.autocast_seen.append(torch.is_autocast_enabled("cuda") or torch.is_autocast_enabled())
            logits, proj = self._forward(x, with_proj=True)
            loss_src = F.cross_entropy(logits, source["label"]) + 0.1 * proj.pow(2).mean()
        loss_src.backward()
        losses = {"loss_src": loss_src.detach()}
        if target is not None:
            with torch.no_grad(), self.forward_context():
                pseudo = self.teacher(target["img"]).argmax(1)
            with self.forward_context():
                loss_tgt = 0.5 * F.cross_entropy(self._forward(target["img"]), pseudo)
            loss_tgt.backward()
            losses["loss_tgt"] = loss_tgt.detach()
        if self.nan_at is not None and iteration == self.nan_at:
            losses["loss_tgt"] = torch.tensor(float("nan"))
        return losses

    def after_step(self, *, iteration: int) -> None:
        alpha = min(1.0 - 1.0 / (iteration + 1), 0.99)
        with torch.no_grad():
            for t, s in zip(self.teacher.parameters(), self.student.parameters()):
                t.mul_(alpha).add_(s.detach(), alpha=1.0 - alpha)
        self.steps_seen += 1

    def checkpoint_state(self) -> dict:
        return {"model": self.student.state_dict(), "teacher": self.teacher.state_dict(),
                "extra": {"steps_seen": self.steps_seen.clone()}}

    def load_checkpoint_state(self, state: dict) -> None:
        self.student.load_state_dict(state["model"])
        self.teacher.load_state_dict(state["teacher"])
        self.steps_seen.copy_(state["extra"]["steps_seen"])

    def eval_model(self) -> nn.Module:
        return self.student


def _batch(seed: int, stream: int, iteration: int, rank: int) -> dict:
    rng = np.random.default_rng([seed, stream, iteration, rank])
    img = torch.from_numpy(rng.standard_normal((BATCH, IN_DIM)).astype(np.float32))
    label = torch.from_numpy(rng.integers(0, NUM_CLASSES, BATCH).astype(np.int64))
    return {"img": img, "label": label, "meta": {"iteration": iteration, "rank": rank}}


def _stream(seed: int, stream: int, start_iter: int, ranks: tuple[int, ...], disturb: bool) -> Iterator[dict]:
    iteration = start_iter
    if disturb:  # like a DataLoader drawing its base seed from the global generators on its first batch
        torch.rand(1)
        random.random()
        np.random.rand()
    while True:
        parts = [_batch(seed, stream, iteration, r) for r in ranks]
        yield {"img": torch.cat([p["img"] for p in parts]), "label": torch.cat([p["label"] for p in parts]),
               "meta": parts[0]["meta"]}
        iteration += 1


def toy_loaders_factory(*, seed: int = 0, ranks: tuple[int, ...] = (0,), with_target: bool = True,
                        disturb: bool = True):
    """``start_iter -> (source_iter, target_iter)``; several ``ranks`` concatenate those ranks' batches."""
    def factory(start_iter: int):
        if disturb:
            torch.rand(3)
        source = _stream(seed, 0, start_iter, ranks, disturb)
        target = _stream(seed, 1, start_iter, ranks, disturb) if with_target else None
        return source, target
    return factory


def dist_worker(rank: int, world_size: int, port: int, out_dir: str, iters: int) -> None:
    """One torchrun-like process: collectives checks, then a DDP training run of the toy method."""
    from pipa_video.engine import dist as dist_utils
    from pipa_video.engine.optim import build_optimizer
    from pipa_video.engine.build import make_trainer
    from pipa_video.engine.schedule import lr_schedule

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = dist_utils.init_distributed("cpu")
    try:
        results = _check_collectives(info.rank, info.world_size)
        grad_method = ToyMethod(init_seed=0, dropout=0.0, noise=0.0, jitter=0.0)
        grad_method.wrap_student(lambda module: dist_utils.wrap_ddp(module, info.device))
        results["grads"] = first_step_gradients(grad_method, ranks=(info.rank,))
        method = ToyMethod(init_seed=0, dropout=0.0, noise=0.0, jitter=0.0)
        trainer = make_trainer(method=method, optimizer=_toy_optimizer(method, build_optimizer),
                               lr_schedule=_toy_schedule(iters, lr_schedule),
                               loaders_factory=toy_loaders_factory(seed=5, ranks=(info.rank,), disturb=False),
                               work_dir=os.path.join(out_dir, "run"), header=TOY_HEADER, iters=iters,
                               log_interval=1, checkpoint_interval=iters, amp=False, dist=info, seed=3)
        summary = trainer.fit()
        torch.save({"results": results, "model": method.student.state_dict(), "summary_losses": summary["last_losses"],
                    "ddp_wrapped": type(method._forward).__name__},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist_utils.cleanup()


def first_step_gradients(method: ToyMethod, *, ranks: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Gradients of one ``train_step`` on iteration 0's batches of ``ranks``."""
    source_iter, target_iter = toy_loaders_factory(seed=5, ranks=ranks, disturb=False)(0)
    method.train_step(next(source_iter), next(target_iter), iteration=0)
    return {name: p.grad.clone() for name, p in method.student.named_parameters()}


def _check_collectives(rank: int, world_size: int) -> dict:
    from pipa_video.engine import dist as dist_utils

    summed = dist_utils.all_reduce_sum(torch.tensor([float(rank + 1), 10.0 * rank]))
    local = torch.full((rank + 1, 2), float(rank), requires_grad=True)  # rank r sends r+1 rows
    gathered = dist_utils.all_gather_cat(local * 1.0)
    gathered.sum().backward()
    return {"summed": summed, "gathered": gathered.detach(), "local_grad": local.grad.clone(),
            "objects": dist_utils.all_gather_objects({"rank": rank}), "rank": dist_utils.get_rank(),
            "world_size": dist_utils.get_world_size(), "main": dist_utils.is_main_process()}


def _toy_optimizer(method: ToyMethod, build_optimizer):
    return build_optimizer(method.student.param_groups(), lr=0.05, head_lr_mult=10.0, weight_decay=0.01,
                           betas=(0.9, 0.999))


def _toy_schedule(iters: int, lr_schedule):
    return lr_schedule(base_lr=0.05, iters=iters, warmup_iters=1, warmup_ratio=0.1, power=1.0, min_lr=0.0)


def single_process_reference(iters: int, ranks: tuple[int, ...], work_dir: str) -> dict:
    """The DDP run's equivalent in one process: the same steps on the concatenated batches."""
    from pipa_video.engine.optim import build_optimizer
    from pipa_video.engine.build import make_trainer
    from pipa_video.engine.schedule import lr_schedule

    method = ToyMethod(init_seed=0, dropout=0.0, noise=0.0, jitter=0.0)
    trainer = make_trainer(method=method, optimizer=_toy_optimizer(method, build_optimizer),
                           lr_schedule=_toy_schedule(iters, lr_schedule),
                           loaders_factory=toy_loaders_factory(seed=5, ranks=ranks, disturb=False), work_dir=work_dir,
                           header=TOY_HEADER, iters=iters, log_interval=1, checkpoint_interval=iters, amp=False, seed=3)
    trainer.fit()
    return method.student.state_dict()
