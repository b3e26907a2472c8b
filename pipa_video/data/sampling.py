"""Which key frames a training iteration sees: rare-class sampling and the iteration batch sampler.

Rare-class sampling (DAFormer): with f_c the share of labelled key-frame pixels that belong to class
c, class c is drawn with P(c) proportional to exp((1 - f_c) / T), then a key frame uniformly among
those holding at least ``min_pixels`` pixels of c. Classes that never reach ``min_pixels`` in any
frame cannot be drawn (DAFormer would crash on them).

``IterationSampler`` is an infinite batch sampler. Batch ``i`` of rank ``r`` is a pure function of
(seed, stream, i, r): a run resumed with ``start_iter=k`` sees exactly the batches a run that never
stopped saw from iteration k on, whatever the number of DataLoader workers. Each element is
``(key_index, sample_seed)``, or ``(key_index, sample_seed, class_id)`` under rare-class sampling;
``ClipDataset`` draws the sample's crop/flip/jitter from ``np.random.default_rng(sample_seed)``.

``MultiSourceSampler`` does the same over several labelled sources: each slot first draws its source by
the configured weights, then a key frame of that source (its own walk, or its own rare-class sampling
over the classes it annotates), so batch ``i`` is still a pure function of (seed, stream, i, rank) and
may hold frames of several sources. Elements are ``(source, key_index, sample_seed[, class_id])``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from pipa_video.data.index import DatasetError


def class_frequencies(pixel_counts: np.ndarray) -> np.ndarray:
    """(C,) share of all labelled pixels of the (N, C) count table that each class takes."""
    totals = pixel_counts.sum(axis=0).astype(np.float64)
    if totals.sum() <= 0:
        raise DatasetError("rare-class sampling needs labelled pixels, but every px_* count is 0")
    return totals / totals.sum()


def rcs_class_probabilities(frequencies: np.ndarray, *, temperature: float,
                            eligible: np.ndarray | None = None) -> np.ndarray:
    """P(c) proportional to exp((1 - f_c) / T) over the ``eligible`` classes, 0 elsewhere."""
    if temperature <= 0:
        raise ValueError(f"rare-class sampling temperature must be > 0, got {temperature}")
    eligible = np.ones(len(frequencies), bool) if eligible is None else eligible
    logits = np.where(eligible, (1.0 - frequencies) / temperature, -np.inf)
    weights = np.exp(logits - logits[eligible].max())  # shift: exp(100) is fine, exp(1e4) is not
    return weights / weights.sum()


class RareClassSampler:
    """Draws key-frame positions so that rare classes are seen often (see module docstring)."""

    def __init__(self, *, pixel_counts: np.ndarray, temperature: float = 0.01, min_pixels: int = 3000,
                 class_names: Sequence[str] | None = None, classes: Sequence[int] | None = None) -> None:
        """``pixel_counts`` (N, C): pixels of each class in each key frame. ``classes``: the train ids the
        source annotates (``classes.annotated_class_ids``; None: all); no other class is ever drawn."""
        pixel_counts = np.asarray(pixel_counts)
        self.class_names = list(class_names) if class_names is not None else [
            str(c) for c in range(pixel_counts.shape[1])]
        self.frequencies = class_frequencies(pixel_counts)
        self.candidates = [np.flatnonzero(pixel_counts[:, c] > min_pixels)
                           for c in range(pixel_counts.shape[1])]
        eligible = (self.frequencies > 0) & np.array([len(c) > 0 for c in self.candidates])
        if classes is not None:
            eligible &= np.isin(np.arange(pixel_counts.shape[1]), np.asarray(classes, np.int64))
        if not eligible.any():
            raise DatasetError(f"rare-class sampling: no key frame has > {min_pixels} pixels of any "
                               f"class (data.source.rcs.min_pixels); lower it or disable rcs")
        self.probabilities = rcs_class_probabilities(self.frequencies, temperature=temperature,
                                                     eligible=eligible)
        self._cdf = np.cumsum(self.probabilities)

    @classmethod
    def from_frames(cls, frames: pd.DataFrame, *, columns: Sequence[str], temperature: float,
                    min_pixels: int, classes: Sequence[int] | None = None) -> "RareClassSampler":
        """From the ``px_*`` columns of the key frames' index rows (``ClipDataset.key_frame_table``)."""
        return cls(pixel_counts=frames[list(columns)].to_numpy(np.int64), temperature=temperature,
                   min_pixels=min_pixels, class_names=[c.removeprefix("px_") for c in columns], classes=classes)

    def draw(self, rng: np.random.Generator) -> tuple[int, int]:
        """(key-frame position, class): a class by P(c), then a frame holding enough of it."""
        # Inverse CDF rather than rng.choice(p=...), which rebuilds the CDF on every call.
        cls = min(int(np.searchsorted(self._cdf, rng.random(), side="right")), len(self._cdf) - 1)
        while self.probabilities[cls] == 0:  # float round-off at the top end of the CDF
            cls -= 1
        candidates = self.candidates[cls]
        return int(candidates[rng.integers(len(candidates))]), cls

    def sample(self, rng: np.random.Generator) -> int:
        """One key-frame position (``draw`` without the class)."""
        return self.draw(rng)[0]


