"""Class sets and raw-id -> train-id maps against independent expectations.

The benchmark tables below are retyped from ../shared/docs/datasets.md (not imported from
pipa_video), the Cityscapes table comes from the official ``cityscapesscripts`` package, and the
VIPER palette from VIPER's classes.csv.
"""
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels as cs_labels

from pipa_video.data import classes as C

# datasets.md, "15-class benchmark (train id: VIPER ids)"
VIPER_TO_VIPER15 = {3: 0, 4: 1, 9: 2, 11: 3, 13: 4, 14: 5, 7: 6, 8: 6, 6: 7, 2: 8, 20: 9, 24: 10, 27: 11,
                    26: 12, 23: 13, 22: 14}
VIPER15_NAMES = ("road", "sidewalk", "building", "fence", "traffic light", "traffic sign", "vegetation",
                 "terrain", "sky", "person", "car", "truck", "bus", "motorcycle", "bicycle")
# datasets.md, "12-class benchmark (train id: SYNTHIA id)"
SYNTHIA_TO_SYNTHIASEQ12 = {3: 0, 4: 1, 2: 2, 5: 3, 7: 4, 15: 5, 9: 6, 6: 7, 1: 8, 10: 9, 11: 10, 8: 11}
SYNTHIASEQ12_NAMES = ("road", "sidewalk", "building", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "sky", "person", "rider", "car")
# datasets.md, "Cityscapes labelId -> 15-class VIPER benchmark id" (rider 25 depends on the protocol)
CS_TO_VIPER15_WITHOUT_RIDER = {7: 0, 8: 1, 11: 2, 13: 3, 19: 4, 20: 5, 21: 6, 22: 7, 23: 8, 24: 9, 26: 10,
                               27: 11, 28: 12, 32: 13, 33: 14}
CS_TO_VIPER15_DAVSN = {**CS_TO_VIPER15_WITHOUT_RIDER, 25: 9}  # rider -> person
CS_TO_VIPER15_UNIFIED = CS_TO_VIPER15_WITHOUT_RIDER  # rider -> ignore
# datasets.md, "Cityscapes labelId -> 12-class SYNTHIA-Seq benchmark id"
CS_TO_SYNTHIASEQ12 = {7: 0, 8: 1, 11: 2, 13: 3, 17: 4, 19: 5, 20: 6, 21: 7, 23: 8, 24: 9, 25: 10, 26: 11}
# DAFormer tools/convert_datasets/synthia.py (SYNTHIA-RAND-CITYSCAPES -> Cityscapes train ids), the
# ids that occur in SYNTHIA; DAFormer also lists 16 terrain, 18 truck, 20 train "not present in synthia".
SYNTHIA_RAND_TO_CS19 = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 10, 10: 11, 17: 12,
                        8: 13, 19: 15, 12: 17, 11: 18}
SYNTHIA_RAND_ABSENT_TO_CS19 = {16: 9, 18: 14, 20: 16}
# VIPER classes.csv: id -> RGB
VIPER_CLASSES_CSV = {
    0: (0, 0, 0), 1: (111, 74, 0), 2: (70, 130, 180), 3: (128, 64, 128), 4: (244, 35, 232),
    5: (230, 150, 140), 6: (152, 251, 152), 7: (87, 182, 35), 8: (35, 142, 35), 9: (70, 70, 70),
    10: (153, 153, 153), 11: (190, 153, 153), 12: (150, 20, 20), 13: (250, 170, 30), 14: (220, 220, 0),
    15: (180, 180, 100), 16: (173, 153, 153), 17: (168, 153, 153), 18: (81, 0, 21), 19: (81, 0, 81),
    20: (220, 20, 60), 21: (255, 0, 0), 22: (119, 11, 32), 23: (0, 0, 230), 24: (0, 0, 142),
    25: (0, 80, 100), 26: (0, 60, 100), 27: (0, 0, 70), 28: (0, 0, 90), 29: (0, 80, 100),
    30: (0, 100, 100), 31: (50, 0, 90),
}


def full_table(mapping: dict[int, int]) -> np.ndarray:
    table = np.full(256, 255, np.uint8)
    for raw, train_id in mapping.items():
        table[raw] = train_id
    return table


