"""Worker of test_engine_ddp_bare_forward.py (a module, so forkserver can import it)."""
import os

import torch
import torch.distributed as dist
from torch import nn


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Linear(3, 4)
        self.head_a = nn.Linear(4, 1)
        self.head_b = nn.Linear(4, 1)

    def forward(self, x, *, with_b: bool):
        h = self.trunk(x)
        return self.head_a(h), (self.head_b(h) if with_b else None)


def loss_of(model_call, view, crop):
    a, b = model_call(view, with_b=True)          # the one wrapped forward: reaches every parameter
    a2, _ = model_call.bare(crop, with_b=False)   # a second forward, through the bare module
    return (a ** 2).sum() + b.sum() + (a2 ** 3).sum()


def worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    model = TwoHeads()
    ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    g = torch.Generator().manual_seed(100 + rank)
    view, crop = torch.randn(5, 3, generator=g), torch.randn(2, 3, generator=g)
    ddp.bare = model
    loss_of(ddp, view, crop).backward()
    torch.save({"grads": [p.grad.clone() for p in model.parameters()], "view": view, "crop": crop},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()
