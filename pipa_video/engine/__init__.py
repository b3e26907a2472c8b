"""The training engine: optimiser, schedule, precision, DDP, checkpoints, logging, periodic evaluation."""
from pipa_video.engine.checkpoint import CheckpointError, CheckpointManager, Selection, load_checkpoint, save_checkpoint
from pipa_video.engine.dist import DistInfo, init_distributed
from pipa_video.engine.optim import ParamGroup, build_optimizer, norm_parameters
from pipa_video.engine.schedule import lr_schedule
from pipa_video.engine.seed import capture_rng_state, restore_rng_state, rng_preserved, seed_everything
from pipa_video.engine.trainer import NonFiniteLossError, Trainer, TrainMethod, build_trainer

__all__ = [
    "CheckpointError", "CheckpointManager", "DistInfo", "NonFiniteLossError", "ParamGroup", "Selection",
    "TrainMethod", "Trainer", "build_optimizer", "build_trainer", "capture_rng_state", "init_distributed",
    "load_checkpoint", "lr_schedule", "norm_parameters", "restore_rng_state", "rng_preserved",
    "save_checkpoint", "seed_everything",
]
