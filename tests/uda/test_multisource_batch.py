"""ClassMix and the pixel contrast's memory bank on a batch mixing GTA5 and SYNTHIA frames (issue 15 item 3).

The batches come from the real multi-source loader on trees in the published layouts
(tests/data/multisource_fixtures.py); each pixel is traced back to its band by its red value.
"""
import itertools

import numpy as np
import pytest
import torch

from pipa_video.config import validate
from pipa_video.data.build import build_train_loaders
from pipa_video.data.classes import IGNORE_INDEX, annotated_class_ids, get_class_set
from pipa_video.uda.contrast.memory_bank import ClassMemoryBank
from pipa_video.uda.contrast.pixel import PixelContrastLoss, bank_entries
from pipa_video.uda.mix import class_mix
from tests.data.multisource_fixtures import RED, TRAIN_IDS, prepare_two_sources, red_values, two_source_data

CS19 = get_class_set("cityscapes19")
ANNOTATED = {0: set(annotated_class_ids("cityscapes", CS19)), 1: set(annotated_class_ids("synthia_rand", CS19))}


@pytest.fixture(scope="module")
def mixed_batches(tmp_path_factory):
    indexes = prepare_two_sources(tmp_path_factory.mktemp("ms"))
    cfg = validate(dict(class_set="cityscapes19", data=two_source_data(indexes), runtime=dict(seed=4, device="cpu")))
    source, _ = build_train_loaders(cfg, start_iter=0)
    out = [b for b in itertools.islice(source, 12) if set(b["meta"]["source"].tolist()) == {0, 1}]
    assert len(out) >= 2, "the loader should give batches holding both sources"
    return out


@pytest.mark.parametrize("classes", ["batch", "image"])
def test_classmix_pastes_only_what_each_frame_annotates(mixed_batches, classes):
    """Pasted pixels keep their own frame's label: a SYNTHIA frame never pastes truck, terrain or train, and
    its void band, when DAFormer's batch mode pastes 255, arrives as 255 (ignored), never as a class."""
    torch.manual_seed(0)
    for batch in mixed_batches:
        label = batch["label"][:, 0]
        b = label.shape[0]
        pseudo = torch.full_like(label, TRAIN_IDS["truck"])  # the target side may well hold trucks
        img = batch["img"][:, 0]
        mixed = class_mix(source_img=img, source_label=label, target_img=torch.zeros_like(img),
                          pseudo_label=pseudo, pseudo_weight=torch.ones(b, *label.shape[-2:]), classes=classes)
        for i, source in enumerate(batch["meta"]["source"].tolist()):
            pasted = mixed.label[i][mixed.mask[i]]
            assert torch.equal(pasted, label[i][mixed.mask[i]])
            assert set(pasted.unique().tolist()) <= ANNOTATED[source] | {IGNORE_INDEX}
            if source == 1:
                void = torch.from_numpy(red_values(batch["img"][i, 0].numpy()) == RED["syn_void"])
                assert (mixed.label[i][void & mixed.mask[i]] == IGNORE_INDEX).all()
                if classes == "image":
                    assert not (void & mixed.mask[i]).any()  # 255 is never a candidate of the image mode


def test_the_memory_bank_holds_a_class_only_from_sources_that_annotate_it(mixed_batches):
    """Teacher projections tagged with their source and band: after the mixed batches, the truck queue holds
    only GTA entries, road holds both sources, and no SYNTHIA void or lane-marking pixel was banked."""
    dim = 4
    bank = ClassMemoryBank(num_classes=CS19.num_classes, size=500, dim=dim)
    loss_fn = PixelContrastLoss(num_classes=CS19.num_classes, tau=0.1, anchors_per_class=64, hard_ratio=0.5, bank=bank)
    for batch in mixed_batches:
        label = batch["label"][:, 0]
        b, (h, w) = label.shape[0], (label.shape[-2] // 4, label.shape[-1] // 4)
        red = torch.from_numpy(np.stack([red_values(img.numpy()) for img in batch["img"][:, 0]]))[:, ::4, ::4]
        tags = torch.zeros(b, dim, h, w)
        tags[:, 0] = batch["meta"]["source"].float()[:, None, None] + 1  # 1 GTA, 2 SYNTHIA
        tags[:, 1] = red.float()  # the band
        features = torch.nn.functional.normalize(torch.randn(b, dim, h, w), dim=1).requires_grad_()
        loss, anchors = loss_fn.loss_and_anchors(features=features, labels=label,
                                                 student_pred=torch.zeros(b, h, w, dtype=torch.long))
        assert torch.isfinite(loss)
        bank.push(**bank_entries(tags, anchors))  # the step pushes after the loss, as here
    truck, road = bank.class_entries(TRAIN_IDS["truck"]), bank.class_entries(TRAIN_IDS["road"])
    assert len(truck) > 0 and set(truck[:, 0].tolist()) == {1.0}
    assert set(road[:, 0].tolist()) == {1.0, 2.0}
    banked_bands = set(torch.cat([bank.class_entries(c) for c in range(CS19.num_classes)])[:, 1].tolist())
    assert not banked_bands & {float(RED["syn_void"]), float(RED["syn_lane"])}
    for name in ("terrain", "train"):
        entries = bank.class_entries(CS19.names.index(name))
        assert set(entries[:, 0].tolist()) <= {1.0}  # GTA's only, if any
