"""Distributed training: process-group set-up from torchrun's variables, collectives, DDP.

The package's one owner of ``torch.distributed``: every collective is a function here, and whoever
needs one is handed it (the memory bank's ``gather`` through ``uda.build.build_method``, the
evaluators' ``reduce_sum`` / ``gather_objects`` through ``evaluation.loop.Comm``; ``engine.build``
wires both). Everything here is a no-op (or the identity) in a single process, so the engine calls
it unconditionally. NCCL is used on CUDA and gloo on CPU.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

# torchrun sets these for every process it starts.
ENV_RANK, ENV_WORLD_SIZE, ENV_LOCAL_RANK = "RANK", "WORLD_SIZE", "LOCAL_RANK"
META_BATCH_KEY = "meta"  # clip metadata (names, frame ids) stays on the host


class DevicePreference(str, Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def _pick_device(preference: DevicePreference, local_rank: int) -> torch.device:
    if preference is DevicePreference.CUDA and not torch.cuda.is_available():
        raise RuntimeError("runtime.device='cuda' but torch sees no CUDA device "
                           f"(torch {torch.__version__}, CUDA build {torch.version.cuda})")
    if preference is DevicePreference.CPU or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"{ENV_LOCAL_RANK}={local_rank} but only {torch.cuda.device_count()} CUDA "
                           "devices are visible")
    return torch.device("cuda", local_rank)


DEFAULT_TIMEOUT_S = 600.0  # runtime.dist_timeout_s's default; gloo's and NCCL's own is 30 min


def init_distributed(device: str = DevicePreference.AUTO.value, *,
                     timeout_s: float = DEFAULT_TIMEOUT_S) -> DistInfo:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    Without those variables (or with ``WORLD_SIZE=1``) nothing is initialised and rank 0 of 1 is
    returned. ``device`` is ``runtime.device``: auto (CUDA when available), cpu or cuda.
    ``timeout_s`` (``runtime.dist_timeout_s``): how long a collective waits for a stalled rank
    before it fails.
    """
    preference = DevicePreference(device)
    world_size = _env_int(ENV_WORLD_SIZE, 1)
    rank = _env_int(ENV_RANK, 0)
    local_rank = _env_int(ENV_LOCAL_RANK, 0)
    if torch_dist.is_available() and torch_dist.is_initialized():
        world_size, rank = torch_dist.get_world_size(), torch_dist.get_rank()
    dev = _pick_device(preference, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # NCCL and all_gather_object use the current device
    if world_size > 1 and not torch_dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend=backend, init_method="env://", world_size=world_size, rank=rank,
                                      timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def is_dist() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1


def get_rank() -> int:
    return torch_dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return torch_dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_dist():
        torch_dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place; returns it (unchanged in a single process)."""
    if is_dist():
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor


def all_reduce_sum_on(tensor: torch.Tensor, *, device: torch.device) -> torch.Tensor:
    """Sum ``tensor`` over all ranks on ``device`` (NCCL reduces CUDA tensors only); returned where it was."""
    return all_reduce_sum(tensor.to(device)).to(tensor.device)


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` along dim 0, in rank order; sizes along dim 0 may differ.

    Each rank's block is padded to the largest size for the collective and cut back afterwards. The
    other ranks' blocks carry no gradient; this rank's own block is the input itself, so gradients
    still flow into it (what a contrastive loss over gathered negatives needs).
    """
    if not is_dist():
        return tensor
    world_size = torch_dist.get_world_size()
    local_size = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
    sizes = [torch.zeros_like(local_size) for _ in range(world_size)]
    torch_dist.all_gather(sizes, local_size)
    sizes_list = [int(s.item()) for s in sizes]  # the padding needs the sizes on the host
    max_size = max(sizes_list)
    padded = tensor.detach()
    if tensor.shape[0] < max_size:
        pad = tensor.new_zeros((max_size - tensor.shape[0], *tensor.shape[1:]))
        padded = torch.cat([padded, pad], dim=0)
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    torch_dist.all_gather(gathered, padded.contiguous())
    blocks = [g[:n] for g, n in zip(gathered, sizes_list)]
    blocks[torch_dist.get_rank()] = tensor
    return torch.cat(blocks, dim=0)


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Give every rank ``src``'s buffers of ``module`` (BatchNorm running statistics), in place.

    DDP does this before each forward; the engine also does it after the optimiser step, so that what
    is saved (rank 0's) is what every rank holds and the EMA teacher, fed each rank's student buffers,
    stays identical across ranks. One flat broadcast per dtype; a no-op in a single process.
    """
    if not is_dist():
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for buffer in module.buffers():
        by_dtype.setdefault(buffer.dtype, []).append(buffer)
    for buffers in by_dtype.values():
        flat = torch.cat([b.detach().reshape(-1) for b in buffers])
        torch_dist.broadcast(flat, src=src)
        for buffer, value in zip(buffers, flat.split([b.numel() for b in buffers])):
            buffer.copy_(value.view_as(buffer))


def wrap_ddp(module: nn.Module, device: torch.device) -> DistributedDataParallel:
    """DDP with ``find_unused_parameters``: the projection heads are not used by every forward."""
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


def cleanup() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def all_gather_objects(obj: object) -> list[object]:
    """Every rank's picklable ``obj``, in rank order (``[obj]`` in a single process)."""
    if not is_dist():
        return [obj]
    gathered: list[object] = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(gathered, obj)
    return gathered


def state_checksum(state: Any) -> torch.Tensor:
    """Order-sensitive float64 checksum of every floating tensor in a nested state."""
    total = torch.zeros((), dtype=torch.float64)
    position = 0
    stack = [state]
    while stack:
        node = stack.pop()
        if isinstance(node, torch.Tensor):
            if node.is_floating_point():
                position += 1
                total += position * torch.nan_to_num(node.detach().double()).sum().cpu()
        elif isinstance(node, Mapping):
            stack.extend(node[k] for k in sorted(node, key=str))
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return total


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors of a (nested) batch to ``device``; the ``meta`` entry stays where it is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: v if k == META_BATCH_KEY else move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch
