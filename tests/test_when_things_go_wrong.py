"""The README's "When things go wrong" guarantees, each checked through the real command line on the tiny
synthetic benchmark (the same one tests/test_end_to_end.py trains on): non-finite runs, bad checkpoint
files, a full disk, shared work dirs, killed writes, multi-process resume, one error line per failure."""
import errno
import os
import subprocess
import sys

import pytest
import torch

from pipa_video.cli import main
from tests.demo_data import TINY
from pipa_video.demo import prepare_demo_data
from pipa_video.engine.finite import named_float_tensors
from pipa_video.engine.workdir import WorkDirLock
from pipa_video.errors import ExitCode

CONFIG = "configs/demo/pipa++_synthetic.py"


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    return prepare_demo_data(tmp_path_factory.mktemp("data"), seed=0, spec=TINY)


def _options(indexes, iters, *extra):
    return ["--cfg-options", f"data.source.index={indexes['source']}", f"data.target.index={indexes['target_train']}",
            f"data.val.index={indexes['target_val']}", f"data.test.index={indexes['target_test']}",
            f"schedule.iters={iters}", "schedule.warmup_iters=1", "runtime.checkpoint_interval=2",
            "runtime.eval_interval=2", "runtime.log_interval=1", "data.source.crop_size=(64,64)",
            "data.target.crop_size=(64,64)", "uda.pseudo_threshold=0.0", "uda.temporal_contrast.confidence=0.0",
            *extra]


def _train(work_dir, indexes, iters, *extra, flags=()):
    return main(["train", CONFIG, "--work-dir", str(work_dir), *flags, *_options(indexes, iters, *extra)])


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1, lines
    return lines[0]


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_every_checkpoint_finite(work_dir):
    for path in sorted(work_dir.glob("*.pth")):
        bad = [name for name, t in named_float_tensors(_load(path)) if not torch.isfinite(t).all()]
        assert not bad, f"{path.name} holds non-finite tensors: {bad[:5]}"


# ---------------------------------------------------------------------------------------- non-finite
def test_lr_1000_stops_naming_the_tensor_before_any_checkpoint(indexes, tmp_path, capsys):
    code = _train(tmp_path, indexes, 6, "optimizer.lr=1000", "runtime.checkpoint_interval=100",
                  "runtime.eval_interval=100")
    line = _error_line(capsys)
    assert code == ExitCode.NON_FINITE, line
    assert line.startswith("pipa-video train: error: ") and ("NaN or inf" in line or "non-finite loss" in line)
    assert f"no checkpoint was written to {tmp_path}" in line
    assert not list(tmp_path.glob("*.pth")) and not list(tmp_path.glob(".*.tmp"))


def test_lr_300_stops_and_names_a_checkpoint_that_exists_and_is_finite(indexes, tmp_path, capsys):
    code = _train(tmp_path, indexes, 8, "optimizer.lr=300")
    line = _error_line(capsys)
    assert code == ExitCode.NON_FINITE, line
    named = line.split("the last checkpoint, ")[1].split(",")[0]
    assert os.path.isfile(named), line
    assert _load(named)["step"] >= 2
    _assert_every_checkpoint_finite(tmp_path)


# ---------------------------------------------------------------------------------------- bad files
@pytest.mark.parametrize("content, expected", [
    ("hello\nthis is a text file\n", "not a torch checkpoint"),
    ("a,b,c\n1,2,3\n", "not a torch checkpoint"),
])
def test_resume_from_a_text_file_or_a_csv_is_one_error_line(indexes, tmp_path, capsys, content, expected):
    bogus = tmp_path / "bogus.pth"
    bogus.write_text(content)
    code = _train(tmp_path / "run", indexes, 2, flags=["--resume", str(bogus)])
    line = _error_line(capsys)
    assert code == ExitCode.CHECKPOINT
    assert line == f"pipa-video train: error: {bogus}: {expected} (expected a file written by torch.save; " \
                   f"it starts with {content.encode()[:4]!r})"


