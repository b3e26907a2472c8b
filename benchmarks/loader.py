"""Training-loader throughput: pipa-video's clip loader against a plain per-frame PIL pipeline.

Writes a small tree of realistic-size frames into a temporary directory (never committed):
VIPER-like 1920x1080 JPGs trained at 1280x720 and Cityscapes-like 2048x1024 PNGs trained at 1024x512,
both as T=2 clips (offsets [-1]) with 512x512 crops, random rescale (0.5, 2.0), flip and (ours only)
photometric jitter. Both pipelines decode both frames and the key frame's label, and produce the
same tensors: img (B, T, 3, 512, 512) normalised float32, label (B, T, 512, 512) int64.

The baseline is what a plain PyTorch loader does per frame: PIL open, resize to the drawn scale,
crop (zero/255 padding), flip, torchvision to_tensor + normalize. It does no photometric jitter, so
the comparison is conservative. Both run through a DataLoader with the same worker counts.

For the Cityscapes-like PNGs a third pipeline reads the frame cache of the prepare tools
(``--cache-size 1024x512``: frames and labels stored at the training size, ``data/frame_cache.py``),
built in the same run from the same frames; the baseline keeps reading the original PNGs. The
pipelines of one dataset and worker count are timed one after the other in one process, and the
per-worker CPU time per clip (``CPUTimed``) is the column that other load on the machine does not move.

    python benchmarks/loader.py                       # default: ~1-2 minutes on 2 cores
    python benchmarks/loader.py --clips 96 --workers 0 2 4 --out /tmp/loader.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from pipa_video.atomic import atomic_write_text
from pipa_video.config import validate
from pipa_video.data import io
from pipa_video.data.build import build_clip_dataset
from pipa_video.data.classes import get_class_set
from pipa_video.data.frame_cache import cache_frames
from pipa_video.data.index import IndexMeta, load_index, write_index
from pipa_video.data.sampling import IterationSampler

CLASS_SET = "cityscapes19"
CROP = (512, 512)  # (h, w)
RATIO_RANGE = (0.5, 2.0)
FLIP_PROB = 0.5
OFFSETS = [-1]
OURS, CACHED, BASELINE = "pipa-video (cv2, one warp)", "pipa-video, frame cache", "PIL per frame"
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class FakeDataset:
    name: str
    source_size: tuple[int, int]  # (w, h) of the files
    train_size: tuple[int, int]  # (w, h) every frame is resized to before the random rescale
    ext: str


DATASETS = (
    FakeDataset("viper-like jpg", (1920, 1080), (1280, 720), "jpg"),
    FakeDataset("cityscapes-like png", (2048, 1024), (1024, 512), "png"),
)


def fake_frame(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Smooth colour field plus mild noise: compresses like a real street photo (~1 MB JPG)."""
    w, h = size
    coarse = rng.integers(0, 256, (h // 32, w // 32, 3), dtype=np.uint8)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return np.clip(smooth + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)


def fake_label(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    blocks = rng.integers(0, 19, (h // 64, w // 64), dtype=np.uint8)
    return cv2.resize(blocks, (w, h), interpolation=cv2.INTER_NEAREST)


def write_fake_dataset(root: Path, spec: FakeDataset, num_frames: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    cs = get_class_set(CLASS_SET)
    rows = []
    for frame in range(num_frames):
        image = f"img/{frame:05d}.{spec.ext}"
        (root / image).parent.mkdir(parents=True, exist_ok=True)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if spec.ext == "jpg" else []
        cv2.imwrite(str(root / image), fake_frame(rng, spec.source_size), params)
        label_array = fake_label(rng, spec.source_size)
        label = f"labels/{frame:05d}.png"
        io.write_png(root / "index" / label, label_array)
        counts = np.bincount(label_array.ravel(), minlength=256)[: cs.num_classes]
        rows.append(dict(sequence="seq0", frame=frame, image=image, label=label, labelled=True,
                         **dict(zip(cs.column_names(), counts))))
    write_index(root / "index", pd.DataFrame(rows), IndexMeta(layout="benchmark", root=str(root), class_set=CLASS_SET))
    return root / "index"


def cached_index(index_dir: Path, spec: FakeDataset, out_dir: Path) -> Path:
    """The frame cache of ``index_dir`` at the training size, as ``prepare --cache-size`` writes it."""
    plain = load_index(index_dir)
    table, meta = cache_frames(plain.frames, plain.meta, out_dir=out_dir, size=spec.train_size, quiet=True,
                               label_root=plain.index_dir)
    return write_index(out_dir, table, meta).parent


def ours(index_dir: Path, spec: FakeDataset) -> Dataset:
    """The training ClipDataset, built from a config exactly as training builds it."""
    cfg = validate(dict(class_set=CLASS_SET, data=dict(source=dict(
        index=str(index_dir), offsets=OFFSETS, resize=spec.train_size, ratio_range=RATIO_RANGE,
        crop_size=CROP, flip_prob=FLIP_PROB, photometric=True))))
    return build_clip_dataset(cfg, "source")


class PILBaseline(Dataset):
    """A plain per-frame PIL + torchvision pipeline producing the same tensors (no jitter)."""

    def __init__(self, index_dir: Path, spec: FakeDataset) -> None:
        self.index = load_index(index_dir)
        self.spec = spec

    def __len__(self) -> int:
        return len(self.index.frames)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        import torchvision.transforms.functional as TF

        key, seed = item
        rng = np.random.default_rng(seed)
        ratio = rng.uniform(*RATIO_RANGE)
        size = (int(self.spec.train_size[0] * ratio + 0.5), int(self.spec.train_size[1] * ratio + 0.5))
        y0 = int(rng.integers(0, max(size[1] - CROP[0], 0) + 1))
        x0 = int(rng.integers(0, max(size[0] - CROP[1], 0) + 1))
        flip = rng.random() < FLIP_PROB
        box = (x0, y0, x0 + CROP[1], y0 + CROP[0])  # PIL pads outside the image with 0
        images = []
        for row in [key] + [max(key + o, 0) for o in OFFSETS]:
            img = Image.open(self.index.image_path(row)).convert("RGB").resize(size, Image.BILINEAR).crop(box)
            if flip:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            images.append(TF.normalize(TF.to_tensor(img), [m / 255 for m in MEAN], [s / 255 for s in STD]))
        label = np.asarray(Image.open(self.index.label_path(key)).resize(size, Image.NEAREST))
        crop = np.full(CROP, 255, np.uint8)
        region = label[y0:y0 + CROP[0], x0:x0 + CROP[1]]
        crop[: region.shape[0], : region.shape[1]] = region
        if flip:
            crop = crop[:, ::-1]
        labels = torch.full((1 + len(OFFSETS), *CROP), 255, dtype=torch.int64)
        labels[0] = torch.from_numpy(crop.copy())
        return {"img": torch.stack(images), "label": labels}


class CPUTimed(Dataset):
    """Adds ``cpu_s``: the CPU seconds the sample cost in the process that built it (a worker or the
    main process). Unlike wall time, this per-worker cost does not change when other processes
    compete for the cores."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        start = time.process_time()
        sample = self.dataset[item]
        sample["cpu_s"] = torch.tensor(time.process_time() - start, dtype=torch.float64)
        return sample


def measure(dataset: Dataset, *, workers: int, batches: int, batch_size: int, warmup: int) -> tuple[float, float]:
    """(wall seconds, summed per-sample CPU seconds) of ``batches`` batches after ``warmup`` batches
    (worker start-up excluded)."""
    sampler = IterationSampler(num_keys=len(dataset), batch_size=batch_size, seed=0)
    loader = DataLoader(CPUTimed(dataset), batch_sampler=sampler, num_workers=workers,
                        persistent_workers=workers > 0)
    it = iter(loader)
    for _ in range(warmup):
        batch = next(it)
    assert batch["img"].shape[-2:] == CROP and batch["img"].dtype == torch.float32
    cpu = 0.0
    start = time.perf_counter()
    for _ in range(batches):
        cpu += float(next(it)["cpu_s"].sum())
    elapsed = time.perf_counter() - start
    del it, loader
    return elapsed, cpu


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=6, help="frames written per fake dataset")
    parser.add_argument("--clips", type=int, default=24, help="clips timed per measurement")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--out", default="benchmarks/results/loader.json")
    args = parser.parse_args(argv)
    batches = max(1, args.clips // args.batch_size)

    load_before = os.getloadavg()[0]  # other processes on the cores inflate wall time, not CPU ms/clip
    results = []
    with tempfile.TemporaryDirectory(prefix="pipa_loader_bench_") as tmp:
        for d, spec in enumerate(DATASETS):
            index_dir = write_fake_dataset(Path(tmp) / f"d{d}", spec, args.frames, seed=d)
            pipelines = {OURS: ours(index_dir, spec), BASELINE: PILBaseline(index_dir, spec)}
            if spec.ext == "png":
                pipelines[CACHED] = ours(cached_index(index_dir, spec, Path(tmp) / f"d{d}_cache"), spec)
            for workers in args.workers:
                for pipeline, dataset in pipelines.items():
                    seconds, cpu = measure(dataset, workers=workers, batches=batches, batch_size=args.batch_size,
                                           warmup=max(1, workers))
                    clips = batches * args.batch_size
                    results.append(dict(dataset=spec.name, pipeline=pipeline, workers=workers, clips=clips,
                                        seconds=round(seconds, 3), clips_per_s=round(clips / seconds, 2),
                                        ms_per_clip=round(1000 * seconds / clips, 1),
                                        cpu_ms_per_clip=round(1000 * cpu / clips, 1)))
                    print(f"  {spec.name:20s} {pipeline:31s} workers={workers}: {clips / seconds:6.2f} clips/s, "
                          f"{1000 * cpu / clips:6.1f} CPU ms/clip", flush=True)

    speedups = {}  # per dataset, pipeline and worker count: wall-clock and per-worker CPU speed-up over PIL
    for r in results:
        if r["pipeline"] != BASELINE:
            base = next(o for o in results if o["dataset"] == r["dataset"] and o["workers"] == r["workers"]
                        and o["pipeline"] == BASELINE)
            speedups.setdefault(r["dataset"], {}).setdefault(r["pipeline"], {})[str(r["workers"])] = dict(
                wall=round(r["clips_per_s"] / base["clips_per_s"], 2),
                cpu=round(base["cpu_ms_per_clip"] / r["cpu_ms_per_clip"], 2))
    report = dict(
        benchmark="training loader throughput (T=2 clips, 512x512 crops, rescale 0.5-2.0, flip)",
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(), python=platform.python_version(),
                     torch=torch.__version__, opencv=cv2.__version__, pillow=Image.__version__,
                     load_average_before_after=[round(load_before, 2), round(os.getloadavg()[0], 2)]),
        settings=dict(frames=args.frames, clips=batches * args.batch_size, batch_size=args.batch_size,
                      crop=CROP, ratio_range=RATIO_RANGE, offsets=OFFSETS),
        results=results, speedup=speedups,
    )
    print_table(results, speedups)
    atomic_write_text(args.out, json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return report


def print_table(results: list[dict], speedups: dict) -> None:
    header = (f"| {'dataset':20s} | {'pipeline':31s} | workers | clips/s | ms/clip | CPU ms/clip "
              f"| speed-up (wall) | speed-up (CPU/worker) |")
    print("\n" + header + "\n|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in results:
        wall = cpu = ""
        if r["pipeline"] != BASELINE:
            ratio = speedups[r["dataset"]][r["pipeline"]][str(r["workers"])]
            wall, cpu = f"{ratio['wall']:.2f}x", f"{ratio['cpu']:.2f}x"
        print(f"| {r['dataset']:20s} | {r['pipeline']:31s} | {r['workers']:7d} | {r['clips_per_s']:7.2f} "
              f"| {r['ms_per_clip']:7.1f} | {r['cpu_ms_per_clip']:11.1f} | {wall:>15s} | {cpu:>21s} |")


if __name__ == "__main__":
    main()
