"""The synthetic benchmark: real layouts, decodable labels, determinism, motion, a real domain shift."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipa_video import synthetic as syn
from pipa_video.data.classes import IGNORE_INDEX, VIPER15, VIPER_PALETTE, Rider, label_lut
from pipa_video.data.index import DatasetError
from pipa_video.data.sources import get_layout, layouts

# Small but not degenerate: big enough that every benchmark class shows up and the colour
# statistics below are stable; generates in a few seconds on one core.
SPEC = syn.SyntheticSpec(width=128, height=64, source_train_sequences=3, source_val_sequences=2,
                         source_frames=12, target_train_snippets=3, target_val_snippets=2,
                         target_test_snippets=2)
TINY = syn.SyntheticSpec(width=64, height=32, source_train_sequences=1, source_val_sequences=1,
                         source_frames=4, target_train_snippets=1, target_val_snippets=1,
                         target_test_snippets=1)
VIPER_LUT = label_lut("viper", VIPER15)
CS_LUT = label_lut("cityscapes", VIPER15)
VIPER_FILE = re.compile(r"^(?P<seq>\d{3})_(?P<frame>\d{5})\.(?P<ext>jpg|png)$")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return syn.make_synthetic(tmp_path_factory.mktemp("synthetic"), seed=0, spec=SPEC, workers=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A minimal generation (seed 3); tests that modify it work on a copy."""
    return syn.make_synthetic(tmp_path_factory.mktemp("tiny") / "bench", seed=3, spec=TINY, workers=1)


# --- readers for the tests -------------------------------------------------------------------------
def source_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    labels = sorted((root / syn.SOURCE_DIR / split / layouts.VIPER_CLS_DIR).rglob("*.png"))
    return [(Path(str(p).replace(f"/{layouts.VIPER_CLS_DIR}/", f"/{layouts.VIPER_IMG_DIR}/")).with_suffix(".jpg"), p)
            for p in labels]


def target_pairs(root: Path, splits: tuple[str, ...]) -> list[tuple[Path, Path]]:
    pairs = []
    for split in splits:
        for label in sorted((root / syn.TARGET_DIR / layouts.CS_GT_DIR / split).rglob("*" + layouts.CS_LABEL_SUFFIX)):
            city, seq, frame = parse_cs(label.name, layouts.CS_LABEL_SUFFIX)
            pairs.append((root / syn.TARGET_DIR / layouts.cityscapes_seq_image(split, city, seq, frame), label))
    return pairs


def parse_cs(name: str, suffix: str) -> tuple[str, int, int]:
    match = layouts.CS_NAME_RE.match(name)
    assert match is not None and "_" + match["suffix"] == suffix, name
    return match["city"], int(match["seq"]), int(match["frame"])


