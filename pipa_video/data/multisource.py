"""Multi-source training data: several labelled sources in one batch, each with its own class map.

Every source index is prepared for the run's class set by its own raw-id -> train-id map
(``classes.label_lut``), so a batch holds train ids of one shared class set. What a source does not
annotate is decided by its dataset, not by its pixel counts (docs/design.md, "Multi-source training"):

- ``source_annotated_ids``: the train ids a source index's labels annotate (``classes.annotated_class_ids``
  of its layout's id space; SYNTHIA-RAND-CITYSCAPES in ``cityscapes19``: 16 of the 19). Its other pixels
  are 255: unknown, never "some other class" (SYNTHIA's 255 holds lane markings, i.e. road, as well as
  void that may be a truck), so losses, ClassMix, the contrasts and the memory bank ignore them as they
  ignore 255 anywhere; rare-class sampling draws only annotated classes of each source.
- ``check_annotated``: a source index holding pixels of a class its dataset does not annotate is refused.
- ``check_reported_classes``: a class the class set reports must be annotated by at least one source.
- ``MultiSourceDataset``: ``dataset[(source, key, seed[, class_id])]`` is that source's clip, with
  ``meta["source"]`` its position in ``data.sources``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from pipa_video.data.classes import CLASS_SETS, ClassSet, annotated_class_ids
from pipa_video.data.clips import ClipDataset
from pipa_video.data.index import DatasetError, FrameIndex
from pipa_video.data.sources import LAYOUTS


def source_sections(data: dict) -> list[tuple[str, dict]]:
    """(key, section) of every source a run trains on: the ``data.sources`` entries, else ``data.source``."""
    if data["sources"]:
        return [(f"data.sources[{i}]", section) for i, section in enumerate(data["sources"])]
    return [("data.source", data["source"])]



def source_annotated_ids(index: FrameIndex, class_set: ClassSet) -> tuple[int, ...]:
    """Sorted train ids of ``class_set`` that the labels of ``index`` annotate.

    From the index's layout (its id space) and its recorded rider rule; an index of a layout this
    package does not know (a hand-made one) is taken to annotate every class of the set.
    """
    layout = LAYOUTS.get(index.meta.layout)
    if layout is None or layout.id_space is None:
        return tuple(range(class_set.num_classes))
    return annotated_class_ids(layout.id_space, class_set, rider=index.meta.rider)


def check_annotated(index: FrameIndex, class_set: ClassSet, annotated: Sequence[int], *, key: str) -> None:
    """Raise ``DatasetError`` if ``index`` counts pixels of a class outside ``annotated``.

    Such labels were not prepared from the published dataset (e.g. SYNTHIA-RAND-CITYSCAPES has no
    truck pixel): a class annotated in some frames only would be missed wherever it hides under 255.
    """
    if index.class_set is None:  # no labels, no counts
        return
    totals = index.frames[class_set.column_names()].to_numpy(np.int64).sum(axis=0)
    extra = [c for c in range(class_set.num_classes) if c not in set(annotated) and totals[c] > 0]
    if extra:
        found = ", ".join(f"{int(totals[c])} pixels of {class_set.names[c]!r}" for c in extra)
        raise DatasetError(f"{key} = {str(index.index_dir)!r}: the labels hold {found}, a class the "
                           f"{index.meta.layout!r} dataset does not annotate (classes.UNANNOTATED); prepare "
                           f"it from the published labels")


def check_reported_classes(class_set: ClassSet, annotated: Sequence[Sequence[int]]) -> None:
    """Raise ``DatasetError`` if a class ``class_set`` reports (``eval_ids``) is annotated by no source.

    Its IoU would measure a class the model never saw labelled; the message names class sets with the
    same classes that report only annotated ones.
    """
    union = set().union(*map(set, annotated))
    missing = [class_set.names[c] for c in class_set.eval_ids if c not in union]
    if not missing:
        return
    fits = sorted(name for name, other in CLASS_SETS.items()
                  if other.names == class_set.names and set(other.eval_ids) <= union)
    hint = f"use class_set {' or '.join(map(repr, fits))}" if fits else "add a source that annotates them"
    raise DatasetError(f"class_set {class_set.name!r} reports {missing}, which no source of data.sources "
                       f"annotates: {hint}")


class MultiSourceDataset(torch.utils.data.Dataset):
    """Clips of several ``ClipDataset`` sources, addressed as ``(source, key_index, seed[, class_id])``
    (``sampling.MultiSourceSampler``'s elements). Each sample is its source's clip contract (``data.clips``)
    plus ``meta["source"]``, the source's position in ``data.sources``."""

    def __init__(self, datasets: Sequence[ClipDataset]) -> None:
        if not datasets:
            raise ValueError("MultiSourceDataset needs at least one source dataset")
        self.datasets = list(datasets)

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def __getitem__(self, item: tuple[int, ...]) -> dict:
        source, *rest = item
        sample = self.datasets[int(source)][tuple(rest)]
        sample["meta"]["source"] = int(source)
        return sample

    def __repr__(self) -> str:
        return f"MultiSourceDataset({self.datasets})"
