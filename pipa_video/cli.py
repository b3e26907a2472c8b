"""`pipa-video` command line: parse arguments, then call the library.

    pipa-video train CONFIG [--work-dir DIR] [--cfg-options k=v ...] [--resume [CKPT]]
    pipa-video eval CONFIG --checkpoint CKPT [--out DIR] [--protocol davsn|unified] [--split test]
    pipa-video tc-report CONFIG (--checkpoint CKPT | --predictions DIR) [--out DIR] [--split test]
    pipa-video predict --config CONFIG --checkpoint CKPT --input VIDEO_OR_FOLDER --out DIR
    pipa-video demo [--work-dir DIR] [--iters N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipa_video.config import ConfigError, DictAction, load_config
from pipa_video.data.index import DatasetError
from pipa_video.engine.checkpoint import CheckpointError


def _add_config(parser: argparse.ArgumentParser, *, flag: bool = False) -> None:
    if flag:
        parser.add_argument("--config", required=True, help="Python config file")
    else:
        parser.add_argument("config", help="Python config file")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, metavar="KEY=VALUE",
                        help="override config keys, e.g. schedule.iters=1000 data.num_workers=2")


def _work_dir(args: argparse.Namespace, default_root: str = "work_dirs") -> Path:
    return Path(args.work_dir) if args.work_dir else Path(default_root) / Path(args.config).stem


def cmd_train(args: argparse.Namespace) -> int:
    from pipa_video.engine.build import train

    cfg = load_config(args.config, args.cfg_options)
    summary = train(cfg, work_dir=_work_dir(args), resume=args.resume)
    print(f"done: {summary['iterations']} iterations in {summary['wall_time_s']:.0f} s -> {_work_dir(args)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pipa_video.engine.performance import configure_backends
    from pipa_video.evaluation.runner import evaluate

    cfg = load_config(args.config, args.cfg_options)
    configure_backends(cfg["runtime"])  # runtime.tf32, as in training
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval_{args.split}"
    evaluate(cfg, checkpoint=args.checkpoint, out_dir=out, protocol=args.protocol, split=args.split)
    return 0


def cmd_tc_report(args: argparse.Namespace) -> int:
    from pipa_video.evaluation.runner import tc_report

    if (args.checkpoint is None) == (args.predictions is None):
        raise ConfigError("tc-report needs exactly one of --checkpoint (run the model) or --predictions DIR")
    cfg = load_config(args.config, args.cfg_options)
    source = args.checkpoint or args.predictions
    out = Path(args.out) if args.out else Path(source).parent / f"tc_{args.split}"
    tc_report(cfg, out_dir=out, checkpoint=args.checkpoint, predictions_dir=args.predictions, split=args.split,
              max_sequences=args.max_sequences)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from pipa_video.evaluation.runner import predict

    cfg = load_config(args.config, args.cfg_options)
    predict(cfg, checkpoint=args.checkpoint, input_path=args.input, out_dir=args.out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipa_video.demo import run_demo

    run_demo(work_dir=Path(args.work_dir), iters=args.iters, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipa-video", description="Domain adaptive video segmentation with PiPa++",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a config")
    _add_config(p)
    p.add_argument("--work-dir", help="run directory (default work_dirs/<config name>)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="continue from WORK_DIR/latest.pth, or from CKPT")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="mIoU and per-class IoU of a checkpoint on an annotated split")
    _add_config(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", help="report directory (default: next to the checkpoint)")
    p.add_argument("--protocol", choices=("davsn", "unified"), help="default: evaluation.protocol of the config")
    p.add_argument("--split", default="test", choices=("val", "test"),
                   help="data.test is the reported split, data.val the held-out selection split (default test)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("tc-report", help="temporal consistency report over every frame of a split's sequences")
    _add_config(p)
    p.add_argument("--checkpoint", help="run this model over the frames")
    p.add_argument("--predictions", help="or read saved train-id PNGs <sequence>/<frame:06d>.png from here")
    p.add_argument("--out")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--max-sequences", type=int, default=None)
    p.set_defaults(func=cmd_tc_report)

    p = sub.add_parser("predict", help="colour-coded predictions and an overlay video of a video or frame folder")
    _add_config(p, flag=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, help="a video file (.mp4/.avi/.mkv) or a folder of frames")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="source-only vs self-training vs PiPa++ on the synthetic benchmark (CPU)")
    p.add_argument("--work-dir", default="work_dirs/demo")
    p.add_argument("--iters", type=int, default=None, help="training iterations per method (default: the demo configs')")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DatasetError, FileNotFoundError, CheckpointError) as err:
        print(f"pipa-video {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
