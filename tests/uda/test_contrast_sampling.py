"""Anchor samplers: class balance, per-class bounds, hard share, ignore label, uniform coverage."""
import pytest
import torch

from pipa_video.uda.contrast.sampling import (downsample_labels, gather_embeddings, sample_class_balanced,
                                              sample_uniform)


def _labelled(counts):
    """labels and hard flags from {class: (num_hard, num_easy)}, shuffled, plus 255 padding."""
    labels, hard = [], []
    for c, (nh, ne) in counts.items():
        labels += [c] * (nh + ne)
        hard += [True] * nh + [False] * ne
    labels += [255] * 40
    hard += [True] * 40  # ignored pixels look "misclassified": they must still never be sampled
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    return torch.tensor(labels)[perm], torch.tensor(hard)[perm]


@pytest.mark.parametrize("counts, expected", [
    # class: (hard, easy) available -> (hard, easy) taken, with per_class 10 and hard_ratio 0.5
    ({0: (30, 70)}, {0: (5, 5)}),
    ({1: (2, 50)}, {1: (2, 8)}),  # too few hard: easy ones fill in
    ({2: (20, 1)}, {2: (9, 1)}),  # too few easy: hard ones fill in
    ({3: (3, 2)}, {3: (3, 2)}),  # a small class gives all it has
    ({0: (30, 70), 1: (2, 50), 2: (20, 1), 3: (3, 2)}, {0: (5, 5), 1: (2, 8), 2: (9, 1), 3: (3, 2), 4: (0, 0)}),
])
def test_class_balanced_bounded_and_hard_share(counts, expected):
    labels, hard = _labelled(counts)
    sample = sample_class_balanced(labels=labels, hard=hard, num_classes=5, per_class=10, hard_ratio=0.5,
                                   ignore_index=255, generator=torch.Generator().manual_seed(0))
    assert sample.index.shape == sample.valid.shape == sample.labels.shape == (50,)
    picked = sample.index[sample.valid]
    assert len(set(picked.tolist())) == len(picked), "an anchor was sampled twice"
    assert torch.equal(labels[sample.index][sample.valid], sample.labels[sample.valid])  # slot class = pixel class
    assert torch.equal(hard[sample.index][sample.valid], sample.hard[sample.valid])
    for c in range(5):
        in_class = sample.valid & (sample.labels == c)
        want_hard, want_easy = expected.get(c, (0, 0))
        assert int((in_class & sample.hard).sum()) == want_hard, c
        assert int((in_class & ~sample.hard).sum()) == want_easy, c
    assert (labels[picked] != 255).all()


def test_ignore_label_is_never_a_class():
    labels = torch.full((64,), 255)
    sample = sample_class_balanced(labels=labels, hard=torch.ones(64, dtype=torch.bool), num_classes=3,
                                   per_class=4, hard_ratio=0.5, ignore_index=255)
    assert not sample.valid.any()


def test_class_balanced_choice_is_random_and_covers_all_candidates():
    labels, hard = _labelled({0: (6, 6)})
    seen = set()
    for seed in range(40):
        s = sample_class_balanced(labels=labels, hard=hard, num_classes=1, per_class=4, hard_ratio=0.5,
                                  ignore_index=255, generator=torch.Generator().manual_seed(seed))
        seen |= set(s.index[s.valid].tolist())
    assert seen == set(torch.nonzero(labels == 0).flatten().tolist())


def test_uniform_sampling_picks_only_valid_positions_without_repeats():
    valid = torch.zeros(100, dtype=torch.bool)
    valid[::7] = True  # 15 valid
    s = sample_uniform(valid=valid, num=10, generator=torch.Generator().manual_seed(0))
    assert s.index.shape == (10,) and s.valid.all() and valid[s.index].all()
    assert len(set(s.index.tolist())) == 10
    s = sample_uniform(valid=valid, num=40)  # more slots than valid positions: the rest are padding
    assert s.index.shape == (40,) and int(s.valid.sum()) == 15
    assert set(s.index[s.valid].tolist()) == set(range(0, 100, 7))
    s = sample_uniform(valid=valid, num=500)
    assert s.index.shape == (100,)


def test_gather_embeddings_matches_permuted_reshape():
    features = torch.randn(2, 3, 4, 5)
    index = torch.tensor([0, 7, 19, 20, 39])
    want = features.permute(0, 2, 3, 1).reshape(-1, 3)[index]
    assert torch.equal(gather_embeddings(features, index), want)


def test_downsample_labels_keeps_ignore_and_checks_region():
    labels = torch.randint(0, 19, (2, 16, 32))
    labels[:, :8] = 255
    small = downsample_labels(labels, (4, 8))
    assert torch.equal(small, labels[:, ::4, ::4])  # nearest = top-left pixel of each 4x4 cell
    assert set(small.unique().tolist()) <= set(range(19)) | {255}
    with pytest.raises(ValueError, match="same region"):
        downsample_labels(labels, (8, 8))  # e.g. features of a square crop, labels of the full image
