"""How much of a sweep's winner is luck: overfitting statistics over the combinations' daily P&L.

* :func:`pbo_cscv`: the Probability of Backtest Overfitting by combinatorially symmetric
  cross-validation (Bailey, Borwein, López de Prado and Zhu, "The Probability of Backtest
  Overfitting", Journal of Computational Finance 20(4), 2017; SSRN 2326253, 2015).
* :func:`deflated_sharpe`: the Deflated Sharpe Ratio of the best combination given how many were
  tried (Bailey and López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection Bias,
  Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5), 2014).

Pure functions over a days × combinations matrix of daily P&L (a day without a trade is 0).
docs/statistics.md gives the formulas and how to read them.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
STANDARD_NORMAL = NormalDist()


def sample_skew_kurtosis(returns: np.ndarray) -> tuple[float, float]:
    """(skewness, kurtosis) of ``returns`` with the usual small-sample corrections: G1 = g1 sqrt(n(n-1))
    / (n-2) and G2 = ((n+1) g2 + 6)(n-1) / ((n-2)(n-3)) + 3 (not excess: 3 for normal returns), g1 and g2
    the moment ratios m3 / m2^1.5 and m4 / m2^2 - 3; the uncorrected ratio where n is too small for the
    correction (n <= 2 for G1, n <= 3 for G2), as scipy.stats.skew and kurtosis with bias=False. Returns
    without spread give (0, 3)."""
    x = np.asarray(returns, float)
    n = len(x)
    centred = x - x.mean()
    m2 = float(np.mean(centred ** 2))
    if n < 2 or not m2 > 0:
        return 0.0, 3.0
    g1 = float(np.mean(centred ** 3)) / m2 ** 1.5
    g2 = float(np.mean(centred ** 4)) / m2 ** 2 - 3.0
    skewness = g1 * math.sqrt(n * (n - 1)) / (n - 2) if n > 2 else g1
    excess = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3)) if n > 3 else g2
    return skewness, excess + 3.0


def _sharpe(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio (mean / sample std) from sums, sums of squares and counts."""
    counts = np.asarray(counts, float)
    mean = sums / counts
    var = (squares - counts * mean ** 2) / np.maximum(counts - 1, 1)
    std = np.sqrt(np.maximum(var, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(std > 0, mean / std, np.where(mean > 0, np.inf, np.where(mean < 0, -np.inf, 0.0)))
    return out


@dataclass(frozen=True)
class PBOResult:
    pbo: float  # share of splits where the in-sample best ranks at or below the median out of sample
    logits: np.ndarray  # lambda per split: logit of the in-sample best's out-of-sample relative rank
    splits: int  # number of train/test splits evaluated
    degradation: float  # mean out-of-sample Sharpe of the in-sample best, minus its in-sample Sharpe


def pbo_cscv(daily: np.ndarray, n_blocks: int = 16, max_splits: int = 20_000, seed: int = 0) -> PBOResult:
    """PBO of choosing the best column of ``daily`` (days × combinations) by in-sample Sharpe.

    The days are cut into ``n_blocks`` contiguous blocks of (nearly) equal size; every way of taking
    half of the blocks as the training set and the rest as the test set is one split (C(16, 8) =
    12,870 for 16 blocks; above ``max_splits`` a seeded random subset is used). In each split the
    combination with the best training Sharpe is found, its test Sharpe is ranked among all
    combinations (relative rank w in (0, 1)), and lambda = ln(w / (1 - w)). PBO is the share of
    splits with lambda <= 0: the in-sample winner did no better than the median out of sample.
    """
    daily = np.asarray(daily, float)
    n_days, n_combos = daily.shape
    if n_combos < 2:
        raise ValueError("PBO needs at least two combinations")
    n_blocks = int(n_blocks)
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError("validation.cscv_splits must be an even number >= 2")
    if n_days < n_blocks:
        n_blocks = max(2, n_days - n_days % 2)
    edges = np.linspace(0, n_days, n_blocks + 1).round().astype(int)
    block_sum = np.add.reduceat(daily, edges[:-1], axis=0)
    block_sq = np.add.reduceat(daily ** 2, edges[:-1], axis=0)
    block_n = np.diff(edges)
    half = n_blocks // 2
    combos = list(itertools.combinations(range(n_blocks), half))
    if len(combos) > max_splits:
        rng = np.random.default_rng(seed)
        combos = [combos[i] for i in np.sort(rng.choice(len(combos), max_splits, replace=False))]
    train = np.zeros((len(combos), n_blocks))
    for row, chosen in enumerate(combos):
        train[row, list(chosen)] = 1.0
    test = 1.0 - train
    logits = np.empty(len(combos))
    gap = np.empty(len(combos))
    for start in range(0, len(combos), 2048):  # bounded memory for many combinations
        tr, te = train[start:start + 2048], test[start:start + 2048]
        sr_train = _sharpe(tr @ block_sum, tr @ block_sq, (tr @ block_n)[:, None])
        sr_test = _sharpe(te @ block_sum, te @ block_sq, (te @ block_n)[:, None])
        best = np.argmax(sr_train, axis=1)
        rows = np.arange(len(best))
        chosen_test = sr_test[rows, best]
        # relative rank of the chosen combination's test Sharpe among all (ties share the middle rank)
        below = (sr_test < chosen_test[:, None]).sum(axis=1)
        equal = (sr_test == chosen_test[:, None]).sum(axis=1)
        rank = below + (equal + 1) / 2.0  # 1 .. N
        omega = rank / (n_combos + 1)
        logits[start:start + len(best)] = np.log(omega / (1 - omega))
        finite = np.isfinite(chosen_test) & np.isfinite(sr_train[rows, best])
        gap[start:start + len(best)] = np.where(finite, chosen_test - sr_train[rows, best], np.nan)
    return PBOResult(pbo=float((logits <= 0).mean()), logits=logits, splits=len(combos),
                     degradation=float(np.nanmean(gap)) if np.isfinite(gap).any() else float("nan"))


@dataclass(frozen=True)
class DSRResult:
    probability: float  # DSR: probability that the best Sharpe is above what luck alone would give
    sharpe: float  # the best combination's per-day Sharpe ratio
    expected_max_sharpe: float  # SR0: the expected maximum Sharpe of ``trials`` skill-less combinations
    trials: int
    skewness: float
    kurtosis: float  # not excess: 3 for normal returns
    observations: int


def deflated_sharpe(daily: np.ndarray, best: int | None = None) -> DSRResult:
    """Deflated Sharpe Ratio of column ``best`` (default: the highest per-day Sharpe) of ``daily``.

    SR0 = sqrt(V[SR]) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e))), with V[SR] the variance of the
    N combinations' Sharpe ratios, g the Euler-Mascheroni constant and Z the standard normal
    quantile; DSR = Phi((SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR^2)).
    """
    daily = np.asarray(daily, float)
    n_days, n_combos = daily.shape
    if n_days < 3:
        raise ValueError("the Deflated Sharpe Ratio needs at least three days")
    sums, squares = daily.sum(axis=0), (daily ** 2).sum(axis=0)
    sharpes = _sharpe(sums, squares, np.full(n_combos, n_days))
    finite = np.where(np.isfinite(sharpes), sharpes, np.nan)
    if best is None:
        best = int(np.nanargmax(finite)) if np.isfinite(finite).any() else 0
    sr = float(finite[best]) if np.isfinite(finite[best]) else 0.0
    variance = float(np.nanvar(finite, ddof=1)) if np.isfinite(finite).sum() > 1 else 0.0
    if n_combos > 1:
        quantile = STANDARD_NORMAL.inv_cdf
        sr0 = math.sqrt(max(variance, 0.0)) * ((1 - EULER_GAMMA) * quantile(1 - 1 / n_combos)
                                               + EULER_GAMMA * quantile(1 - 1 / (n_combos * math.e)))
    else:
        sr0 = 0.0
    returns = daily[:, best]
    g3, g4 = sample_skew_kurtosis(returns)
    denominator = 1 - g3 * sr + (g4 - 1) / 4 * sr ** 2
    z = (sr - sr0) * math.sqrt(n_days - 1) / math.sqrt(denominator) if denominator > 0 else float("nan")
    probability = STANDARD_NORMAL.cdf(z) if math.isfinite(z) else float("nan")
    return DSRResult(probability, sr, float(sr0), n_combos, g3, g4, n_days)


def daily_matrix(summaries: list, days=None) -> tuple[np.ndarray, list]:
    """(days × combinations) daily pnl_pts from per-combination summary tables (trade_date, pnl_pts);
    a day on which a combination did not trade counts 0. ``days``: the trading days (default: every
    day any combination traded)."""
    import pandas as pd

    if days is None:
        days = sorted({d for s in summaries for d in s["trade_date"]})
    index = pd.Index(list(days))
    columns = [pd.Series(s["pnl_pts"].to_numpy(float), index=pd.Index(list(s["trade_date"])))
               .reindex(index, fill_value=0.0).to_numpy() for s in summaries]
    return (np.column_stack(columns) if columns else np.zeros((len(index), 0))), list(index)


def verdict(pbo: float) -> str:
    """PBO in words, one line."""
    if pbo >= 0.5:
        return ("the best in-sample combination is more likely than not to rank below the median out of "
                "sample: its lead is mostly luck")
    if pbo >= 0.2:
        return "the best in-sample combination often ranks below the median out of sample: treat its lead with caution"
    return "the best in-sample combination usually stays above the median out of sample"
