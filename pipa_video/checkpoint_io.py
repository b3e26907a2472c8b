"""The package's one ``torch.load`` and one ``torch.save``: checkpoint files as dicts, safely.

This is the byte layer of every checkpoint the package reads or writes: pipa-video training
checkpoints (their format, compatibility checks and work-dir files are ``engine.checkpoint``'s,
which re-exports these), ImageNet backbone weights (``models.checkpoint`` remaps their keys) and
converted backbones (``data_tools/convert_mit_checkpoint.py``). It sits beside ``errors`` and
``atomic`` at the bottom of the package, so every layer may import it without pointing upwards.

Reading is ``weights_only=True`` (tensors and plain Python values only) unless the caller is inside
``pickle_loading(True)`` (the CLI's ``--allow-pickle``): unpickling arbitrary objects can run code
from the file. Writing goes through ``atomic.atomic_path`` (temp file, fsync, rename).
"""
from __future__ import annotations

import contextlib
import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from pipa_video.atomic import atomic_path
from pipa_video.errors import CheckpointError

__all__ = ["CheckpointError", "pickle_loading", "read_checkpoint", "save_checkpoint"]

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6
_PICKLE_MAGIC = b"\x80"  # the legacy format: a pickle (protocol >= 2)
_ALLOW_PICKLE: ContextVar[bool] = ContextVar("pipa_video_allow_pickle", default=False)


@contextlib.contextmanager
def pickle_loading(allowed: bool) -> Iterator[None]:
    """Inside, ``read_checkpoint`` unpickles arbitrary objects when ``allowed`` (the CLI's ``--allow-pickle``)."""
    token = _ALLOW_PICKLE.set(allowed)
    try:
        yield
    finally:
        _ALLOW_PICKLE.reset(token)


def read_checkpoint(path: str | os.PathLike, *, allow_pickle: bool | None = None,
                    map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """A checkpoint file as a dict (the package's one ``torch.load``).

    ``weights_only=True`` unless ``allow_pickle`` (default: inside ``pickle_loading(True)``).
    ``mmap=True`` maps tensors lazily (cheap when only ``meta`` is wanted). Raises
    ``CheckpointError`` naming the file for a missing, foreign, corrupt or truncated file, for one
    that is not a dict, and for one that needs unpickling when that is not allowed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint " + ("is a directory, expected a file" if path.is_dir()
                                                        else "not found"))
    trusted = _ALLOW_PICKLE.get() if allow_pickle is None else allow_pickle
    try:
        obj = torch.load(path, map_location=map_location, weights_only=not trusted, mmap=mmap)
    except Exception as err:  # noqa: BLE001  (torch raises many types for a foreign or damaged file)
        raise CheckpointError(_unreadable(path, err)) from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, expected a dict")
    return dict(obj)


def _unreadable(path: Path, err: Exception) -> str:
    """Why ``torch.load`` failed on ``path``, as one line."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return f"{path}: not a torch checkpoint (expected a file written by torch.save; it starts with {head!r})"
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"{path}: holds Python objects other than tensors and plain values ({found.group(1)}); expected "
                "a weights-only checkpoint (unpickling can run code from the file: pass --allow-pickle only "
                "if you trust it)")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = next((line for line in lines if "error" in line.lower() and "Weights only" not in line),
                  lines[0] if lines else type(err).__name__)
    reason = reason.split(". ")[0].rstrip(".")  # torch's first sentence names the fault; the rest is advice
    if len(reason) > 200:
        reason = reason[:199] + "…"
    return f"{path}: corrupt or truncated checkpoint ({type(err).__name__}: {reason}); expected a whole file " \
           "written by torch.save (copy it again or pick another checkpoint)"


def save_checkpoint(obj: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` a dict to ``path`` whole: temp file beside it, fsync, rename (the package's one
    ``torch.save``). A failed write (disk full, read-only, permission) raises ``WriteError`` naming
    ``path`` and leaves the previous file and no temp file."""
    path = Path(path)
    with atomic_path(path, keep_suffix=False, durable=True) as tmp:
        with open(tmp, "wb") as f:
            torch.save(dict(obj), f)
    return path
