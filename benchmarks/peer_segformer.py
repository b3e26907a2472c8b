"""Our segmentor (MiT + SegFormer head) against Hugging Face transformers' SegformerForSemanticSegmentation.

Both are built with the same widths and depths (MiT-B0 and MiT-B2, SegFormer's decoder widths 256
and 768, 19 classes, random initialisation from a ``SegformerConfig``: nothing is downloaded), drop
path off, classifier dropout 0.1, train mode. One iteration is forward + cross-entropy on the
stride-4 logits + backward of a 2x3x512x512 batch. The models run A/B interleaved in one process
(round r times every model once, in a rotating order), and the figure is the median over rounds
of the per-round ratio peer / ours, for wall time and for this process's CPU time (the fairer
column when other processes share the cores), and the FLOPs of one iteration of each
(``torch.utils.flop_counter``). A third model, ours with the plain NCHW,
concatenating head (``channels_last=False, fold_fuse=False``), shows what the head changes bring;
its outputs are compared with ours (the same weights): they must agree within 1e-4.

    python benchmarks/peer_segformer.py                    # B0 and B2, 5 rounds (~5 minutes, 1 thread)
    python benchmarks/peer_segformer.py --variants mit_b0 --rounds 3 --profile

``transformers`` is a benchmark-only dependency: ``pip install -e .[bench]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, markdown_table, write_report  # noqa: E402

from pipa_video.models.backbones import MIT_ARCHS, build_backbone  # noqa: E402
from pipa_video.models.heads import SegFormerHead  # noqa: E402
from pipa_video.models.segmentor import Segmentor  # noqa: E402

NUM_CLASSES = 19
DECODER_WIDTH = {"mit_b0": 256, "mit_b1": 256, "mit_b2": 768, "mit_b3": 768, "mit_b4": 768, "mit_b5": 768}
OURS, PLAIN, PEER = "pipa-video", "pipa-video, plain NCHW head", "transformers"


def build_ours(variant: str, *, optimised: bool = True) -> nn.Module:
    backbone = build_backbone(variant, pretrained=None, drop_path_rate=0.0)
    head = SegFormerHead(in_channels=MIT_ARCHS[variant].embed_dims, num_classes=NUM_CLASSES,
                         channels=DECODER_WIDTH[variant], dropout=0.1, channels_last=optimised, fold_fuse=optimised)
    return Segmentor(backbone=backbone, decode_head=head, num_classes=NUM_CLASSES)


def build_peer(variant: str) -> nn.Module:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    arch = MIT_ARCHS[variant]
    config = SegformerConfig(num_labels=NUM_CLASSES, hidden_sizes=list(arch.embed_dims), depths=list(arch.depths),
                             num_attention_heads=list(arch.num_heads), sr_ratios=list(arch.sr_ratios),
                             mlp_ratios=[4] * 4, decoder_hidden_size=DECODER_WIDTH[variant], drop_path_rate=0.0,
                             classifier_dropout_prob=0.1, layer_norm_eps=1e-6)
    return SegformerForSemanticSegmentation(config)


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).logits if isinstance(model, Segmentor) else model(pixel_values=x).logits


def make_step(model: nn.Module, x: torch.Tensor, label: torch.Tensor) -> Callable[[], None]:
    def step():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(logits_of(model, x), label).backward()
    return step


def check_same_function(ours: nn.Module, plain: nn.Module, x: torch.Tensor) -> float:
    """Max |difference| of the logits of ours and the plain-head twin holding the same weights (eval mode)."""
    plain.load_state_dict(ours.state_dict())
    with torch.no_grad():
        diff = (logits_of(ours.eval(), x) - logits_of(plain.eval(), x)).abs().max().item()
    ours.train(), plain.train()
    return diff


def time_round(steps: dict[str, Callable[[], None]], order: list[str]) -> dict[str, tuple[float, float]]:
    """(wall s, CPU s) of one call of each step, in ``order``."""
    out = {}
    for name in order:
        cpu, wall = time.process_time(), time.perf_counter()
        steps[name]()
        out[name] = (time.perf_counter() - wall, time.process_time() - cpu)
    return out


def count_flops(step: Callable[[], None]) -> int:
    """FLOPs of one forward + backward (matmuls, convolutions, attention), torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def profile(step: Callable[[], None], rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def compare(variant: str, *, rounds: int, batch: int, size: int, profile_rows: int) -> dict:
    torch.manual_seed(0)
    models = {OURS: build_ours(variant), PLAIN: build_ours(variant, optimised=False), PEER: build_peer(variant)}
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    if len(set(params.values())) != 1:
        raise RuntimeError(f"{variant}: the models differ in size, not a like-for-like comparison: {params}")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g)
    label = torch.randint(0, NUM_CLASSES, (batch, size // 4, size // 4), generator=g)
    max_diff = check_same_function(models[OURS], models[PLAIN], x)
    steps = {name: make_step(m.train(), x, label) for name, m in models.items()}
    names = list(steps)
    flops = {name: count_flops(step) for name, step in steps.items()}  # doubles as the warm-up round
    rows = []
    for r in range(rounds):
        rows.append(time_round(steps, names[r % 3:] + names[: r % 3]))
    result = {"variant": variant, "parameters": params[OURS], "batch": batch, "size": size, "rounds": rounds,
              "max_abs_logit_diff_vs_plain_head": max_diff,
              **{f"{name} GFLOP": flops[name] / 1e9 for name in names}}
    for name in names:
        result[f"{name} wall s"] = statistics.median(t[name][0] for t in rows)
        result[f"{name} CPU s"] = statistics.median(t[name][1] for t in rows)
    for name in (OURS, PLAIN):
        result[f"peer / {name}, wall"] = statistics.median(t[PEER][0] / t[name][0] for t in rows)
        result[f"peer / {name}, CPU"] = statistics.median(t[PEER][1] / t[name][1] for t in rows)
    if profile_rows:
        result["profiles"] = {name: profile(steps[name], profile_rows) for name in (OURS, PEER)}
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["mit_b0", "mit_b2"], choices=sorted(DECODER_WIDTH))
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (each times every model once)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler's top operators")
    parser.add_argument("--out", default="benchmarks/results/peer_segformer.json")
    args = parser.parse_args(argv)
    import transformers

    load_before = os.getloadavg()
    results = [compare(v, rounds=args.rounds, batch=args.batch, size=args.size, profile_rows=25 if args.profile else 0)
               for v in args.variants]
    for r in results:
        for name, text in r.get("profiles", {}).items():
            print(f"\n{r['variant']}, {name}: top operators by self CPU time (one forward + backward)\n{text}")
    columns = ["variant", "parameters", f"{OURS} GFLOP", f"{PEER} GFLOP", f"{OURS} CPU s", f"{PLAIN} CPU s", f"{PEER} CPU s",
               f"peer / {OURS}, CPU", f"peer / {OURS}, wall", f"peer / {PLAIN}, CPU", "max_abs_logit_diff_vs_plain_head"]
    print(f"\nforward + backward, {args.batch}x3x{args.size}x{args.size}, {torch.get_num_threads()} thread(s), "
          f"medians over {args.rounds} interleaved rounds; load average before {load_before[0]:.1f}, after "
          f"{os.getloadavg()[0]:.1f}")
    table = [{**r, "max_abs_logit_diff_vs_plain_head": f"{r['max_abs_logit_diff_vs_plain_head']:.1e}"} for r in results]
    print(markdown_table(table, columns))
    report = {"environment": {**environment(torch.device("cpu")), "transformers": transformers.__version__,
                              "load_average_before_after": [load_before[0], os.getloadavg()[0]]},
              "results": [{k: v for k, v in r.items() if k != "profiles"} for r in results],
              "profiles": {r["variant"]: r.get("profiles", {}) for r in results}, "goal": "peer / ours >= 1.3"}
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