def test_debug_prints_the_traceback_too(indexes, tmp_path, capsys):
    bogus = tmp_path / "bogus.pth"
    bogus.write_text("text")
    assert _train(tmp_path / "run", indexes, 2, flags=["--debug", "--resume", str(bogus)]) == ExitCode.CHECKPOINT
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.rstrip().splitlines()[-1].startswith(
        "pipa-video train: error: ")


def test_a_full_disk_during_a_checkpoint_write_is_one_line_and_leaves_no_temp_file(indexes, tmp_path, capsys,
                                                                                      monkeypatch):
    import pipa_video.models.checkpoint as checkpoint_io

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_io.torch, "save", disk_full)
    code = _train(tmp_path, indexes, 2)
    line = _error_line(capsys)
    assert code == ExitCode.IO
    assert line.startswith(f"pipa-video train: error: {tmp_path / 'iter_2.pth'}: No space left on device"), line
    assert not list(tmp_path.glob("*.pth")) and not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------------------------------- shared work dirs
def test_a_second_training_on_a_locked_work_dir_is_refused(indexes, tmp_path, capsys):
    with WorkDirLock(tmp_path):  # held by "another run"
        code = _train(tmp_path, indexes, 2)
    line = _error_line(capsys)
    assert code == ExitCode.WORK_DIR
    assert f"{tmp_path}: another training run (pid {os.getpid()}" in line
    assert not (tmp_path / "config.py").exists() and not (tmp_path / "train_log.csv").exists()


def test_a_killed_lock_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pipa_video.engine.workdir import "
                               "WorkDirLock; WorkDirLock(sys.argv[1]).acquire(); print('held', flush=True); "
                               "time.sleep(60)", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Exception, match="another training run"):
            WorkDirLock(tmp_path).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs
        holder.wait()
    WorkDirLock(tmp_path).acquire().release()


def test_a_fresh_run_into_a_used_work_dir_needs_resume_or_overwrite(indexes, tmp_path, capsys):
    assert _train(tmp_path, indexes, 2) == 0
    capsys.readouterr()
    assert _train(tmp_path, indexes, 2) == ExitCode.WORK_DIR
    line = _error_line(capsys)
    assert f"{tmp_path}: holds another run" in line and "--resume" in line and "--overwrite" in line
    # a killed checkpoint write left its temp file behind; resuming removes it
    stale = tmp_path / ".iter_4.pth.k3x9q.tmp"
    stale.write_bytes(b"\0" * 1000)
    assert _train(tmp_path, indexes, 4, flags=["--resume"]) == 0
    assert not stale.exists() and _load(tmp_path / "latest.pth")["step"] == 4
    rows_before = (tmp_path / "train_log.csv").read_text().count("\n")
    assert _train(tmp_path, indexes, 2, flags=["--overwrite"]) == 0
    assert _load(tmp_path / "latest.pth")["step"] == 2 and not (tmp_path / "iter_4.pth").exists()
    assert (tmp_path / "train_log.csv").read_text().count("\n") < rows_before  # a fresh log, not appended


# ---------------------------------------------------------------------------------------- multi-process
def _torchrun(work_dir, indexes, iters, *flags):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "pipa_video.cli", "train",
           CONFIG, "--work-dir", str(work_dir), *flags, *_options(indexes, iters, "data.val.index=None")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=400,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]


def test_resuming_pipa_across_two_ranks_is_bit_identical(indexes, tmp_path):
    """BatchNorm running statistics differ between ranks after each step; the teacher averages them."""
    _torchrun(tmp_path / "straight", indexes, 3)
    _torchrun(tmp_path / "resumed", indexes, 3, "--resume", str(tmp_path / "straight" / "iter_2.pth"))
    a, b = _load(tmp_path / "straight" / "latest.pth"), _load(tmp_path / "resumed" / "latest.pth")
    assert a["step"] == b["step"] == 3
    names_a, names_b = dict(named_float_tensors(a)), dict(named_float_tensors(b))
    assert names_a.keys() == names_b.keys()
    differ = [k for k in names_a if not torch.equal(names_a[k], names_b[k])]
    assert not differ, f"{len(differ)} tensors differ after a 2-rank resume, e.g. {differ[:5]}"
