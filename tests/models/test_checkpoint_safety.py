"""Checkpoints load with weights_only=True everywhere: a file that would run code when unpickled is refused
by every reader and every command (eval, predict, load_from, resume, the converter) without running it;
``--allow-pickle`` is the explicit way to read a trusted legacy pickle."""
import pathlib

import pytest
import torch

from pipa_video.cli import main
from pipa_video.config import load_config
from pipa_video.engine.checkpoint import load_checkpoint as engine_load
from pipa_video.engine.checkpoint import load_segmentor
from pipa_video.errors import ExitCode
from pipa_video.models.backbones import MIT_ARCHS, MixVisionTransformer
from pipa_video.models.checkpoint import CheckpointError, load_backbone_weights, pickle_loading, read_checkpoint

CONFIG = "configs/demo/pipa++_synthetic.py"


class _RunsCode:
    """Unpickling this writes ``marker``: a stand-in for any code a malicious checkpoint could run."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.write_text, (self.marker, "code ran")


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "config": {}, "meta": {}, "format_version": 1, "payload": _RunsCode(marker)}, path)
    return path, marker


@pytest.mark.parametrize("reader", [read_checkpoint, engine_load,
                                    lambda p: load_segmentor(load_config(CONFIG), p),
                                    lambda p: load_backbone_weights(MixVisionTransformer(arch=MIT_ARCHS["mit_demo"]), p)],
                         ids=["read_checkpoint", "engine", "inference", "backbone"])
def test_every_reader_refuses_a_pickle_without_running_it(evil, reader):
    path, marker = evil
    with pytest.raises(CheckpointError, match=r"evil\.pth: holds Python objects other than tensors and plain "
                                              r"values \(getattr\).*--allow-pickle"):
        reader(path)
    assert not marker.exists()


def test_allow_pickle_is_the_explicit_way_in(evil):
    path, marker = evil
    with pickle_loading(True):
        read_checkpoint(path)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("command", [
    ["eval", CONFIG, "--checkpoint", "{evil}", "--cfg-options", "data.test.index={tmp}"],
    ["predict", "--config", CONFIG, "--checkpoint", "{evil}", "--input", "{tmp}", "--out", "{tmp}/out"],
    ["train", CONFIG, "--work-dir", "{tmp}/run", "--resume", "{evil}", "--cfg-options", "data.val.index=None"],
    ["train", CONFIG, "--work-dir", "{tmp}/run", "--cfg-options", "load_from={evil}"],
], ids=["eval", "predict", "resume", "load_from"])
def test_every_command_refuses_it_with_one_line(evil, tmp_path, capsys, command, monkeypatch):
    path, marker = evil
    argv = [a.format(evil=path, tmp=tmp_path) for a in command]
    assert main(argv) == ExitCode.CHECKPOINT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "evil.pth: holds Python objects" in err[-1], err
    assert not marker.exists()


def test_the_converter_refuses_it_unless_allow_pickle(evil, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert", pathlib.Path(__file__).resolve().parents[2]
                                                  / "data_tools" / "convert_mit_checkpoint.py")
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    path, marker = evil
    assert converter.main([str(path), str(tmp_path / "out.pth"), "--arch", "mit_demo"]) == ExitCode.CHECKPOINT
    assert not marker.exists()
    converter.main([str(path), str(tmp_path / "out.pth"), "--arch", "mit_demo", "--allow-pickle"])
    assert marker.exists()


def test_a_training_checkpoint_holds_only_what_weights_only_loads(tmp_path):
    """RNG states (python tuples, numpy's as a tensor), the config and the metrics are plain values."""
    from pipa_video.engine.seed import capture_rng_state

    state = {"rng": [capture_rng_state()], "config": {"data": {"mean": (1.0, 2.0, 3.0)}, "offsets": [-1]},
             "meta": {"metrics": {"mIoU": 1.5}}, "format_version": 1}
    torch.save(state, tmp_path / "ckpt.pth")
    loaded = read_checkpoint(tmp_path / "ckpt.pth")
    assert loaded["rng"][0]["python"][1] == state["rng"][0]["python"][1]
    assert torch.equal(loaded["rng"][0]["numpy"]["keys"], state["rng"][0]["numpy"]["keys"])
