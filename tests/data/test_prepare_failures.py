"""Prepare tools when things go wrong: gaps recorded (and only their clips skipped in training), a re-run
that fails or is interrupted keeps the old index, a read-only output is one error line, exit codes."""
import errno
import json
import logging
import os
from pathlib import Path

import pytest

from pipa_video.config import validate
from pipa_video.data import prepare as prepare_module
from pipa_video.data.build import build_clip_dataset
from pipa_video.atomic import replace_dir
from pipa_video.data.index import DatasetError
from pipa_video.data.prepare import DatasetWarning, main, prepare
from pipa_video.errors import ExitCode
from tests.data.fixtures import make_cityscapes_seq_tree, make_synthia_tree

ANCHOR = ("lindau", 0, 19)


def _seq_tree(root: Path, *, missing: int | None = 10):
    tree = make_cityscapes_seq_tree(root, split="val", anchors=(ANCHOR,))
    if missing is not None:
        (root / tree.frames.image[tree.frames.frame == missing].iloc[0]).unlink()
    return tree


def test_a_missing_frame_is_recorded_and_skips_only_the_clips_that_need_it(tmp_path, caplog):
    _seq_tree(tmp_path / "cs")
    with pytest.warns(DatasetWarning, match=r"1 sequence\(s\) lack frames inside them \(1 gap\(s\), e.g. "
                                            r"'lindau_000000_000019': frame 10\)"):
        out = prepare("cityscapes_seq", tmp_path / "cs", tmp_path / "index", split="val", class_set="viper15",
                      quiet=True)
    assert json.loads((out / "meta.json").read_text())["gaps"] == {"lindau_000000_000019": [[10, 10]]}
    cfg = validate({"class_set": "viper15", "data": {"target": {"index": str(out), "offsets": [-1], "keys": "all"}}})
    with caplog.at_level(logging.WARNING, logger="pipa_video"):
        target = build_clip_dataset(cfg, "target")
    assert len(target) == 29 - 1  # frames 0..29 but 10; only key frame 11 needs frame 10
    assert "skipping 1 of 29 clips" in caplog.text and "frame 10, for key frame 11" in caplog.text
    labelled = validate({"class_set": "viper15", "data": {"target": {"index": str(out), "offsets": [-1]}}})
    assert len(build_clip_dataset(labelled, "target")) == 1  # the annotated frame 19 needs 18: present


def test_the_prepare_command_exits_0_on_a_gap_and_3_on_a_wrong_root(tmp_path, capsys):
    _seq_tree(tmp_path / "cs")
    args = ["--out", str(tmp_path / "index"), "--split", "val", "--class-set", "viper15", "--quiet"]
    with pytest.warns(DatasetWarning):
        assert main([str(tmp_path / "cs"), *args], layout="cityscapes_seq") == 0
    assert main([str(tmp_path / "nowhere"), *args], layout="cityscapes_seq") == ExitCode.DATA
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"prepare_cityscapes_seq.py: error: {tmp_path / 'nowhere'}")


def test_gaps_are_runs_of_missing_frames_at_the_sequence_spacing():
    import pandas as pd

    table = pd.DataFrame({"sequence": ["a"] * 5 + ["b"] * 4 + ["c"],
                          "frame": [0, 1, 4, 5, 9, 0, 2, 4, 8, 7]})
    assert prepare_module.sequence_gaps(table) == {"a": [[2, 3], [6, 8]], "b": [[6, 6]]}  # b: every 2nd frame


def _index_state(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fail_at", ["conversion", "publish"])
def test_an_interrupted_re_prepare_keeps_the_old_index(tmp_path, monkeypatch, fail_at):
    make_synthia_tree(tmp_path / "data", frames=(0, 1, 2, 3))
    out = prepare("synthia", tmp_path / "data", tmp_path / "index", quiet=True)
    before = _index_state(out)
    if fail_at == "conversion":
        original, calls = prepare_module.FrameConverter.__call__, []

        def interrupted(self, frame):
            calls.append(frame)
            if len(calls) == 3:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the labels
            return original(self, frame)

        monkeypatch.setattr(prepare_module.FrameConverter, "__call__", interrupted)
    else:
        def killed_before_the_swap(new, target):
            raise KeyboardInterrupt

        monkeypatch.setattr(prepare_module, "replace_dir", killed_before_the_swap)
    with pytest.raises(KeyboardInterrupt):
        prepare("synthia", tmp_path / "data", tmp_path / "index", quiet=True)
    assert _index_state(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_a_killed_runs_staging_folder_is_removed_and_a_re_run_replaces_the_index(tmp_path):
    make_synthia_tree(tmp_path / "data", frames=(0, 1, 2))
    out = prepare("synthia", tmp_path / "data", tmp_path / "index", quiet=True)
    stale = tmp_path / ".index.prepare-k1ll3d"
    (stale / "labels").mkdir(parents=True)
    (out / "labels" / "from_an_older_run.png").write_bytes(b"old")
    prepare("synthia", tmp_path / "data", tmp_path / "index", quiet=True)
    assert not stale.exists() and not (out / "labels" / "from_an_older_run.png").exists()
    assert (out / "index.csv").is_file() and oct(out.stat().st_mode & 0o777) != oct(0o700)


def test_replace_dir_swaps_whole_directories(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "a").write_text("old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "b").write_text("new")
    replace_dir(tmp_path / "new", tmp_path / "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"] and (tmp_path / "old" / "b").read_text() == "new"


def test_an_output_folder_that_is_not_an_index_is_left_alone(tmp_path, capsys):
    make_synthia_tree(tmp_path / "data", frames=(0, 1))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("years of work")
    with pytest.raises(DatasetError, match="holds files that are not a pipa-video index"):
        prepare("synthia", tmp_path / "data", tmp_path / "home", quiet=True)
    assert main([str(tmp_path / "data"), "--out", str(tmp_path / "home"), "--quiet"], layout="synthia") == 3
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["thesis.tex"]


def _read_only(monkeypatch, folder: Path):
    """Writes under ``folder`` fail as on a read-only mount (EROFS): the tests run as root, which
    chmod cannot stop."""
    real_mkdir, real_open = os.mkdir, os.open

    def inside(path) -> bool:
        return Path(os.fspath(path)).resolve().is_relative_to(folder.resolve())

    def mkdir(path, *args, **kwargs):
        if inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


def test_a_read_only_output_location_is_one_error_line(tmp_path, monkeypatch, capsys):
    make_synthia_tree(tmp_path / "data", frames=(0, 1))
    (tmp_path / "ro").mkdir()
    _read_only(monkeypatch, tmp_path / "ro")
    code = main([str(tmp_path / "data"), "--out", str(tmp_path / "ro" / "index"), "--quiet"], layout="synthia")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == ExitCode.IO
    assert err == [f"prepare_synthia.py: error: {tmp_path / 'ro' / 'index'}: Read-only file system "
                   "(expected a writable location)"]
    assert list((tmp_path / "ro").iterdir()) == []
