"""Non-finite safety: a NaN/inf loss or tensor of the training state stops the run before it is saved.

Two checks, both raising ``NonFiniteError`` on every rank with the same one-line message:

- ``check_losses``: every iteration, before the optimiser step; the whole loss dict is reduced to one
  flag, one host sync per iteration (the step itself never syncs).
- ``check_state``: every floating tensor of the training state (student, teacher, projection heads,
  memory bank, BatchNorm running statistics, the optimiser's moments), at each log interval and before
  every checkpoint write. One ``isfinite().all()`` per tensor, stacked, and one host sync for the lot:
  a few milliseconds per interval, against a per-step check's sync on every iteration. Logging at
  intervals is what catches a state that goes bad while the losses stay finite (e.g. an infinite
  BatchNorm ``running_var``: training-mode forwards use batch statistics, inference the running ones).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import torch
from torch import Tensor

from pipa_video.engine import dist as dist_utils
from pipa_video.errors import NonFiniteError


def named_float_tensors(state: Any, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
    """``(dotted name, tensor)`` of every floating-point tensor in a nested dict/list state, in order."""
    if isinstance(state, Tensor):
        if state.is_floating_point() or state.is_complex():
            yield prefix, state
    elif isinstance(state, Mapping):
        for key, value in state.items():
            yield from named_float_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from named_float_tensors(value, f"{prefix}.{i}" if prefix else str(i))


def _stop(message: str) -> None:
    """Raise the first failing rank's ``message`` (or another rank's) on every rank."""
    messages = [m for m in dist_utils.all_gather_objects(message) if m]
    raise NonFiniteError(messages[0] if messages else "non-finite value on another rank")


def check_losses(losses: Mapping[str, Tensor], *, iteration: int, rank: int, where: Callable[[], str]) -> None:
    """Raise ``NonFiniteError`` naming the first NaN/inf term (in computation order) on any rank.

    ``where()`` says where the run stands (the last checkpoint), called only on failure.
    """
    values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
    finite = torch.isfinite(values)
    flag = (~finite).any().float().reshape(1)
    if dist_utils.all_reduce_sum(flag).item() == 0:  # one host sync per iteration, for the whole dict
        return
    bad = [(name, float(value)) for (name, value), ok in zip(losses.items(), finite.tolist()) if not ok]
    also = f" (also {', '.join(f'{n}={v}' for n, v in bad[1:])})" if len(bad) > 1 else ""
    _stop(f"{bad[0][0]}: non-finite loss ({bad[0][1]}) at iteration {iteration} on rank {rank}{also}; stopped "
          f"before the optimizer step; {where()}" if bad else "")


def first_non_finite(state: Any) -> str | None:
    """The name of the first tensor in ``state`` holding a NaN or inf, or None (one host sync per device)."""
    named = list(named_float_tensors(state))
    finite = torch.ones(len(named), dtype=torch.bool)
    by_device: dict[torch.device, list[int]] = {}
    for i, (_, tensor) in enumerate(named):
        by_device.setdefault(tensor.device, []).append(i)
    for rows in by_device.values():
        finite[rows] = torch.stack([torch.isfinite(named[i][1].detach()).all() for i in rows]).cpu()
    bad = (~finite).nonzero()
    return named[int(bad[0])][0] if len(bad) else None


def check_state(state: Any, *, iteration: int, rank: int, where: Callable[[], str], device: torch.device) -> None:
    """Raise ``NonFiniteError`` naming the first non-finite tensor of ``state`` on any rank.

    ``device`` is where the collective runs (the training device: gloo on CPU, NCCL on CUDA).
    """
    name = first_non_finite(state)
    flag = torch.tensor([0.0 if name is None else 1.0], device=device)
    if dist_utils.all_reduce_sum(flag).item() == 0:
        return
    _stop(f"{name}: NaN or inf in the training state after iteration {iteration} on rank {rank}; stopped "
          f"without writing a checkpoint of it; {where()}" if name else "")
