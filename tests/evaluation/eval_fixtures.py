"""Tiny stand-ins for the evaluation tests: an index of palette-coloured frames, a palette 'segmentor'.

Each frame's pixels are the palette colours of its label map, so a model that picks the nearest
palette colour is a perfect segmentor, and a model with two colours swapped has known errors.
"""
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipa_video.config import validate
from pipa_video.data.classes import get_class_set
from pipa_video.data.index import IndexMeta, write_index
from pipa_video.data.io import write_png
from pipa_video.engine.checkpoint import load_segmentor
from pipa_video.engine.checkpoint import save_checkpoint as engine_save

CLASS_SET = "viper15"
FRAME_HW = (24, 32)
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


class PaletteSegmentor(nn.Module):
    """Logits = minus the distance of each (de-normalised) pixel to each class colour."""

    def __init__(self, palette, *, swap: tuple[int, int] | None = None):
        super().__init__()
        palette = torch.tensor(palette, dtype=torch.float32)
        if swap is not None:
            palette[list(swap)] = palette[list(reversed(swap))]
        self.register_buffer("palette", palette, persistent=False)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.scale = nn.Parameter(torch.ones(()))  # something for the checkpoint to hold

    def inference(self, img):
        rgb = img * self.std + self.mean
        dist = ((rgb[:, None] - self.palette[None, :, :, None, None]) ** 2).sum(2)
        return -self.scale * dist

    forward = inference


def label_map(frame: int, hw=FRAME_HW, num_classes=9) -> np.ndarray:
    """Blocks of classes 0..num_classes-1 that move one pixel right per frame."""
    ys, xs = np.mgrid[0:hw[0], 0:hw[1]]
    return (((xs - frame) // 6 + ys // 8) % num_classes).astype(np.uint8)


def paint(label: np.ndarray, class_set=CLASS_SET) -> np.ndarray:
    return get_class_set(class_set).palette_array()[label]


def make_index(base: Path, *, sequences=("seq_a", "seq_b"), frames=4, labelled_every=1, frame_step=1) -> Path:
    cs = get_class_set(CLASS_SET)
    root, index_dir = base / "root", base / "index"
    rows = []
    for s, seq in enumerate(sequences):
        for f in range(0, frames * frame_step, frame_step):
            label = label_map(f + s)
            image = f"{seq}/{f:06d}.png"
            write_png(root / image, paint(label)[..., ::-1])  # write_png takes OpenCV's BGR order
            labelled = f % labelled_every == 0
            label_rel = f"labels/{seq}_{f:06d}.png" if labelled else ""
            if labelled:
                write_png(index_dir / label_rel, label)
            counts = np.bincount(label.ravel(), minlength=cs.num_classes)[: cs.num_classes] if labelled else \
                np.zeros(cs.num_classes, int)
            rows.append(dict(sequence=seq, frame=f, image=image, label=label_rel, labelled=labelled,
                             **dict(zip(cs.column_names(), counts.tolist()))))
    write_index(index_dir, pd.DataFrame(rows), IndexMeta(layout="frame_folder", root=str(root),
                                                         class_set=CLASS_SET, rider="person", split="val"))
    return index_dir


def make_cfg(index_dir=None, **evaluation):
    return validate(dict(
        class_set=CLASS_SET,
        data=dict(val=dict(index=str(index_dir) if index_dir else None), num_workers=0),
        model=dict(backbone=dict(type="mit_b0"), decode_head=dict(type="segformer")),
        evaluation=evaluation,
        runtime=dict(device="cpu"),
    ))


def save_checkpoint(path, model, cfg, **meta):
    meta = dict(dict(class_set=CLASS_SET, iteration=100), **meta)
    engine_save(dict(model=model.state_dict(), config=cfg.to_dict(), meta=meta), path)
    return str(path)


def restore(cfg, ckpt, *, swap=None):
    """The checkpoint's stand-in segmentor, read and checked by the engine as the CLI does."""
    return load_segmentor(cfg, ckpt, builder=palette_builder(swap))


def palette_builder(swap=None):
    def build(cfg, num_classes):
        cs = get_class_set(cfg["class_set"])
        assert num_classes == cs.num_classes
        return PaletteSegmentor(cs.palette, swap=swap)

    return build
