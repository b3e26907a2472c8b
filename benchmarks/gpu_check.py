"""The one-shot GPU check: every GPU figure of the README in one run of at most 8 minutes.

    python benchmarks/gpu_check.py              # one GPU; stops itself after --budget seconds (default 400)
    python benchmarks/gpu_check.py --smoke      # the same rows at toy sizes on the CPU (< 3 minutes;
                                                # torch.compile there uses the aot_eager backend)
    python benchmarks/gpu_check.py --only eval  # rows whose name contains 'eval' (repeatable)

Rows (``ROWS``; a new method is one more ``TrainRow`` naming its recipe file):
- training steps of the shipped recipes (random weights, batch 2 source + 2 target clips, crop and
  clip length from the recipe): DAFormer self-training and PiPa++ (MiT-B5, 512x512); HRDA + MIC and
  PiPa++ on HRDA + MIC (MiT-B5, 1024x1024; ``configs/mic/``, ``configs/pipa++/``). Each step is what the trainer runs (bf16 autocast, backward, fused AdamW, EMA update), through
  ``benchmarks/train_step.py``'s rig. Pseudo-label and temporal confidence thresholds are 0, so
  every loss does its full work (a random teacher is never confident);
- evaluation of 2048x1024 frames, as ``pipa-video eval`` runs it (float32 with TF32, logits
  upsampled to 2048x1024, arg-max, copy to the host): whole image at the DAFormer / DA-VSN input of
  1024x512, whole image at 2048x1024, sliding 1024x1024 windows with stride 512 (HRDA); plus whole
  image under bf16 autocast (not the default) to show what it would give;
- the training loader (4 workers, pinned memory, copy to the GPU included) on generated
  Cityscapes-sized PNG frames, from the PNGs and from a 1024x512 frame cache;
- the same DAFormer step with channels-last heads off, and with ``runtime.compile=True``.

Every row: median over >= 10 timed iterations after warm-up (the loader: mean over its batches),
peak GPU memory (GiB), FLOPs per iteration (``torch.utils.flop_counter``, counted once in eager
mode) and model FLOPs utilisation against the device's dense bf16 peak (``PEAK_BF16_TFLOPS`` by
device name, or ``--peak-tflops``). A row whose warm-up shows it cannot finish inside the budget is
skipped with a note, and an alarm ends a row that overruns the budget; the JSON is rewritten after
every row, so even a killed run leaves what it measured.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import glob
import json
import math
import os
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, sync, time_call  # noqa: E402
from loader import FakeDataset, write_fake_dataset  # noqa: E402
from train_step import autocast_for, build_step  # noqa: E402

from pipa_video.config import load_config, validate  # noqa: E402
from pipa_video.data.build import PREFETCH_FACTOR, build_train_loaders  # noqa: E402
from pipa_video.data.classes import get_class_set  # noqa: E402
from pipa_video.data.frame_cache import cache_frames  # noqa: E402
from pipa_video.atomic import atomic_write_text  # noqa: E402
from pipa_video.data.index import load_index, write_index  # noqa: E402
from pipa_video.engine.performance import configure_backends  # noqa: E402
from pipa_video.engine.trainer import move_to_device  # noqa: E402
from pipa_video.evaluation.runner import build_eval_settings, make_predictor  # noqa: E402
from pipa_video.models import build_segmentor  # noqa: E402
from pipa_video.models.backbones import build_backbone  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "gpu_check.json"

# Dense (no sparsity) bf16 tensor-core TFLOPS from NVIDIA's datasheets, matched in order as a
# substring of torch.cuda.get_device_name(): more specific names first (H100 NVL before H100,
# A100 before A10, L40S before L4).
PEAK_BF16_TFLOPS = (
    ("H200 NVL", 835.5), ("H200", 989.5), ("GH200", 989.5), ("H100 NVL", 835.5), ("H100 PCIe", 756.5),
    ("H100", 989.5), ("H800", 989.5), ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.05),
    ("L4", 121.0), ("A10", 125.0),
)

DAFORMER = "configs/baselines/dacs_mit_b5_viper_to_csseq.py"
PIPA = "configs/pipa++/pipa++_mit_b5_viper_to_csseq.py"
# HRDA + MIC recipes come from another branch: the rows run as soon as files matching these globs
# exist (edit a glob if the files are named otherwise).
HRDA_MIC = "configs/mic/mic_hrda_mit_b5_viper_to_csseq.py"
PIPA_HRDA_MIC = "configs/pipa++/pipa++_hrda_mic_mit_b5_viper_to_csseq.py"


class Skip(Exception):
    """A row that is not run; the message is its status."""


class BudgetSpent(BaseException):
    """The time budget ran out in the middle of a row (raised by the alarm)."""


@dataclass(frozen=True)
class Scale:
    """Problem sizes: the real ones on a GPU, toy ones for ``--smoke`` on the CPU."""

    smoke: bool
    warmup: int = 3
    iters: int = 10
    crop_divisor: int = 1  # the recipe's crop divided by this
    eval_frame: tuple[int, int] = (2048, 1024)  # (w, h) evaluated frames
    eval_input: tuple[int, int] = (1024, 512)  # (w, h) DAFormer / DA-VSN network input
    window: tuple[int, int] = (1024, 1024)  # (h, w) sliding window, HRDA
    stride: tuple[int, int] = (512, 512)
    loader_frame: tuple[int, int] = (2048, 1024)  # (w, h) generated Cityscapes frames
    loader_resize: tuple[int, int] = (1024, 512)  # (w, h) the recipe's first resize, the cache size
    loader_crop: tuple[int, int] = (512, 512)  # (h, w)
    loader_frames: int = 12
    workers: int = 4
    compile_backend: str = "inductor"  # torch.compile's default; the smoke run's aot_eager skips codegen

    def model_overrides(self) -> dict:
        """Smoke: a MiT-shaped toy backbone and a narrow head instead of MiT-B5 + 256 channels."""
        return {"model.backbone.type": "mit_demo", "model.decode_head.channels": 32} if self.smoke else {}


FULL = Scale(smoke=False, iters=20)  # ~50 ms steps expected on an H100-class GPU: 20 cost little
SMOKE = Scale(smoke=True, warmup=1, crop_divisor=8, eval_frame=(256, 128), eval_input=(128, 64), window=(128, 128),
              stride=(64, 64), loader_frame=(256, 128), loader_resize=(128, 64), loader_crop=(64, 64), loader_frames=6,
              compile_backend="aot_eager")


@dataclass(frozen=True)
class TrainRow:
    name: str
    config: str  # the recipe file (a glob relative to the repo)
    overrides: dict = field(default_factory=dict)  # dotted config keys
    kind: str = "train"


@dataclass(frozen=True)
class EvalRow:
    name: str
    mode: str  # 'whole' or 'slide'
    full_input: bool  # the frame itself as input (True) or resized to the DAFormer input (False)
    amp: bool = False
    config: str = DAFORMER  # the model section: MiT-B5 + DAFormer head
    kind: str = "eval"


@dataclass(frozen=True)
class LoaderRow:
    name: str
    cached: bool
    kind: str = "loader"


ROWS = (
    TrainRow("train DAFormer self-training", DAFORMER),
    TrainRow("train PiPa++", PIPA),
    TrainRow("train HRDA + MIC", HRDA_MIC),
    TrainRow("train PiPa++ on HRDA + MIC", PIPA_HRDA_MIC),
    EvalRow("eval whole, 1024x512 input (DAFormer, DA-VSN)", mode="whole", full_input=False),
    EvalRow("eval whole, 2048x1024 input", mode="whole", full_input=True),
    EvalRow("eval sliding window (HRDA)", mode="slide", full_input=True),
    LoaderRow("loader, Cityscapes PNGs", cached=False),
    LoaderRow("loader, frame cache PNGs", cached=True),
    TrainRow("train DAFormer self-training, channels_last off", DAFORMER, {"model.decode_head.channels_last": False}),
    EvalRow("eval whole, 2048x1024 input, bf16 autocast", mode="whole", full_input=True, amp=True),
    TrainRow("train DAFormer self-training, torch.compile", DAFORMER, {"runtime.compile": True}),
)


# ------------------------------------------------------------------------------------------- timing
class Budget:
    """Seconds left of the run; ``need`` skips a row that cannot fit."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def need(self, seconds: float, what: str) -> None:
        if seconds > self.left():
            raise Skip(f"skipped: time budget ({what} needs ~{seconds:.0f} s, {max(self.left(), 0):.0f} s left)")


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops for key, tflops in PEAK_BF16_TFLOPS if key in name), None)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call (matmuls, convolutions, attention; forward and backward) in eager mode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def measure(fn: Callable[[], Any], *, device: torch.device, scale: Scale, budget: Budget, what: str,
            warmup: int | None = None) -> dict:
    """Warm-up, then ``scale.iters`` timed calls: median ms, range, warm-up seconds, peak memory.

    The last warm-up call predicts the timed calls' cost (``warmup`` >= 2 for a compiled function:
    its first call compiles)."""
    warm = [time_call(fn, device=device) for _ in range(warmup or scale.warmup)]
    budget.need(scale.iters * warm[-1] * 1.1, f"{scale.iters} iterations of {what}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = sorted(time_call(fn, device=device) for _ in range(scale.iters))
    median = times[len(times) // 2] if len(times) % 2 else 0.5 * (times[len(times) // 2 - 1] + times[len(times) // 2])
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return dict(iters=len(times), statistic="median", ms_per_iter=1e3 * median, ms_min=1e3 * times[0],
                ms_max=1e3 * times[-1], warmup_s=sum(warm), peak_mem_gib=peak)


# --------------------------------------------------------------------------------------------- rows
class Context:
    """What rows share: device, sizes, budget, a scratch folder, FLOP counts of eager twins."""

    def __init__(self, *, device: torch.device, scale: Scale, budget: Budget, tmp: Path) -> None:
        self.device, self.scale, self.budget, self.tmp = device, scale, budget, tmp
        self.flops: dict[tuple, int] = {}
        self._weights: dict[str, str] = {}
        self._loader_index: dict[bool, Path] = {}

    def random_weights(self, backbone: str) -> str:
        """A local file of random backbone weights: the recipe's ImageNet feature distance then runs
        (its frozen backbone needs weights; speed does not depend on their values)."""
        if backbone not in self._weights:
            path = self.tmp / f"{backbone}_random.pth"
            torch.save(build_backbone(backbone, pretrained=None, drop_path_rate=0.0).state_dict(), path)
            self._weights[backbone] = str(path)
        return self._weights[backbone]

    def recipe(self, pattern: str, overrides: dict) -> tuple[Any, str]:
        """The recipe file ``pattern`` (a path or glob under the repository), loaded with ``overrides`` at
        this scale; a missing recipe or a config error fails the row (it names the file or key)."""
        matches = sorted(p for p in glob.glob(str(REPO / pattern)) if Path(p).is_file())
        if not matches:
            raise FileNotFoundError(f"no recipe file {pattern}")
        cfg = load_config(matches[0], {**self.scale.model_overrides(), **overrides})
        return cfg, str(Path(matches[0]).relative_to(REPO))


def run_train(row: TrainRow, ctx: Context) -> dict:
    cfg, path = ctx.recipe(row.config, row.overrides)
    cfg.model.backbone.pretrained = ctx.random_weights(cfg.model.backbone.type)
    cfg.uda.pseudo_threshold = 0.0  # full work for every loss: see the module docstring
    cfg.uda.temporal_contrast.confidence = 0.0
    crop = int(cfg.data.source.crop_size[0]) // ctx.scale.crop_divisor
    frames = 1 + len(cfg.data.source.offsets)
    configure_backends(cfg.runtime)
    rig = build_step(cfg, crop=crop, frames=frames, device=ctx.device,
                     compile_options={"backend": ctx.scale.compile_backend})
    result = measure(rig.step, device=ctx.device, scale=ctx.scale, budget=ctx.budget, what=row.name,
                     warmup=max(ctx.scale.warmup, 3) if cfg.runtime.compile else None)
    key = (path, crop, tuple(sorted((k, v) for k, v in row.overrides.items() if k != "runtime.compile")))
    if not cfg.runtime.compile:  # FlopCounterMode counts eager ops; a compiled row takes its eager twin's count
        ctx.flops[key] = count_flops(rig.step)
    size = f"{cfg.model.backbone.type} {crop}x{crop}, 2+2 clips of {frames}"
    result.update(config=path, size=size, flops=ctx.flops.get(key), throughput_unit="steps/s")
    if cfg.runtime.compile:
        result["notes"] = (f"backend {ctx.scale.compile_backend}; warm-up (compilation included) "
                           f"{result['warmup_s']:.0f} s; " + ("FLOPs of the eager step" if key in ctx.flops
                                                              else "no eager twin measured: FLOPs unknown"))
    return result


def run_eval(row: EvalRow, ctx: Context) -> dict:
    cfg, path = ctx.recipe(row.config, {"evaluation.mode": row.mode, "evaluation.window": ctx.scale.window,
                                         "evaluation.stride": ctx.scale.stride, "model.backbone.pretrained": None})
    configure_backends(cfg.runtime)
    num_classes = get_class_set(cfg.class_set).num_classes
    model = build_segmentor(cfg.model, num_classes=num_classes).to(ctx.device).eval()
    predictor = make_predictor(model, build_eval_settings(cfg), device=ctx.device)
    w, h = ctx.scale.eval_frame if row.full_input else ctx.scale.eval_input
    img = torch.randn(1, 3, h, w)  # host memory, as the evaluation loader delivers it
    out_size = ctx.scale.eval_frame[::-1]
    amp = autocast_for(ctx.device) if row.amp else contextlib.nullcontext()

    def predict():
        with amp:
            predictor.scores(img, out_size).max(dim=1).indices.cpu()  # as Predictor.__call__: arg-max on the host

    result = measure(predict, device=ctx.device, scale=ctx.scale, budget=ctx.budget, what=row.name)
    mode = (f"slide {ctx.scale.window[1]}x{ctx.scale.window[0]} / {ctx.scale.stride[1]}" if row.mode == "slide"
            else "whole")
    result.update(config=path, flops=count_flops(predict), throughput_unit="frames/s",
                  size=f"{cfg.model.backbone.type}, {w}x{h} input, {mode}, scored at {out_size[1]}x{out_size[0]}")
    return result


def loader_index(ctx: Context, cached: bool) -> Path:
    """Generated Cityscapes-like PNG frames and labels (written once), and their 1024x512 frame cache."""
    if cached not in ctx._loader_index:
        s = ctx.scale
        if False not in ctx._loader_index:
            spec = FakeDataset("cityscapes-like png", s.loader_frame, s.loader_resize, "png")
            ctx._loader_index[False] = write_fake_dataset(ctx.tmp / "frames", spec, s.loader_frames, seed=0)
        if cached:
            plain = load_index(ctx._loader_index[False])
            out = ctx.tmp / "frame_cache"
            table, meta = cache_frames(plain.frames, plain.meta, out_dir=out, size=s.loader_resize, quiet=True,
                                       label_root=plain.index_dir)
            ctx._loader_index[True] = write_index(out, table, meta).parent
    return ctx._loader_index[cached]


def run_loader(row: LoaderRow, ctx: Context) -> dict:
    s = ctx.scale
    index = loader_index(ctx, row.cached)
    cfg = validate(dict(class_set="cityscapes19", uda=dict(method="source_only"),
                        runtime=dict(device=ctx.device.type),
                        data=dict(num_workers=s.workers, source_batch_size=2, source=dict(
                            index=str(index), offsets=[-1], resize=s.loader_resize, ratio_range=(0.5, 2.0),
                            crop_size=s.loader_crop, flip_prob=0.5))))
    batches, _ = build_train_loaders(cfg, start_iter=0)
    fetch = lambda: move_to_device(next(batches), ctx.device)  # noqa: E731  (the trainer's input path)
    in_flight = s.workers * PREFETCH_FACTOR
    start = time.perf_counter()
    for _ in range(in_flight + s.workers):  # start-up and the first full queue are not steady state
        fetch()
    warmup = time.perf_counter() - start
    count = max(s.iters, 2 * in_flight)
    ctx.budget.need(count * warmup / (in_flight + s.workers) * 1.5, f"{count} loader batches")
    sync(ctx.device)
    start = time.perf_counter()
    for _ in range(count):
        fetch()
    sync(ctx.device)
    seconds = time.perf_counter() - start
    frame = f"{s.loader_resize[0]}x{s.loader_resize[1]} cache" if row.cached else \
        f"{s.loader_frame[0]}x{s.loader_frame[1]}"
    return dict(iters=count, statistic="mean", ms_per_iter=1e3 * seconds / count, warmup_s=warmup,
                peak_mem_gib=None, flops=None, throughput_unit="clips/s", clips_per_s=2 * count / seconds,
                size=f"{frame} PNG -> {s.loader_resize[0]}x{s.loader_resize[1]}, rescale 0.5-2, crop "
                     f"{s.loader_crop[1]}x{s.loader_crop[0]}, T=2, batch 2, {s.workers} workers")


RUNNERS = {"train": run_train, "eval": run_eval, "loader": run_loader}


# --------------------------------------------------------------------------------------------- main
COLUMNS = ("row", "size", "ms/iter", "throughput", "peak GiB", "TFLOP/iter", "MFU", "status")
MIN_ROW_SECONDS = {True: 3.0, False: 10.0}  # by scale.smoke: below this, later rows are skipped


def complete(row, result: dict, peak: float | None) -> dict:
    """The JSON row: measurements plus throughput, TFLOP per iteration, achieved TFLOP/s and MFU."""
    out = {"name": row.name, "kind": row.kind, "status": "ok", **result}
    seconds = out["ms_per_iter"] / 1e3
    out["throughput"] = out.pop("clips_per_s", None) or 1.0 / seconds
    flops = out.pop("flops", None)
    out["tflop_per_iter"] = flops / 1e12 if flops else None
    out["achieved_tflops"] = flops / seconds / 1e12 if flops else None
    out["mfu"] = out["achieved_tflops"] / peak if flops and peak else None
    return out


def skipped(row, status: str) -> dict:
    return {"name": row.name, "kind": row.kind, "status": status, "ms_per_iter": None, "peak_mem_gib": None}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def table_line(r: dict) -> list[str]:
    throughput = f"{_fmt(r.get('throughput'), '.2f')} {r.get('throughput_unit', '')}".strip()
    mfu = _fmt(100 * r["mfu"], ".1f") + " %" if r.get("mfu") is not None else "-"
    return [r["name"], r.get("size", "-"), _fmt(r.get("ms_per_iter"), ".1f"), throughput if r.get("throughput") else "-",
            _fmt(r.get("peak_mem_gib"), ".2f"), _fmt(r.get("tflop_per_iter"), ".3f"), mfu, r["status"]]


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(table_line(r)) + " |" for r in rows])


