"""`pipa-video` command line: parse arguments, then call the library.

    pipa-video train CONFIG [--work-dir DIR] [--cfg-options k=v ...] [--resume [CKPT] | --overwrite]
    pipa-video eval CONFIG --checkpoint CKPT [--out DIR] [--protocol davsn|unified] [--split test] [--tc]
    pipa-video tc-report CONFIG (--checkpoint CKPT | --predictions DIR) [--out DIR] [--split test]
    pipa-video predict --config CONFIG --checkpoint CKPT --input FOOTAGE --out DIR [--no-frames]
    pipa-video predict --config CONFIG --checkpoint CKPT --format cityscapes|acdc|dark_zurich [--index DIR] --out DIR
    pipa-video adapt --checkpoint CKPT --footage PATH [--iters N] [--work-dir DIR] [--resume [CKPT] | --overwrite]
    pipa-video demo [--work-dir DIR] [--iters N] [--seed S | --seeds 0,1,2,3,4] [--methods NAME,...]

Commands that read checkpoints take --allow-pickle (unpickle arbitrary objects: trusted files only;
checkpoints are read with weights_only=True otherwise). Every command takes --debug (print the
traceback of an error). A failure prints one line,
`pipa-video <cmd>: error: <path or key>: <what was expected>`, and exits with the code of its kind:
  0 success                1 a bug (traceback printed; please report it)
  2 bad config or usage    3 bad or missing data (index, frame, video, input file)
  4 bad checkpoint         5 non-finite loss or weights stopped training
  6 I/O (disk full, read-only, permission)                7 work dir locked or holding another run
  130 interrupted
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipa_video.config import ConfigError, DictAction, load_config
from pipa_video.errors import run_command
from pipa_video.checkpoint_io import pickle_loading


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
    summary = train(cfg, work_dir=_work_dir(args), resume=args.resume, overwrite=args.overwrite)
    print(f"done: {summary['iterations']} iterations in {summary['wall_time_s']:.0f} s -> {_work_dir(args)}")
    return 0


def _restore(cfg, checkpoint: str):
    """The checkpoint's segmentor for ``cfg`` (``engine.checkpoint`` reads and checks it); evaluation runs it."""
    from pipa_video.engine.checkpoint import load_segmentor

    return load_segmentor(cfg, checkpoint)


def cmd_eval(args: argparse.Namespace) -> int:
    from pipa_video.engine.performance import configure_backends
    from pipa_video.evaluation.runner import evaluate

    cfg = load_config(args.config, args.cfg_options)
    configure_backends(cfg["runtime"])  # runtime.tf32, as in training
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval_{args.split}"
    restored = _restore(cfg, args.checkpoint)
    evaluate(cfg, restored.model, checkpoint=restored.path, meta=restored.meta, out_dir=out, protocol=args.protocol,
             split=args.split, temporal=args.tc)
    return 0


def cmd_tc_report(args: argparse.Namespace) -> int:
    from pipa_video.evaluation.runner import tc_report

    if (args.checkpoint is None) == (args.predictions is None):
        raise ConfigError("tc-report needs exactly one of --checkpoint (run the model) or --predictions DIR")
    cfg = load_config(args.config, args.cfg_options)
    source = args.checkpoint or args.predictions
    out = Path(args.out) if args.out else Path(source).parent / f"tc_{args.split}"
    restored = _restore(cfg, args.checkpoint) if args.checkpoint else None
    tc_report(cfg, restored.model if restored else None, out_dir=out, checkpoint=args.checkpoint,
              meta=restored.meta if restored else None, predictions_dir=args.predictions, split=args.split,
              max_sequences=args.max_sequences)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from pipa_video.evaluation.predict import predict

    cfg = load_config(args.config, args.cfg_options)
    if args.format and args.input is not None:
        raise ConfigError("predict --format exports the frames of --index (or data.test.index); drop --input")
    if not args.format and args.input is None:
        raise ConfigError("predict needs --input FOOTAGE, or --format to export a split for a benchmark server")
    restored = _restore(cfg, args.checkpoint)
    source = dict(checkpoint=restored.path, meta=restored.meta)
    if args.format:  # benchmark-server files of a whole split, read through its index
        from pipa_video.evaluation.export import export_for_server

        export_for_server(cfg, restored.model, fmt=args.format, out_dir=args.out, index_dir=args.index, **source)
        return 0
    predict(cfg, restored.model, input_path=args.input, out_dir=args.out, frames=not args.no_frames,
            root_images=args.root_images, fps=args.fps, **source)
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from pipa_video.adapt import adapt

    work_dir = Path(args.work_dir) if args.work_dir else Path("work_dirs") / f"adapt_{Path(args.footage).stem}"
    summary = adapt(checkpoint=args.checkpoint, footage=args.footage, work_dir=work_dir, iters=args.iters,
                    overrides=args.cfg_options, resume=args.resume, overwrite=args.overwrite)
    print(f"done: {summary['iterations']} iterations in {summary['wall_time_s']:.0f} s -> "
          f"{summary['final_checkpoint']} (config {summary['config']}, footage index {summary['index']})")
    return 0


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2, got {text!r}") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected at least two distinct seeds, got {text!r}")
    return seeds


def _method_list(text: str) -> list[str]:
    from pipa_video.demo import methods_by_name

    names = [part.strip() for part in text.split(",") if part.strip()]
    try:
        methods_by_name(names)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return names


def cmd_demo(args: argparse.Namespace) -> int:
    from pipa_video.demo import METHODS, methods_by_name, run_demo, run_demo_seeds

    methods = methods_by_name(args.methods) if args.methods else METHODS
    if args.seeds is not None:
        run_demo_seeds(work_dir=Path(args.work_dir), seeds=args.seeds, iters=args.iters, methods=methods)
    else:
        run_demo(work_dir=Path(args.work_dir), iters=args.iters, seed=args.seed, methods=methods)
    return 0


