import itertools
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from pipa_video.config import validate
from pipa_video.data import io
from pipa_video.data.build import build_clip_dataset, build_eval_dataset, build_train_loaders
from pipa_video.data.classes import get_class_set
from pipa_video.data.index import DatasetError, IndexMeta, write_index


def write_tiny_index(out: Path, class_set: str, *, frames=range(6), size=(40, 24), rare_frame=None) -> str:
    """One sequence of frames (red channel = frame number); every frame labelled with class 0 except
    ``rare_frame``, whose label is all class 1. Returns the index directory."""
    cs = get_class_set(class_set)
    rows = []
    for frame in frames:
        rgb = np.zeros((size[1], size[0], 3), np.uint8)
        rgb[..., 0] = frame
        io.write_png(out / f"img/{frame:03d}.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cls = 1 if frame == rare_frame else 0
        io.write_png(out / f"index/labels/{frame:03d}.png", np.full((size[1], size[0]), cls, np.uint8))
        counts = np.zeros(cs.num_classes, np.int64)
        counts[cls] = size[0] * size[1]
        rows.append(dict(sequence="s0", frame=frame, image=f"img/{frame:03d}.png", label=f"labels/{frame:03d}.png",
                         labelled=True, **dict(zip(cs.column_names(), counts))))
    write_index(out / "index", pd.DataFrame(rows), IndexMeta(layout="test", root=str(out), class_set=class_set))
    return str(out / "index")


def config(tmp_path, *, class_set="cityscapes19", index_class_set=None, target=True, **data):
    source = write_tiny_index(tmp_path / "src", index_class_set or class_set, rare_frame=4)
    cfg = dict(
        class_set=class_set,
        data=dict(
            source=dict(index=source, offsets=[-1], crop_size=(32, 32), ratio_range=(0.5, 2.0), flip_prob=0.5,
                        photometric=True),
            target=dict(index=write_tiny_index(tmp_path / "tgt", index_class_set or class_set) if target else None,
                        offsets=[-1], keys="all", resize=(20, 12)),
            val=dict(index=source),
            source_batch_size=2, target_batch_size=2, num_workers=0,  # ClassMix pairs them: equal
        ),
        evaluation=dict(resize=(64, 36)),  # network inputs are >= 32 pixels a side (config.MIN_INPUT_SIDE)
        runtime=dict(seed=1, device="cpu"),
    )
    for key, value in data.items():
        cfg["data"][key] = {**cfg["data"].get(key, {}), **value} if isinstance(value, dict) else value
    return validate(cfg)


def test_build_clip_dataset_applies_the_section(tmp_path):
    ds = build_clip_dataset(config(tmp_path), "source")
    assert len(ds) == 6 and ds.offsets == [-1] and ds.name == "test/train"
    sample = ds[(3, 0)]
    assert sample["img"].shape == (2, 3, 32, 32) and sample["label"].shape == (2, 32, 32)
    assert sample["has_label"].tolist() == [True, False]
    target = build_clip_dataset(config(tmp_path), "target")
    assert target[(0, 0)]["img"].shape == (2, 3, 12, 20)  # resize only


def test_unset_or_missing_index_names_the_key(tmp_path):
    cfg = config(tmp_path)
    cfg.data.val.index = None
    with pytest.raises(DatasetError, match=r"data\.val\.index is not set"):
        build_eval_dataset(cfg)
    cfg.data.test.index = str(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"data\.test\.index = .*nowhere.*no such directory"):
        build_clip_dataset(cfg, "test")
    with pytest.raises(ValueError, match="unknown data domain 'train'"):
        build_clip_dataset(cfg, "train")


def test_class_set_names_must_agree(tmp_path):
    ds = build_clip_dataset(config(tmp_path, class_set="cityscapes19_viper15", index_class_set="cityscapes19"),
                            "source")  # same 19 names, different evaluation subset: compatible
    assert len(ds) == 6
    with pytest.raises(DatasetError, match=r"'synthiaseq12'.*class_set is 'viper15'"):
        build_clip_dataset(config(tmp_path / "b", class_set="viper15", index_class_set="synthiaseq12"), "source")


def test_eval_dataset_resizes_images_not_labels(tmp_path):
    ds = build_eval_dataset(config(tmp_path), "val")
    sample = ds[5]
    assert ds.offsets == [] and len(ds) == 6
    assert sample["img"].shape == (1, 3, 36, 64) and sample["label"].shape == (1, 24, 40)
    assert bool((sample["label"] == 0).all())
    with pytest.raises(ValueError, match="evaluation split"):
        build_eval_dataset(config(tmp_path / "b"), "source")


def test_train_loaders_resume_exactly(tmp_path):
    cfg = config(tmp_path)
    source, target = build_train_loaders(cfg, start_iter=0)
    batches = [(next(source), next(target)) for _ in range(4)]
    src, tgt = batches[0]
    assert src["img"].shape == (2, 2, 3, 32, 32) and src["label"].shape == (2, 2, 32, 32)
    assert tgt["img"].shape == (2, 2, 3, 12, 20) and not tgt["has_label"][:, 1].any()
    resumed_source, resumed_target = build_train_loaders(cfg, start_iter=3)
    src3, tgt3 = next(resumed_source), next(resumed_target)
    assert torch.equal(src3["img"], batches[3][0]["img"]) and torch.equal(src3["label"], batches[3][0]["label"])
    assert torch.equal(tgt3["img"], batches[3][1]["img"])
    other_rank, _ = build_train_loaders(cfg, start_iter=3, rank=1, world_size=2)
    assert not torch.equal(next(other_rank)["img"], src3["img"])


def test_workers_give_the_same_batches(tmp_path):
    cfg = config(tmp_path, target=False)
    single, _ = build_train_loaders(cfg, start_iter=2)
    cfg.data.num_workers = 2
    workers, _ = build_train_loaders(cfg, start_iter=2)
    for a, b in itertools.islice(zip(single, workers), 3):
        assert torch.equal(a["img"], b["img"]) and a["meta"]["frames"][0].tolist() == b["meta"]["frames"][0].tolist()


def test_source_only_has_no_target(tmp_path):
    cfg = config(tmp_path)
    cfg.uda.method = "source_only"
    assert build_train_loaders(cfg, start_iter=0)[1] is None
    assert build_train_loaders(config(tmp_path / "b", target=False), start_iter=0)[1] is None


def test_rare_class_sampling_is_wired(tmp_path):
    cfg = config(tmp_path, target=False, source=dict(rcs=dict(enabled=True, min_pixels=100), crop_size=None,
                                                    ratio_range=None))
    source, _ = build_train_loaders(cfg, start_iter=0)
    key_frames = [f for batch in itertools.islice(source, 10) for f in batch["meta"]["frames"][0].tolist()]
    # frame 4 is the only one with class 1 (1/6 of the pixels): T=0.01 draws it almost always
    assert np.mean(np.array(key_frames) == 4) > 0.9
    cfg.data.source.rcs.min_pixels = 10**6
    with pytest.raises(DatasetError, match="min_pixels"):
        build_train_loaders(cfg, start_iter=0)


def test_worker_init_leaves_one_torch_and_one_opencv_thread():
    import pickle

    from pipa_video.data.build import worker_init

    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        torch.set_num_threads(2)
        worker_init(0)
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)
    assert pickle.loads(pickle.dumps(worker_init)) is worker_init  # spawned workers receive it pickled