# (what, row, reference row): ratios the README quotes, printed under the table
RATIOS = (
    ("PiPa++ step over the DAFormer self-training step (goal <= +15%)", "train PiPa++", "train DAFormer self-training"),
    ("channels_last off over on (DAFormer step)", "train DAFormer self-training, channels_last off",
     "train DAFormer self-training"),
    ("torch.compile over eager (DAFormer step)", "train DAFormer self-training, torch.compile",
     "train DAFormer self-training"),
    ("bf16 autocast over float32/TF32 (eval, whole 2048x1024)", "eval whole, 2048x1024 input, bf16 autocast",
     "eval whole, 2048x1024 input"),
    ("frame cache over PNGs (loader, ms per batch)", "loader, frame cache PNGs", "loader, Cityscapes PNGs"),
)


def summary(rows: list[dict]) -> list[str]:
    ms = {r["name"]: r["ms_per_iter"] for r in rows if r["status"] == "ok"}
    return [f"{what}: {100 * (ms[a] / ms[b] - 1):+.1f}% time per iteration" for what, a, b in RATIOS
            if a in ms and b in ms]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="toy sizes on the CPU (CI check of this script)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run (default 400 on a GPU, 150 with --smoke)")
    parser.add_argument("--only", action="append", default=[], metavar="WORD", help="rows whose name contains WORD")
    parser.add_argument("--skip", action="append", default=[], metavar="WORD", help="leave out rows containing WORD")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="dense bf16 peak of the device for the MFU column (default: PEAK_BF16_TFLOPS by name)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def selected_rows(only: list[str], skip: list[str]) -> list:
    def has(row, words):
        return any(w.lower() in row.name.lower() for w in words)
    return [r for r in ROWS if (not only or has(r, only)) and not has(r, skip)]


