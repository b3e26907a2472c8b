"""Checkpoints: atomic writes, rotation, the latest/best files, and loading with clear errors.

A checkpoint is one dict: the method's own entries (``model``, ``teacher``, ``extra``, ... from
``TrainMethod.checkpoint_state``) next to the engine's reserved entries

- ``optimizer``: the optimiser's state dict; ``step``: completed iterations;
- ``rng``: one generator snapshot per rank (``seed.capture_rng_state``);
- ``config``: the resolved config as a plain dict; ``trainer``: the best metric seen so far;
- ``meta``: ``class_set``, ``num_classes``, ``iteration``, ``selection`` (how this file was chosen)
  and ``metrics`` (the evaluation that chose it, empty for periodic files);
- ``format_version``.

In a work dir: ``iter_<N>.pth`` every checkpoint interval (the newest ``keep`` are kept),
``latest.pth`` (a hard link to the newest ``iter_<N>.pth`` where the file system allows, else a
copy) and ``best.pth``, chosen only by the periodic evaluation on the held-out ``data.val`` split.
Every file is written to a temporary name in the same folder, fsynced, then renamed, so a crash
leaves either the previous file or the new one, never half of one.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

# The one checkpoint error of the package (backbone weights, training, evaluation), re-exported here.
from pipa_video.models.checkpoint import (FILE_MODE, CheckpointError, fsync_dir, read_checkpoint,
                                          save_checkpoint_atomic)

FORMAT_VERSION = 1
LATEST_NAME = "latest.pth"
BEST_NAME = "best.pth"
_ITER_NAME = "iter_{}.pth"
_ITER_RE = re.compile(r"^iter_(\d+)\.pth$")


class Key(str, Enum):
    """The checkpoint entries the engine owns; a method's state may not use these names."""

    OPTIMIZER = "optimizer"
    STEP = "step"
    RNG = "rng"
    CONFIG = "config"
    TRAINER = "trainer"
    META = "meta"
    FORMAT_VERSION = "format_version"


RESERVED_KEYS = frozenset(k.value for k in Key)
TRAINING_KEYS = (Key.OPTIMIZER.value, Key.STEP.value, Key.RNG.value, Key.CONFIG.value, Key.META.value)


class Selection(str, Enum):
    """How a checkpoint file was chosen (``meta.selection``)."""

    LAST = "last iteration"
    BEST = "best {metric} on data.val (held-out split)"

    def describe(self, metric: str) -> str:
        return self.value.format(metric=metric)


def make_meta(*, class_set: str | None, num_classes: int | None, iteration: int, selection: str,
              metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
    return dict(class_set=class_set, num_classes=num_classes, iteration=iteration, selection=selection,
                metrics=dict(metrics or {}))


def save_checkpoint(payload: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file next to ``path``, fsync, rename over ``path``."""
    return save_checkpoint_atomic(dict(payload), path)


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                    require: Iterable[str] = (Key.META.value,), mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint``; ``require`` lists entries it must hold.

    Reading is ``models.checkpoint.read_checkpoint`` (``weights_only=True``: checkpoints hold only
    tensors and plain Python values). ``mmap=True`` maps tensors lazily (cheap when only ``meta`` is wanted).
    """
    payload = read_checkpoint(path, map_location=map_location, mmap=mmap)
    missing = [k for k in (Key.FORMAT_VERSION.value, *require) if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: lacks {missing}; expected a pipa-video training checkpoint "
                              f"(has keys {sorted(payload)[:10]})")
    if payload[Key.FORMAT_VERSION.value] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {payload[Key.FORMAT_VERSION.value]} is newer than "
                              f"this pipa-video reads ({FORMAT_VERSION}); upgrade pipa-video")
    return payload


class CheckpointManager:
    """Names, writes and rotates the checkpoints of one work dir (call it on the main process only)."""

    def __init__(self, work_dir: str | os.PathLike, *, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"runtime.keep_checkpoints must be >= 1, got {keep}")
        self.work_dir = Path(work_dir)
        self.keep = keep

    @property
    def latest_path(self) -> Path:
        return self.work_dir / LATEST_NAME

    @property
    def best_path(self) -> Path:
        return self.work_dir / BEST_NAME

    def iter_path(self, iteration: int) -> Path:
        return self.work_dir / _ITER_NAME.format(iteration)

    def save_periodic(self, payload: Mapping[str, Any], *, iteration: int) -> Path:
        """Write ``iter_<iteration>.pth``, point ``latest.pth`` at it, drop the oldest beyond ``keep``."""
        path = save_checkpoint(payload, self.iter_path(iteration))
        _replace_with_link(path, self.latest_path)
        self._rotate(up_to=iteration)
        return path

    def save_best(self, payload: Mapping[str, Any]) -> Path:
        return save_checkpoint(payload, self.best_path)

    def iteration_files(self) -> dict[int, Path]:
        if not self.work_dir.is_dir():
            return {}
        found = {}
        for p in self.work_dir.iterdir():
            match = _ITER_RE.match(p.name)
            if match:
                found[int(match.group(1))] = p
        return dict(sorted(found.items()))

    def _rotate(self, *, up_to: int) -> None:
        # Files past ``up_to`` belong to an abandoned timeline (a resume from an older checkpoint);
        # they are left alone here and overwritten when training reaches them again.
        current = [it for it in self.iteration_files() if it <= up_to]
        for it in current[: max(0, len(current) - self.keep)]:
            self.iter_path(it).unlink(missing_ok=True)


def _replace_with_link(source: Path, target: Path) -> None:
    """Atomically make ``target`` the same file as ``source`` (hard link; copy where unsupported)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # file systems without hard links
            shutil.copyfile(source, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
