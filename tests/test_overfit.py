"""Overfitting statistics on known cases: pure noise, a planted edge, and the formulas themselves."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from core.overfit import daily_matrix, deflated_sharpe, pbo_cscv, sample_skew_kurtosis, verdict


def noise(seed, days=400, combos=40):
    return np.random.default_rng(seed).normal(0.0, 1.0, (days, combos))


def test_pure_noise_gives_pbo_near_one_half_and_no_significant_deflated_sharpe():
    # Under the null every combination is as good as any other, so the in-sample winner's
    # out-of-sample rank is uniform: PBO is 0.5 in expectation. One matrix's PBO varies (its 12,870
    # splits share the same days), so the mean over 8 independent matrices is held to 0.5 +- 0.12
    # (the spread of that mean seen over 100 seeds is about 0.04).
    pbos, dsrs = [], []
    for seed in range(8):
        daily = noise(seed)
        pbos.append(pbo_cscv(daily, n_blocks=10).pbo)
        dsrs.append(deflated_sharpe(daily).probability)
    assert abs(np.mean(pbos) - 0.5) < 0.12, pbos
    assert max(dsrs) < 0.95, dsrs  # never significant at 5 %


def test_a_planted_edge_gives_low_pbo_and_significant_deflated_sharpe():
    daily = noise(11)
    daily[:, 7] += 0.35  # one combination with a real positive drift (Sharpe about 0.35 a day)
    result = pbo_cscv(daily, n_blocks=16)
    assert result.pbo < 0.05 and result.splits == 12_870
    dsr = deflated_sharpe(daily)
    assert dsr.probability > 0.99 and dsr.trials == 40
    assert dsr.sharpe == pytest.approx(daily[:, 7].mean() / daily[:, 7].std(ddof=1))


def test_deflated_sharpe_of_one_trial_is_the_probabilistic_sharpe_ratio():
    rng = np.random.default_rng(3)
    returns = rng.normal(0.1, 1.0, (250, 1))
    dsr = deflated_sharpe(returns)
    sr = returns[:, 0].mean() / returns[:, 0].std(ddof=1)
    from scipy.stats import kurtosis, skew

    g3, g4 = skew(returns[:, 0], bias=False), kurtosis(returns[:, 0], fisher=False, bias=False)
    expected = norm.cdf(sr * math.sqrt(249) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr ** 2))
    assert dsr.expected_max_sharpe == 0.0 and dsr.probability == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", [3, 4, 5, 30, 250])
def test_sample_skew_and_kurtosis_match_scipy_bias_corrected(n):
    # the engine does not import scipy.stats (1.2-1.4 s of a sweep's start); its moments must be scipy's
    from scipy.stats import kurtosis, skew

    for seed in range(5):
        returns = np.random.default_rng(seed).lognormal(0.0, 0.8, n) - 1.0
        g3, g4 = sample_skew_kurtosis(returns)
        assert g3 == pytest.approx(skew(returns, bias=False), rel=1e-10, abs=1e-12)
        assert g4 == pytest.approx(kurtosis(returns, fisher=False, bias=False), rel=1e-10, abs=1e-12)
    assert sample_skew_kurtosis(np.full(n, 2.5)) == (0.0, 3.0)


def test_expected_maximum_sharpe_matches_scipy_quantiles():
    daily = noise(21, days=120, combos=37)
    sharpes = daily.mean(axis=0) / daily.std(axis=0, ddof=1)
    gamma = 0.5772156649015329
    expected = math.sqrt(np.var(sharpes, ddof=1)) * ((1 - gamma) * norm.ppf(1 - 1 / 37)
                                                     + gamma * norm.ppf(1 - 1 / (37 * math.e)))
    assert deflated_sharpe(daily).expected_max_sharpe == pytest.approx(expected, rel=1e-12)


def test_expected_maximum_sharpe_grows_with_trials():
    rng = np.random.default_rng(5)
    few, many = rng.normal(0, 1, (300, 5)), rng.normal(0, 1, (300, 500))
    assert deflated_sharpe(many).expected_max_sharpe > deflated_sharpe(few).expected_max_sharpe > 0


def test_daily_matrix_fills_days_without_trades_with_zero_and_verdict_reads():
    a = pd.DataFrame({"trade_date": ["2024-07-01", "2024-07-03"], "pnl_pts": [1.5, -2.0]})
    b = pd.DataFrame({"trade_date": ["2024-07-02"], "pnl_pts": [4.0]})
    matrix, days = daily_matrix([a, b])
    assert days == ["2024-07-01", "2024-07-02", "2024-07-03"]
    assert matrix.tolist() == [[1.5, 0.0], [0.0, 4.0], [-2.0, 0.0]]
    assert "more likely than not" in verdict(0.62) and "usually stays" in verdict(0.05)
    with pytest.raises(ValueError):
        pbo_cscv(np.zeros((20, 1)))


def test_a_sweep_reports_pbo_and_deflated_sharpe_over_its_combinations(tmp_path):
    from types import SimpleNamespace

    from core.report import overfit_lines
    from sweep.plan import Job
    from sweep.publish import overfit_stats

    rng = np.random.default_rng(2)
    days = pd.date_range("2024-01-01", periods=60, freq="B").date
    results, jobs = [], []
    for i in range(6):
        pnl = rng.normal(0.0, 10.0, len(days)) + (4.0 if i == 3 else 0.0)
        results.append({"metrics": {"total_pnl_pts": float(pnl.sum())}, "daily": (days, pnl)})
        jobs.append(Job(i, [f"signal.multiplier={i}"], {}, {"validation": {"cscv_splits": 10}}))
    finisher = SimpleNamespace(tracker=None)
    stats = overfit_stats(jobs, results, finisher, tmp_path, best_i=3)
    assert stats["trials"] == 6 and stats["days"] == 60 and stats["splits"] == 252  # C(10, 5)
    assert 0 <= stats["pbo"] <= 1 and 0 <= stats["deflated_sharpe"] <= 1
    lines = overfit_lines(stats)
    assert lines[0].startswith(f"PBO {stats['pbo']:.2f}: ") and "best of 6 combinations" in lines[1]


def test_combinations_with_the_same_daily_pnl_count_as_one_trial(tmp_path):
    """An exit level never reached or a threshold nothing meets gives several combinations the same daily
    P&L: they are one choice, so the statistics equal those of the distinct columns alone; with fewer than
    two distinct columns (none traded) or too few days the lines say why nothing was computed."""
    from types import SimpleNamespace

    from core.report import overfit_lines
    from sweep.plan import Job
    from sweep.publish import overfit_stats

    rng = np.random.default_rng(5)
    days = pd.date_range("2024-01-01", periods=40, freq="B").date
    columns = [rng.normal(0.0, 10.0, len(days)) + shift for shift in (0.0, 3.0, -1.0)]

    def stats(order, best_i, n_days=len(days)):
        results = [{"metrics": {}, "daily": (days[:n_days], columns[k][:n_days])} for k in order]
        jobs = [Job(i, [f"risk.target_pct={i}"], {}, {"validation": {"cscv_splits": 8}}) for i in range(len(order))]
        return overfit_stats(jobs, results, SimpleNamespace(tracker=None), tmp_path, best_i=best_i)

    alone, repeated = stats([0, 1, 2], best_i=1), stats([0, 1, 1, 2, 1, 0], best_i=2)
    assert repeated["trials"] == 3 and repeated["combinations"] == 6
    for key in ("pbo", "deflated_sharpe", "best_sharpe", "expected_max_sharpe", "splits"):
        assert repeated[key] == alone[key], key
    assert "best of 3 distinct combinations (of 6:" in overfit_lines(repeated)[1]
    assert "best of 3 combinations without skill" in overfit_lines(alone)[1]

    flat = {"trials": 1, "combinations": 4, "days": 0}
    assert overfit_lines(flat) == ["PBO and deflated Sharpe: not computed: none of the 4 combinations traded, "
                                   "so there is no winner to test."]
    short = stats([0, 1], best_i=1, n_days=2)
    assert "pbo" not in short and "deflated_sharpe" not in short
    assert [line.split(":")[0] for line in overfit_lines(short)] == ["PBO", "Deflated Sharpe"]
