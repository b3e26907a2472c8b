"""``pipa-video adapt``: adapt a trained checkpoint to your own footage, in one command.

    pipa-video adapt --checkpoint CKPT --footage PATH [--iters N] [--work-dir DIR] [--cfg-options k=v ...]

PATH is anything ``data_tools/prepare_video.py`` accepts (prepared here into ``WORK_DIR/footage_index``)
or an index it wrote. Everything else comes from the checkpoint's saved config: the class set, the
model, the source index (``data.source.index``; it must still exist) and the method settings. The
footage becomes ``data.target`` (every frame a key frame, clips clamped at sequence ends so photos
work), there is no validation split (the last iteration is kept, and says so), and the run starts
from the checkpoint's weights (``load_from``). A source-only checkpoint is adapted by self-training
(DAFormer); a self-training or PiPa++ one keeps its method.

For a schedule shorter than the checkpoint's, the warm-up keeps its share of the run and the
teacher's EMA rate is capped to keep the paper's horizon (``uda.teacher.ema_horizon_warning``,
docs/design.md): 0.999 over 40k iterations, 0.9 over 400, 0.5 over 10.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

from pipa_video.config import ConfigError, merge_overrides, validate
from pipa_video.data.index import INDEX_FILE

SOURCE_ONLY, SELF_TRAINING = "source_only", "self_training"


def footage_index(footage: str | os.PathLike, work_dir: Path, *, reuse: bool = False) -> Path:
    """``footage`` itself when it is an index directory, else the index prepared from it in ``work_dir``
    (``reuse``: the one a previous run prepared there, when it exists: a resumed run trains on the same frames)."""
    from pipa_video.data.footage import prepare_footage

    footage, prepared = Path(footage), work_dir / "footage_index"
    if footage.is_dir() and (footage / INDEX_FILE).is_file():
        return footage
    if reuse and (prepared / INDEX_FILE).is_file():
        return prepared
    return prepare_footage(footage, prepared)


def scaled_schedule(saved: Mapping[str, Any], iters: int) -> dict[str, int]:
    """``iters`` with the saved warm-up's share of the saved run (at most ``iters``)."""
    share = saved["warmup_iters"] / max(1, saved["iters"])
    return dict(iters=iters, warmup_iters=min(iters, round(share * iters)))


def ema_alpha_for(saved_alpha: float, iters: int) -> float:
    """The saved rate, or the paper's horizon (2.5% of the run) where the saved one averages longer."""
    from pipa_video.uda.teacher import PAPER_HORIZON_SHARE

    return min(saved_alpha, 1.0 - 1.0 / max(2.0, PAPER_HORIZON_SHARE * iters))