def viper_ids(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "P", f"{path}: VIPER labels are palette PNGs, got {img.mode}"
        return np.array(img)


def labelids(path: Path) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2 and raw.dtype == np.uint8, path
    return raw


def rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


def load(pairs, decode, lut) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) float pixels and (N,) train ids of every labelled frame in ``pairs``."""
    images = [rgb(image).reshape(-1, 3) for image, _ in pairs]
    labels = [lut[decode(label)].reshape(-1) for _, label in pairs]
    return np.concatenate(images).astype(np.float64), np.concatenate(labels)


# --- layout ----------------------------------------------------------------------------------------------
def test_source_follows_the_viper_layout(bench):
    source = bench / syn.SOURCE_DIR
    for split in syn.SOURCE_SPLITS:
        images = sorted((source / split / layouts.VIPER_IMG_DIR).rglob("*.*"))
        assert len(images) == SPEC.source_sequences(split) * SPEC.source_frames
        for path in images:
            m = VIPER_FILE.match(path.name)
            assert m, path
            seq, frame = int(m["seq"]), int(m["frame"])
            assert path.relative_to(source).as_posix() == layouts.viper_image(split, seq, frame, m["ext"])
            # every frame is labelled with the default label step of 1
            assert (source / layouts.viper_label(split, seq, frame)).is_file()
        labels = list((source / split / layouts.VIPER_CLS_DIR).rglob("*.png"))
        assert len(labels) == len(images)


def test_target_follows_the_cityscapes_seq_layout(bench):
    target = bench / syn.TARGET_DIR
    for split in syn.TARGET_SPLITS:
        anchors = [parse_cs(p.name, layouts.CS_LABEL_SUFFIX)
                   for p in (target / layouts.CS_GT_DIR / split).rglob("*" + layouts.CS_LABEL_SUFFIX)]
        assert len(anchors) == SPEC.target_snippets(split)
        expected = set()
        for city, seq, anchor in anchors:
            assert city in {c for c, _ in syn.TARGET_CITIES[split]}
            label = target / layouts.cityscapes_label(split, city, seq, anchor)
            assert label.is_file()
            window = range(anchor - layouts.CS_SEQ_BEFORE, anchor + layouts.CS_SEQ_AFTER + 1)
            assert len(window) == 30
            expected |= {layouts.cityscapes_seq_image(split, city, seq, f) for f in window}
        images = {p.relative_to(target).as_posix()
                  for p in (target / layouts.CS_SEQ_IMG_DIR / split).rglob("*" + layouts.CS_IMG_SUFFIX)}
        assert images == expected  # exactly the 30-frame snippets, nothing else


def test_annotated_frames_are_not_all_000019(bench):
    anchors = [parse_cs(p.name, layouts.CS_LABEL_SUFFIX)
               for p in (bench / syn.TARGET_DIR / layouts.CS_GT_DIR).rglob("*" + layouts.CS_LABEL_SUFFIX)]
    frames = [frame for _, _, frame in anchors]
    assert 19 in frames
    assert any(f != 19 for f in frames)
    # like frankfurt_000000_000294 / _000576: several annotated snippets may share a sequence
    per_sequence: dict[tuple[str, int], list[int]] = {}
    for city, seq, frame in anchors:
        per_sequence.setdefault((city, seq), []).append(frame)
    for frames_of_seq in per_sequence.values():  # their snippets never overlap
        frames_of_seq.sort()
        assert all(b - a >= 30 for a, b in zip(frames_of_seq, frames_of_seq[1:]))


def test_the_layout_readers_find_every_frame(bench):
    viper = get_layout("viper").scan(bench / syn.SOURCE_DIR, split="train", label_step=1)
    assert len(viper) == SPEC.source_train_sequences * SPEC.source_frames
    assert (viper["raw_label"] != "").all()
    for split in syn.TARGET_SPLITS:
        frames = get_layout("cityscapes_seq").scan(bench / syn.TARGET_DIR, split=split)
        assert len(frames) == 30 * SPEC.target_snippets(split)
        assert (frames["raw_label"] != "").sum() == SPEC.target_snippets(split)


# --- labels --------------------------------------------------------------------------------------------------
def test_scene_classes_map_to_the_same_benchmark_class_in_both_id_spaces():
    for cls in syn.SceneClass:
        assert VIPER_LUT[syn.VIPER_IDS[cls]] == CS_LUT[syn.CITYSCAPES_LABELIDS[cls]], cls
    in_benchmark = {VIPER15.names[VIPER_LUT[syn.VIPER_IDS[c]]] for c in syn.SceneClass
                    if VIPER_LUT[syn.VIPER_IDS[c]] != IGNORE_INDEX}
    assert in_benchmark == set(VIPER15.names)  # every one of the 15 classes is drawn
    # poles and the ego vehicle are drawn but ignored, as in the real benchmark
    ignored = {c for c in syn.SceneClass if VIPER_LUT[syn.VIPER_IDS[c]] == IGNORE_INDEX}
    assert ignored == {syn.SceneClass.POLE, syn.SceneClass.EGO_VEHICLE}
    # riders are VIPER persons but Cityscapes riders: merged (DA-VSN) or dropped (unified baseline)
    rider = syn.CITYSCAPES_LABELIDS[syn.SceneClass.RIDER]
    assert VIPER15.names[CS_LUT[rider]] == "person"
    assert label_lut("cityscapes", VIPER15, rider=Rider.IGNORE)[rider] == IGNORE_INDEX


def test_labels_decode_to_the_intended_classes(bench):
    pairs = source_pairs(bench, "train")
    with Image.open(pairs[0][1]) as img:
        assert img.getpalette()[: 3 * len(VIPER_PALETTE)] == [c for rgb_ in VIPER_PALETTE for c in rgb_]
    src_raw = np.stack([viper_ids(label) for _, label in pairs])
    tgt_raw = np.stack([labelids(label) for _, label in target_pairs(bench, syn.TARGET_SPLITS)])
    assert set(np.unique(src_raw)) <= set(syn.VIPER_IDS.values())
    assert set(np.unique(tgt_raw)) <= set(syn.CITYSCAPES_LABELIDS.values())
    assert 1 in np.unique(tgt_raw)  # the target camera's bonnet (ego vehicle), ignored
    for raw, lut in ((src_raw, VIPER_LUT), (tgt_raw, CS_LUT)):
        train = lut[raw]
        present = {VIPER15.names[i] for i in np.unique(train) if i != IGNORE_INDEX}
        assert {"road", "sidewalk", "building", "sky", "car", "person", "vegetation", "traffic sign"} <= present
        # Layout: the sky is above the road, as the ids say it should be.
        rows = np.arange(raw.shape[1])[None, :, None]
        sky_row = np.broadcast_to(rows, train.shape)[train == VIPER15.names.index("sky")].mean()
        road_row = np.broadcast_to(rows, train.shape)[train == VIPER15.names.index("road")].mean()
        assert sky_row < raw.shape[1] * 0.4 < raw.shape[1] * 0.6 < road_row


# --- determinism and motion -----------------------------------------------------------------------------------
def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files_and_another_seed_differs(tiny, tmp_path):
    a = tree_bytes(tiny)
    b = tree_bytes(syn.make_synthetic(tmp_path / "b", seed=3, spec=TINY, workers=2))  # order-independent
    c = tree_bytes(syn.make_synthetic(tmp_path / "c", seed=4, spec=TINY, workers=1))
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    shared = [k for k in a if k in c and k != syn.INFO_FILE]
    differing = [k for k in shared if a[k] != c[k]]
    assert len(differing) > 0.9 * len(shared)


def test_objects_and_camera_move_between_frames(bench):
    pairs = source_pairs(bench, "train")
    by_seq: dict[str, list[np.ndarray]] = {}
    for _, label in pairs:
        by_seq.setdefault(label.parent.name, []).append(VIPER_LUT[viper_ids(label)])
    car = VIPER15.names.index("car")
    person = VIPER15.names.index("person")
    agreements, movers_moved = [], []
    for frames in by_seq.values():
        for prev, cur in zip(frames, frames[1:]):
            agreements.append((prev == cur).mean())
            movers_moved.append(((prev == car) != (cur == car)).any() or ((prev == person) != (cur == person)).any())
    agreements = np.array(agreements)
    assert agreements.max() < 0.995  # consecutive frames differ ...
    assert agreements.min() > 0.6  # ... but mostly overlap
    assert np.mean(movers_moved) > 0.9
    # Target frames of a snippet differ too (no labels there: compare pixels).
    image, _ = target_pairs(bench, ("train",))[0]
    city, seq, frame = parse_cs(image.name, layouts.CS_IMG_SUFFIX)
    after = image.with_name(layouts.cityscapes_stem(city, seq, frame + 1) + layouts.CS_IMG_SUFFIX)
    diff = np.abs(rgb(image).astype(int) - rgb(after).astype(int)).mean()
    assert 1.0 < diff < 40.0


# --- the domain shift -------------------------------------------------------------------------------------------
class GaussianPixelClassifier:
    """Per-class RGB Gaussian with class priors: the simplest model that uses colour only."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> GaussianPixelClassifier:
        self.classes, self.params = [], []
        for c in np.unique(y[y != IGNORE_INDEX]):
            pts = x[y == c]
            if len(pts) < 20:
                continue
            cov = np.cov(pts.T) + np.eye(3) * 4.0
            self.classes.append(c)
            self.params.append((pts.mean(0), np.linalg.inv(cov),
                                np.linalg.slogdet(cov)[1] - 2 * np.log(len(pts) / len(y))))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        score = np.stack([-np.einsum("ni,ij,nj->n", x - mu, prec, x - mu) - bias
                          for mu, prec, bias in self.params], 1)
        return np.asarray(self.classes)[score.argmax(1)]


