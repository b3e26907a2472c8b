import os

import numpy as np
import pytest
import torch

# Two cores on CI: keep torch from oversubscribing them when pytest runs tests. An explicit
# OMP_NUM_THREADS (several test runs sharing the cores) wins.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
