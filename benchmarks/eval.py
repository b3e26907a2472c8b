"""Evaluation throughput: model inference + metric, the metric alone, and temporal consistency.

All at the DA-VSN setting: network input 1024x512, logits upsampled to 2048x1024 labels for the
metric; temporal consistency (two DIS flows, warping, counting) on 1024x512 predictions. Model
inference runs on the CPU and, when one is visible, on CUDA; the metric and temporal consistency
are NumPy/OpenCV and always run on the CPU. The model is ``build_segmentor`` with a MiT-B0 backbone
and a SegFormer head (random weights: speed does not depend on them) when pipa_video.models
provides it, else a small stand-in conv net; the output says which.

    python benchmarks/eval.py                           # ~1-2 minutes on 2 CPU cores
    python benchmarks/eval.py --frames 20 --out /tmp/eval.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

from pipa_video.config import validate
from pipa_video.data.classes import get_class_set
from pipa_video.atomic import atomic_write_text
from pipa_video.evaluation.inference import predict_labels
from pipa_video.evaluation.metrics import SegEvaluator
from pipa_video.evaluation.temporal import TemporalConsistency

CLASS_SET = "cityscapes19"
INPUT_HW = (512, 1024)  # network input (h, w)
LABEL_HW = (1024, 2048)  # labels the logits are upsampled to
TC_HW = (512, 1024)  # temporal consistency resolution
DEFAULT_OUT = Path(__file__).parent / "results" / "eval.json"


class StandInNet(nn.Module):
    """A small conv net with a 1/4-resolution output, for when pipa_video.models is not there."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(), nn.Conv2d(64, num_classes, 1))

    def inference(self, img: torch.Tensor) -> torch.Tensor:
        return self.net(img)


def build_model(num_classes: int, kind: str) -> tuple[nn.Module, str]:
    if kind == "auto":
        try:
            from pipa_video.models import build_segmentor

            cfg = validate(dict(model=dict(backbone=dict(type="mit_b0"), decode_head=dict(type="segformer"))))
            return build_segmentor(cfg["model"], num_classes=num_classes), "build_segmentor(mit_b0, segformer head)"
        except ImportError as err:
            print(f"pipa_video.models.build_segmentor unavailable ({err}); using the stand-in conv net")
    return StandInNet(num_classes), "stand-in conv net (4 convs, 1/4-resolution logits)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_eval(model: nn.Module, device: torch.device, *, frames: int, warmup: int, protocol: str,
               rng: np.random.Generator) -> dict:
    """Per-frame seconds of inference (+ upsampling + arg-max + copy to CPU) and of the metric."""
    cs = get_class_set(CLASS_SET)
    model = model.to(device).eval()
    img = torch.randn(1, 3, *INPUT_HW, device=device)
    label = rng.integers(0, cs.num_classes, (1, *LABEL_HW)).astype(np.uint8)
    evaluator = SegEvaluator(num_classes=cs.num_classes, eval_ids=cs.eval_ids, protocol=protocol)
    infer, metric = [], []
    with torch.inference_mode():
        for i in range(warmup + frames):
            _sync(device)
            t0 = time.perf_counter()
            pred = predict_labels(model.inference, img, out_size=LABEL_HW).cpu()
            t1 = time.perf_counter()
            evaluator.process(pred, label)
            t2 = time.perf_counter()
            if i >= warmup:
                infer.append(t1 - t0)
                metric.append(t2 - t1)
    return dict(infer_s=float(np.median(infer)), metric_s=float(np.median(metric)))


def textured_pair(rng: np.random.Generator, hw: tuple[int, int], shift: int = 6) -> tuple[np.ndarray, np.ndarray]:
    h, w = hw
    noise = cv2.GaussianBlur(rng.integers(0, 256, (h, w + shift)).astype(np.float32), (0, 0), 3.0)
    grey = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return (np.repeat(grey[:, shift:, None], 3, -1), np.repeat(grey[:, :-shift, None], 3, -1))


def bench_tc(*, frames: int, rng: np.random.Generator) -> dict:
    """Per-frame seconds of TemporalConsistency.process (two DIS flows, warp, counts) with labels."""
    cs = get_class_set(CLASS_SET)
    pair = textured_pair(rng, TC_HW)
    pred = rng.integers(0, cs.num_classes, TC_HW).astype(np.uint8)
    label = rng.integers(0, cs.num_classes, TC_HW).astype(np.uint8)
    tc = TemporalConsistency(num_classes=cs.num_classes)
    tc.process(pair[0], pred, label, sequence="bench", frame=0)
    times = []
    for i in range(1, frames + 1):
        t0 = time.perf_counter()
        tc.process(pair[i % 2], pred, label, sequence="bench", frame=i)
        times.append(time.perf_counter() - t0)
    return dict(tc_s=float(np.median(times)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=5, help="timed frames per CPU measurement")
    parser.add_argument("--gpu-frames", type=int, default=50, help="timed frames per CUDA measurement")
    parser.add_argument("--model", choices=("auto", "standin"), default="auto")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    cs = get_class_set(CLASS_SET)
    model, model_name = build_model(cs.num_classes, args.model)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        frames = args.frames if device.type == "cpu" else args.gpu_frames
        for protocol in ("davsn", "unified"):
            r = bench_eval(model, device, frames=frames, warmup=1 if device.type == "cpu" else 5,
                           protocol=protocol, rng=rng)
            total = r["infer_s"] + r["metric_s"]
            rows.append(dict(stage=f"eval ({protocol}): inference + metric", device=str(device),
                             infer_ms=1e3 * r["infer_s"], metric_ms=1e3 * r["metric_s"], total_ms=1e3 * total,
                             frames_per_s=1.0 / total))
    tc = bench_tc(frames=max(args.frames, 5), rng=rng)
    rows.append(dict(stage="temporal consistency (DIS x2 + warp)", device="cpu", infer_ms=float("nan"),
                     metric_ms=1e3 * tc["tc_s"], total_ms=1e3 * tc["tc_s"], frames_per_s=1.0 / tc["tc_s"]))

    table = pd.DataFrame(rows)
    print(f"model: {model_name}; input {INPUT_HW[1]}x{INPUT_HW[0]} -> labels {LABEL_HW[1]}x{LABEL_HW[0]}; "
          f"temporal consistency at {TC_HW[1]}x{TC_HW[0]}; medians over timed frames")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    result = dict(
        model=model_name, class_set=CLASS_SET, input_hw=INPUT_HW, label_hw=LABEL_HW, tc_hw=TC_HW,
        cpu_frames=args.frames, gpu_frames=args.gpu_frames, torch=torch.__version__, opencv=cv2.__version__,
        torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(), platform=platform.platform(),
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        rows=[{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()} for r in rows],
    )
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
