"""Worker of test_engine_dist_timeout.py (a module, so forkserver can import it)."""
import json
import os
import time


def worker(rank: int, world_size: int, port: int, out_dir: str, timeout_s: float, stall_s: float) -> None:
    from pipa_video.engine import dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    dist.init_distributed("cpu", timeout_s=timeout_s)
    if rank == 1:
        time.sleep(stall_s)  # a stalled rank: never reaches the collective in time
        return
    started, error = time.monotonic(), None
    try:
        dist.barrier()
    except Exception as err:  # noqa: BLE001  (gloo raises RuntimeError or DistBackendError)
        error = f"{type(err).__name__}: {err}"[:300]
    with open(os.path.join(out_dir, "rank0.json"), "w") as f:
        json.dump({"waited_s": time.monotonic() - started, "error": error}, f)
