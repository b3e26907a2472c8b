"""``pipa-video demo``: source-only vs self-training vs PiPa++ on the synthetic benchmark, on a CPU.

``--methods`` picks among ``ALL_METHODS``: also HRDA + MIC and PiPa++ on HRDA + MIC (``configs/demo/``).

The demo goes through exactly the code a real run uses: the synthetic benchmark is written in the
VIPER and Cityscapes-Seq layouts, prepared by the same prepare tools, read by the same readers,
trained by the same engine, and reported by the same evaluation. Model selection uses the held-out
target ``val`` split; the reported numbers are on the target ``test`` split.

``run_demo_seeds`` (``pipa-video demo --seeds 0,1,2,3,4``) trains every method at every seed on one
generated benchmark and reports mean and standard deviation per method and, for the paired per-seed
differences (PiPa++ - self-training, self-training - source-only), their mean with a Student t 95%
interval (``evaluation.stats``), as ``summary.json``, ``summary.md`` and a plot of the per-seed points.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipa_video.config import load_config
from pipa_video.atomic import atomic_write_bytes, atomic_write_text
from pipa_video.data.index import load_index
from pipa_video.evaluation.stats import mean_std, paired_difference

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "demo"
REPORT_SPLIT = "test"


@dataclass(frozen=True)
class DemoMethod:
    name: str
    config: str


ALL_METHODS = (
    DemoMethod("source_only", "source_only_synthetic.py"),
    DemoMethod("self_training", "dacs_synthetic.py"),
    DemoMethod("pipa++", "pipa++_synthetic.py"),
    DemoMethod("hrda_mic", "hrda_mic_synthetic.py"),
    DemoMethod("pipa++_hrda_mic", "pipa++_hrda_mic_synthetic.py"),
)
METHODS = ALL_METHODS[:3]  # the default: source-only, DAFormer self-training, PiPa++
# Paired comparisons of the multi-seed demo: (minuend, subtrahend), each when both methods ran.
PAIRS = (("pipa++", "self_training"), ("self_training", "source_only"), ("hrda_mic", "self_training"),
         ("pipa++_hrda_mic", "hrda_mic"))


def methods_by_name(names: list[str]) -> tuple[DemoMethod, ...]:
    """The demo methods called ``names`` (``--methods``), in the order given; ``ValueError`` for an unknown
    or repeated name."""
    known = {m.name: m for m in ALL_METHODS}
    unknown = [n for n in names if n not in known]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"expected distinct method names among {', '.join(known)}, got {','.join(names)!r}")
    return tuple(known[n] for n in names)
BENCHMARK = "synthetic VIPER-layout source -> Cityscapes-Seq-layout target (viper15 class set)"


def prepare_demo_data(data_dir: Path, *, seed: int, spec=None) -> dict[str, Path]:
    """Generate the synthetic benchmark (if missing) and index it with the real prepare tools.

    ``spec`` (a ``SyntheticSpec``) changes sizes and counts; the tests use a tiny one.
    """
    from pipa_video.data.prepare import prepare
    from pipa_video.synthetic import ensure_synthetic

    root = ensure_synthetic(data_dir / "synthetic", seed=seed, spec=spec)
    index_dir = data_dir / "index"
    jobs = {
        "source": ("viper", root / "source", dict(split="train", class_set="viper15", label_step=1)),
        "target_train": ("cityscapes_seq", root / "target", dict(split="train", class_set="viper15")),
        "target_val": ("cityscapes_seq", root / "target", dict(split="val", class_set="viper15")),
        "target_test": ("cityscapes_seq", root / "target", dict(split="test", class_set="viper15")),
    }
    out = {}
    for name, (layout, layout_root, opts) in jobs.items():
        out[name] = index_dir / name
        if not (out[name] / "index.csv").is_file():
            prepare(layout, layout_root, out[name], quiet=True, **opts)
    return out


def demo_config(method: DemoMethod, indexes: dict[str, Path], *, iters: int | None, seed: int,
                extra: dict[str, Any] | None = None):
    if not CONFIG_DIR.is_dir():
        raise FileNotFoundError(f"{CONFIG_DIR} not found: the demo reads the configs of a source checkout "
                                f"(install with pip install -e .)")
    overrides = {
        "data.source.index": str(indexes["source"]),
        "data.target.index": str(indexes["target_train"]),
        "data.val.index": str(indexes["target_val"]),
        "data.test.index": str(indexes["target_test"]),
        "runtime.seed": seed,
    }
    if iters is not None:
        overrides["schedule.iters"] = iters
        overrides["schedule.warmup_iters"] = min(iters // 10, load_config(CONFIG_DIR / method.config).schedule.warmup_iters)
        overrides["runtime.checkpoint_interval"] = max(1, iters // 3)
        overrides["runtime.eval_interval"] = max(1, iters // 3)
    return load_config(CONFIG_DIR / method.config, {**overrides, **(extra or {})})


def _selected_checkpoint(run_dir: Path) -> Path:
    best = run_dir / "best.pth"
    return best if best.is_file() else run_dir / "latest.pth"


def run_method(method: DemoMethod, cfg, run_dir: Path) -> dict[str, Any]:
    """Train, then evaluate the selected checkpoint on the report split: mIoU and temporal consistency in
    one pass of the inference loop (reports under ``eval_test/``)."""
    from pipa_video.engine.build import train
    from pipa_video.engine.checkpoint import load_segmentor
    from pipa_video.evaluation.runner import evaluate

    summary = train(cfg, work_dir=run_dir, overwrite=True)  # the demo's work dir is its own: a re-run replaces it
    restored = load_segmentor(cfg, _selected_checkpoint(run_dir))
    ev = evaluate(cfg, restored.model, checkpoint=restored.path, meta=restored.meta,
                  out_dir=run_dir / f"eval_{REPORT_SPLIT}", split=REPORT_SPLIT, temporal=True, progress=False)
    checkpoint, tc = restored.path, ev["temporal"]
    per_class = {row["name"]: row["IoU"] for row in ev["per_class"] if row["evaluated"]}
    return {
        "config": str(CONFIG_DIR / method.config),
        "target_mIoU": ev["mIoU"],
        "per_class_IoU": per_class,
        "iterations": summary["iterations"],
        "selected_iteration": ev["context"]["iteration"],  # of the reported checkpoint (best on val)
        "wall_time_s": round(summary["wall_time_s"], 1),
        "checkpoint": str(checkpoint),
        "checkpoint_selection": ev["context"]["selection"],
        "flicker_rate": tc["overall"]["flicker"],
        "flow_warped_consistency": tc["overall"]["tc_miou"],
    }


def overlay_video(cfg, checkpoint: Path, index_dir: Path, out_dir: Path) -> Path:
    """Predict one target test sequence (linked into a frame folder) as an overlay video."""
    from pipa_video.evaluation.predict import predict

    index = load_index(index_dir)
    first = index.frames["sequence"].iat[0]
    rows = index.frames.index[index.frames["sequence"] == first]
    frames_dir = out_dir / "input" / str(first)  # the overlay video is named after the sequence
    frames_dir.mkdir(parents=True, exist_ok=True)
    for n, row in enumerate(rows):
        link = frames_dir / f"{n:06d}.png"
        if not link.exists():
            os.symlink(index.image_path(row).resolve(), link)
    from pipa_video.engine.checkpoint import load_segmentor

    restored = load_segmentor(cfg, checkpoint)
    result = predict(cfg, restored.model, checkpoint=restored.path, meta=restored.meta, input_path=frames_dir,
                     out_dir=out_dir, root_images="frames")
    return Path(result["files"]["overlays"][0])  # the overlay video itself


def format_table(results: dict[str, dict]) -> str:
    lines = ["| method | target mIoU | flicker rate (%) | flow-warped consistency (TC mIoU) | iterations trained | "
             "reported checkpoint (iteration, best on val) | training time (s), incl. val evaluations |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['target_mIoU']:.2f} | {r['flicker_rate']:.2f} | "
                     f"{r['flow_warped_consistency']:.2f} | {r['iterations']} | {r['selected_iteration']} | "
                     f"{r['wall_time_s']:.0f} |")
    return "\n".join(lines)


def _publish(work_dir: Path, summary: dict[str, Any], table: str) -> dict[str, Any]:
    """``summary.json`` and the markdown ``summary.md`` of a demo run (each atomic), the table printed."""
    atomic_write_text(work_dir / "summary.json", json.dumps(summary, indent=2))
    atomic_write_text(work_dir / "summary.md", table + "\n")
    print(table)
    print(f"summary: {work_dir / 'summary.json'} ({summary['total_wall_time_s']:.0f} s)")
    return summary


def run_demo(*, work_dir: Path, iters: int | None = None, seed: int = 0,
             methods: tuple[DemoMethod, ...] = METHODS) -> dict[str, Any]:
    started = time.perf_counter()
    work_dir = Path(work_dir)
    indexes = prepare_demo_data(work_dir / "data", seed=seed)
    results, cfg = {}, None
    for method in methods:
        print(f"== {method.name} ==", flush=True)
        cfg = demo_config(method, indexes, iters=iters, seed=seed)
        results[method.name] = run_method(method, cfg, work_dir / method.name)
    video = overlay_video(cfg, Path(results[methods[-1].name]["checkpoint"]), indexes["target_test"],
                          work_dir / "overlay")
    summary = {
        "benchmark": BENCHMARK,
        "protocol": cfg.evaluation.protocol,
        "reported_split": f"target {REPORT_SPLIT}",
        "selection_split": "target val (held-out)",
        "seed": seed,
        "methods": results,
        "overlay": str(video),
        "total_wall_time_s": round(time.perf_counter() - started, 1),
    }
    return _publish(work_dir, summary, format_table(results))


# --- several seeds ----------------------------------------------------------------------------
def seed_statistics(runs: dict[int, dict[str, dict]], methods: tuple[DemoMethod, ...]) -> dict[str, Any]:
    """Per method the per-seed target mIoU with mean / std; per pair of ``PAIRS`` the paired difference."""
    seeds = sorted(runs)
    per_method: dict[str, dict] = {}
    for method in methods:
        values = [runs[s][method.name]["target_mIoU"] for s in seeds]
        per_method[method.name] = {
            "target_mIoU_per_seed": values, **mean_std(values),
            "flicker_rate_per_seed": [runs[s][method.name]["flicker_rate"] for s in seeds],
            "flow_warped_consistency_per_seed": [runs[s][method.name]["flow_warped_consistency"] for s in seeds],
        }
    paired = {f"{a} - {b}": paired_difference(per_method[a]["target_mIoU_per_seed"], per_method[b]["target_mIoU_per_seed"])
              for a, b in PAIRS if a in per_method and b in per_method}
    return {"seeds": seeds, "methods": per_method, "paired": paired}


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def format_seed_tables(stats: dict[str, Any]) -> str:
    """Markdown: target mIoU per seed with mean and std; the paired differences with their 95% interval."""
    seeds = stats["seeds"]
    head = " / ".join(str(s) for s in seeds)
    lines = [f"| method | target mIoU (seeds {head}) | mean | std |", "| --- | --- | --- | --- |"]
    for name, m in stats["methods"].items():
        per_seed = " / ".join(f"{v:.2f}" for v in m["target_mIoU_per_seed"])
        lines.append(f"| {name} | {per_seed} | {_fmt(m['mean'])} | {_fmt(m['std'])} |")
    lines += ["", f"| paired difference | per seed ({head}) | mean | 95% interval (Student t, n = {len(seeds)}) |",
              "| --- | --- | --- | --- |"]
    for name, d in stats["paired"].items():
        per_seed = " / ".join(f"{v:+.2f}" for v in d["per_seed"])
        interval = "-" if d["ci95_low"] is None else f"[{d['ci95_low']:+.2f}, {d['ci95_high']:+.2f}]"
        lines.append(f"| {name} | {per_seed} | {d['mean']:+.2f} | {interval} |")
    return "\n".join(lines)


def plot_seeds(stats: dict[str, Any], path: Path) -> Path:
    """Per-seed target mIoU of each method, the points of one seed joined (paired), the mean as a bar."""
    import io

    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    names = list(stats["methods"])
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(names), 4.0))
    for i, seed in enumerate(stats["seeds"]):
        values = [stats["methods"][n]["target_mIoU_per_seed"][i] for n in names]
        ax.plot(range(len(names)), values, marker="o", alpha=0.8, label=f"seed {seed}")
    for x, name in enumerate(names):
        ax.hlines(stats["methods"][name]["mean"], x - 0.25, x + 0.25, colors="black", linewidth=2)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("target test mIoU (%)")
    ax.set_title("demo: per-seed target mIoU (black bar: mean)")
    ax.legend(fontsize="small", loc="best")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue(), mode=0o644)
    return path


def run_demo_seeds(*, work_dir: Path, seeds: list[int], iters: int | None = None,
                   methods: tuple[DemoMethod, ...] = METHODS, spec=None,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every method at every seed on one benchmark (generated from the first seed); no overlay video.

    ``spec`` (a ``SyntheticSpec``) and ``overrides`` (config keys) shrink it for tests.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs distinct seeds, got {seeds}")
    started = time.perf_counter()
    work_dir = Path(work_dir)
    indexes = prepare_demo_data(work_dir / "data", seed=seeds[0], spec=spec)
    runs: dict[int, dict[str, dict]] = {}
    cfg = None
    for seed in seeds:
        runs[seed] = {}
        for method in methods:
            print(f"== seed {seed}: {method.name} ==", flush=True)
            cfg = demo_config(method, indexes, iters=iters, seed=seed, extra=overrides)
            runs[seed][method.name] = run_method(method, cfg, work_dir / f"seed{seed}" / method.name)
    stats = seed_statistics(runs, methods)
    for name, m in stats["methods"].items():
        m["runs"] = {str(s): runs[s][name] for s in seeds}
    plot = plot_seeds(stats, work_dir / "seeds.png")
    summary = {"benchmark": BENCHMARK, "protocol": cfg.evaluation.protocol, "reported_split": f"target {REPORT_SPLIT}",
               "selection_split": "target val (held-out)", "data_seed": seeds[0], **stats, "plot": str(plot),
               "total_wall_time_s": round(time.perf_counter() - started, 1)}
    return _publish(work_dir, summary, format_seed_tables(stats))
