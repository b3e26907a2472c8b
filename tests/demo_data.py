"""The synthetic benchmark at the smallest size the demo pipeline runs on (one sequence per split)."""
from pipa_video.synthetic import SyntheticSpec


def tiny_spec(*, width: int = 64, height: int = 32) -> SyntheticSpec:
    """One source sequence of 6 frames and one target snippet per split, at ``width`` x ``height``."""
    return SyntheticSpec(width=width, height=height, source_train_sequences=1, source_val_sequences=1,
                         source_frames=6, target_train_snippets=1, target_val_snippets=1, target_test_snippets=1)


TINY = tiny_spec()
# HRDA's context image is half the frame: MiT needs at least 32 px per side, so frames of 128x64.
TINY_HRDA = tiny_spec(width=128, height=64)
