"""pipa-video checkpoints: the format, reading, writing, the compatibility checks and a work dir's files.

The one owner of the training checkpoint. Every use goes through here: ``--resume`` and ``load_from``
(``engine.build``), ``eval``, ``tc-report``, ``predict`` and ``predict --format`` (``load_segmentor``,
called by the CLI and the demo, which hand the model to ``evaluation``), and ``adapt``. The bytes
(the package's one ``torch.load`` / ``torch.save``) are ``pipa_video.checkpoint_io``'s, re-exported
here: that module sits at the bottom of the package so that the backbones' ImageNet weights can be
read from ``models`` without importing the engine.

A checkpoint is one dict: the method's own entries (``model``, ``teacher``, ``extra``, ... from
``TrainMethod.checkpoint_state``) next to the engine's reserved entries (``Key``):

- ``optimizer``: the optimiser's state dict; ``step``: completed iterations;
- ``rng``: one generator snapshot per rank (``seed.capture_rng_state``);
- ``config``: the resolved config as a plain dict; ``trainer``: the best metric seen so far;
- ``meta``: ``class_set``, ``num_classes``, ``iteration``, ``selection`` (how this file was chosen)
  and ``metrics`` (the evaluation that chose it, empty for periodic files);
- ``format_version`` (stamped by ``save_checkpoint``).

Compatibility (``check_compatible``, the same for resume, ``load_from`` and inference): the class
set, the backbone and decode-head types and HRDA or not must match the config.

In a work dir: ``iter_<N>.pth`` every checkpoint interval (the newest ``keep`` are kept),
``latest.pth`` (a hard link to the newest ``iter_<N>.pth`` where the file system allows, else a
copy) and ``best.pth``, chosen only by the periodic evaluation on the held-out ``data.val`` split.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from torch import nn

from pipa_video.atomic import link_or_copy
from pipa_video.checkpoint_io import CheckpointError, pickle_loading, read_checkpoint  # noqa: F401  (re-exported)
from pipa_video.checkpoint_io import save_checkpoint as _save_file

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
MODEL_KEY = "model"  # the segmentor's state dict (``TrainMethod.checkpoint_state``'s ``model``)
INFERENCE_KEYS = (MODEL_KEY, Key.CONFIG.value, Key.META.value)


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


@dataclass(frozen=True)
class RunHeader:
    """What every checkpoint of a run records besides the state: the resolved config (plain dict) and
    its class set. The builder makes it from the config; the trainer only writes it."""

    config: dict = field(default_factory=dict)
    class_set: str | None = None
    num_classes: int | None = None


def save_checkpoint(payload: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a checkpoint whole (temp file, fsync, rename), stamped with ``FORMAT_VERSION``."""
    return _save_file({**payload, Key.FORMAT_VERSION.value: FORMAT_VERSION}, path)


def load_checkpoint(path: str | os.PathLike, *, map_location: str = "cpu",
                    require: Iterable[str] = (Key.META.value,), mmap: bool = False) -> dict[str, Any]:
    """Read a pipa-video checkpoint (weights only); ``require`` lists the entries it must hold.

    Raises ``CheckpointError`` naming the file when it is unreadable, not pipa-video's, lacks a
    required entry or was written by a newer format. ``mmap=True`` maps tensors lazily.
    """
    payload = read_checkpoint(path, map_location=map_location, mmap=mmap)
    missing = [k for k in (Key.FORMAT_VERSION.value, *require) if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: lacks {missing}; expected a pipa-video checkpoint "
                              f"(has keys {sorted(payload)[:10]})")
    if payload[Key.FORMAT_VERSION.value] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {payload[Key.FORMAT_VERSION.value]} is newer than "
                              f"this pipa-video reads ({FORMAT_VERSION}); upgrade pipa-video")
    return payload


# --- compatibility -------------------------------------------------------------------------------
def _model_types(config: Mapping) -> tuple[Any, Any, bool]:
    model = config.get("model") or {}
    return ((model.get("backbone") or {}).get("type"), (model.get("decode_head") or {}).get("type"),
            model.get("type", "encoder_decoder") == "hrda")


def _class_set_of(checkpoint: Mapping, path: str | os.PathLike):
    from pipa_video.data.classes import get_class_set

    name = (checkpoint.get(Key.META.value) or {}).get("class_set") or (checkpoint.get(Key.CONFIG.value)
                                                                        or {}).get("class_set")
    try:
        return get_class_set(name)
    except KeyError:
        raise CheckpointError(f"checkpoint {path} records an unknown class set {name!r}") from None


