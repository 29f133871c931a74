"""Black-Scholes prices, deltas and implied volatility (vectorised over numpy arrays).

scipy is imported on first use, so importing the engine (which reads YEAR_SECONDS from here)
does not pay for it unless a Black-Scholes delta is asked for.
"""
from __future__ import annotations

import numpy as np

IV_LOW, IV_HIGH = 1e-4, 5.0  # the volatility range searched (0.01% to 500% a year)
YEAR_SECONDS = 365.0 * 86_400  # time to expiry is measured in calendar-year time


def _d1_d2(spot, strike, years, sigma, rate):
    sq = sigma * np.sqrt(years)
    d1 = (np.log(spot / strike) + (rate + 0.5 * sigma * sigma) * years) / sq
    return d1, d1 - sq


def price(spot, strike, years, sigma, rate, is_call):
    """European option value."""
    from scipy.special import ndtr

    d1, d2 = _d1_d2(spot, strike, years, sigma, rate)
    disc = strike * np.exp(-rate * years)
    call = spot * ndtr(d1) - disc * ndtr(d2)
    put = disc * ndtr(-d2) - spot * ndtr(-d1)
    return np.where(is_call, call, put)


def delta(spot, strike, years, sigma, rate, is_call):
    """dV/dS: in (0, 1) for calls, (-1, 0) for puts."""
    from scipy.special import ndtr

    d1, _ = _d1_d2(spot, strike, years, sigma, rate)
    return np.where(is_call, ndtr(d1), ndtr(d1) - 1.0)


def implied_vol(premium, spot, strike, years, rate, is_call, iterations: int = 100):
    """The volatility that reprices ``premium``; NaN where none in [IV_LOW, IV_HIGH] fits
    (premium below the discounted intrinsic value or above the no-arbitrage bound, or T <= 0).

    Bisection on the price, which is increasing in volatility: robust for deep in/out of the
    money and expiry-day premiums where Newton steps fail.
    """
    premium, spot, strike, years, is_call = np.broadcast_arrays(
        np.asarray(premium, float), np.asarray(spot, float), np.asarray(strike, float), np.asarray(years, float),
        np.asarray(is_call, bool))
    ok = (years > 0) & (premium > 0) & (spot > 0) & (strike > 0)
    safe_years = np.where(ok, years, 1.0)
    lo = np.full(premium.shape, IV_LOW)
    hi = np.full(premium.shape, IV_HIGH)
    p_lo = price(spot, strike, safe_years, lo, rate, is_call)
    p_hi = price(spot, strike, safe_years, hi, rate, is_call)
    ok &= (premium >= p_lo) & (premium <= p_hi)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = price(spot, strike, safe_years, mid, rate, is_call) > premium
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return np.where(ok, 0.5 * (lo + hi), np.nan)
