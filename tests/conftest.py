import os

import numpy as np
import pytest
import torch

# Two cores on CI: keep torch from oversubscribing them when pytest runs tests.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
