"""The README's "Your own footage" recipe, run as written on a generated video, frame folder and photos.

The demo's work dir it starts from (``work_dirs/demo/pipa++/best.pth`` and the source index its
config names) is made by a tiny training here; the slow test runs the real ``pipa-video demo`` first.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipa_video.cli import main
from tests.demo_data import TINY
from pipa_video.demo import prepare_demo_data
from tests.footage_media import numbered_frames, write_av, write_photo

REPO = Path(__file__).resolve().parents[1]


def readme_commands(section: str) -> list[str]:
    """The command lines of the bash blocks of README section ``section`` (comments dropped)."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    blocks = re.findall(r"```bash\n(.*?)```", text[start:end if end > 0 else None], flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


def run_commands(commands: list[str], cwd: Path) -> list[subprocess.CompletedProcess]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = []
    for command in commands:
        result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
        done.append(result)
    return done


def make_footage(cwd: Path) -> None:
    root = cwd / "my_footage"
    write_av(root / "drive.mp4", numbered_frames(12, w=64, h=48), codec="libx264", rate=8)
    (root / "walk").mkdir(parents=True)
    for i, frame in enumerate(numbered_frames(4, w=48, h=32, seed=1)):
        cv2.imwrite(str(root / "walk" / f"f{i}.png"), frame)
    write_photo(root / "street.jpg", 80, 40)
    write_photo(root / "square.jpg", 30, 30, seed=2)


def tiny_demo_checkpoint(cwd: Path) -> None:
    """``work_dirs/demo/pipa++/best.pth`` as the demo leaves it, from 2 iterations on tiny data."""
    indexes = prepare_demo_data(cwd / "work_dirs" / "demo" / "data", seed=0, spec=TINY)
    options = [f"data.source.index={indexes['source']}", f"data.target.index={indexes['target_train']}",
               f"data.val.index={indexes['target_val']}", f"data.test.index={indexes['target_test']}",
               "schedule.iters=2", "schedule.warmup_iters=1", "runtime.eval_interval=2", "runtime.log_interval=1",
               "data.source.crop_size=(64,64)", "data.target.crop_size=(64,64)"]
    assert main(["train", str(REPO / "configs/demo/pipa++_synthetic.py"), "--work-dir",
                 str(cwd / "work_dirs" / "demo" / "pipa++"), "--cfg-options", *options]) == 0


def check_outputs(cwd: Path, runs: list[subprocess.CompletedProcess]) -> None:
    import av

    assert "load_from: loaded" in runs[1].stderr and "adapt: viper15 model from" in runs[1].stderr
    work = cwd / "work_dirs" / "adapt_my_footage"
    assert (work / "latest.pth").is_file() and (work / "train_curves.png").is_file()
    summary = json.loads((cwd / "predictions" / "my_footage" / "summary.json").read_text())
    sequences = {s["sequence"]: s for s in summary["sequences"]}
    assert set(sequences) == {"drive", "walk", "street", "square"}
    assert sequences["drive"]["source"].endswith("my_footage/drive.mp4") and sequences["drive"]["frames"] == 12
    with av.open(str(cwd / "predictions" / "my_footage" / sequences["drive"]["overlay"])) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    tc = json.loads((cwd / "reports" / "my_footage_tc" / "tc_summary.json").read_text())
    assert tc["overall"]["pairs"] == 11 + 3 and tc["overall"]["sequences"] == 4
    assert np.isfinite(tc["overall"]["tc_miou"]) and (cwd / "reports" / "my_footage_tc" / "tc_over_time.png").is_file()


@pytest.mark.timeout(1800)  # ~2 min on an idle 2-core machine (50 iterations and 5 commands); 10 under load
def test_readme_footage_recipe_runs_as_written(tmp_path):
    commands = readme_commands("Your own footage")
    assert len(commands) == 4 and commands[0].startswith("python data_tools/prepare_video.py")
    (tmp_path / "data_tools").symlink_to(REPO / "data_tools")
    tiny_demo_checkpoint(tmp_path)
    make_footage(tmp_path)
    check_outputs(tmp_path, run_commands(commands, tmp_path))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_readme_demo_and_footage_sections_run_as_written(tmp_path):
    """`pipa-video demo` as the README says (minutes), then the footage recipe on its checkpoint."""
    demo = readme_commands("Demo (CPU, synthetic benchmark)")
    assert demo == ["pipa-video demo"]
    (tmp_path / "data_tools").symlink_to(REPO / "data_tools")
    run_commands(demo, tmp_path)
    make_footage(tmp_path)
    check_outputs(tmp_path, run_commands(readme_commands("Your own footage"), tmp_path))
