import numpy as np
import pytest

from pipa_video.engine.schedule import lr_schedule


def test_warmup_then_poly_values_match_mmcv_semantics():
    # base 1, 10 iterations, 4 warm-up iterations from ratio 0.1, linear decay (power 1).
    lr = lr_schedule(base_lr=1.0, iters=10, warmup_iters=4, warmup_ratio=0.1, power=1.0, min_lr=0.0)
    assert lr.shape == (10,)
    assert lr[0] == pytest.approx(0.1)  # base_lr * warmup_ratio
    # warm-up scales the poly curve: poly(2) = 0.8, factor 1 - 0.5 * 0.9 = 0.55
    assert lr[2] == pytest.approx(0.8 * 0.55)
    assert lr[4] == pytest.approx(0.6)  # warm-up over: poly(4) = 1 - 4/10
    assert lr[5] == pytest.approx(0.5)  # middle
    assert lr[9] == pytest.approx(0.1)  # last iteration: 1 - 9/10
    assert np.all(np.diff(lr[:5]) > 0) and np.all(np.diff(lr[4:]) < 0)


def test_daformer_defaults_at_key_iterations():
    base, iters, warm = 6e-5, 40000, 1500
    lr = lr_schedule(base_lr=base, iters=iters, warmup_iters=warm, warmup_ratio=1e-6, power=1.0, min_lr=0.0)
    assert lr[0] == pytest.approx(base * 1e-6)
    assert lr[warm] == pytest.approx(base * (1 - warm / iters))
    assert lr[iters // 2] == pytest.approx(base * 0.5)
    assert lr[-1] == pytest.approx(base / iters)


def test_power_and_min_lr():
    lr = lr_schedule(base_lr=1.0, iters=10, warmup_iters=0, warmup_ratio=1.0, power=2.0, min_lr=0.1)
    assert lr[0] == pytest.approx(1.0)
    assert lr[5] == pytest.approx(0.9 * 0.25 + 0.1)
    assert lr[9] == pytest.approx(0.9 * 0.01 + 0.1)
    assert lr.min() >= 0.1


@pytest.mark.parametrize("kwargs, message", [
    (dict(iters=0), "iters"),
    (dict(warmup_iters=20), "warmup_iters"),
    (dict(warmup_ratio=0.0), "warmup_ratio"),
    (dict(min_lr=2.0), "min_lr"),
    (dict(power=-1.0), "power"),
])
def test_bad_settings_are_named(kwargs, message):
    args = dict(base_lr=1.0, iters=10, warmup_iters=2, warmup_ratio=0.1, power=1.0, min_lr=0.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        lr_schedule(**args)
