"""benchmarks/gpu_check.py keeps working: its rows run at toy sizes on the CPU (``--smoke``).

No timing is asserted: only that every row runs or says why not, and that the JSON and the table
hold what the README needs (name, ms per iteration, peak memory, FLOPs).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
# One row of each kind (HRDA + MIC as the HRDA rig), and the frame cache; the compile row and the
# layout twin are left to the full smoke run (slow).
SUBSET = ["--only", "DAFormer self-training", "--only", "HRDA + MIC", "--only", "eval whole, 1024x512",
          "--only", "frame cache", "--skip", "compile", "--skip", "channels_last", "--skip", "PiPa++ on"]


def _run(tmp_path, *args, timeout=900):
    out = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out), *args], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


def _check_measured(row):
    assert row["status"] == "ok", row
    assert row["iters"] >= 10 and row["ms_per_iter"] > 0 and row["throughput"] > 0
    assert "peak_mem_gib" in row and row["size"]


def test_smoke_subset_runs_every_kind_of_row(tmp_path):
    report, stdout = _run(tmp_path, *SUBSET)
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == ["train DAFormer self-training", "train HRDA + MIC", "eval whole, 1024x512 input (DAFormer, DA-VSN)",
                          "loader, frame cache PNGs"]
    for name in ("train DAFormer self-training", "eval whole, 1024x512 input (DAFormer, DA-VSN)"):
        _check_measured(rows[name])
        assert rows[name]["tflop_per_iter"] > 0 and rows[name]["mfu"] is None  # no bf16 peak on a CPU
    assert rows["train DAFormer self-training"]["size"].startswith("mit_demo 64x64, 2+2 clips of 2")
    _check_measured(rows["loader, frame cache PNGs"])
    assert rows["loader, frame cache PNGs"]["throughput_unit"] == "clips/s"
    _check_measured(rows["train HRDA + MIC"])
    assert rows["train HRDA + MIC"]["config"] == "configs/mic/mic_hrda_mit_b5_viper_to_csseq.py"
    assert "| row | size | ms/iter | throughput | peak GiB | TFLOP/iter | MFU | status |" in stdout


def test_spent_budget_skips_rows_and_still_writes_the_json(tmp_path):
    report, stdout = _run(tmp_path, "--budget", "0.5", "--only", "eval whole, 1024x512", "--only", "loader")
    assert [r["status"] for r in report["rows"]] == ["skipped: time budget spent"] * 3
    assert "skipped: time budget spent" in stdout


@pytest.mark.slow
def test_full_smoke_run(tmp_path):
    report, _ = _run(tmp_path, timeout=600)
    statuses = {r["name"]: r["status"] for r in report["rows"]}
    assert statuses["train PiPa++"] == "ok" and statuses["loader, Cityscapes PNGs"] == "ok"
    assert statuses["train DAFormer self-training, torch.compile"] == "ok"  # aot_eager at smoke sizes
    assert not [s for s in statuses.values() if s.startswith("error")], statuses
