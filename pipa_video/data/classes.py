"""Every class set and every raw-id -> train-id map, in one place.

A *class set* is the list of classes a model predicts (its train ids are 0..C-1, 255 is ignore).
An *id space* is the raw label encoding of one dataset family (VIPER ids, Cityscapes labelIds,
SYNTHIA ids). ``label_lut(id_space, class_set, rider=...)`` gives the 256-entry look-up table that
turns a raw label image into train ids; every reader and prepare tool goes through it.

Tables follow ../shared/docs/datasets.md. The Cityscapes labelId -> trainId table is the one of
``cityscapesscripts.helpers.labels`` and is tested against that package.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

IGNORE_INDEX = 255


class Rider(str, Enum):
    """What a Cityscapes *rider* pixel becomes in a class set that has no rider class."""

    PERSON = "person"  # DA-VSN protocol: rider is merged into person
    IGNORE = "ignore"  # unified-baseline protocol: rider pixels are dropped


@dataclass(frozen=True)
class ClassSet:
    name: str
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    # Train ids that enter the reported mIoU (SYNTHIA-Seq trains fence but reports 11 classes).
    eval_ids: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def palette_array(self) -> np.ndarray:
        """(256, 3) uint8 colours indexed by train id; ignore (255) is black."""
        out = np.zeros((256, 3), np.uint8)
        out[: self.num_classes] = np.asarray(self.palette, np.uint8)
        return out

    def column_names(self) -> list[str]:
        """Index column name of each class's pixel count: ``px_<name>``."""
        return ["px_" + n.replace(" ", "_") for n in self.names]


# --- Cityscapes (cityscapesscripts.helpers.labels) -------------------------------------------
CITYSCAPES_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
# labelId -> trainId for every labelId 0..33 that has a train id (all others: 255).
CITYSCAPES_LABELID_TO_TRAINID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
CITYSCAPES_LABELIDS = tuple(range(34))  # 0..33; -1 (license plate) never appears in labelIds PNGs
CITYSCAPES_RIDER_LABELID = 25
CITYSCAPES_UNLABELED_LABELID = 0
# The values a *_labelTrainIds.png may hold (ACDC, Dark Zurich): the 19 train ids and ignore.
CITYSCAPES_TRAINIDS = tuple(range(len(CITYSCAPES_LABELID_TO_TRAINID))) + (255,)


def cityscapes_trainid_to_labelid() -> np.ndarray:
    """(256,) uint8 table: Cityscapes train id -> labelId, the inverse of ``CITYSCAPES_LABELID_TO_TRAINID``.

    Ignore (255) and every value that is not a train id map to labelId 0 (unlabeled). Used to read
    ``*_labelTrainIds.png`` through the labelId tables, and to write Cityscapes server predictions
    (the server scores labelIds: cityscapesscripts ``evalPixelLevelSemanticLabeling.py``).
    """
    table = np.full(256, CITYSCAPES_UNLABELED_LABELID, np.uint8)
    for label_id, train_id in CITYSCAPES_LABELID_TO_TRAINID.items():
        table[train_id] = label_id
    return table

# --- VIPER ----------------------------------------------------------------------------------
VIPER_NAMES = (
    "unlabeled", "ambiguous", "sky", "road", "sidewalk", "railtrack", "terrain", "tree",
    "vegetation", "building", "infrastructure", "fence", "billboard", "trafficlight",
    "trafficsign", "mobilebarrier", "firehydrant", "chair", "trash", "trashcan", "person",
    "animal", "bicycle", "motorcycle", "car", "van", "bus", "truck", "trailer", "train", "plane",
    "boat",
)
# The 32-colour palette of VIPER's classes.csv. Van (25) and train (29) share (0, 80, 100): an
# RGB-coloured label cannot tell them apart, and both are outside every benchmark class set.
VIPER_PALETTE = (
    (0, 0, 0), (111, 74, 0), (70, 130, 180), (128, 64, 128), (244, 35, 232), (230, 150, 140),
    (152, 251, 152), (87, 182, 35), (35, 142, 35), (70, 70, 70), (153, 153, 153),
    (190, 153, 153), (150, 20, 20), (250, 170, 30), (220, 220, 0), (180, 180, 100),
    (173, 153, 153), (168, 153, 153), (81, 0, 21), (81, 0, 81), (220, 20, 60), (255, 0, 0),
    (119, 11, 32), (0, 0, 230), (0, 0, 142), (0, 80, 100), (0, 60, 100), (0, 0, 70), (0, 0, 90),
    (0, 80, 100), (0, 100, 100), (50, 0, 90),
)
VIPER_CAR_ID = 24  # the ego-vehicle mask is the car component touching the bottom centre

