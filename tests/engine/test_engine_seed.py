import io
import random

import numpy as np
import torch

from pipa_video.engine.seed import capture_rng_state, restore_rng_state, rng_preserved, seed_everything


def _draw():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist(), float(np.random.randn())


def test_restore_replays_every_generator():
    seed_everything(7)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = capture_rng_state()
    first = _draw()
    restore_rng_state(state)
    assert _draw() == first


def test_state_survives_a_weights_only_round_trip():
    seed_everything(1)
    buffer = io.BytesIO()
    torch.save(capture_rng_state(), buffer)
    first = _draw()
    buffer.seek(0)
    restore_rng_state(torch.load(buffer, weights_only=True))
    assert _draw() == first


def test_seed_is_offset_by_rank():
    assert seed_everything(5, rank=1) == 6
    rank1 = _draw()
    seed_everything(6)
    assert _draw() == rank1
    seed_everything(5)
    assert _draw() != rank1


def test_rng_preserved_hides_draws_inside_the_block():
    seed_everything(3)
    expected = _draw()
    seed_everything(3)
    with rng_preserved():
        _draw()
        _draw()
    assert _draw() == expected