def miou(pred: np.ndarray, gt: np.ndarray) -> float:
    valid = gt != IGNORE_INDEX
    n = VIPER15.num_classes
    cm = np.bincount(gt[valid].astype(int) * n + pred[valid], minlength=n * n).reshape(n, n)
    inter, present = np.diag(cm), cm.sum(1) > 0  # classes of the ground truth
    return float((inter[present] / (cm.sum(0) + cm.sum(1) - inter)[present]).mean())


def test_the_domain_shift_is_real_and_the_target_learnable(bench):
    src_train = load(source_pairs(bench, "train"), viper_ids, VIPER_LUT)
    src_val = load(source_pairs(bench, "val"), viper_ids, VIPER_LUT)
    tgt_train = load(target_pairs(bench, ("train",)), labelids, CS_LUT)
    tgt_eval = load(target_pairs(bench, ("val", "test")), labelids, CS_LUT)
    on_source = GaussianPixelClassifier().fit(*src_train)
    on_target = GaussianPixelClassifier().fit(*tgt_train)
    src_to_src = miou(on_source.predict(src_val[0]), src_val[1])
    src_to_tgt = miou(on_source.predict(tgt_eval[0]), tgt_eval[1])
    tgt_to_tgt = miou(on_target.predict(tgt_eval[0]), tgt_eval[1])
    print(f"colour classifier mIoU: source->source {src_to_src:.3f}, source->target {src_to_tgt:.3f}, "
          f"target->target {tgt_to_tgt:.3f}")
    assert src_to_src > 0.3
    assert src_to_tgt < src_to_src - 0.15  # a source model loses much of its accuracy on the target
    assert tgt_to_tgt > src_to_tgt + 0.15  # while the target itself stays separable


