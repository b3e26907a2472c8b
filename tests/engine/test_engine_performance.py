"""GPU-efficiency switches: TF32 flags, torch.compile of the segmentors, and their wiring in ``train``."""
import pytest
import torch

from pipa_video.config import validate
from pipa_video.engine.optim import build_optimizer
from pipa_video.engine.performance import compile_segmentors, configure_backends
from pipa_video.uda.build import build_method


@pytest.fixture
def restore_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_is_on_by_default_and_can_be_switched_off(restore_tf32):
    runtime = validate({})["runtime"]
    assert runtime["tf32"] is True and runtime["compile"] is False
    configure_backends(runtime)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    configure_backends({**runtime, "tf32": False})
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def _cfg():
    return validate({"model": {"backbone": {"type": "mit_demo", "pretrained": None, "drop_path_rate": 0.0},
                               "decode_head": {"type": "segformer", "channels": 32, "dropout": 0.0}},
                     "uda": {"method": "self_training", "pseudo_threshold": 0.0}})


def _clip_batch(seed, size=64):
    g = torch.Generator().manual_seed(seed)
    return {"img": torch.randn(2, 1, 3, size, size, generator=g),
            "label": torch.randint(0, 19, (2, 1, size, size), generator=g),
            "has_label": torch.ones(2, 1, dtype=torch.bool)}


# aot_eager traces with dynamo and AOTAutograd as inductor does, without generating and compiling C++
# (minutes on a 2-core machine): the suite runs it; the inductor case, what runtime.compile uses, is slow.
BACKENDS = [pytest.param("aot_eager", id="aot_eager"),
            pytest.param("inductor", id="inductor", marks=[pytest.mark.slow, pytest.mark.timeout(1800)])]


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_segmentors_match_eager_and_a_training_step_runs(backend):
    torch._dynamo.reset()
    torch.manual_seed(0)
    method = build_method(_cfg())
    x = torch.randn(2, 3, 64, 64)
    segmentor = method.student.segmentor.eval()
    with torch.no_grad():
        eager = segmentor(x, return_features=True)
    names = [n for n, _ in method.named_parameters()]
    assert compile_segmentors(method, backend=backend) == 2  # the student's and the EMA teacher's
    assert [n for n, _ in method.named_parameters()] == names  # in place: checkpoints keep their keys
    with torch.no_grad():
        compiled = segmentor(x, return_features=True)
    torch.testing.assert_close(compiled.logits, eager.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(compiled.features, eager.features, atol=1e-4, rtol=1e-4)

    optimizer = build_optimizer(method.student.param_groups(), lr=1e-3, head_lr_mult=10.0, weight_decay=0.01,
                                betas=(0.9, 0.999))
    before = segmentor.decode_head.conv_seg.weight.detach().clone()
    losses = method.train_step(_clip_batch(0), _clip_batch(1), iteration=0)
    optimizer.step()
    method.after_step(iteration=0)
    assert {"loss_src", "loss_mix"} <= set(losses) and all(torch.isfinite(v) for v in losses.values())
    assert not torch.equal(segmentor.decode_head.conv_seg.weight, before)
    torch._dynamo.reset()
