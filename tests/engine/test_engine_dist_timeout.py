"""runtime.dist_timeout_s reaches the process group: a stalled rank fails the others after that long,
not after gloo's default 30 minutes."""
import json
import socket

import torch.multiprocessing as mp
from dist_timeout_worker import worker


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_stalled_rank_fails_the_collective_after_the_configured_timeout(tmp_path):
    timeout_s, stall_s = 2.0, 12.0
    mp.start_processes(worker, args=(2, _free_port(), str(tmp_path), timeout_s, stall_s), nprocs=2, join=True,
                       start_method="spawn")
    result = json.loads((tmp_path / "rank0.json").read_text())
    assert result["error"] is not None, result
    assert timeout_s * 0.5 <= result["waited_s"] < stall_s * 0.8, result  # the timeout ended it, not rank 1
