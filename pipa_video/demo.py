"""``pipa-video demo``: source-only vs self-training vs PiPa++ on the synthetic benchmark, on a CPU.

The demo goes through exactly the code a real run uses: the synthetic benchmark is written in the
VIPER and Cityscapes-Seq layouts, prepared by the same prepare tools, read by the same readers,
trained by the same engine, and reported by the same evaluation. Model selection uses the held-out
target ``val`` split; the reported numbers are on the target ``test`` split.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipa_video.config import load_config
from pipa_video.data.index import atomic_write_text, load_index

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "demo"
REPORT_SPLIT = "test"


@dataclass(frozen=True)
class DemoMethod:
    name: str
    config: str


METHODS = (
    DemoMethod("source_only", "source_only_synthetic.py"),
    DemoMethod("self_training", "dacs_synthetic.py"),
    DemoMethod("pipa++", "pipa++_synthetic.py"),
)


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


def demo_config(method: DemoMethod, indexes: dict[str, Path], *, iters: int | None, seed: int):
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
    return load_config(CONFIG_DIR / method.config, overrides)


def _selected_checkpoint(run_dir: Path) -> Path:
    best = run_dir / "best.pth"
    return best if best.is_file() else run_dir / "latest.pth"


def run_method(method: DemoMethod, cfg, run_dir: Path) -> dict[str, Any]:
    from pipa_video.engine.build import train
    from pipa_video.evaluation.runner import evaluate, tc_report

    summary = train(cfg, work_dir=run_dir, overwrite=True)  # the demo's work dir is its own: a re-run replaces it
    checkpoint = _selected_checkpoint(run_dir)
    ev = evaluate(cfg, checkpoint=str(checkpoint), out_dir=run_dir / f"eval_{REPORT_SPLIT}", split=REPORT_SPLIT,
                  progress=False)
    tc = tc_report(cfg, out_dir=run_dir / f"tc_{REPORT_SPLIT}", checkpoint=str(checkpoint), split=REPORT_SPLIT,
                   progress=False)
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
    result = predict(cfg, checkpoint=str(checkpoint), input_path=frames_dir, out_dir=out_dir, root_images="frames")
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
        "benchmark": "synthetic VIPER-layout source -> Cityscapes-Seq-layout target (viper15 class set)",
        "protocol": cfg.evaluation.protocol,
        "reported_split": f"target {REPORT_SPLIT}",
        "selection_split": "target val (held-out)",
        "seed": seed,
        "methods": results,
        "overlay": str(video),
        "total_wall_time_s": round(time.perf_counter() - started, 1),
    }
    atomic_write_text(work_dir / "summary.json", json.dumps(summary, indent=2))
    table = format_table(results)
    atomic_write_text(work_dir / "summary.md", table + "\n")
    print(table)
    print(f"summary: {work_dir / 'summary.json'} ({summary['total_wall_time_s']:.0f} s)")
    return summary
