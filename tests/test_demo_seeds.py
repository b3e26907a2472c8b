"""`pipa-video demo --seeds`: every method at every seed, paired differences with a t interval, a plot."""
import json
import stat

import pytest

from pipa_video.cli import build_parser
from tests.demo_data import TINY
from pipa_video.demo import format_seed_tables, run_demo_seeds, seed_statistics
from pipa_video.evaluation.stats import paired_difference



def _fake_runs():
    miou = {"source_only": [20.0, 21.0, 19.5], "self_training": [22.0, 22.5, 21.0], "pipa++": [22.5, 22.0, 22.0]}
    return {seed: {name: {"target_mIoU": values[i], "flicker_rate": 5.0, "flow_warped_consistency": 60.0}
                   for name, values in miou.items()} for i, seed in enumerate((3, 7, 9))}


def test_seed_statistics_pair_the_seeds():
    from pipa_video.demo import METHODS

    stats = seed_statistics(_fake_runs(), METHODS)
    assert stats["seeds"] == [3, 7, 9]
    assert stats["methods"]["self_training"]["target_mIoU_per_seed"] == [22.0, 22.5, 21.0]
    assert stats["methods"]["source_only"]["mean"] == pytest.approx(20.1666667)
    pair = stats["paired"]["pipa++ - self_training"]
    assert pair == paired_difference([22.5, 22.0, 22.0], [22.0, 22.5, 21.0])
    assert pair["ci95_low"] < pair["mean"] < pair["ci95_high"]
    assert set(stats["paired"]) == {"pipa++ - self_training", "self_training - source_only"}
    table = format_seed_tables(stats)
    assert "| self_training - source_only | +2.00 / +1.50 / +1.50 | +1.67 |" in table


def test_cli_parses_the_seed_list():
    args = build_parser().parse_args(["demo", "--seeds", "0,1,2,3,4", "--iters", "40"])
    assert args.seeds == [0, 1, 2, 3, 4] and args.iters == 40
    assert build_parser().parse_args(["demo"]).seeds is None  # the single-seed demo stays the default
    for bad in ("0", "0,0", "a,b"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["demo", "--seeds", bad])


def test_two_seeds_end_to_end(tmp_path):
    overrides = {"data.source.crop_size": (64, 64), "data.target.crop_size": (64, 64), "uda.pseudo_threshold": 0.0,
                 "uda.temporal_contrast.confidence": 0.0}
    summary = run_demo_seeds(work_dir=tmp_path, seeds=[0, 1], iters=1, spec=TINY, overrides=overrides)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["seeds"] == [0, 1] and on_disk["data_seed"] == 0
    for name in ("source_only", "self_training", "pipa++"):
        method = on_disk["methods"][name]
        assert len(method["target_mIoU_per_seed"]) == 2 and set(method["runs"]) == {"0", "1"}
        assert method["target_mIoU_per_seed"] == [method["runs"][s]["target_mIoU"] for s in ("0", "1")]
        assert method["mean"] == pytest.approx(sum(method["target_mIoU_per_seed"]) / 2)
    for a, b in (("pipa++", "self_training"), ("self_training", "source_only")):
        pair = on_disk["paired"][f"{a} - {b}"]
        expected = paired_difference(on_disk["methods"][a]["target_mIoU_per_seed"],
                                     on_disk["methods"][b]["target_mIoU_per_seed"])
        assert {k: pair[k] for k in ("mean", "ci95_low", "ci95_high")} == pytest.approx(
            {k: expected[k] for k in ("mean", "ci95_low", "ci95_high")})
    assert (tmp_path / "seed1" / "pipa++" / "eval_test").is_dir()
    plot = tmp_path / "seeds.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and stat.S_IMODE(plot.stat().st_mode) == 0o644
    assert "| paired difference |" in (tmp_path / "summary.md").read_text()
    assert summary["paired"] == on_disk["paired"]
