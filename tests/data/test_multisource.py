"""Multi-source training data (issue 15 item 3) on GTA5 + SYNTHIA-RAND-CITYSCAPES + Cityscapes trees written
in the published layouts and indexed by the real prepare tool (tests/data/multisource_fixtures.py)."""
import itertools

import numpy as np
import pytest
import torch

from pipa_video.config import validate
from pipa_video.data.build import build_multi_source, build_train_loaders
from pipa_video.data.classes import IGNORE_INDEX, annotated_class_ids, get_class_set
from pipa_video.data.index import DatasetError, load_index
from pipa_video.data.multisource import source_annotated_ids
from pipa_video.data.sampling import IterationSampler, MultiSourceSampler, RareClassSampler, SourceKeys
from tests.data.multisource_fixtures import RED, TRAIN_IDS, prepare_two_sources, red_values, two_source_data

CS19 = get_class_set("cityscapes19")
SYNTHIA_ABSENT = ("terrain", "truck", "train")


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    return prepare_two_sources(tmp_path_factory.mktemp("multisource"))


def config(indexes, *, class_set="cityscapes19", seed=1, **kwargs):
    return validate(dict(class_set=class_set, data=two_source_data(indexes, **kwargs),
                         runtime=dict(seed=seed, device="cpu")))


def batches(cfg, n, *, start_iter=0, **kwargs):
    source, _ = build_train_loaders(cfg, start_iter=start_iter, **kwargs)
    return list(itertools.islice(source, n))


# --- which classes a source annotates ---------------------------------------------------------------
def test_each_dataset_annotates_its_own_classes(indexes):
    synthia = annotated_class_ids("synthia_rand", CS19)
    assert len(synthia) == 16 and not {CS19.names.index(n) for n in SYNTHIA_ABSENT} & set(synthia)
    assert annotated_class_ids("cityscapes", CS19) == tuple(range(19))  # GTA5: Cityscapes labelIds
    assert CS19.names.index("rider") not in annotated_class_ids("cityscapes", CS19, rider="ignore")
    assert source_annotated_ids(load_index(indexes["synthia"]), CS19) == synthia
    assert source_annotated_ids(load_index(indexes["gta"]), CS19) == tuple(range(19))


def test_a_class_synthia_lacks_is_ignored_not_background(indexes):
    """SYNTHIA's void band (where a truck would be) and its lane markings become 255 in every SYNTHIA crop,
    never road (0) nor any class; GTA's truck band stays truck. Pixels are traced by their red value."""
    seen = {"gta": 0, "synthia": 0}
    for batch in batches(config(indexes), 12):
        for i, source in enumerate(batch["meta"]["source"].tolist()):
            red, label = red_values(batch["img"][i, 0].numpy()), batch["label"][i, 0].numpy()
            if source == 1:
                seen["synthia"] += 1
                assert (label[np.isin(red, [RED["syn_void"], RED["syn_lane"]])] == IGNORE_INDEX).all()
                assert (label[red == RED["syn_road"]] == TRAIN_IDS["road"]).all()
                assert not np.isin(label, [CS19.names.index(n) for n in SYNTHIA_ABSENT]).any()
            else:
                seen["gta"] += 1
                assert (label[red == RED["gta_truck"]] == TRAIN_IDS["truck"]).all()
    assert seen["gta"] > 0 and seen["synthia"] > 0, seen


def test_the_synthia_void_pixels_get_no_gradient(indexes):
    """The step's source cross-entropy on a mixed batch: zero gradient at SYNTHIA's void band (and any 255)."""
    from pipa_video.uda.hrda_loss import cross_entropy

    batch = batches(config(indexes), 4)[-1]
    label = batch["label"][:, 0]
    logits = torch.randn(label.shape[0], CS19.num_classes, *label.shape[-2:], requires_grad=True)
    cross_entropy(logits, label).backward()
    grad = logits.grad.abs().sum(1)
    assert (grad[label == IGNORE_INDEX] == 0).all() and (grad[label != IGNORE_INDEX] > 0).all()
    assert (label == IGNORE_INDEX).any()