def _add_common(parser: argparse.ArgumentParser, *, checkpoints: bool) -> None:
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="print the traceback of an error, not only its one-line message")
    if checkpoints:
        parser.add_argument("--allow-pickle", action="store_true",
                            help="read checkpoints holding arbitrary Python objects (unpickling can run code "
                                 "from the file: only for files you trust)")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="overlay videos (H.264, with a class legend), colour and train-id PNGs "
                                       "and temporal consistency of videos, frame folders or photos")
    _add_common(p, checkpoints=True)
    _add_config(p, flag=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", help="a video, a photo, a folder of videos, frame folders "
                   "(<folder>/<sequence>/<frames>) and photos, or an index written by prepare_video.py")
    p.add_argument("--out", required=True, help="output folder; filled only when the run completes")
    p.add_argument("--no-frames", action="store_true", help="skip the per-frame colour and train-id PNGs")
    p.add_argument("--root-images", choices=("photos", "frames"), default="photos",
                   help="image files directly in --input: separate photos or the frames of one video (default photos)")
    p.add_argument("--fps", type=float, default=None, help="overlay video rate (default: the video's, 10 for frames)")
    p.add_argument("--format", choices=("cityscapes", "acdc", "dark_zurich"),
                   help="instead of --input: the files and zip archive this benchmark server accepts, for every "
                        "frame of --index (default data.test.index); see pipa_video/evaluation/export.py")
    p.add_argument("--index", help="with --format: the index directory of the split to export (e.g. its test split)")
    p.set_defaults(func=cmd_predict)


def _add_adapt(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt", help="adapt a trained checkpoint to your own footage (videos, frame folders, photos)")
    _add_common(p, checkpoints=True)
    p.add_argument("--checkpoint", required=True, help="a pipa-video checkpoint; its saved config gives the class "
                   "set, model, source index and method")
    p.add_argument("--footage", required=True, help="a video, a photo, a folder of videos, frame folders and "
                   "photos, or an index written by data_tools/prepare_video.py")
    p.add_argument("--iters", type=int, default=None, help="training iterations (default: the checkpoint's "
                   "schedule); warm-up and EMA rate scale with it")
    p.add_argument("--work-dir", help="run directory (default work_dirs/adapt_<footage name>)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, metavar="KEY=VALUE",
                   help="override keys of the adaptation config, e.g. data.source.index=DIR")
    _add_fresh_or_resume(p)
    p.set_defaults(func=cmd_adapt)


def _add_fresh_or_resume(p: argparse.ArgumentParser) -> None:
    """``--resume [CKPT]`` or ``--overwrite`` for a command that trains into a work dir."""
    fresh = p.add_mutually_exclusive_group()
    fresh.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                       help="continue from WORK_DIR/latest.pth, or from CKPT")
    fresh.add_argument("--overwrite", action="store_true",
                       help="start afresh in a work dir holding another run (deletes its checkpoints and logs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipa-video", description="Domain adaptive video segmentation with PiPa++",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.partition("\n\n")[2])  # the usage lines, not the module summary
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a config")
    _add_common(p, checkpoints=True)
    _add_config(p)
    p.add_argument("--work-dir", help="run directory (default work_dirs/<config name>)")
    _add_fresh_or_resume(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="mIoU and per-class IoU of a checkpoint on an annotated split")
    _add_common(p, checkpoints=True)
    _add_config(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", help="report directory (default: next to the checkpoint)")
    p.add_argument("--protocol", choices=("davsn", "unified"), help="default: evaluation.protocol of the config")
    p.add_argument("--split", default="test", choices=("val", "test"),
                   help="data.test is the reported split, data.val the held-out selection split (default test)")
    p.add_argument("--tc", action="store_true",
                   help="also temporal consistency over every frame of each sequence, in the same pass (tc_* files)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("tc-report", help="temporal consistency report over every frame of a split's sequences")
    _add_common(p, checkpoints=True)
    _add_config(p)
    p.add_argument("--checkpoint", help="run this model over the frames")
    p.add_argument("--predictions", metavar="DIR",
                   help="or read saved train-id PNGs DIR/<sequence>/<frame:06d>.png (predict's OUT/train_ids)")
    p.add_argument("--out")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--max-sequences", type=int, default=None)
    p.set_defaults(func=cmd_tc_report)

    _add_predict(sub)
    _add_adapt(sub)

    p = sub.add_parser("demo", help="source-only vs self-training vs PiPa++ on the synthetic benchmark (CPU)")
    _add_common(p, checkpoints=False)
    p.add_argument("--work-dir", default="work_dirs/demo")
    p.add_argument("--iters", type=int, default=None, help="training iterations per method (default: the demo configs')")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="one run of each method (default 0)")
    seeds.add_argument("--seeds", type=_seed_list, default=None, metavar="S1,S2,...",
                       help="every method at each seed: per-seed table, mean / std, paired differences with a "
                            "95%% Student t interval, and a plot (seeds.png); no overlay video")
    p.add_argument("--methods", type=_method_list, default=None, metavar="NAME,...",
                   help="methods to train, among source_only, self_training, pipa++, hrda_mic, pipa++_hrda_mic "
                        "(default: source_only,self_training,pipa++)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; see the module docstring for the exit codes."""
    args = build_parser().parse_args(argv)

    def run() -> int:
        with pickle_loading(getattr(args, "allow_pickle", False)):
            return args.func(args)

    return run_command(run, prog=f"pipa-video {args.command}", debug=getattr(args, "debug", False))


if __name__ == "__main__":
    sys.exit(main())
