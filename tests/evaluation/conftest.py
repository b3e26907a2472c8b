"""Fixtures of the evaluation tests; the stand-ins themselves live in eval_fixtures.py."""
import pytest
from eval_fixtures import CLASS_SET, PaletteSegmentor, make_cfg, make_index, save_checkpoint

from pipa_video.data.classes import get_class_set


@pytest.fixture
def tiny(tmp_path):
    """(cfg, checkpoint path, index dir) of a tiny two-sequence split and a perfect stand-in model."""
    index_dir = make_index(tmp_path)
    cfg = make_cfg(index_dir)
    ckpt = save_checkpoint(tmp_path / "model.pth", PaletteSegmentor(get_class_set(CLASS_SET).palette), cfg,
                           selection="last iteration")
    return cfg, ckpt, index_dir