def test_an_index_labelling_a_class_its_dataset_does_not_annotate_is_refused(tmp_path):
    indexes = prepare_two_sources(tmp_path, truck_frame=1)
    with pytest.raises(DatasetError, match=r"data\.sources\[1\]\.index = .*pixels of 'truck'.*does not annotate"):
        batches(config(indexes), 1)


def test_a_reported_class_no_source_annotates_is_refused(indexes):
    cfg = config(indexes)
    cfg.data.sources[0].index = indexes["synthia"]  # SYNTHIA twice: nobody annotates terrain, truck, train
    with pytest.raises(DatasetError, match=r"\['terrain', 'truck', 'train'\].*'cityscapes19_synthia16'"):
        batches(cfg, 1)
    cfg.class_set = "cityscapes19_synthia16"  # reports the 16 classes SYNTHIA annotates
    assert len(batches(cfg, 1)) == 1


def test_errors_name_the_entry(indexes, tmp_path):
    cfg = config(indexes)
    cfg.data.sources[1].index = str(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"data\.sources\[1\]\.index = .*nowhere.*no such directory"):
        batches(cfg, 1)


# --- sampling -------------------------------------------------------------------------------------------
def test_source_weights_are_respected_statistically():
    sampler = MultiSourceSampler(sources=[SourceKeys(5, 1.0), SourceKeys(7, 3.0)], batch_size=4, seed=3)
    drawn = np.array([item[0] for i in range(1000) for item in sampler.batch(i)])
    share = np.mean(drawn == 0)
    assert abs(share - 0.25) < 5 * np.sqrt(0.25 * 0.75 / len(drawn)), share
    assert sampler.probabilities.tolist() == [0.25, 0.75]


