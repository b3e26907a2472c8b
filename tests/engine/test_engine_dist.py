import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from engine_toys import ToyMethod, dist_worker, first_step_gradients, single_process_reference

from pipa_video.engine import dist as dist_utils

WORLD_SIZE, ITERS = 2, 3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_single_process_helpers_are_identities(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = dist_utils.init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_distributed, info.is_main) == (0, 1, False, True)
    assert info.device == torch.device("cpu")
    t = torch.arange(3.0)
    assert dist_utils.all_reduce_sum(t) is t and dist_utils.all_gather_cat(t) is t
    assert dist_utils.all_gather_objects("x") == ["x"] and dist_utils.is_main_process()
    dist_utils.barrier()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        dist_utils.init_distributed("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_request_without_cuda_is_explained():
    with pytest.raises(RuntimeError, match="runtime.device='cuda'"):
        dist_utils.init_distributed("cuda")


def test_two_gloo_processes_average_gradients_and_stay_identical(tmp_path):
    # forkserver: one fresh server imports torch once and forks both ranks (quicker than two spawns, and
    # unlike a plain fork it never copies this process's OpenMP thread pool)
    # (torch._dynamo is what AdamW imports on first use: seconds per process if not preloaded)
    mp.get_context("forkserver").set_forkserver_preload(
        ["torch", "torch._dynamo", "engine_toys", "pipa_video.engine.trainer"])
    mp.start_processes(dist_worker, args=(WORLD_SIZE, _free_port(), str(tmp_path), ITERS), nprocs=WORLD_SIZE,
                       join=True, start_method="forkserver")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]

    for rank, out in enumerate(ranks):
        res = out["results"]
        assert (res["rank"], res["world_size"], res["main"]) == (rank, WORLD_SIZE, rank == 0)
        assert res["summed"].tolist() == [3.0, 10.0]  # (1 + 2, 0 + 10)
        # rank 0 sent one row of 0s, rank 1 two rows of 1s: variable sizes, rank order
        assert res["gathered"].tolist() == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
        assert torch.equal(res["local_grad"], torch.ones(rank + 1, 2))  # gradient reaches this rank's block
        assert res["objects"] == [{"rank": 0}, {"rank": 1}]
        assert out["ddp_wrapped"] == "DistributedDataParallel"

    # DDP averages (not sums) the ranks' gradients: equal to the gradient on both batches at once.
    # (Checked on the gradients themselves: Adam's update is nearly blind to a factor of 2.)
    reference_grads = first_step_gradients(ToyMethod(init_seed=0, dropout=0.0, noise=0.0, jitter=0.0), ranks=(0, 1))
    for rank, out in enumerate(ranks):
        for name, grad in reference_grads.items():
            torch.testing.assert_close(out["results"]["grads"][name], grad, rtol=1e-5, atol=1e-7,
                                       msg=f"rank {rank} {name}")
    # both replicas end bit-identical ...
    for key, value in ranks[0]["model"].items():
        assert torch.equal(value, ranks[1]["model"][key]), key
    # ... and equal one process trained on both ranks' batches at once: gradients were averaged
    reference = single_process_reference(ITERS, (0, 1), str(tmp_path / "single"))
    for key, value in reference.items():
        torch.testing.assert_close(ranks[0]["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    # only rank 0 wrote the run directory's files
    assert os.path.isfile(tmp_path / "run" / "latest.pth") and os.path.isfile(tmp_path / "run" / "train_log.csv")