# --- completeness, regeneration, spec ---------------------------------------------------------------------
def test_is_complete_tracks_interruptions_and_missing_files(tiny, tmp_path):
    root = Path(shutil.copytree(tiny, tmp_path / "bench"))
    assert syn.is_complete(root, seed=3, spec=TINY)
    assert not syn.is_complete(root, seed=1)
    assert not syn.is_complete(root, spec=syn.SyntheticSpec())
    assert not (root / syn.IN_PROGRESS_FILE).exists()
    assert oct((root / syn.INFO_FILE).stat().st_mode & 0o777) != oct(0o600)  # readable by others

    some_frame = next((root / syn.TARGET_DIR).rglob("*" + layouts.CS_IMG_SUFFIX))
    some_frame.unlink()
    assert not syn.is_complete(root)
    (root / syn.IN_PROGRESS_FILE).write_text("interrupted")
    assert not syn.is_complete(root)

    syn.ensure_synthetic(root, seed=3, spec=TINY, workers=1)  # regenerates
    assert syn.is_complete(root, seed=3, spec=TINY) and some_frame.is_file()
    stamp = (root / syn.INFO_FILE).stat().st_mtime_ns
    syn.ensure_synthetic(root, seed=3, spec=TINY, workers=1)  # complete: left alone
    assert (root / syn.INFO_FILE).stat().st_mtime_ns == stamp


def test_regeneration_replaces_an_earlier_benchmark_but_never_foreign_data(tiny, tmp_path):
    root = Path(shutil.copytree(tiny, tmp_path / "bench"))
    # a frame of an earlier, bigger generation (or of an interrupted one) must not survive
    stale = root / syn.SOURCE_DIR / layouts.viper_image("train", 9, 0)
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    syn.make_synthetic(root, seed=3, spec=TINY, workers=1)
    assert syn.is_complete(root, seed=3, spec=TINY)
    assert not stale.exists()

    foreign = tmp_path / "foreign"
    (foreign / syn.SOURCE_DIR).mkdir(parents=True)
    (foreign / syn.SOURCE_DIR / "precious.txt").write_text("not ours")
    with pytest.raises(DatasetError, match="not a synthetic benchmark root"):
        syn.make_synthetic(foreign, seed=0, spec=TINY, workers=1)
    assert (foreign / syn.SOURCE_DIR / "precious.txt").is_file()


def test_spec_validation_and_scaling(tmp_path):
    with pytest.raises(ValueError, match="frame size"):
        syn.SyntheticSpec(width=8, height=4)
    with pytest.raises(ValueError, match="target_val_snippets"):
        syn.SyntheticSpec(target_val_snippets=0)
    with pytest.raises(ValueError, match="source_ext"):
        syn.SyntheticSpec(source_ext="bmp")
    small = syn.SyntheticSpec(target_val_snippets=24).scaled(0.1)
    assert small.source_train_sequences == 1 and small.target_val_snippets == 2
    assert small.width == syn.SyntheticSpec().width
    with pytest.raises(ValueError, match="seed"):
        syn.make_synthetic(tmp_path / "never", seed=-1, spec=TINY)
    assert not (tmp_path / "never").exists()