def slot_seeds(seed: int, stream: int, iteration: int, rank: int,
               slot: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence, np.random.SeedSequence]:
    """(pick, augment, source) seed sequences of one batch slot, each a pure function of the arguments.

    Independent children of one seed sequence: one picks the key frame, one seeds the sample's
    augmentation, one picks the source (multi-source), so no stream depends on how much another consumed.
    The first two are the children a two-way spawn gives, so single-source batches are unchanged.
    """
    pick, augment, source = np.random.SeedSequence([seed, stream, iteration, rank, slot]).spawn(3)
    return pick, augment, source


class _SlotBatches:
    """What both batch samplers share: batch ``i`` is one item per slot, iterated from ``start_iter`` on.

    A subclass defines ``_slot(iteration, slot)``, a pure function of its arguments, so a run
    resumed at ``start_iter=k`` sees the batches an uninterrupted run saw from iteration k on.
    """

    batch_size: int
    start_iter: int

    def _slot(self, iteration: int, slot: int) -> tuple[int, ...]:
        raise NotImplementedError

    def batch(self, iteration: int) -> list[tuple[int, ...]]:
        """The batch of this rank at ``iteration`` (a pure function of the constructor arguments)."""
        return [self._slot(iteration, slot) for slot in range(self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, ...]]]:
        iteration = self.start_iter
        while True:
            yield self.batch(iteration)
            iteration += 1