def adapt_config(saved: Mapping[str, Any], *, checkpoint: str | os.PathLike, index_dir: str | os.PathLike,
                 iters: int | None = None, overrides: Mapping[str, Any] | None = None):
    """The adaptation config built from a checkpoint's saved config (see the module docstring)."""
    from mmengine.config import Config

    cfg = copy.deepcopy({k: v for k, v in dict(saved).items() if not str(k).startswith("_")})
    iters = int(iters or cfg["schedule"]["iters"])
    if iters < 1:
        raise ConfigError(f"--iters: must be >= 1, got {iters}")
    cfg["load_from"] = str(checkpoint)
    data = cfg["data"]
    data["target"].update(index=str(index_dir), root=None, keys="all", boundary="clamp")
    data["val"].update(index=None, root=None)
    data["test"].update(index=None, root=None)
    if cfg["uda"]["method"] == SOURCE_ONLY:
        cfg["uda"]["method"] = SELF_TRAINING
    cfg["uda"]["ema_alpha"] = ema_alpha_for(cfg["uda"]["ema_alpha"], iters)
    cfg["schedule"].update(scaled_schedule(cfg["schedule"], iters))
    runtime = cfg["runtime"]
    runtime.update(log_interval=min(runtime["log_interval"], max(1, iters // 10)),
                   checkpoint_interval=min(runtime["checkpoint_interval"], iters))
    return validate(merge_overrides(Config(cfg), overrides).to_dict())


def method_name(uda: Mapping[str, Any], model: Mapping[str, Any] | None = None) -> str:
    """The method a ``uda`` (and ``model``) section trains, in words (PiPa++ is self-training plus contrast
    terms; HRDA is the segmentor, MIC a term)."""
    terms = [name for name in ("pixel", "patch", "temporal") if uda[f"{name}_contrast"]["weight"] > 0]
    name = "self-training (DAFormer)"
    if model is not None and model.get("type") == "hrda":
        name += " on HRDA"
    if uda["mic"]["weight"] > 0:
        name += " + MIC"
    return name + (f" + {', '.join(terms)} contrast (PiPa++)" if terms else "")


def check_source_index(cfg: Mapping[str, Any], *, checkpoint: str | os.PathLike) -> None:
    """Every labelled source of the saved config (``data.source``, or each ``data.sources`` entry) must be
    an index directory on this machine; ``ConfigError`` names the key to override."""
    from pipa_video.data.multisource import source_sections

    for key, section in source_sections(cfg["data"]):
        index = section["index"]
        if not index or not Path(index).is_dir():
            raise ConfigError(f"{key}.index = {index!r} (from the config saved in {checkpoint}) is not an index "
                              f"directory here: prepare the source dataset again or pass "
                              f"--cfg-options {key.replace('[', '.').replace(']', '')}.index=DIR")


def adapt(*, checkpoint: str | os.PathLike, footage: str | os.PathLike, work_dir: str | os.PathLike,
          iters: int | None = None, overrides: Mapping[str, Any] | None = None, resume: bool | str = False,
          overwrite: bool = False) -> dict[str, Any]:
    """Prepare the footage (unless it is an index), build the config, train; returns the trainer's summary
    with ``config`` and ``index``. ``resume`` / ``overwrite`` as ``train``'s (a resumed run reuses the
    footage index prepared in ``work_dir``). Errors: ``ConfigError``, ``DatasetError``, ``CheckpointError``,
    ``WorkDirError`` (a used ``work_dir`` without ``resume`` or ``overwrite``)."""
    from pipa_video.engine.build import train
    from pipa_video.engine.logger import get_logger, setup_console_logging
    from pipa_video.engine.checkpoint import INFERENCE_KEYS, load_checkpoint
    from pipa_video.engine.workdir import check_reusable

    work_dir = Path(work_dir)
    ckpt = load_checkpoint(checkpoint, require=INFERENCE_KEYS)
    check_reusable(work_dir, resume=bool(resume), overwrite=overwrite)  # before preparing anything in it
    index_dir = footage_index(footage, work_dir, reuse=bool(resume))
    cfg = adapt_config(ckpt["config"], checkpoint=checkpoint, index_dir=index_dir, iters=iters, overrides=overrides)
    check_source_index(cfg, checkpoint=checkpoint)
    setup_console_logging(is_main=True)
    get_logger().info(
        f"adapt: {cfg['class_set']} model from {checkpoint} to {index_dir} by {method_name(cfg['uda'], cfg['model'])} for "
        f"{cfg['schedule']['iters']} iterations (warm-up {cfg['schedule']['warmup_iters']}, EMA "
        f"{cfg['uda']['ema_alpha']:.3g}); source {_source_indexes(cfg)}; no validation split: "
        f"the last iteration is kept")
    summary = train(cfg, work_dir=work_dir, resume=resume, overwrite=overwrite)
    return dict(summary, config=str(work_dir / "config.py"), index=str(index_dir))


def _source_indexes(cfg: Mapping[str, Any]) -> str:
    from pipa_video.data.multisource import source_sections

    return ", ".join(str(section["index"]) for _, section in source_sections(cfg["data"]))
