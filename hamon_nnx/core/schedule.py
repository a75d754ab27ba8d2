"""Ladder adaptation from swap rejection rates (Syed et al. 2021, Alg. 4).

The rejection rate r_i of the pair (beta_i, beta_{i+1}) estimates the
barrier between them; the cumulative barrier Lambda(beta) interpolates the
partial sums monotonically (Fritsch-Carlson cubic), its derivative is the
local barrier lambda(beta), and the ladder that equalises rejection puts
its slots at equal steps of Lambda. The total barrier Lambda = Lambda(1)
predicts the round-trip rate 1 / (2 + 2 Lambda) of a long enough ladder.
All host-side numpy.
"""

from __future__ import annotations

import numpy as np


def check_ladder(ladder) -> np.ndarray:
    """Return the ladder as float64, or raise naming what is wrong."""
    arr = np.asarray(ladder, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(f"a ladder needs at least 2 inverse temperatures, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("the ladder holds NaN or inf")
    if arr[0] != 0.0 or arr[-1] != 1.0:
        raise ValueError(f"the ladder must start at 0 and end at 1, got {arr[0]} ... {arr[-1]}")
    bad = np.flatnonzero(np.diff(arr) <= 0)
    if len(bad):
        i = bad[0]
        raise ValueError(
            f"the ladder must be strictly increasing; beta[{i}] = {arr[i]} >= beta[{i + 1}] = {arr[i + 1]}"
        )
    return arr


def cumulative_barrier(ladder, rejection) -> np.ndarray:
    """Lambda at the ladder points: 0, r_0, r_0 + r_1, ..."""
    return np.concatenate([[0.0], np.cumsum(np.asarray(rejection, np.float64))])


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson derivatives: monotone data give a monotone cubic."""
    h = np.diff(x)
    delta = np.diff(y) / h
    d = np.zeros_like(y)
    if len(x) == 2:
        return np.full_like(y, delta[0])
    same_sign = delta[:-1] * delta[1:] > 0
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    d[1:-1] = np.where(same_sign, harmonic, 0.0)
    # one-sided three-point ends, clipped to keep monotonicity
    for end, (hh0, hh1, dd0, dd1) in (
        (0, (h[0], h[1], delta[0], delta[1])),
        (-1, (h[-1], h[-2], delta[-1], delta[-2])),
    ):
        s = ((2 * hh0 + hh1) * dd0 - hh0 * dd1) / (hh0 + hh1)
        if np.sign(s) != np.sign(dd0):
            s = 0.0
        elif np.sign(dd0) != np.sign(dd1) and abs(s) > abs(3 * dd0):
            s = 3 * dd0
        d[end] = s
    return d


def barrier_function(ladder, rejection):
    """Monotone interpolants of the cumulative barrier and of its derivative.

    Returns:
        (Lambda, lam): callables on arrays of beta in [0, 1].
    """
    x = check_ladder(ladder)
    y = cumulative_barrier(x, rejection)
    d = _pchip_slopes(x, y)

    def locate(beta):
        beta = np.clip(np.asarray(beta, np.float64), 0.0, 1.0)
        k = np.clip(np.searchsorted(x, beta, side="right") - 1, 0, len(x) - 2)
        h = x[k + 1] - x[k]
        return beta, k, h, (beta - x[k]) / h

    def Lambda(beta):
        _, k, h, t = locate(beta)
        h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
        h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
        return h00 * y[k] + h10 * h * d[k] + h01 * y[k + 1] + h11 * h * d[k + 1]

    def lam(beta):
        _, k, h, t = locate(beta)
        dh00, dh10 = 6 * t**2 - 6 * t, 3 * t**2 - 4 * t + 1
        dh01, dh11 = -6 * t**2 + 6 * t, 3 * t**2 - 2 * t
        return (dh00 * y[k] + dh01 * y[k + 1]) / h + dh10 * d[k] + dh11 * d[k + 1]

    return Lambda, lam


def equal_barrier_ladder(ladder, rejection, n_chains: int | None = None) -> np.ndarray:
    """The ladder of `n_chains` slots at equal steps of the cumulative barrier.

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.core.schedule import equal_barrier_ladder
        >>> # rejection concentrated at high beta: the new ladder crowds there
        >>> new = equal_barrier_ladder(np.linspace(0, 1, 5), [0.0, 0.1, 0.3, 0.6])
        >>> bool(np.diff(new)[-1] < np.diff(new)[0])
        True
    """
    x = check_ladder(ladder)
    n_chains = len(x) if n_chains is None else int(n_chains)
    if n_chains < 2:
        raise ValueError(f"n_chains must be >= 2, got {n_chains}")
    Lambda, _ = barrier_function(x, rejection)
    grid = np.linspace(0.0, 1.0, 64 * max(n_chains, len(x)) + 1)
    values = Lambda(grid)
    total = values[-1]
    if not total > 1e-12:  # no rejection anywhere: every ladder is equal-barrier
        return np.linspace(0.0, 1.0, n_chains)
    # a tiny linear term makes the inverse unique where the barrier is flat
    values = np.maximum.accumulate(values) + 1e-9 * total * grid
    targets = np.linspace(0.0, values[-1], n_chains)
    new = np.interp(targets, values, grid)
    new[0], new[-1] = 0.0, 1.0
    if np.any(np.diff(new) <= 0):
        # the barrier sits in a sliver narrower than the float grid: keep the
        # ladder and part the tied slots by the smallest step that separates them
        step = 1e-6
        new = np.maximum.accumulate(new) + step * np.arange(n_chains)
        new = new / new[-1]
    return new


def total_barrier(rejection) -> float:
    """Lambda = sum of rejection rates over neighbouring pairs."""
    return float(np.sum(rejection))


def predicted_round_trip_rate(total: float) -> float:
    """Round trips per round of NRPT with many chains: 1 / (2 + 2 Lambda)."""
    return 1.0 / (2.0 + 2.0 * total)


def predicted_round_trip_rate_for(rejection) -> float:
    """Round trips per round on this ladder: 1 / (2 + 2 sum r_i / (1 - r_i)).

    Exact for NRPT under efficient local exploration (Syed et al. 2021,
    Thm. 3); lower observed rates mean exploration does not refresh the
    energy between rounds.
    """
    r = np.clip(np.asarray(rejection, np.float64), 0.0, 1.0 - 1e-12)
    return 1.0 / (2.0 + 2.0 * float(np.sum(r / (1.0 - r))))
