"""The training engine: the loop and its hooks, checkpoints, optimiser, schedule, precision, DDP, logging."""
from pipa_video.engine.checkpoint import (CheckpointError, CheckpointManager, Selection, check_compatible,
                                          load_checkpoint, load_segmentor, save_checkpoint)
from pipa_video.engine.dist import DistInfo, init_distributed
from pipa_video.engine.optim import ParamGroup, build_optimizer, norm_parameters
from pipa_video.engine.schedule import lr_schedule
from pipa_video.engine.seed import capture_rng_state, restore_rng_state, rng_preserved, seed_everything
from pipa_video.engine.trainer import HookBase, NonFiniteLossError, Trainer, TrainMethod

__all__ = [
    "CheckpointError", "CheckpointManager", "DistInfo", "HookBase", "NonFiniteLossError", "ParamGroup", "Selection",
    "TrainMethod", "Trainer", "build_optimizer", "capture_rng_state", "check_compatible", "init_distributed",
    "load_checkpoint", "load_segmentor", "lr_schedule", "norm_parameters", "restore_rng_state", "rng_preserved",
    "save_checkpoint", "seed_everything",
]
