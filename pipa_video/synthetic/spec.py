"""What a generation produces: splits, target cities, scene classes and their raw ids, sizes and counts.

Everything here is plain data; the renderer (``scene`` .. ``render``) and the writers read it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum, IntEnum

import numpy as np

from pipa_video.data.sources import layouts

SOURCE_DIR = "source"
TARGET_DIR = "target"
SOURCE_SPLITS = ("train", "val")
TARGET_SPLITS = ("train", "val", "test")


class Domain(str, Enum):
    """The labelled source (VIPER layout, "game" look) or the unlabelled target (Cityscapes-Seq, "camera")."""

    SOURCE = "source"
    TARGET = "target"


class SceneClass(IntEnum):
    """What the generator draws; each maps to one raw id per id space."""

    SKY = 0
    ROAD = 1
    SIDEWALK = 2
    TERRAIN = 3
    BUILDING = 4
    VEGETATION = 5
    TREE = 6
    POLE = 7
    SIGN = 8
    LIGHT = 9
    FENCE = 10
    PERSON = 11
    CAR = 12
    EGO_VEHICLE = 13  # the target camera's bonnet, ignored like Cityscapes' "ego vehicle"
    TRUCK = 14
    BUS = 15
    BICYCLE = 16
    MOTORCYCLE = 17
    RIDER = 18  # VIPER has no rider class (person); Cityscapes does (25), merged or ignored by protocol


# VIPER ids (classes.VIPER_NAMES): a pole is "infrastructure", outside the 15 benchmark classes,
# as Cityscapes' pole (17) is. A tree is VIPER "tree" (7) and Cityscapes "vegetation" (21).
VIPER_IDS = {
    SceneClass.SKY: 2, SceneClass.ROAD: 3, SceneClass.SIDEWALK: 4, SceneClass.TERRAIN: 6,
    SceneClass.BUILDING: 9, SceneClass.VEGETATION: 8, SceneClass.TREE: 7, SceneClass.POLE: 10,
    SceneClass.SIGN: 14, SceneClass.LIGHT: 13, SceneClass.FENCE: 11, SceneClass.PERSON: 20,
    SceneClass.CAR: 24, SceneClass.EGO_VEHICLE: 0, SceneClass.TRUCK: 27, SceneClass.BUS: 26,
    SceneClass.BICYCLE: 22, SceneClass.MOTORCYCLE: 23, SceneClass.RIDER: 20,
}
CITYSCAPES_LABELIDS = {
    SceneClass.SKY: 23, SceneClass.ROAD: 7, SceneClass.SIDEWALK: 8, SceneClass.TERRAIN: 22,
    SceneClass.BUILDING: 11, SceneClass.VEGETATION: 21, SceneClass.TREE: 21, SceneClass.POLE: 17,
    SceneClass.SIGN: 20, SceneClass.LIGHT: 19, SceneClass.FENCE: 13, SceneClass.PERSON: 24,
    SceneClass.CAR: 26, SceneClass.EGO_VEHICLE: 1, SceneClass.TRUCK: 27, SceneClass.BUS: 28,
    SceneClass.BICYCLE: 33, SceneClass.MOTORCYCLE: 32, SceneClass.RIDER: 25,
}


def raw_id_table(domain: Domain | str) -> np.ndarray:
    """(len(SceneClass),) uint8: scene class -> raw id written by ``domain`` (VIPER id or labelId)."""
    ids = VIPER_IDS if Domain(domain) is Domain.SOURCE else CITYSCAPES_LABELIDS
    return np.array([ids[c] for c in SceneClass], np.uint8)


class AnchorRule(str, Enum):
    """How a target city numbers its annotated frames (the real data has both)."""

    FIXED = "fixed"  # every snippet is its own sequence, annotated at frame 000019
    ARBITRARY = "arbitrary"  # several snippets share a sequence, annotated at e.g. 000294, 000576


# Invented cities; each split has one with arbitrary anchors, as Cityscapes' train and val do.
TARGET_CITIES: dict[str, tuple[tuple[str, AnchorRule], ...]] = {
    "train": (("aldmoor", AnchorRule.FIXED), ("brenwick", AnchorRule.ARBITRARY),
              ("corvale", AnchorRule.FIXED)),
    "val": (("dunhallow", AnchorRule.ARBITRARY), ("elmsby", AnchorRule.ARBITRARY)),
    "test": (("fenholt", AnchorRule.ARBITRARY), ("glenrast", AnchorRule.FIXED)),
}
SNIPPET_BEFORE, SNIPPET_AFTER = layouts.CS_SEQ_BEFORE, layouts.CS_SEQ_AFTER
SNIPPET_LENGTH = SNIPPET_BEFORE + 1 + SNIPPET_AFTER


@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes and counts of one generation (recorded in SYNTHETIC_INFO.json)."""

    width: int = 256
    height: int = 128
    source_train_sequences: int = 8
    source_val_sequences: int = 2
    source_frames: int = 50  # frames per source sequence
    source_label_step: int = 1  # write a cls label for every n-th source frame
    source_ext: str = "jpg"  # VIPER ships jpg; some copies png
    target_train_snippets: int = 12
    # One labelled frame per snippet (the Cityscapes-Seq layout). 6 labelled frames were too few:
    # the demo's methods differed by 1-2 mIoU, as much as one method moved between seeds (measured).
    target_val_snippets: int = 24
    target_test_snippets: int = 24

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 16:
            raise ValueError(f"frame size must be at least 32x16, got {self.width}x{self.height}")
        counts = {f.name: getattr(self, f.name) for f in fields(self) if f.name.endswith(("sequences", "snippets"))}
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.source_frames < 2:
            raise ValueError(f"source_frames must be >= 2 (motion needs two frames), got {self.source_frames}")
        if self.source_label_step < 1:
            raise ValueError(f"source_label_step must be >= 1, got {self.source_label_step}")
        if self.source_ext not in ("jpg", "png"):
            raise ValueError(f"source_ext must be 'jpg' or 'png', got {self.source_ext!r}")

    def scaled(self, scale: float) -> SyntheticSpec:
        """The same benchmark with every sequence / snippet count times ``scale`` (at least 1)."""
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        counts = {f.name: max(1, round(getattr(self, f.name) * scale))
                  for f in fields(self) if f.name.endswith(("sequences", "snippets"))}
        return replace(self, **counts)

    def source_sequences(self, split: str) -> int:
        """Number of source sequences of ``split`` ('train' or 'val')."""
        return {"train": self.source_train_sequences, "val": self.source_val_sequences}[split]

    def target_snippets(self, split: str) -> int:
        """Number of annotated 30-frame target snippets of ``split`` ('train', 'val' or 'test')."""
        return {"train": self.target_train_snippets, "val": self.target_val_snippets,
                "test": self.target_test_snippets}[split]

