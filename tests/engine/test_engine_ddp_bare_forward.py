"""The step's DDP rule: one forward through the wrapper per backward, further forwards (the patch crop,
the student reference frame) through the bare module. Their gradients must still be averaged across
ranks, because autograd sums every use of a parameter before DDP's gradient hook fires."""
import socket

import torch
import torch.multiprocessing as mp
from ddp_bare_forward_worker import TwoHeads, loss_of, worker

WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Plain:
    """Calls the module directly for both forwards: the single-process reference."""

    def __init__(self, model):
        self.model = self.bare = model

    def __call__(self, x, **kw):
        return self.model(x, **kw)


def test_bare_forward_gradients_are_averaged_across_ranks(tmp_path):
    mp.get_context("forkserver").set_forkserver_preload(["torch", "ddp_bare_forward_worker"])
    mp.start_processes(worker, args=(WORLD_SIZE, _free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True,
                       start_method="forkserver")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    local = []
    for out in ranks:  # each rank's own full gradient, view and crop, without DDP
        model = TwoHeads()
        loss_of(_Plain(model), out["view"], out["crop"]).backward()
        local.append([p.grad for p in model.parameters()])
    expected = [(g0 + g1) / 2 for g0, g1 in zip(*local)]
    for out in ranks:
        for got, want in zip(out["grads"], expected):
            torch.testing.assert_close(got, want)
    # Not vacuous: the ranks' own gradients differ, so an unaveraged crop gradient would show.
    assert not torch.allclose(local[0][0], local[1][0])