def test_each_source_walks_its_keys_without_repeats_within_an_epoch():
    sampler = MultiSourceSampler(sources=[SourceKeys(5, 1.0), SourceKeys(7, 1.0)], batch_size=2, seed=0,
                                 world_size=2, rank=1)
    for source, n in ((0, 5), (1, 7)):
        by_epoch: dict[int, list[int]] = {}
        for i in range(200):
            for slot, item in enumerate(sampler.batch(i)):
                if item[0] == source:
                    position = (i * 2 + 1) * 2 + slot
                    by_epoch.setdefault(position // n, []).append(item[1])
        assert all(len(keys) == len(set(keys)) for keys in by_epoch.values())
        assert set(itertools.chain(*by_epoch.values())) == set(range(n))


def test_one_source_gives_the_single_source_batches():
    counts = np.array([[5000, 0], [5000, 0], [0, 5000]])
    for rcs in (None, RareClassSampler(pixel_counts=counts, temperature=0.5, min_pixels=100)):
        single = IterationSampler(num_keys=3, batch_size=2, seed=7, rank=1, world_size=2, rcs=rcs)
        multi = MultiSourceSampler(sources=[SourceKeys(3, 2.0, rcs)], batch_size=2, seed=7, rank=1, world_size=2)
        for i in range(20):
            assert multi.batch(i) == [(0, *item) for item in single.batch(i)]


def test_iteration_sampler_draws_are_unchanged():
    """slot_seeds' first two children are the ones the single-source sampler always used (spawn(2))."""
    sampler = IterationSampler(num_keys=4, batch_size=2, seed=5, rank=0, world_size=1,
                               rcs=RareClassSampler(pixel_counts=np.eye(4) * 5000, temperature=1.0, min_pixels=1))
    for i in range(5):
        for slot, item in enumerate(sampler.batch(i)):
            pick, augment = np.random.SeedSequence([5, 0, i, 0, slot]).spawn(2)
            key, cls = sampler.rcs.draw(np.random.default_rng(pick))
            assert item == (key, int(augment.generate_state(1, np.uint64)[0] >> np.uint64(1)), cls)


def test_sampler_refuses_bad_weights():
    for weights in ([], [1.0, 0.0], [1.0, -1.0], [float("nan")]):
        with pytest.raises(ValueError, match="weight > 0"):
            MultiSourceSampler(sources=[SourceKeys(3, w) for w in weights], batch_size=1, seed=0)


def test_rare_class_sampling_across_sources(indexes):
    """Per source, then mixed by the weights: GTA draws its rare train frame, SYNTHIA its rare bicycle frame
    and never a class it does not annotate; the source shares stay the weights; the re-crop holds the class."""
    cfg = config(indexes, rcs=True, weights=(0.3, 0.7))
    dataset, sampler = build_multi_source(cfg, start_iter=0)
    gta, syn = (w.rcs for w in sampler.walkers)
    assert gta.probabilities[TRAIN_IDS["train"]] > 0.99 and syn.probabilities[TRAIN_IDS["bicycle"]] > 0.99
    assert all(syn.probabilities[CS19.names.index(n)] == 0 for n in SYNTHIA_ABSENT)
    items = [item for i in range(400) for item in sampler.batch(i)]
    share = np.mean([item[0] == 0 for item in items])
    assert abs(share - 0.3) < 5 * np.sqrt(0.21 / len(items)), share
    rare_frame = {0: 3, 1: 2}  # GTA frame 3 holds train, SYNTHIA frame 2 bicycle
    for source, key, seed, cls in items[:40]:
        table = dataset.datasets[source].key_frame_table()
        assert int(table["frame"].iat[key]) == rare_frame[source]
        sample = dataset[(source, key, seed, cls)]
        assert int((sample["label"][0] == cls).sum()) > 100 * 0.5  # min_pixels * min_crop_ratio


def test_the_multi_source_loader_resumes_exactly(indexes):
    cfg = config(indexes, rcs=True)
    straight = batches(cfg, 4)
    assert {s for b in straight for s in b["meta"]["source"].tolist()} == {0, 1}  # batches mix the sources
    resumed = batches(cfg, 1, start_iter=3)[0]
    for key in ("img", "label", "valid"):
        assert torch.equal(resumed[key], straight[3][key])
    assert resumed["meta"]["source"].tolist() == straight[3]["meta"]["source"].tolist()
    cfg.data.num_workers = 2
    with_workers = batches(cfg, 4)
    assert all(torch.equal(a["img"], b["img"]) for a, b in zip(straight, with_workers))
    other_rank = batches(config(indexes, rcs=True), 1, start_iter=3, rank=1, world_size=2)[0]
    assert not torch.equal(other_rank["img"], straight[3]["img"])


def test_a_one_entry_sources_list_trains_exactly_the_single_source(indexes):
    single = validate(dict(data=dict(two_source_data(indexes), sources=[]), runtime=dict(seed=2, device="cpu")))
    listed = validate(dict(data=dict(two_source_data(indexes), sources=[dict(weight=1.0)]),
                           runtime=dict(seed=2, device="cpu")))
    for a, b in zip(batches(single, 3), batches(listed, 3)):
        assert torch.equal(a["img"], b["img"]) and torch.equal(a["label"], b["label"])
        assert b["meta"]["source"].tolist() == [0, 0] and "source" not in a["meta"]


def test_rare_class_sampling_never_draws_a_class_the_source_does_not_annotate():
    counts = np.array([[5000, 10, 0], [5000, 0, 4000], [5000, 0, 0]])  # class 2 rare, but not annotated
    sampler = RareClassSampler(pixel_counts=counts, temperature=0.01, min_pixels=100, classes=[0, 1])
    assert sampler.probabilities[2] == 0 and sampler.probabilities[0] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    assert {sampler.draw(rng)[1] for _ in range(200)} == {0}  # class 1 has no frame with > 100 pixels
