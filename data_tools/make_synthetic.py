#!/usr/bin/env python
"""Write the embedded synthetic benchmark: ROOT/source (VIPER layout), ROOT/target (Cityscapes-Seq
layout, train/val/test) and ROOT/SYNTHETIC_INFO.json, deterministically from --seed.

Usage: python data_tools/make_synthetic.py ROOT [--seed 0] [--size 256x128] [--scale 1.0] [--help]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from pipa_video.data.index import DatasetError
from pipa_video.synthetic import SyntheticSpec, is_complete, make_synthetic, read_info


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 256x128, got {text!r}") from None
    return width, height


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}")
    return seed


def build_parser() -> argparse.ArgumentParser:
    """The tool's options: every ``SyntheticSpec`` count, the frame size, the seed and the workers."""
    p = argparse.ArgumentParser(
        prog="make_synthetic.py",
        description="Write the synthetic benchmark: ROOT/source (VIPER layout), ROOT/target "
                    "(Cityscapes-Seq layout, train/val/test) and ROOT/SYNTHETIC_INFO.json.")
    d = SyntheticSpec()
    p.add_argument("root", help="output folder (an earlier synthetic benchmark there is replaced)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--size", type=_parse_size, default=(d.width, d.height), help="WIDTHxHEIGHT (default 256x128)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every sequence/snippet count")
    for name in ("source_train_sequences", "source_val_sequences", "source_frames", "source_label_step",
                 "target_train_snippets", "target_val_snippets", "target_test_snippets"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    p.add_argument("--source-ext", choices=("jpg", "png"), default=d.source_ext)
    p.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    p.add_argument("--if-missing", action="store_true",
                   help="do nothing when ROOT already holds a complete benchmark of this seed and spec")
    return p


def _spec(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SyntheticSpec:
    """The spec the options ask for; a value SyntheticSpec refuses is reported as a usage error."""
    counts = {f.name: getattr(args, f.name) for f in fields(SyntheticSpec) if hasattr(args, f.name)}
    try:
        spec = SyntheticSpec(width=args.size[0], height=args.size[1], **counts)
        return spec.scaled(args.scale) if args.scale != 1.0 else spec
    except ValueError as err:
        parser.error(str(err))  # exits with status 2


def _print_summary(root: Path, seconds: float) -> None:
    info = read_info(root)
    size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2 ** 20
    for domain, splits in info["splits"].items():
        for split, c in splits.items():
            print(f"{domain:6s} {split:5s}: {c['sequences']:3d} sequences, {c['frames']:5d} frames, "
                  f"{c['labelled']:4d} labelled")
    print(f"wrote {info['files']} files ({size_mb:.1f} MB) to {root} in {seconds:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Generate (or, with ``--if-missing``, keep) the benchmark and print its splits.

    Returns 0, or 1 when ROOT holds data that is not a synthetic benchmark (one error line).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    spec = _spec(parser, args)
    start = time.perf_counter()
    if args.if_missing and is_complete(args.root, seed=args.seed, spec=spec):
        print(f"{args.root}: complete synthetic benchmark (seed {args.seed}) already there")
        return 0
    try:
        root = make_synthetic(args.root, seed=args.seed, spec=spec, workers=args.workers)
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    _print_summary(root, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
