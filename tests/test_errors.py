"""One error line and an exit code per kind, for every command (pipa_video.errors)."""
import errno
import os

import pytest
from torch.utils.data import DataLoader, Dataset

from pipa_video.errors import (CheckpointError, ConfigError, DatasetError, ExitCode, NonFiniteError, WorkDirError,
                               WriteError, exit_code, run_command, writing)


@pytest.mark.parametrize("err, code", [
    (ConfigError("k: bad"), ExitCode.CONFIG), (DatasetError("f: bad"), ExitCode.DATA),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.mp4"), ExitCode.DATA),
    (CheckpointError("c: bad"), ExitCode.CHECKPOINT), (NonFiniteError("loss: nan"), ExitCode.NON_FINITE),
    (OSError(errno.ENOSPC, "No space left on device"), ExitCode.IO), (WriteError("w: full"), ExitCode.IO),
    (PermissionError(errno.EACCES, "Permission denied", "/x"), ExitCode.IO),
    (WorkDirError("d: locked"), ExitCode.WORK_DIR), (ValueError("a bug"), ExitCode.BUG),
    (KeyboardInterrupt(), ExitCode.INTERRUPTED),
])
def test_each_kind_has_its_exit_code(err, code):
    assert exit_code(err) == code


def test_the_codes_are_distinct():
    codes = [c.value for c in ExitCode]
    assert len(codes) == len(set(codes))


def test_run_command_prints_one_line_and_returns_the_code(capsys):
    def fails():
        raise DatasetError("/data/x.png: expected a PNG\n  (second line of detail)")

    assert run_command(fails, prog="pipa-video eval") == ExitCode.DATA
    assert capsys.readouterr().err == "pipa-video eval: error: /data/x.png: expected a PNG; (second line of detail)\n"


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_command(lambda: 1 // 0, prog="pipa-video train")


def test_os_errors_name_the_file_and_what_was_expected(capsys):
    def read_only():
        with writing("/mnt/ro/out/index.csv"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/mnt/ro/out/.index.csv.x.tmp")

    assert run_command(read_only, prog="prepare_viper.py") == ExitCode.IO
    assert capsys.readouterr().err == ("prepare_viper.py: error: /mnt/ro/out/index.csv: Read-only file system "
                                       "(expected a writable location)\n")


class _BrokenFrames(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise DatasetError(f"/data/seq/{i:06d}.jpg: truncated JPEG (expected a complete image)")


def test_an_error_raised_in_a_dataloader_worker_is_still_one_line(capsys):
    def load():
        next(iter(DataLoader(_BrokenFrames(), num_workers=1)))

    assert run_command(load, prog="pipa-video train") == ExitCode.DATA
    assert capsys.readouterr().err == ("pipa-video train: error: /data/seq/000000.jpg: truncated JPEG "
                                       "(expected a complete image)\n")


def test_interrupted(capsys):
    def interrupted():
        raise KeyboardInterrupt

    assert run_command(interrupted, prog="pipa-video demo") == 130
    assert capsys.readouterr().err == "pipa-video demo: interrupted\n"


def test_debug_adds_the_traceback(capsys):
    def fails():
        raise CheckpointError("c.pth: not a torch checkpoint")

    assert run_command(fails, prog="pipa-video eval", debug=True) == ExitCode.CHECKPOINT
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith("pipa-video eval: error: c.pth: not a torch checkpoint\n")


def test_run_command_prints_warnings_as_one_line_and_restores_the_format():
    import warnings

    before, seen = warnings.formatwarning, []

    def body():  # what warnings.showwarning would print (pytest captures the warning itself)
        seen.append(warnings.formatwarning("clip.avi: 3 frames unreadable", UserWarning, "footage.py", 187))
        return 0

    assert run_command(body, prog="pipa-video x") == 0
    assert seen == ["pipa-video x: warning: clip.avi: 3 frames unreadable\n"]
    assert warnings.formatwarning is before
