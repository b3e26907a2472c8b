"""Time and memory of one self-training step, split into its parts.

Parts: teacher forward (pseudo-labels), student forward/backward on source, mixing (ClassMix +
strong augmentation), student forward/backward on the mixed image, optimiser step, EMA update.
Each part is timed on its own with the device synchronised around it; the whole step is timed as
the engine runs it. Models: MiT-B0 on the CPU; MiT-B5 at 512x512 on a GPU when one is present.

    python benchmarks/train_step.py                      # CPU: MiT-B0, 512x512, batch 2+2
    python benchmarks/train_step.py --crop 256 --iters 3 # quicker
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, markdown_table, peak_mib, reset_peak, time_call, write_report  # noqa: E402

from pipa_video.config import validate  # noqa: E402
from pipa_video.data.classes import get_class_set  # noqa: E402
from pipa_video.engine.optim import build_optimizer  # noqa: E402
from pipa_video.engine.performance import compile_segmentors  # noqa: E402
from pipa_video.uda.build import build_method  # noqa: E402
from pipa_video.uda.mix import class_mix, strong_augment  # noqa: E402
from pipa_video.uda.pseudo import make_pseudo_labels  # noqa: E402

NUM_CLASSES = 19
PARTS = ("teacher forward", "student fwd/bwd source", "mixing", "student fwd/bwd mixed", "optimiser", "EMA update")


def make_config(backbone: str, **uda) -> dict:
    return validate({"class_set": "cityscapes19",
                     "model": {"backbone": {"type": backbone, "pretrained": None}, "decode_head": {"type": "daformer"}},
                     "uda": {"method": "self_training", **uda}})


def make_batch(*, batch: int, frames: int, crop: int, device: torch.device, seed: int,
               num_classes: int = NUM_CLASSES) -> dict:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, num_classes, (batch, frames, crop, crop), generator=g)
    return {"img": torch.randn(batch, frames, 3, crop, crop, generator=g).to(device), "label": label.to(device),
            "has_label": torch.ones(batch, frames, dtype=torch.bool, device=device)}


def part_times(method, optimizer, source: dict, target: dict, *, device: torch.device) -> dict[str, float]:
    """Seconds of each part of one step, computed in the order the step runs them."""
    s = method.settings
    out: dict[str, float] = {}
    holder: dict = {}
    out["teacher forward"] = time_call(lambda: holder.update(tv=method._teacher_stage(source, target)), device=device)
    out["student fwd/bwd source"] = time_call(lambda: method._source_stage(source, holder["tv"]), device=device)

    def mix():
        src, slabel, tgt = source["img"][:, 0], source["label"][:, 0], target["img"][:, 0]
        pl = make_pseudo_labels(holder["tv"].target_logits, size=tuple(tgt.shape[-2:]), threshold=s.pseudo_threshold,
                                weight_mode=s.pseudo_weight)
        mixed = class_mix(source_img=src, source_label=slabel, target_img=tgt, pseudo_label=pl.label,
                          pseudo_weight=pl.weight)
        strong_augment(mixed.img, mean=method.mean, std=method.std, jitter_strength=s.jitter_strength,
                       jitter_prob=s.jitter_prob, blur=s.blur)
    out["mixing"] = time_call(mix, device=device)
    mixed_total = time_call(lambda: method._mix_stage(source, target, holder["tv"]), device=device)
    out["student fwd/bwd mixed"] = max(mixed_total - out["mixing"], 0.0)
    out["optimiser"] = time_call(optimizer.step, device=device)
    out["EMA update"] = time_call(lambda: method.after_step(iteration=10), device=device)
    return out


@dataclass
class StepRig:
    """A fresh method and optimiser on fixed random clips, and ``step``: one step as the engine runs it
    (zero gradients, the method's step under autocast, optimiser, EMA)."""

    method: Any
    optimizer: torch.optim.Optimizer
    source: dict
    target: dict
    step: Callable[[], None]


def autocast_for(device: torch.device):
    """bf16 on CUDA, off on the CPU: the engine's AMP rule."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def build_step(cfg: dict, *, crop: int, frames: int, device: torch.device,
               compile_options: dict | None = None) -> StepRig:
    """As ``engine.build.train`` builds it: the method on the device, compiled when ``runtime.compile``
    (``compile_options`` go to ``torch.compile``), AdamW (fused on CUDA) with the backbone norms exempt
    from weight decay."""
    torch.manual_seed(0)
    method = build_method(cfg).to(device)
    if cfg["runtime"]["compile"]:
        compile_segmentors(method, **(compile_options or {}))
    optimizer = build_optimizer(method.student.param_groups(), lr=6e-5, head_lr_mult=10.0, weight_decay=0.01,
                                betas=(0.9, 0.999), no_decay=method.student.no_decay_parameters())
    num_classes = get_class_set(cfg["class_set"]).num_classes
    source = make_batch(batch=2, frames=frames, crop=crop, device=device, seed=0, num_classes=num_classes)
    target = make_batch(batch=2, frames=frames, crop=crop, device=device, seed=1, num_classes=num_classes)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast_for(device):
            method.train_step(source, target, iteration=10)
        optimizer.step()
        method.after_step(iteration=10)

    return StepRig(method=method, optimizer=optimizer, source=source, target=target, step=step)


def benchmark(backbone: str, *, crop: int, iters: int, device: torch.device, frames: int) -> dict:
    rig = build_step(make_config(backbone), crop=crop, frames=frames, device=device)
    method, optimizer, source, target, step = rig.method, rig.optimizer, rig.source, rig.target, rig.step
    step()  # warm-up (allocations, kernels)
    reset_peak(device)
    totals = [time_call(step, device=device) for _ in range(iters)]
    peak = peak_mib(device)
    parts = {k: 0.0 for k in PARTS}
    for _ in range(iters):
        optimizer.zero_grad(set_to_none=True)
        with autocast_for(device):
            for k, v in part_times(method, optimizer, source, target, device=device).items():
                parts[k] += v / iters
    step_ms = 1000 * sorted(totals)[len(totals) // 2]
    return {"backbone": backbone, "crop": crop, "batch": "2+2", "device": str(device),
            "step_ms": step_ms, "peak_mib": peak, "parts_ms": {k: 1000 * v for k, v in parts.items()}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--iters", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--frames", type=int, default=1, help="frames per clip (1: image step)")
    parser.add_argument("--cpu-backbone", default="mit_b0")
    parser.add_argument("--gpu-backbone", default="mit_b5")
    parser.add_argument("--out", default="benchmarks/results/train_step.json")
    args = parser.parse_args(argv)
    runs = [benchmark(args.cpu_backbone, crop=args.crop, iters=args.iters, device=torch.device("cpu"),
                      frames=args.frames)]
    if torch.cuda.is_available():
        runs.append(benchmark(args.gpu_backbone, crop=args.crop, iters=args.iters, device=torch.device("cuda"),
                              frames=args.frames))
    rows = [{"backbone": r["backbone"], "device": r["device"], "crop": r["crop"], "step ms": r["step_ms"],
             "peak MiB": r["peak_mib"], **{f"{k} ms": r["parts_ms"][k] for k in PARTS}} for r in runs]
    print(markdown_table(rows, list(rows[0])))
    print("peak MiB: CUDA max allocated on a GPU; process peak RSS on the CPU")
    report = {"environment": environment(torch.device("cuda" if torch.cuda.is_available() else "cpu")), "runs": runs,
              "goal": "MiT-B5 512x512 batch 2+2: <= 500 ms per iteration on one modern GPU"}
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
