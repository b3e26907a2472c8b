"""data_tools/make_synthetic.py: the synthetic benchmark's command line."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from pipa_video import synthetic as syn
from pipa_video.data.sources import layouts

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "data_tools" / "make_synthetic.py"
SMALL = ["--size", "64x32", "--source-train-sequences", "1", "--source-val-sequences", "1", "--source-frames", "3",
         "--target-train-snippets", "1", "--target-val-snippets", "1", "--target-test-snippets", "1", "--workers", "1"]


@pytest.fixture(scope="module")
def tool():
    """The script as a module (the command line lives in data_tools, not in the package)."""
    spec = importlib.util.spec_from_file_location("make_synthetic_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_line(tmp_path, capsys, tool):
    root = tmp_path / "cli"
    argv = [str(root), "--seed", "1", *SMALL, "--source-ext", "png"]
    assert tool.main(argv) == 0
    info = syn.read_info(root)
    assert info["seed"] == 1 and info["spec"]["width"] == 64 and info["spec"]["source_ext"] == "png"
    assert (root / syn.SOURCE_DIR / layouts.viper_image("train", 1, 2, "png")).is_file()
    assert cv2.imread(str(root / syn.SOURCE_DIR / layouts.viper_image("val", 1, 0, "png"))).shape == (32, 64, 3)
    assert tool.main(argv + ["--if-missing"]) == 0
    assert "already there" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tool.main([str(root), "--size", "64by32"])


@pytest.mark.parametrize("bad, message", [
    (["--seed", "-1"], "seed must be a non-negative integer, got '-1'"),
    (["--size", "8x4"], "frame size must be at least 32x16, got 8x4"),
    (["--scale", "0"], "scale must be > 0"),
    (["--target-val-snippets", "0"], "target_val_snippets must be >= 1"),
])
def test_bad_options_are_one_usage_line_and_write_nothing(tmp_path, capsys, tool, bad, message):
    root = tmp_path / "never"
    with pytest.raises(SystemExit) as exit_:
        tool.main([str(root), *bad])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("make_synthetic.py: error: ") and message in err[-1]
    assert err[0].startswith("usage: ") and not any("Traceback" in line for line in err)
    assert not root.exists()


def test_a_foreign_folder_is_refused_with_one_line(tmp_path, capsys, tool):
    (tmp_path / syn.SOURCE_DIR).mkdir()
    assert tool.main([str(tmp_path), *SMALL]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a synthetic benchmark root" in err[0]
    assert os.listdir(tmp_path) == [syn.SOURCE_DIR]


def test_runs_as_a_script_from_any_folder(tmp_path):
    root = tmp_path / "bench"
    run = subprocess.run([sys.executable, str(TOOL), str(root), "--seed", "2", *SMALL],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and "target test :" in run.stdout
    assert syn.is_complete(root, seed=2)