def test_recipe_keys_reach_the_transforms(tmp_path):
    """frame_crop (DA-VSN's SYNTHIA-Seq rows), keep_ratio (mmseg Resize), HRDA's crop-aware pseudo margins
    and DAFormer's rare-class re-crop threshold (min_pixels * min_crop_ratio)."""
    cfg = config(tmp_path, source=dict(rcs=dict(enabled=True, min_pixels=100, min_crop_ratio=2.0), resize=(30, 30),
                                       keep_ratio=True, crop_size=None, ratio_range=None))
    cfg.data.target.update(frame_crop=(0, 4, 0, 0), resize=None, crop_size=(20, 40), pseudo_margins=(2, 0, 0, 0))
    target = build_clip_dataset(cfg, "target")[(0, 0)]
    assert target["img"].shape == (2, 3, 20, 40) and target["valid"].all()  # 24 - 4 rows, nothing padded
    assert not target["pseudo_valid"][:2].any() and target["pseudo_valid"][2:].all()
    source = build_clip_dataset(cfg, "source")
    assert source.class_crop_min_pixels == 200.0
    assert source[(0, 0)]["img"].shape == (2, 3, 18, 30)  # 40x24 fitted into 30x30 with the aspect kept
    assert build_clip_dataset(cfg, "target").class_crop_min_pixels == 0.0
    cfg.data.target.frame_crop = (0, 4, 0)
    with pytest.raises(ValueError, match=r"data\.target\.frame_crop"):
        build_clip_dataset(cfg, "target")


@pytest.mark.parametrize("cuda, device, workers", [(True, "auto", 2), (True, "cpu", 2), (False, "auto", 2),
                                                   (True, "auto", 0)])
def test_training_loader_pins_memory_for_cuda_and_prefetches_with_persistent_workers(tmp_path, monkeypatch, cuda,
                                                                                       device, workers):
    from pipa_video.data import build

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    cfg = config(tmp_path, target=False, num_workers=workers)
    cfg.runtime.device = device
    captured = {}
    monkeypatch.setattr(build, "DataLoader", lambda *args, **kwargs: captured.update(kwargs) or iter(()))
    build_train_loaders(cfg, start_iter=0)
    assert captured["pin_memory"] is (cuda and device != "cpu")
    assert captured["num_workers"] == workers and captured["persistent_workers"] is (workers > 0)
    assert captured["prefetch_factor"] == (build.PREFETCH_FACTOR if workers else None)
    assert captured["worker_init_fn"] is build.worker_init


def test_loaders_use_no_more_workers_than_usable_cpus():
    import os

    from pipa_video.data.build import usable_workers

    cpus = len(os.sched_getaffinity(0))
    assert usable_workers(0) == 0 and usable_workers(1) == 1
    assert usable_workers(cpus + 7) == cpus