class Alarm:
    """Raises BudgetSpent in the main thread when the budget ends while a row runs."""

    def __init__(self, seconds: float) -> None:
        self.in_row = False
        self.fired = False
        self.previous = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))

    def _fire(self, *_) -> None:
        self.fired = True
        if self.in_row:
            raise BudgetSpent()

    def cancel(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)


def run_row(row, ctx: Context, alarm: Alarm, peak: float | None) -> dict:
    try:
        if alarm.fired or ctx.budget.left() < MIN_ROW_SECONDS[ctx.scale.smoke]:
            raise Skip("skipped: time budget spent")
        alarm.in_row = True
        try:
            return complete(row, RUNNERS[row.kind](row, ctx), peak)
        finally:
            alarm.in_row = False
    except Skip as reason:
        return skipped(row, str(reason))
    except BudgetSpent:
        return skipped(row, "skipped: time budget spent during this row")
    except Exception as err:  # one failing row (an OOM, a missing kernel) must not cost the others
        traceback.print_exc()
        return skipped(row, f"error: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    finally:
        if not alarm.fired:  # after the alarm no row follows: leave the clean-up to the exit
            gc.collect()
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()
            torch._dynamo.reset()  # compiled graphs of one row are no use to the next


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible; run with --smoke for the CPU check of this script")
    device = torch.device("cpu" if args.smoke else "cuda")
    scale = SMOKE if args.smoke else FULL
    budget = Budget(args.budget if args.budget is not None else (150.0 if args.smoke else 400.0))
    peak = peak_tflops(device, args.peak_tflops)
    env = {**environment(device), "peak_bf16_tflops": peak, "load_average": os.getloadavg(),
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None}
    report = {"benchmark": "gpu_check (issue 16)", "smoke": args.smoke, "environment": env,
              "settings": {"budget_s": budget.seconds, "warmup": scale.warmup, "iters": scale.iters}, "rows": []}
    print(f"gpu_check on {env.get('gpu', device)}: budget {budget.seconds:.0f} s, peak bf16 "
          f"{_fmt(peak, '.1f')} TFLOPS{' (smoke: toy sizes)' if args.smoke else ''}", flush=True)
    alarm = Alarm(budget.seconds)
    try:
        with tempfile.TemporaryDirectory(prefix="pipa_gpu_check_") as tmp:
            ctx = Context(device=device, scale=scale, budget=budget, tmp=Path(tmp))
            for row in selected_rows(args.only, args.skip):
                result = run_row(row, ctx, alarm, peak)
                report["rows"].append(result)
                report["elapsed_s"] = budget.seconds - budget.left()
                atomic_write_text(args.out, json.dumps(report, indent=2))
                print(f"[{report['elapsed_s']:6.1f} s] " + " | ".join(table_line(result)), flush=True)
    finally:
        alarm.cancel()
    report["summary"] = summary(report["rows"])
    report["budget_spent"] = alarm.fired
    atomic_write_text(args.out, json.dumps(report, indent=2))
    print("\n" + markdown(report["rows"]))
    for line in report["summary"]:
        print(f"- {line}")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    if main()["budget_spent"]:
        # An interrupted torch.compile can leave compiler workers that the normal exit waits for (about
        # a minute in the CPU smoke run): everything is written, so end now.
        sys.stdout.flush()
        os._exit(0)