@pytest.mark.parametrize("id_space, class_set, rider, mapping", [
    ("viper", "viper15", "person", VIPER_TO_VIPER15),
    ("synthia_seq", "synthiaseq12", "person", SYNTHIA_TO_SYNTHIASEQ12),
    ("cityscapes", "viper15", "person", CS_TO_VIPER15_DAVSN),
    ("cityscapes", "viper15", "ignore", CS_TO_VIPER15_UNIFIED),
    ("cityscapes", "synthiaseq12", "person", CS_TO_SYNTHIASEQ12),
    ("synthia_rand", "cityscapes19", "person", {**SYNTHIA_RAND_TO_CS19, **SYNTHIA_RAND_ABSENT_TO_CS19}),
])
def test_label_lut_matches_benchmark_tables(id_space, class_set, rider, mapping):
    lut = C.label_lut(id_space, class_set, rider=rider)
    assert lut.shape == (256,) and lut.dtype == np.uint8
    expected = full_table(mapping)
    wrong = np.flatnonzero(lut != expected)
    assert wrong.size == 0, {int(i): (int(lut[i]), int(expected[i])) for i in wrong}


def test_synthia_rand_absent_ids_follow_daformer():
    lut = C.label_lut("synthia_rand", "cityscapes19")
    assert {raw: int(lut[raw]) for raw in SYNTHIA_RAND_ABSENT_TO_CS19} == SYNTHIA_RAND_ABSENT_TO_CS19


def test_class_set_orders_match_datasets_md():
    assert C.get_class_set("viper15").names == VIPER15_NAMES
    assert C.get_class_set("synthiaseq12").names == SYNTHIASEQ12_NAMES
    # SYNTHIA-Seq trains fence but reports 11 classes without it
    seq12 = C.get_class_set("synthiaseq12")
    assert [seq12.names[i] for i in seq12.eval_ids] == [n for n in SYNTHIASEQ12_NAMES if n != "fence"]


def cityscapes_scripts_train_ids() -> dict[int, int]:
    return {lab.id: lab.trainId for lab in cs_labels if lab.id >= 0 and lab.trainId not in (255, -1)}


def test_cityscapes_labelid_to_trainid_is_the_official_table():
    official = cityscapes_scripts_train_ids()
    assert C.CITYSCAPES_LABELID_TO_TRAINID == official
    # person merge does not apply: cityscapes19 has a rider class
    np.testing.assert_array_equal(C.label_lut("cityscapes", "cityscapes19", rider="person"), full_table(official))
    without_rider = {k: v for k, v in official.items() if k != C.CITYSCAPES_RIDER_LABELID}
    np.testing.assert_array_equal(C.label_lut("cityscapes", "cityscapes19", rider="ignore"),
                                  full_table(without_rider))


def test_cityscapes_names_and_palette_are_the_official_ones():
    by_train_id = {lab.trainId: lab for lab in cs_labels if lab.trainId not in (255, -1)}
    assert C.CITYSCAPES_NAMES == tuple(by_train_id[i].name for i in range(19))
    assert C.CITYSCAPES_PALETTE == tuple(tuple(by_train_id[i].color) for i in range(19))
    assert C.CITYSCAPES_RIDER_LABELID == next(lab.id for lab in cs_labels if lab.name == "rider")


def test_viper_palette_is_classes_csv():
    assert C.VIPER_PALETTE == tuple(VIPER_CLASSES_CSV[i] for i in range(32))
    # van and train share a colour, and neither is a benchmark class: an RGB label loses nothing
    assert C.VIPER_PALETTE[25] == C.VIPER_PALETTE[29]
    for class_set in C.CLASS_SETS:
        lut = C.label_lut("viper", class_set)
        assert lut[25] == lut[29] == C.IGNORE_INDEX


def test_known_and_unexpected_ids():
    assert C.known_ids("viper").tolist() == list(range(32))
    assert C.known_ids("cityscapes").tolist() == list(range(34))
    assert C.known_ids("synthia_seq").tolist() == list(range(16))
    raw = np.array([[0, 3, 40], [200, 3, 31]], np.uint8)
    assert C.unexpected_ids(raw, "viper").tolist() == [40, 200]


def test_unknown_names_are_errors_naming_them():
    with pytest.raises(KeyError, match="nope"):
        C.get_class_set("nope")
    with pytest.raises(KeyError, match="mars"):
        C.label_lut("mars", "viper15")
