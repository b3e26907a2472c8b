"""Time and memory of one training step, split into its stages, for each method.

Methods (``--method``, comma-separated): ``self_training`` (DAFormer), ``pipa++`` (+ the three contrasts),
``hrda_mic`` (HRDA + MIC), ``pipa++_hrda_mic`` (PiPa++ on HRDA + MIC), each with the recipes' settings
(``configs/_base_/uda/*.py``, ``configs/_base_/models/mit_b5_hrda_daformer.py``, MIC weight 1).
Stages, each timed on its own with the device synchronised around it, in the order the step runs them:
teacher views (pseudo-labels, reference and source frames), source stage (student forward + backward),
mixing (pseudo-labels, ClassMix, strong augmentation), mixed stage (student forward + backward, the
contrasts), each term's own stage (MIC; the two-crop patch contrast), optimiser, EMA update. The whole
step is timed as the engine runs it (forwards under bf16 autocast on CUDA, through
``set_forward_context``). Models: MiT-B0 on the CPU (HRDA's detail crop half the crop side, as 512 of
1024); MiT-B5 on a GPU when one is present, at the recipes' crops (512, HRDA 1024).

    python benchmarks/train_step.py                                     # CPU: MiT-B0, 512x512, self-training
    python benchmarks/train_step.py --method hrda_mic,pipa++_hrda_mic --crop 256 --iters 2
    python benchmarks/train_step.py --method pipa++_hrda_mic --frames 2  # clips of two frames (temporal term)

Peak memory: CUDA's max allocated per method; on the CPU the process's peak RSS so far (it cannot be
reset: run one method per invocation for a per-method CPU figure).
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
from pipa_video.uda.mix import class_mix  # noqa: E402
from pipa_video.uda.pseudo import make_pseudo_labels  # noqa: E402
from pipa_video.uda.teacher import teacher_views  # noqa: E402

NUM_CLASSES = 19
# The recipes' contrast and MIC sections (configs/_base_/uda/pipa++.py; MIC weight 1, configs/mic/).
PIPA_UDA = {"pixel_contrast": {"weight": 0.1}, "patch_contrast": {"weight": 0.1}, "temporal_contrast": {"weight": 0.1}}
MIC_UDA = {"mic": {"weight": 1.0}}
METHODS: dict[str, tuple[bool, dict]] = {  # name: (HRDA, uda sections)
    "self_training": (False, {}),
    "pipa++": (False, PIPA_UDA),
    "hrda_mic": (True, MIC_UDA),
    "pipa++_hrda_mic": (True, {**PIPA_UDA, **MIC_UDA}),
}
GPU_CROP = {False: 512, True: 1024}  # the recipes' training crops


def make_config(backbone: str, *, method: str = "self_training", crop: int | None = None, **uda) -> dict:
    """A validated config of ``method`` with ``backbone`` (random weights); ``uda`` keys override the method's.

    HRDA's sizes follow ``crop``: detail crop half its side, test windows of ``crop``, as 512 / 1024.
    """
    hrda, sections = METHODS[method]
    uda_cfg = {"method": "self_training", **{k: dict(v) for k, v in sections.items()}}
    for key, value in uda.items():
        uda_cfg[key] = {**uda_cfg.get(key, {}), **value} if isinstance(value, dict) else value
    model: dict[str, Any] = {"backbone": {"type": backbone, "pretrained": None}, "decode_head": {"type": "daformer"}}
    if hrda:
        side = crop or GPU_CROP[True]
        model.update(type="hrda", hrda={"detail_crop": (side // 2, side // 2), "test_window": (side, side),
                                        "test_stride": (side // 2, side // 2)})
    return validate({"class_set": "cityscapes19", "model": model, "uda": uda_cfg})


def make_batch(*, batch: int, frames: int, crop: int, device: torch.device, seed: int,
               num_classes: int = NUM_CLASSES) -> dict:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, num_classes, (batch, frames, crop, crop), generator=g)
    return {"img": torch.randn(batch, frames, 3, crop, crop, generator=g).to(device), "label": label.to(device),
            "has_label": torch.ones(batch, frames, dtype=torch.bool, device=device)}


@dataclass
class StepRig:
    """A fresh method and optimiser on fixed random clips, and ``step``: one step as the engine runs it
    (zero gradients, the method's step with its forwards under autocast, optimiser, EMA)."""

    method: Any
    optimizer: torch.optim.Optimizer
    source: dict
    target: dict
    step: Callable[[], None]


def autocast_for(device: torch.device):
    """bf16 on CUDA, off on the CPU: the engine's AMP rule."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def _fit_hrda(cfg: dict, crop: int) -> None:
    """A recipe's HRDA sizes scaled to a smaller benchmark crop (gpu_check's smoke rows divide the crop)."""
    hrda, recipe_crop = cfg["model"]["hrda"], cfg["data"]["source"]["crop_size"]
    if cfg["model"]["type"] != "hrda" or recipe_crop is None or crop >= recipe_crop[0]:
        return
    scale = crop / recipe_crop[0]
    for key in ("detail_crop", "test_window", "test_stride"):
        hrda[key] = tuple(max(8, int(side * scale) // 8 * 8) for side in hrda[key])


def build_step(cfg: dict, *, crop: int, frames: int, device: torch.device,
               compile_options: dict | None = None) -> StepRig:
    """The method of ``cfg`` (a validated config: a recipe or ``make_config``'s) built as ``engine.build.train``
    builds it, on random clips of ``frames`` frames of ``crop`` x ``crop`` pixels: HRDA sizes scaled down with the
    crop, compiled when ``runtime.compile`` (``compile_options`` go to ``torch.compile``), AdamW (fused on CUDA)
    with the backbone norms exempt from weight decay."""
    _fit_hrda(cfg, crop)
    torch.manual_seed(0)
    method = build_method(cfg).to(device)
    method.set_forward_context(lambda: autocast_for(device))
    if cfg["runtime"]["compile"]:
        compile_segmentors(method, **(compile_options or {}))
    optimizer = build_optimizer(method.student.param_groups(), lr=6e-5, head_lr_mult=10.0, weight_decay=0.01,
                                betas=(0.9, 0.999), no_decay=method.student.no_decay_parameters())
    num_classes = get_class_set(cfg["class_set"]).num_classes
    source = make_batch(batch=2, frames=frames, crop=crop, device=device, seed=0, num_classes=num_classes)
    target = make_batch(batch=2, frames=frames, crop=crop, device=device, seed=1, num_classes=num_classes)

    def step():
        optimizer.zero_grad(set_to_none=True)
        method.train_step(source, target, iteration=10)
        optimizer.step()
        method.after_step(iteration=10)

    return StepRig(method=method, optimizer=optimizer, source=source, target=target, step=step)


def method_step(method: str, *, backbone: str, crop: int, frames: int, device: torch.device, **uda) -> StepRig:
    """``build_step`` of a method by name (``METHODS``), e.g. for ``gpu_check``'s rows."""
    return build_step(make_config(backbone, method=method, crop=crop, **uda), crop=crop, frames=frames, device=device)


def _mixing(method, ctx) -> None:
    """Pseudo-labels, ClassMix and strong augmentation alone (what the mixed stage does before its forward)."""
    s, b = method.settings, ctx.batch
    pl = make_pseudo_labels(ctx.teacher["target"].logits, size=tuple(b.tgt_img.shape[-2:]),
                            threshold=s.pseudo_threshold, weight_mode=s.pseudo_weight)
    mixed = class_mix(source_img=b.src_img, source_label=b.src_label, target_img=b.tgt_img, pseudo_label=pl.label,
                      pseudo_weight=pl.weight, classes=s.mix_classes)
    method._strong_augment(mixed.img)


def part_times(rig: StepRig, *, device: torch.device) -> dict[str, float]:
    """Seconds of each stage of one step, run in the order the step runs them."""
    method, out = rig.method, {}
    rig.optimizer.zero_grad(set_to_none=True)
    method.student.train()
    ctx = method._context(rig.source, rig.target)
    out["teacher views"] = time_call(lambda: setattr(ctx, "teacher", teacher_views(
        method.teacher, method._teacher_requests(ctx), method.forwards.context)), device=device)
    out["source stage"] = time_call(lambda: method._source_stage(ctx), device=device)
    out["mixing"] = time_call(lambda: _mixing(method, ctx), device=device)
    out["mixed stage"] = max(time_call(lambda: method._mixed_stage(ctx), device=device) - out["mixing"], 0.0)
    for term in method.terms:
        logged: dict = {}
        seconds = time_call(lambda: logged.update(term.own_stage(ctx)), device=device)
        if logged:  # the term has a stage of its own (MIC, the two-crop patch contrast)
            out[f"{term.name} stage"] = seconds
    out["optimiser"] = time_call(rig.optimizer.step, device=device)
    out["EMA update"] = time_call(lambda: method.after_step(iteration=10), device=device)
    return out


def benchmark(backbone: str, *, method: str, crop: int, iters: int, device: torch.device, frames: int) -> dict:
    rig = method_step(method, backbone=backbone, crop=crop, frames=frames, device=device)
    rig.step()  # warm-up (allocations, kernels)
    reset_peak(device)
    totals = [time_call(rig.step, device=device) for _ in range(iters)]
    peak = peak_mib(device)
    parts: dict[str, float] = {}
    for _ in range(iters):
        for k, v in part_times(rig, device=device).items():
            parts[k] = parts.get(k, 0.0) + v / iters
    step_ms = 1000 * sorted(totals)[len(totals) // 2]
    return {"method": method, "backbone": backbone, "crop": crop, "frames": frames, "batch": "2+2",
            "device": str(device), "step_ms": step_ms, "peak_mib": peak,
            "parts_ms": {k: 1000 * v for k, v in parts.items()}}


def _methods(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected names among {', '.join(METHODS)}, got {text!r}")
    return names


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", type=_methods, default=["self_training"], help=", ".join(METHODS))
    parser.add_argument("--crop", type=int, default=None, help="default: 512 on the CPU; the recipe's on a GPU")
    parser.add_argument("--iters", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--frames", type=int, default=1, help="frames per clip (1: image step)")
    parser.add_argument("--cpu-backbone", default="mit_b0")
    parser.add_argument("--gpu-backbone", default="mit_b5")
    parser.add_argument("--out", default="benchmarks/results/train_step.json")
    args = parser.parse_args(argv)
    devices = [(torch.device("cpu"), args.cpu_backbone)]
    if torch.cuda.is_available():
        devices.append((torch.device("cuda"), args.gpu_backbone))
    runs = []
    for device, backbone in devices:
        for method in args.method:
            crop = args.crop or (512 if device.type == "cpu" else GPU_CROP[METHODS[method][0]])
            runs.append(benchmark(backbone, method=method, crop=crop, iters=args.iters, device=device,
                                  frames=args.frames))
    stages = list(dict.fromkeys(k for r in runs for k in r["parts_ms"]))
    rows = [{"method": r["method"], "backbone": r["backbone"], "device": r["device"], "crop": r["crop"],
             "step ms": r["step_ms"], "peak MiB": r["peak_mib"],
             **{f"{k} ms": r["parts_ms"].get(k, 0.0) for k in stages}} for r in runs]
    print(markdown_table(rows, list(rows[0])))
    print("peak MiB: CUDA max allocated on a GPU; process peak RSS so far on the CPU")
    report = {"environment": environment(torch.device("cuda" if torch.cuda.is_available() else "cpu")), "runs": runs,
              "goals": {"self_training": "MiT-B5 512x512 batch 2+2: <= 500 ms per iteration on one modern GPU",
                        "pipa++_hrda_mic": "MiT-B5 1024x1024 batch 2+2: <= 1.2 s per iteration and 24 GB"}}
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