def check_compatible(checkpoint: Mapping[str, Any], cfg: Mapping[str, Any], *, path: str | os.PathLike) -> None:
    """The checkpoint's class set, backbone and decode-head types and HRDA-or-not must be the config's.

    One check for ``--resume``, ``load_from`` and every command that runs a checkpoint. Raises
    ``CheckpointError`` naming the file, both values and the config key to change.
    """
    from pipa_video.data.classes import get_class_set

    trained, wanted = _class_set_of(checkpoint, path), get_class_set(cfg["class_set"])
    if trained.name != wanted.name:
        raise CheckpointError(
            f"checkpoint {path} was trained for class set {trained.name} ({trained.num_classes} classes), "
            f"config asks for {wanted.name} ({wanted.num_classes}) (class_set)")
    got, want = _model_types(checkpoint.get(Key.CONFIG.value) or {}), _model_types(cfg)
    if got[:2] != want[:2]:
        raise CheckpointError(
            f"checkpoint {path} holds a model with backbone {got[0]!r} and decode head {got[1]!r}, the config "
            f"asks for backbone {want[0]!r} and decode head {want[1]!r} (model.backbone.type, model.decode_head.type)")
    if got[2] != want[2]:
        raise CheckpointError(f"checkpoint {path} holds {'an HRDA' if got[2] else 'a single-scale'} segmentor, the "
                              f"config asks for {'an HRDA' if want[2] else 'a single-scale'} one (model.type)")


def load_weights(model: nn.Module, state: Mapping[str, Any], *, path: str | os.PathLike) -> None:
    """Strict load of a checkpoint's state dict; the error lists missing, unexpected and mis-shaped keys."""
    from pipa_video.models.checkpoint import load_state_dict_strict

    load_state_dict_strict(model, state, source=f"checkpoint {path}", target="the model built from the config")


# --- a checkpoint's segmentor, for inference ------------------------------------------------------
ModelBuilder = Callable[[Mapping, int], nn.Module]  # (cfg, num_classes) -> segmentor


def build_for_checkpoint(cfg: Mapping, num_classes: int) -> nn.Module:
    """The config's segmentor without ImageNet weights: the checkpoint overwrites every weight."""
    from pipa_video.models import build_segmentor

    return build_segmentor(cfg["model"], num_classes=num_classes, load_pretrained=False)


@dataclass
class Restored:
    """A checkpoint's segmentor (weights loaded, still on the CPU) and where it came from."""

    model: nn.Module
    path: str
    meta: dict


def load_segmentor(cfg: Mapping, path: str | os.PathLike, *, builder: ModelBuilder | None = None) -> Restored:
    """Read ``path``, check it against ``cfg`` and load its ``model`` entry into the config's segmentor.

    What ``eval``, ``tc-report``, ``predict`` and ``predict --format`` run. Raises ``CheckpointError``.
    """
    from pipa_video.data.classes import get_class_set

    checkpoint = load_checkpoint(path, require=INFERENCE_KEYS)
    check_compatible(checkpoint, cfg, path=path)
    model = (builder or build_for_checkpoint)(cfg, get_class_set(cfg["class_set"]).num_classes)
    load_weights(model, checkpoint[MODEL_KEY], path=path)
    return Restored(model=model, path=str(path), meta=dict(checkpoint[Key.META.value]))


# --- a work dir's files ----------------------------------------------------------------------------
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
        link_or_copy(path, self.latest_path)
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

    def resume_path(self, resume: bool | str | os.PathLike) -> Path:
        """``latest.pth`` for ``resume=True``, else the given path; a missing ``latest.pth`` is named."""
        path = self.latest_path if resume is True else Path(resume)
        if resume is True and not path.exists():
            raise CheckpointError(f"{path}: not found, so there is nothing to resume in {self.work_dir}; expected "
                                  "a checkpoint: pass its path to --resume, or start afresh (--overwrite if the dir "
                                  "holds a run's logs)")
        return path

    def _rotate(self, *, up_to: int) -> None:
        # Files past ``up_to`` belong to an abandoned timeline (a resume from an older checkpoint);
        # they are left alone here and overwritten when training reaches them again.
        current = [it for it in self.iteration_files() if it <= up_to]
        for it in current[: max(0, len(current) - self.keep)]:
            self.iter_path(it).unlink(missing_ok=True)
