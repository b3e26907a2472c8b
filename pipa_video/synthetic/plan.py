"""Planning a generation: the drives (jobs) of every split, their frame windows and random streams.

Each job draws from its own stream, keyed by (seed, domain, split, city, sequence), so a job renders
the same frames whichever process runs it and in whatever order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipa_video.synthetic.spec import (
    SNIPPET_AFTER, SNIPPET_BEFORE, SNIPPET_LENGTH, SOURCE_SPLITS, TARGET_CITIES, TARGET_SPLITS, AnchorRule, Domain,
    SyntheticSpec,
)


@dataclass(frozen=True)
class Window:
    """Consecutive frames of one drive rendered as one scene; ``labels`` are the frames to label."""

    frames: range
    labels: tuple[int, ...]


@dataclass(frozen=True)
class Job:
    """One drive: a source sequence or a target (city, sequence) with one or more snippets."""

    domain: Domain
    split: str
    sequence: int
    windows: tuple[Window, ...]
    city: str = ""


def _seeded_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


_DOMAIN_KEY = {Domain.SOURCE: 1, Domain.TARGET: 2}
_SPLIT_KEY = {"train": 1, "val": 2, "test": 3}
_PLAN_KEY = 7


def job_rng(seed: int, job: Job, city_index: int) -> np.random.Generator:
    """The random stream of one drive: every draw of its street, camera, scene and sensor."""
    return _seeded_rng(seed, _DOMAIN_KEY[job.domain], _SPLIT_KEY[job.split], city_index, job.sequence)



def plan_jobs(spec: SyntheticSpec, *, seed: int) -> list[tuple[Job, int]]:
    """Every drive of a generation with its city index (the key of its random stream)."""
    jobs: list[tuple[Job, int]] = []
    for split in SOURCE_SPLITS:
        every = range(spec.source_frames)
        labels = tuple(n for n in every if n % spec.source_label_step == 0)
        for seq in range(1, spec.source_sequences(split) + 1):
            jobs.append((Job(Domain.SOURCE, split, seq, (Window(every, labels),)), 0))
    for split in TARGET_SPLITS:
        jobs.extend(_plan_target_split(split, spec.target_snippets(split), seed=seed))
    return jobs


def _plan_target_split(split: str, n_snippets: int, *, seed: int) -> list[tuple[Job, int]]:
    cities = TARGET_CITIES[split]
    per_city = [len(range(i, n_snippets, len(cities))) for i in range(len(cities))]
    jobs = []
    for city_index, ((city, rule), count) in enumerate(zip(cities, per_city)):
        rng = _seeded_rng(seed, _DOMAIN_KEY[Domain.TARGET], _SPLIT_KEY[split], city_index, _PLAN_KEY)
        for seq, anchors in enumerate(_anchor_groups(rng, rule, count)):
            windows = tuple(Window(range(a - SNIPPET_BEFORE, a + SNIPPET_AFTER + 1), (a,)) for a in anchors)
            jobs.append((Job(Domain.TARGET, split, seq, windows, city=city), city_index))
    return jobs


def _anchor_groups(rng: np.random.Generator, rule: AnchorRule, count: int) -> list[tuple[int, ...]]:
    """Annotated frame numbers per sequence: all 19 (FIXED), or up to 3 arbitrary ones per sequence."""
    if rule is AnchorRule.FIXED:
        return [(SNIPPET_BEFORE,)] * count
    groups = []
    while count > 0:
        size = min(count, int(rng.integers(1, 4)))
        anchor = int(rng.integers(40, 400))
        anchors = []
        for _ in range(size):
            anchors.append(anchor)
            anchor += int(rng.integers(SNIPPET_LENGTH + 10, 500))
        groups.append(tuple(anchors))
        count -= size
    return groups
