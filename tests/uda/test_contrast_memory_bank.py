"""ClassMemoryBank: FIFO per class against a deque reference, ignore labels, identical banks across ranks."""
import threading
from collections import deque

import pytest
import torch

from pipa_video.engine.dist import all_gather_cat
from pipa_video.uda.contrast.memory_bank import ClassMemoryBank

C, M, D = 4, 5, 3


def _random_push(g, n):
    features = torch.randn(n, D, generator=g)
    labels = torch.randint(0, C + 1, (n,), generator=g)
    labels[labels == C] = 255  # some ignored entries
    valid = torch.rand(n, generator=g) < 0.8
    return features, labels, valid


def test_holds_newest_entries_per_class_like_a_deque():
    g = torch.Generator().manual_seed(0)
    bank = ClassMemoryBank(num_classes=C, size=M, dim=D)
    reference = {c: deque(maxlen=M) for c in range(C)}
    arrived = torch.zeros(C, dtype=torch.long)
    overflowed = False
    for n in [0, 3, 1, 12, 7, 30, 2, 17, 9]:
        features, labels, valid = _random_push(g, n)
        if n == 17:  # more than M entries of one class in a single push: only the newest M stay
            labels[:] = 2
        overflowed |= any(int(((labels == c) & valid).sum()) > M for c in range(C))
        bank.push(features=features, labels=labels, valid=valid)
        for f, lab, ok in zip(features, labels.tolist(), valid.tolist()):
            if ok and lab != 255:
                reference[lab].append(f)
                arrived[lab] += 1
        for c in range(C):
            want = torch.stack(list(reference[c])) if reference[c] else torch.zeros(0, D)
            torch.testing.assert_close(bank.class_entries(c), want)
        assert torch.equal(bank.count, arrived.clamp_max(M))
        assert torch.equal(bank.ptr, arrived % M)  # advanced by every entry written, modulo M
    assert (arrived > M).all() and overflowed, "the test must wrap around every class and overflow one push"


def test_entries_marks_exactly_the_filled_slots():
    bank = ClassMemoryBank(num_classes=C, size=M, dim=D)
    bank.push(features=torch.ones(3, D), labels=torch.tensor([1, 1, 3]), valid=torch.ones(3, dtype=torch.bool))
    features, labels, valid = bank.entries()
    assert features.shape == (C * M, D) and labels.shape == valid.shape == (C * M,)
    assert torch.equal(labels, torch.arange(C).repeat_interleave(M))
    expected = torch.zeros(C, M, dtype=torch.bool)
    expected[1, :2] = True
    expected[3, :1] = True
    assert torch.equal(valid, expected.reshape(-1))
    assert (features[valid] == 1).all() and (features[~valid] == 0).all()


def test_ignored_and_invalid_entries_are_never_written():
    bank = ClassMemoryBank(num_classes=C, size=M, dim=D)
    labels = torch.tensor([255, 255, 2, -1, 7, 0])
    valid = torch.tensor([True, False, False, True, True, True])
    bank.push(features=torch.full((6, D), 9.0), labels=labels, valid=valid)
    assert torch.equal(bank.count, torch.tensor([1, 0, 0, 0]))  # only the valid class-0 entry
    assert (bank.features[1:] == 0).all() and (bank.features[0, 1:] == 0).all()


def test_state_is_in_buffers_and_round_trips():
    bank = ClassMemoryBank(num_classes=C, size=M, dim=D)
    bank.push(features=torch.randn(8, D), labels=torch.arange(8) % C, valid=torch.ones(8, dtype=torch.bool))
    state = bank.state_dict()
    assert set(state) == {"features", "ptr", "count"}
    restored = ClassMemoryBank(num_classes=C, size=M, dim=D)
    restored.load_state_dict(state)
    for c in range(C):
        torch.testing.assert_close(restored.class_entries(c), bank.class_entries(c))


def test_push_does_not_break_a_graph_that_read_the_bank():
    """The loss reads entries(), then pushes, then backpropagates: no in-place version error."""
    bank = ClassMemoryBank(num_classes=C, size=M, dim=D)
    bank.push(features=torch.randn(4, D), labels=torch.arange(4), valid=torch.ones(4, dtype=torch.bool))
    anchor = torch.randn(1, D, requires_grad=True)
    keys, _, _ = bank.entries()
    out = (anchor @ keys.t()).sum()
    bank.push(features=torch.randn(4, D), labels=torch.arange(4), valid=torch.ones(4, dtype=torch.bool))
    out.backward()
    assert anchor.grad is not None


def test_push_rejects_wrong_shapes():
    bank = ClassMemoryBank(num_classes=C, size=M, dim=D)
    with pytest.raises(ValueError, match="features must be"):
        bank.push(features=torch.randn(2, D + 1), labels=torch.zeros(2, dtype=torch.long),
                  valid=torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="labels must be"):
        bank.push(features=torch.randn(2, D), labels=torch.zeros(3, dtype=torch.long),
                  valid=torch.ones(2, dtype=torch.bool))


class _ThreadAllGather:
    """all_gather across threads standing in for ranks: concatenates every rank's tensor in rank order."""

    def __init__(self, world_size):
        self.slots = [None] * world_size
        self.barrier = threading.Barrier(world_size)

    def for_rank(self, rank):
        def gather(tensor):
            self.slots[rank] = tensor
            self.barrier.wait()
            out = torch.cat(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before everyone has read it
            return out
        return gather


def test_two_ranks_keep_identical_banks():
    world = _ThreadAllGather(2)
    banks = [ClassMemoryBank(num_classes=C, size=M, dim=D, gather=world.for_rank(r)) for r in range(2)]
    pushes = [[_random_push(torch.Generator().manual_seed(10 * r + i), 6) for i in range(5)] for r in range(2)]

    def run(rank):
        for features, labels, valid in pushes[rank]:
            banks[rank].push(features=features, labels=labels, valid=valid)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for name in ("features", "ptr", "count"):
        assert torch.equal(getattr(banks[0], name), getattr(banks[1], name)), name
    # And both hold what a single bank fed the concatenated pushes (rank 0 first) holds.
    single = ClassMemoryBank(num_classes=C, size=M, dim=D)
    for (f0, l0, v0), (f1, l1, v1) in zip(*pushes):
        single.push(features=torch.cat([f0, f1]), labels=torch.cat([l0, l1]), valid=torch.cat([v0, v1]))
    assert torch.equal(banks[0].features, single.features) and (banks[0].count > 0).all()


def test_the_engines_gather_is_identity_without_a_process_group():
    t = torch.randn(3, 2)
    assert all_gather_cat(t) is t


def _gloo_worker(rank, world_size, init_file, out_dir):
    import torch.distributed as dist
    torch.set_num_threads(1)  # forked child: keep OpenMP out of the way
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        bank = ClassMemoryBank(num_classes=C, size=M, dim=D, gather=all_gather_cat)
        for i in range(4):
            features, labels, valid = _random_push(torch.Generator().manual_seed(10 * rank + i), 6)
            bank.push(features=features, labels=labels, valid=valid)
        torch.save(bank.state_dict(), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_the_engines_gather_keeps_real_ranks_identical(tmp_path):
    """Two gloo processes: the real gather makes both banks hold the same entries."""
    import torch.multiprocessing as mp
    # fork, not spawn: the children inherit the imported modules instead of importing torch again.
    mp.start_processes(_gloo_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    states = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name in ("features", "ptr", "count"):
        assert torch.equal(states[0][name], states[1][name]), name
    assert states[0]["count"].sum() > 0
