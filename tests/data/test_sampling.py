import itertools

import numpy as np
import pandas as pd
import pytest

from pipa_video.data.index import DatasetError
from pipa_video.data.sampling import (IterationSampler, RareClassSampler, class_frequencies,
                                      rcs_class_probabilities)


def one_class_per_frame(frames_per_class: list[int], pixels: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) counts where frame i holds only class owner[i]."""
    owner = np.repeat(np.arange(len(frames_per_class)), frames_per_class)
    counts = np.zeros((len(owner), len(frames_per_class)), np.int64)
    counts[np.arange(len(owner)), owner] = pixels
    return counts, owner


def test_probabilities_follow_the_formula():
    counts = np.array([[600, 300, 100], [0, 0, 0]])
    freq = class_frequencies(counts)
    np.testing.assert_allclose(freq, [0.6, 0.3, 0.1])
    p = rcs_class_probabilities(freq, temperature=0.5)
    expected = np.exp((1 - freq) / 0.5)
    np.testing.assert_allclose(p, expected / expected.sum())
    # T = 0.01 makes exp((1 - f) / T) overflow-prone; the shift keeps it finite and normalised
    p = rcs_class_probabilities(np.array([0.0001, 0.9999]), temperature=1e-4)
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1) and p[0] > 0.999


def test_empirical_class_distribution_matches_p():
    counts, owner = one_class_per_frame([12, 6, 2])  # frequencies 0.6, 0.3, 0.1
    sampler = RareClassSampler(pixel_counts=counts, temperature=0.5, min_pixels=3000)
    rng = np.random.default_rng(0)
    drawn = owner[[sampler.sample(rng) for _ in range(20000)]]
    empirical = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(empirical, sampler.probabilities, atol=0.015)
    assert sampler.probabilities[2] > sampler.probabilities[1] > sampler.probabilities[0]


def test_rare_class_is_oversampled_at_t_001():
    counts, owner = one_class_per_frame([18, 1], pixels=10000)
    counts[:, 0] += 50  # the rare frame's few class-0 pixels don't make it a class-0 candidate
    sampler = RareClassSampler(pixel_counts=counts, temperature=0.01, min_pixels=3000)
    rng = np.random.default_rng(1)
    drawn = [sampler.sample(rng) for _ in range(2000)]
    assert np.mean(owner[drawn] == 1) > 0.99  # 1 frame of 19 under uniform sampling
    assert set(drawn) <= set(range(19))


def test_frames_below_min_pixels_are_not_candidates():
    counts = np.array([[5000, 2000], [5000, 0], [100, 2999]])
    sampler = RareClassSampler(pixel_counts=counts, temperature=0.01, min_pixels=3000)
    assert sampler.probabilities[1] == 0  # class 1 never reaches 3000 pixels in one frame
    rng = np.random.default_rng(0)
    assert {sampler.sample(rng) for _ in range(200)} == {0, 1}
    with pytest.raises(DatasetError, match="min_pixels"):
        RareClassSampler(pixel_counts=counts, temperature=0.01, min_pixels=10**6)


def test_draw_returns_a_frame_that_holds_more_than_min_pixels_of_the_drawn_class():
    counts = np.array([[3000, 0], [3001, 0], [0, 5000]])  # DAFormer: candidates need pixels > min_pixels
    sampler = RareClassSampler(pixel_counts=counts, temperature=0.5, min_pixels=3000)
    rng = np.random.default_rng(0)
    draws = [sampler.draw(rng) for _ in range(300)]
    assert {frame for frame, cls in draws if cls == 0} == {1}
    assert all(counts[frame, cls] > 3000 for frame, cls in draws)
    assert {cls for _, cls in draws} == {0, 1}


def test_from_frames_reads_px_columns():
    frames = pd.DataFrame({"sequence": ["a", "b"], "px_road": [9000, 0], "px_car": [0, 4000]})
    sampler = RareClassSampler.from_frames(frames, columns=["px_road", "px_car"], temperature=0.01,
                                           min_pixels=3000)
    assert sampler.class_names == ["road", "car"]
    np.testing.assert_allclose(sampler.frequencies, [9 / 13, 4 / 13])


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


@pytest.mark.parametrize("use_rcs", [False, True])
def test_resume_sees_exactly_the_same_batches(use_rcs):
    rcs = RareClassSampler(pixel_counts=one_class_per_frame([5, 3, 2])[0], temperature=0.5) if use_rcs else None
    kw = dict(num_keys=10, batch_size=3, seed=7, rcs=rcs)
    full = take(IterationSampler(**kw), 12)
    assert take(IterationSampler(start_iter=5, **kw), 7) == full[5:]
    assert take(IterationSampler(**kw), 12) == full  # a fresh instance: same stream
    assert all(len(b) == 3 and all(0 <= e[0] < 10 and isinstance(e[1], int) for e in b) for b in full)
    assert len({e[1] for b in full for e in b}) == 36  # every sample gets its own augmentation seed
    # rare-class sampling passes the drawn class on (the dataset re-draws the crop until it holds it)
    assert all(len(e) == (3 if use_rcs else 2) for b in full for e in b)


def test_uniform_epochs_cover_every_key_once_across_ranks():
    kw = dict(num_keys=12, batch_size=2, seed=3, world_size=3)
    ranks = [take(IterationSampler(rank=r, **kw), 4) for r in range(3)]
    # iterations 0-1 of all ranks form epoch 0, iterations 2-3 epoch 1
    for iterations in (slice(0, 2), slice(2, 4)):
        keys = sorted(k for r in ranks for b in r[iterations] for k, _ in b)
        assert keys == list(range(12))
    assert ranks[0] != ranks[1]
    seeds = [{s for b in r for _, s in b} for r in ranks]
    assert not (seeds[0] & seeds[1]) and not (seeds[1] & seeds[2])
    assert take(IterationSampler(rank=1, start_iter=3, **kw), 1) == ranks[1][3:4]


def test_ranks_and_streams_differ_with_rcs():
    rcs = RareClassSampler(pixel_counts=one_class_per_frame([20, 20, 20])[0], temperature=1.0)
    kw = dict(num_keys=60, batch_size=4, seed=0, world_size=2, rcs=rcs)
    rank0, rank1 = take(IterationSampler(rank=0, **kw), 5), take(IterationSampler(rank=1, **kw), 5)
    assert [e[0] for b in rank0 for e in b] != [e[0] for b in rank1 for e in b]
    other_stream = take(IterationSampler(rank=0, stream=1, **kw), 5)
    assert other_stream != rank0


def test_invalid_arguments():
    with pytest.raises(ValueError, match="rank 2"):
        IterationSampler(num_keys=4, batch_size=1, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="num_keys"):
        IterationSampler(num_keys=0, batch_size=1, seed=0)