# --- SYNTHIA ----------------------------------------------------------------------------------
# SYNTHIA-SEQS ids (datasets.md); SYNTHIA-RAND-CITYSCAPES extends them up to 22.
SYNTHIA_SEQ_IDS = tuple(range(16))
SYNTHIA_RAND_IDS = tuple(range(23))

# --- class sets -------------------------------------------------------------------------------
_PAL = dict(zip(CITYSCAPES_NAMES, CITYSCAPES_PALETTE))


def _subset(name: str, names: tuple[str, ...], eval_names: tuple[str, ...] | None = None) -> ClassSet:
    eval_names = eval_names or names
    return ClassSet(
        name=name,
        names=names,
        palette=tuple(_PAL[n] for n in names),
        eval_ids=tuple(names.index(n) for n in eval_names),
    )


CITYSCAPES19 = _subset("cityscapes19", CITYSCAPES_NAMES)
VIPER15 = _subset(
    "viper15",
    ("road", "sidewalk", "building", "fence", "traffic light", "traffic sign", "vegetation",
     "terrain", "sky", "person", "car", "truck", "bus", "motorcycle", "bicycle"),
)
_SYNTHIA_SEQ12_NAMES = ("road", "sidewalk", "building", "fence", "pole", "traffic light",
                        "traffic sign", "vegetation", "sky", "person", "rider", "car")
SYNTHIASEQ12 = _subset(
    "synthiaseq12", _SYNTHIA_SEQ12_NAMES,
    # fence is trained but dropped from the reported mIoU (11 classes), as in DA-VSN and TPS.
    tuple(n for n in _SYNTHIA_SEQ12_NAMES if n != "fence"),
)
_SYNTHIA16 = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
              "traffic sign", "vegetation", "sky", "person", "rider", "car", "bus", "motorcycle",
              "bicycle")
# SYNTHIA -> Cityscapes: a 19-class head, 16 classes reported (terrain, truck, train never occur).
CITYSCAPES19_SYNTHIA16 = ClassSet(
    name="cityscapes19_synthia16", names=CITYSCAPES_NAMES, palette=CITYSCAPES_PALETTE,
    eval_ids=tuple(CITYSCAPES_NAMES.index(n) for n in _SYNTHIA16),
)
# The 13-class variant also reported for SYNTHIA -> Cityscapes (without wall, fence, pole).
CITYSCAPES19_SYNTHIA13 = ClassSet(
    name="cityscapes19_synthia13", names=CITYSCAPES_NAMES, palette=CITYSCAPES_PALETTE,
    eval_ids=tuple(CITYSCAPES_NAMES.index(n) for n in _SYNTHIA16 if n not in ("wall", "fence", "pole")),
)
# Unified-baseline protocol for VIPER -> Cityscapes-Seq: a 19-class head, the 15 VIPER classes
# reported; pixels whose ground truth or prediction is another class are dropped.
CITYSCAPES19_VIPER15 = ClassSet(
    name="cityscapes19_viper15", names=CITYSCAPES_NAMES, palette=CITYSCAPES_PALETTE,
    eval_ids=tuple(CITYSCAPES_NAMES.index(n) for n in VIPER15.names),
)

CLASS_SETS: dict[str, ClassSet] = {
    c.name: c for c in (CITYSCAPES19, VIPER15, SYNTHIASEQ12, CITYSCAPES19_SYNTHIA16,
                        CITYSCAPES19_SYNTHIA13, CITYSCAPES19_VIPER15)
}


def get_class_set(name: str) -> ClassSet:
    try:
        return CLASS_SETS[name]
    except KeyError:
        raise KeyError(f"unknown class set {name!r}; expected one of {sorted(CLASS_SETS)}") from None


# --- raw id -> class-name tables, per id space -------------------------------------------------
# Each maps a raw id to the *class name* it trains as; the class set then decides the train id.
_VIPER_TO_NAME = {3: "road", 4: "sidewalk", 9: "building", 11: "fence", 13: "traffic light",
                  14: "traffic sign", 7: "vegetation", 8: "vegetation", 6: "terrain", 2: "sky",
                  20: "person", 24: "car", 27: "truck", 26: "bus", 23: "motorcycle",
                  22: "bicycle"}
_SYNTHIA_SEQ_TO_NAME = {3: "road", 4: "sidewalk", 2: "building", 5: "fence", 7: "pole",
                        15: "traffic light", 9: "traffic sign", 6: "vegetation", 1: "sky",
                        10: "person", 11: "rider", 8: "car"}