class IterationSampler(_SlotBatches):
    """Infinite, resumable batch sampler yielding ``[(key_index, sample_seed[, class_id]), ...]`` per iteration.

    Uniform mode walks a seeded permutation of the keys per epoch; positions are laid out
    iteration-major, then rank, then slot, so the ranks of one iteration take disjoint keys and
    every epoch visits each key once across ranks. With ``rcs`` every slot draws from its own
    seeded generator. ``stream`` separates samplers that share a seed (source vs target).
    """

    def __init__(self, *, num_keys: int, batch_size: int, seed: int, start_iter: int = 0,
                 rank: int = 0, world_size: int = 1, stream: int = 0,
                 rcs: RareClassSampler | None = None, source: int = 0) -> None:
        if num_keys <= 0 or batch_size <= 0:
            raise ValueError(f"need num_keys > 0 and batch_size > 0, got {num_keys} and {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if start_iter < 0:
            raise ValueError(f"start_iter must be >= 0, got {start_iter}")
        self.num_keys, self.batch_size, self.seed = num_keys, batch_size, seed
        self.start_iter, self.rank, self.world_size, self.stream = start_iter, rank, world_size, stream
        self.rcs = rcs
        # ``source`` > 0: the walk of that source of a MultiSourceSampler (source 0 walks as a lone source).
        self._walk_key = [source] if source else []
        self._epoch: tuple[int, np.ndarray] | None = None  # cached (epoch, permutation)

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, self.stream, epoch, *self._walk_key])
            self._epoch = (epoch, rng.permutation(self.num_keys))
        return self._epoch[1]

    def _uniform_key(self, iteration: int, slot: int) -> int:
        position = (iteration * self.world_size + self.rank) * self.batch_size + slot
        epoch, offset = divmod(position, self.num_keys)
        return int(self._permutation(epoch)[offset])

    def slot_item(self, iteration: int, slot: int, pick: np.random.SeedSequence,
                  augment: np.random.SeedSequence) -> tuple[int, ...]:
        """``(key_index, sample_seed[, class_id])`` of one slot, from its ``slot_seeds``."""
        sample_seed = int(augment.generate_state(1, np.uint64)[0] >> np.uint64(1))
        if self.rcs is not None:
            key, cls = self.rcs.draw(np.random.default_rng(pick))
            return key, sample_seed, cls
        return self._uniform_key(iteration, slot), sample_seed

    def _slot(self, iteration: int, slot: int) -> tuple[int, ...]:
        pick, augment, _ = slot_seeds(self.seed, self.stream, iteration, self.rank, slot)
        return self.slot_item(iteration, slot, pick, augment)


@dataclass(frozen=True)
class SourceKeys:
    """One source of a ``MultiSourceSampler``: its key-frame count, sampling weight (> 0) and optional RCS."""

    num_keys: int
    weight: float
    rcs: RareClassSampler | None = None


class MultiSourceSampler(_SlotBatches):
    """Infinite, resumable batch sampler over several sources: ``[(source, key_index, sample_seed[, class_id]), ...]``.

    Each slot draws its source with probability ``weight / sum(weights)`` from its own seed sequence
    (``slot_seeds``), then a key frame of that source as a lone ``IterationSampler`` would: rare-class
    sampling within that source, or its own permutation walk at the slot's global position (thinned by
    the other sources' slots, so a key still comes at most once per walk epoch). Batch ``i`` of rank ``r``
    is a pure function of (seed, stream, i, r); with one source it equals ``IterationSampler``'s batch.
    Raises ``ValueError`` without sources or with a weight that is not > 0.
    """

    def __init__(self, *, sources: Sequence[SourceKeys], batch_size: int, seed: int, start_iter: int = 0,
                 rank: int = 0, world_size: int = 1, stream: int = 0) -> None:
        weights = np.array([s.weight for s in sources], np.float64)
        if len(weights) == 0 or not np.all(weights > 0) or not np.all(np.isfinite(weights)):
            raise ValueError(f"MultiSourceSampler: need at least one source and every weight > 0, "
                             f"got {weights.tolist()}")
        self.walkers = [IterationSampler(num_keys=s.num_keys, batch_size=batch_size, seed=seed, start_iter=start_iter,
                                         rank=rank, world_size=world_size, stream=stream, rcs=s.rcs, source=i)
                        for i, s in enumerate(sources)]
        self.probabilities = weights / weights.sum()
        self._cdf = np.cumsum(self.probabilities)
        self.batch_size, self.seed, self.stream = batch_size, seed, stream
        self.start_iter, self.rank = start_iter, rank

    def _source(self, choose: np.random.SeedSequence) -> int:
        if len(self.walkers) == 1:
            return 0
        index = int(np.searchsorted(self._cdf, np.random.default_rng(choose).random(), side="right"))
        return min(index, len(self.walkers) - 1)  # float round-off at the top end of the CDF

    def _slot(self, iteration: int, slot: int) -> tuple[int, ...]:
        pick, augment, choose = slot_seeds(self.seed, self.stream, iteration, self.rank, slot)
        source = self._source(choose)
        return (source, *self.walkers[source].slot_item(iteration, slot, pick, augment))
