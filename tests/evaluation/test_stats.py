"""Seed statistics: the Student t interval of paired per-seed differences."""
import math

import pytest

from pipa_video.evaluation.stats import mean_std, paired_difference, student_t_cdf, student_t_quantile

# t(0.975, df) from published tables
T975 = {1: 12.7062047, 2: 4.30265273, 3: 3.18244631, 4: 2.77644511, 5: 2.57058184, 9: 2.26215716,
        10: 2.22813885, 30: 2.04227246}


@pytest.mark.parametrize("df,expected", sorted(T975.items()))
def test_t_quantile_matches_the_table(df, expected):
    assert student_t_quantile(0.975, df) == pytest.approx(expected, abs=1e-7)


def test_t_cdf_is_a_cdf_and_matches_scipy_when_present():
    assert student_t_cdf(0.0, 3) == 0.5
    assert student_t_cdf(-2.0, 5) == pytest.approx(1 - student_t_cdf(2.0, 5))
    assert student_t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 6, 7, 41):
        for t in (-4.0, -0.3, 0.7, 2.5):
            assert student_t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), abs=1e-12)


def test_paired_difference_and_its_interval():
    a, b = [24.0, 23.0, 24.6, 22.0, 25.0], [23.5, 22.4, 23.6, 22.5, 23.0]
    out = paired_difference(a, b)
    diffs = [0.5, 0.6, 1.0, -0.5, 2.0]
    assert out["per_seed"] == pytest.approx(diffs) and out["n"] == 5
    mean = sum(diffs) / 5
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4)
    half = 2.77644511 * sd / math.sqrt(5)
    assert out["mean"] == pytest.approx(mean) and out["std"] == pytest.approx(sd)
    assert out["ci95_low"] == pytest.approx(mean - half) and out["ci95_high"] == pytest.approx(mean + half)
    single = paired_difference([1.0], [0.5])
    assert single["mean"] == 0.5 and single["ci95_low"] is None and single["std"] is None
    with pytest.raises(ValueError, match="equally many"):
        paired_difference([1.0, 2.0], [1.0])


def test_mean_std_uses_n_minus_one():
    assert mean_std([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(math.sqrt(2.0))}
    assert mean_std([4.0])["std"] is None