# SYNTHIA-RAND-CITYSCAPES (DAFormer's tools/convert_datasets/synthia.py): 16 Cityscapes classes.
_SYNTHIA_RAND_TO_NAME = {3: "road", 4: "sidewalk", 2: "building", 21: "wall", 5: "fence",
                         7: "pole", 15: "traffic light", 9: "traffic sign", 6: "vegetation",
                         1: "sky", 10: "person", 17: "rider", 8: "car", 19: "bus",
                         12: "motorcycle", 11: "bicycle",
                         16: "terrain", 18: "truck", 20: "train"}  # absent from SYNTHIA; DAFormer maps them too
_CITYSCAPES_TO_NAME = {lid: CITYSCAPES_NAMES[tid] for lid, tid in CITYSCAPES_LABELID_TO_TRAINID.items()}

ID_SPACES: dict[str, tuple[dict[int, str], tuple[int, ...]]] = {
    # id space: (raw id -> class name, every raw id the dataset may contain)
    "viper": (_VIPER_TO_NAME, tuple(range(len(VIPER_NAMES)))),
    "cityscapes": (_CITYSCAPES_TO_NAME, CITYSCAPES_LABELIDS),  # also GTA5
    "synthia_seq": (_SYNTHIA_SEQ_TO_NAME, SYNTHIA_SEQ_IDS),
    "synthia_rand": (_SYNTHIA_RAND_TO_NAME, SYNTHIA_RAND_IDS),
}


def label_lut(id_space: str, class_set: ClassSet | str, *, rider: Rider | str = Rider.PERSON) -> np.ndarray:
    """(256,) uint8 table: raw id -> train id of ``class_set``, 255 for every other id.

    ``rider`` only matters for Cityscapes labelIds in a class set without a rider class (VIPER's
    15 classes): ``person`` merges rider into person (DA-VSN), ``ignore`` drops it (unified
    baseline). In a class set with a rider class, ``ignore`` still drops rider pixels.
    """
    if isinstance(class_set, str):
        class_set = get_class_set(class_set)
    rider = Rider(rider)
    try:
        to_name, _ = ID_SPACES[id_space]
    except KeyError:
        raise KeyError(f"unknown id space {id_space!r}; expected one of {sorted(ID_SPACES)}") from None
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for raw, name in to_name.items():
        if name in class_set.names:
            lut[raw] = class_set.names.index(name)
    if id_space == "cityscapes":
        if rider is Rider.IGNORE:
            lut[CITYSCAPES_RIDER_LABELID] = IGNORE_INDEX
        elif "rider" not in class_set.names:
            lut[CITYSCAPES_RIDER_LABELID] = class_set.names.index("person")
    return lut


# Classes an id space names but its dataset never annotates. SYNTHIA-RAND-CITYSCAPES has ids for terrain (16),
# truck (18) and train (20) and DAFormer's converter maps them, but no pixel holds them (datasets.md: 16
# classes; MADAN's 16-class mIoU drops exactly these three, scripts/eval_fcn.py). A truck in a SYNTHIA frame
# is labelled void or another class, so "no truck pixel" does not mean "no truck here".
UNANNOTATED: dict[str, tuple[str, ...]] = {"synthia_rand": ("terrain", "truck", "train")}


def annotated_class_ids(id_space: str, class_set: ClassSet | str, *,
                        rider: Rider | str = Rider.PERSON) -> tuple[int, ...]:
    """Sorted train ids of ``class_set`` that labels of ``id_space`` annotate (multi-source training).

    A class is annotated when some raw id maps to it (``label_lut``, with the same ``rider`` rule) and the
    dataset is not known never to use it (``UNANNOTATED``). Every other class of the set may hide under the
    dataset's ignore pixels (255): its absence from the labels is no evidence. Raises ``KeyError`` for an
    unknown id space or class set. E.g. ``synthia_rand`` in ``cityscapes19``: the 16 ids without 9, 14, 16.
    """
    if isinstance(class_set, str):
        class_set = get_class_set(class_set)
    lut = label_lut(id_space, class_set, rider=rider)
    mapped = set(np.unique(lut[lut != IGNORE_INDEX]).tolist())
    absent = {class_set.names.index(n) for n in UNANNOTATED.get(id_space, ()) if n in class_set.names}
    return tuple(sorted(mapped - absent))


def known_ids(id_space: str) -> np.ndarray:
    """Sorted raw ids a label of ``id_space`` may legitimately contain (others are errors)."""
    return np.asarray(ID_SPACES[id_space][1])


def unexpected_ids(raw: np.ndarray, id_space: str) -> np.ndarray:
    """Raw ids present in ``raw`` that ``id_space`` does not define (empty when all is well)."""
    present = np.unique(raw)
    return present[~np.isin(present, known_ids(id_space))]
