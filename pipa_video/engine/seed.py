"""Seeding and the capture/restore of every random number generator a training step may draw from.

Exact resume needs the generators' states as they were when the checkpoint was written: python's
``random``, numpy's legacy global generator, torch's CPU generator and every CUDA device's generator.
States are stored as tensors and plain Python values, so checkpoints load with ``weights_only=True``.
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch

# numpy's legacy state is ('MT19937', keys: uint32[624], pos, has_gauss, cached_gaussian).
_NUMPY_BIT_GENERATOR = "MT19937"


def seed_everything(seed: int, *, rank: int = 0) -> int:
    """Seed python, numpy and torch (every device) with ``seed + rank``; return the seed used.

    Build the model with ``rank=0`` on every process (replicas must start identical: the EMA teacher
    is not synchronised by DDP), then reseed with the process rank so that each rank draws its own
    dropout masks and augmentations.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    effective = seed + rank
    random.seed(effective)
    np.random.seed(effective % 2**32)
    torch.manual_seed(effective)  # seeds the CPU and every CUDA generator
    return effective


def capture_rng_state() -> dict[str, Any]:
    """Snapshot of every global generator (CUDA only when CUDA is initialised)."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the generators captured by ``capture_rng_state``."""
    missing = [k for k in ("python", "numpy", "torch") if k not in state]
    if missing:
        raise KeyError(f"RNG state lacks {missing}; expected the dict written by capture_rng_state")
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((_NUMPY_BIT_GENERATOR, np_state["keys"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) != torch.cuda.device_count():
            raise ValueError(f"RNG state holds {len(cuda_states)} CUDA generators but this process sees "
                             f"{torch.cuda.device_count()} devices")
        torch.cuda.set_rng_state_all(cuda_states)


@contextlib.contextmanager
def rng_preserved() -> Iterator[None]:
    """Run a block without changing any global generator seen after it (evaluation, data fetching).

    Training randomness then does not depend on when or how often such blocks run, which is what
    makes a resumed run identical to an uninterrupted one.
    """
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)
