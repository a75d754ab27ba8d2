"""MCMC convergence diagnostics: R-hat, effective sample size, Monte-Carlo error.

The estimators are those of Vehtari, Gelman, Simpson, Carpenter and Bürkner
(2021), "Rank-normalization, folding, and localization: an improved R-hat
for assessing convergence of MCMC", Bayesian Analysis 16(2), as used by
Stan and ArviZ, written here in plain numpy (float64):

* `split_rhat`: the classic potential scale reduction factor of the chains
  split in halves (Gelman et al., BDA3).
* `rhat`: by default the rank-normalized split-R-hat, the larger of the
  bulk R-hat (split chains, pooled draws replaced by the normal scores of
  their ranks) and the tail R-hat (the same on the draws folded about their
  median, `|x - median|`), which also catches chains that differ in scale.
* `ess` / `effective_sample_size`: bulk ESS (rank-normalized split chains),
  tail ESS (smaller of the ESS of the indicators `x <= q05` and `x <= q95`)
  or mean ESS (raw split chains). Autocorrelations come from an FFT and are
  combined over chains as rho_t = 1 - (W - mean autocovariance_t) / var_plus;
  their sum is truncated with Geyer's initial monotone sequence estimator as
  in Stan, and ESS is capped at N log10 N (N = all analysed draws).
* `mcse_mean`: Monte-Carlo standard error of the mean, sd / sqrt(mean ESS).

Inputs are arrays shaped (chain, draw) or (chain, draw, *variables) of any
real dtype (int8 spins from the samplers, bool indicators, floats, or JAX
arrays). Every variable is treated independently and the work is
vectorised over them: a (4, 1000, 784) array gives (784,) results without a
Python loop over variables. A (chain, draw) input gives a Python float.

Conventions:

* A single chain is fine: chains are always split in halves, so one chain
  becomes two (R-hat then compares its first half with its second).
* A variable that never changes (e.g. a clamped spin) has no defined R-hat
  or ESS: the result is nan, silently. A variable that is constant inside
  every chain but differs between chains gets R-hat = inf (the chains
  certainly disagree).
* Fewer than 4 draws, an empty chain axis or non-finite draws raise
  ValueError; the estimates are unreliable below about 50 draws per chain
  anyway.
* When one of two component diagnostics is undefined and the other is not,
  the defined one is returned: the tail part of `rhat` for +-1 spins split
  exactly 50/50 (the folded draws are all 1), and the 95% indicator of tail
  ESS for binary variables (`x <= q95` always holds) are skipped. Stan
  would return NA there.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "effective_sample_size",
    "ess",
    "mcse_mean",
    "normal_quantile",
    "rhat",
    "split_rhat",
]

_MIN_DRAWS = 4
_RHAT_METHODS = ("rank", "split", "folded", "z_scale", "identity")
_ESS_METHODS = ("bulk", "tail", "mean", "quantile")

# Wichura (1988), Algorithm AS 241 (PPND16), coefficients highest power first.
_A = (
    2.5090809287301226727e3,
    3.3430575583588128105e4,
    6.7265770927008700853e4,
    4.5921953931549871457e4,
    1.3731693765509461125e4,
    1.9715909503065514427e3,
    1.3314166789178437745e2,
    3.3871328727963666080e0,
)
_B = (
    5.2264952788528545610e3,
    2.8729085735721942674e4,
    3.9307895800092710610e4,
    2.1213794301586595867e4,
    5.3941960214247511077e3,
    6.8718700749205790830e2,
    4.2313330701600911252e1,
    1.0,
)
_C = (
    7.74545014278341407640e-4,
    2.27238449892691845833e-2,
    2.41780725177450611770e-1,
    1.27045825245236838258e0,
    3.64784832476320460504e0,
    5.76949722146069140550e0,
    4.63033784615654529590e0,
    1.42343711074968357734e0,
)
_D = (
    1.05075007164441684324e-9,
    5.47593808499534494600e-4,
    1.51986665636164571966e-2,
    1.48103976427480074590e-1,
    6.89767334985100004550e-1,
    1.67638483018380384940e0,
    2.05319162663775882187e0,
    1.0,
)
_E = (
    2.01033439929228813265e-7,
    2.71155556874348757815e-5,
    1.24266094738807843860e-3,
    2.65321895265761230930e-2,
    2.96560571828504891230e-1,
    1.78482653991729133580e0,
    5.46378491116411436990e0,
    6.65790464350110377720e0,
)
_F = (
    2.04426310338993978564e-15,
    1.42151175831644588870e-7,
    1.84631831751005468180e-5,
    7.86869131145613259100e-4,
    1.48753612908506148525e-2,
    1.36929880922735805310e-1,
    5.99832206555887937690e-1,
    1.0,
)


def _horner(coeffs, r):
    out = np.full_like(r, coeffs[0])
    for c in coeffs[1:]:
        out = out * r + c
    return out


def normal_quantile(p: ArrayLike) -> float | np.ndarray:
    """Quantile function (inverse CDF) of the standard normal distribution.

    Wichura's Algorithm AS 241 (PPND16), a piecewise rational approximation
    with relative error below 1e-16 over (0, 1), evaluated in float64.

    Args:
        p: probabilities, scalar or array.

    Returns:
        z with Phi(z) = p, shaped like `p` (a float for scalar input);
        -inf at 0, +inf at 1 and nan outside [0, 1] or for nan input.

    Example:
        >>> from hamon_nnx.core.diagnostics import normal_quantile
        >>> round(normal_quantile(0.975), 9)
        1.959963985
    """
    p_arr = np.asarray(p, dtype=np.float64)
    flat = p_arr.reshape(-1)
    out = np.full(flat.shape, np.nan)
    q = flat - 0.5

    central = np.abs(q) <= 0.425
    qc = q[central]
    r = 0.180625 - qc * qc
    out[central] = qc * _horner(_A, r) / _horner(_B, r)

    tail = (np.abs(q) > 0.425) & (flat > 0.0) & (flat < 1.0)
    qt = q[tail]
    r = np.sqrt(-np.log(np.where(qt <= 0.0, flat[tail], 1.0 - flat[tail])))
    near = r <= 5.0
    rn, rf = r[near] - 1.6, r[~near] - 5.0
    z = np.empty_like(r)
    z[near] = _horner(_C, rn) / _horner(_D, rn)
    z[~near] = _horner(_E, rf) / _horner(_F, rf)
    out[tail] = np.where(qt < 0.0, -z, z)

    out[flat == 0.0] = -np.inf
    out[flat == 1.0] = np.inf
    out = out.reshape(p_arr.shape)
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------
# input handling and shared transforms; internal layout (variable, chain, draw)


def _prepare(x) -> tuple[np.ndarray, tuple[int, ...]]:
    """Validate `x` and return it as float64 (V, chain, draw) plus the variable shape."""
    arr = np.asarray(x)
    if arr.dtype.kind in "cmMOSU":  # complex, times, objects, strings
        raise TypeError(f"diagnostics need real-valued draws, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(
            "draws must be shaped (chain, draw) or (chain, draw, *variables), got shape "
            f"{arr.shape}; wrap a single chain as x[None]"
        )
    n_chains, n_draws = arr.shape[:2]
    if n_chains < 1:
        raise ValueError(f"draws need at least one chain, got shape {arr.shape}")
    if n_draws < _MIN_DRAWS:
        raise ValueError(
            f"diagnostics need at least {_MIN_DRAWS} draws per chain, got {n_draws} "
            f"(shape {arr.shape}; the draw axis is axis 1)"
        )
    var_shape = arr.shape[2:]
    is_float = arr.dtype.kind not in "biu"  # floats, including ml_dtypes' bfloat16
    arr = arr.astype(np.float64, copy=False).reshape(n_chains, n_draws, math.prod(var_shape))
    if is_float:
        finite = np.isfinite(arr)
        if not finite.all():
            n_nan = int(np.isnan(arr).sum())
            n_inf = int((~finite).sum()) - n_nan
            raise ValueError(
                f"draws must be finite, got {n_nan} NaN and {n_inf} infinite value(s) "
                f"in an array of shape {np.shape(x)}"
            )
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), var_shape


def _finish(values: np.ndarray, var_shape: tuple[int, ...]) -> float | np.ndarray:
    values = values.reshape(var_shape)
    return float(values) if values.ndim == 0 else values


def _split_chains(x: np.ndarray) -> np.ndarray:
    """(V, C, N) -> (V, 2C, N // 2); the middle draw of an odd N is dropped."""
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., x.shape[-1] - half :]], axis=1)


def _is_constant(x: np.ndarray) -> np.ndarray:
    """(V, C, N) -> (V,) mask of variables whose draws are all equal."""
    flat = x.reshape(x.shape[0], -1)
    return flat.max(axis=1) == flat.min(axis=1)


def _rank_runs(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row of a (V, S) array; return the order and, per sorted position,
    first + last 0-based position of its run of ties (so average rank = that / 2 + 1)."""
    size = a.shape[-1]
    order = np.argsort(a, axis=-1)  # ties are averaged, so stability is moot
    s = np.take_along_axis(a, order, axis=-1)
    idx = np.broadcast_to(np.arange(size), s.shape)
    first = np.ones(s.shape, dtype=bool)  # first element of its run of ties
    first[:, 1:] = s[:, 1:] != s[:, :-1]
    last = np.ones(s.shape, dtype=bool)  # last element of its run of ties
    last[:, :-1] = first[:, 1:]
    start = np.maximum.accumulate(np.where(first, idx, 0), axis=-1)
    end = np.minimum.accumulate(np.where(last, idx, size)[:, ::-1], axis=-1)[:, ::-1]
    return order, start + end


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..S along the last axis of a (V, S) array, ties given their average rank."""
    order, runs = _rank_runs(a)
    ranks = np.empty(a.shape)
    np.put_along_axis(ranks, order, 0.5 * runs + 1.0, axis=-1)
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalize (V, C, N) draws: normal scores of their pooled ranks.

    The rank r of each draw among all S = C * N draws of its variable (ties share
    their average rank) becomes Phi^-1((r - 3/8) / (S + 1/4)) (Blom's offsets, as
    in Vehtari et al.). Average ranks are multiples of 1/2, so the normal quantile
    is tabulated once at the 2S - 1 possible ranks instead of evaluated per draw.
    """
    v, c, n = x.shape
    size = c * n
    order, runs = _rank_runs(x.reshape(v, size))
    # an array in, an array out
    table = cast(
        np.ndarray, normal_quantile((0.5 * np.arange(2 * size - 1) + 1.0 - 0.375) / (size + 0.25))
    )
    z = np.empty((v, size))
    np.put_along_axis(z, order, table[runs], axis=-1)
    return z.reshape(v, c, n)


def _fold(x: np.ndarray) -> np.ndarray:
    """|x - median| with the median of each variable over all its draws."""
    med = np.median(x.reshape(x.shape[0], -1), axis=1)
    return np.abs(x - med[:, None, None])


# ----------------------------------------------------------------------------
# R-hat


def _rhat_core(x: np.ndarray) -> np.ndarray:
    """Potential scale reduction of (V, C, N) chains as given (no splitting)."""
    n = x.shape[-1]  # x has 2+ chains: split ones, or checked by the caller
    const = _is_constant(x)
    stuck = (x.max(axis=-1) == x.min(axis=-1)).all(axis=-1)  # every chain constant
    with np.errstate(divide="ignore", invalid="ignore"):
        within = np.where(stuck, 0.0, x.var(axis=-1, ddof=1).mean(axis=-1))
        between = n * x.mean(axis=-1).var(axis=-1, ddof=1)
        # Chains constant inside but not across: W = 0 < B, R-hat = inf.
        out = np.sqrt((between / within + n - 1.0) / n)
    out[const] = np.nan
    return out


def _rhat_values(x: np.ndarray, method: str) -> np.ndarray:
    if method == "rank":
        bulk = _rhat_core(_z_scale(_split_chains(x)))
        tail = _rhat_core(_z_scale(_split_chains(_fold(x))))
        return np.fmax(bulk, tail)
    if method == "z_scale":
        return _rhat_core(_z_scale(_split_chains(x)))
    if method == "folded":
        return _rhat_core(_z_scale(_split_chains(_fold(x))))
    if method == "split":
        return _rhat_core(_split_chains(x))
    if method == "identity":
        if x.shape[1] < 2:
            raise ValueError("rhat(method='identity') needs at least 2 chains")
        return _rhat_core(x)
    raise ValueError(f"unknown R-hat method {method!r}; expected one of {_RHAT_METHODS}")


def rhat(x: ArrayLike, method: str = "rank") -> float | np.ndarray:
    """R-hat convergence diagnostic of MCMC draws (Vehtari et al. 2021).

    Args:
        x: draws shaped (chain, draw) or (chain, draw, *variables), any real
            dtype. One chain is allowed (its halves are compared).
        method: "rank" (default): max of the bulk and tail R-hat below, the
            diagnostic recommended by Vehtari et al. and reported by Stan.
            "z_scale": bulk R-hat, split R-hat of rank-normalized draws.
            "folded": tail R-hat, the same on |x - median(x)|; detects chains
            that share a location but not a scale.
            "split": classic split-R-hat of the raw draws (`split_rhat`).
            "identity": classic R-hat of unsplit chains (needs 2+ chains).

    Returns:
        A float for (chain, draw) input, else an array shaped like the
        variable axes. Values near 1 (Vehtari et al. suggest < 1.01) indicate
        mixed chains; nan for a variable that never changes, inf for one that
        is constant inside each chain but differs between chains. With
        "rank", a component that is undefined while the other is not is
        ignored (the folded draws of +-1 spins split exactly 50/50 are all 1).

    Raises:
        ValueError: fewer than 4 draws, non-finite draws or an unknown method.

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.core.diagnostics import rhat
        >>> rng = np.random.default_rng(0)
        >>> good = rng.normal(size=(4, 1000))
        >>> bool(rhat(good) < 1.01)
        True
        >>> stuck = good + np.arange(4)[:, None]  # chains around different means
        >>> bool(rhat(stuck) > 1.5)
        True
        >>> rhat(rng.normal(size=(4, 1000, 3))).shape
        (3,)
    """
    arr, var_shape = _prepare(x)
    return _finish(_rhat_values(arr, method), var_shape)


def split_rhat(x):
    """Classic split-R-hat (Gelman et al., BDA3) of MCMC draws.

    Every chain is split into halves (the middle draw of an odd length is
    dropped) and R-hat = sqrt(((n - 1) / n W + B / n) / W) is computed from
    the within-chain variance W and between-chain variance B of the raw
    draws. Prefer `rhat`, which is robust to heavy tails and catches
    differences in scale.

    Args:
        x: draws shaped (chain, draw) or (chain, draw, *variables).

    Returns:
        A float for (chain, draw) input, else an array over the variable
        axes; nan for a variable that never changes.

    Raises:
        ValueError: fewer than 4 draws or non-finite draws.

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.core.diagnostics import split_rhat
        >>> x = np.random.default_rng(1).normal(size=(4, 1000))
        >>> bool(abs(split_rhat(x) - 1.0) < 0.01)
        True
    """
    arr, var_shape = _prepare(x)
    return _finish(_rhat_values(arr, "split"), var_shape)


# ----------------------------------------------------------------------------
# effective sample size


def _mean_autocov(x: np.ndarray) -> np.ndarray:
    """(V, C, N) -> (V, N): biased autocovariances (divisor N) at lags 0..N-1 by FFT,
    averaged over the chains (averaged before the inverse FFT, which is linear)."""
    n = x.shape[-1]
    size = 1 << (2 * n - 1).bit_length()  # power of two >= 2N: no circular wrap-around
    centered = x - x.mean(axis=-1, keepdims=True)
    f = np.fft.rfft(centered, n=size, axis=-1)
    power = (f.real**2 + f.imag**2).mean(axis=1)
    return np.fft.irfft(power, n=size, axis=-1)[:, :n] / n


def _ess_core(x: np.ndarray) -> np.ndarray:
    """ESS of (V, C, N) chains as given (Stan's estimator; no splitting here)."""
    v, c, n = x.shape
    total = c * n
    const = _is_constant(x)
    acov = _mean_autocov(x)  # (V, N), mean over chains
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_var = acov[:, 0] * n / (n - 1.0)  # W, mean within-chain variance
        var_plus = mean_var * (n - 1.0) / n
        if c > 1:
            var_plus = var_plus + x.mean(axis=-1).var(axis=-1, ddof=1)
        rho = 1.0 - (mean_var[:, None] - acov) / var_plus[:, None]  # (V, N)
    rho[:, 0] = 1.0

    # Geyer's initial positive sequence on pair sums P_k = rho_2k + rho_2k+1. Stan's loop
    # examines pairs k = 1, 2, ... while the previous pair sum is positive, up to the
    # last pair whose odd lag is <= n - 2; `m` is the last pair examined (0 when none).
    k_max = max((n - 3) // 2, 0)
    pairs = rho[:, 0 : 2 * k_max + 2 : 2] + rho[:, 1 : 2 * k_max + 2 : 2]  # (V, k_max+1)
    if k_max > 0:
        stop = pairs[:, 1:] <= 0.0
        m = np.where(stop.any(axis=1), stop.argmax(axis=1) + 1, k_max)
    else:
        m = np.zeros(v, dtype=np.int64)
    m = np.where(pairs[:, 0] > 0.0, m, 0)
    # Initial monotone sequence: each pair sum is lowered to the previous (lowered) one
    # when larger, i.e. a running minimum; pairs 0..m-1 enter the sum twice ...
    mono = np.minimum.accumulate(pairs, axis=1)
    head = np.where(np.arange(k_max + 1)[None, :] < m[:, None], mono, 0.0).sum(axis=1)
    # ... and the even lag of pair m once, if it was kept or is positive (Stan's
    # improved estimate for antithetic chains).
    rows = np.arange(v)
    rho_last = rho[rows, 2 * m]
    keep = (pairs[rows, m] >= 0.0) | (rho_last > 0.0)
    last = np.where(m == 0, 1.0, np.where(keep, rho_last, 0.0))
    tau = -1.0 + 2.0 * head + last
    tau = np.maximum(tau, 1.0 / math.log10(total))  # caps ESS at total * log10(total)
    with np.errstate(invalid="ignore"):
        out = total / tau
    out[const | ~np.isfinite(var_plus)] = np.nan
    return out


def _ess_quantile(x: np.ndarray, prob: float) -> np.ndarray:
    q = np.quantile(x.reshape(x.shape[0], -1), prob, axis=1)
    return _ess_core(_split_chains((x <= q[:, None, None]).astype(np.float64)))


def _check_prob(p) -> float:
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"quantile probabilities must lie in (0, 1), got {p}")
    return p


def ess(
    x: ArrayLike, method: str = "bulk", prob: float | tuple[float, float] | None = None
) -> float | np.ndarray:
    """Effective sample size of MCMC draws (Vehtari et al. 2021, Stan's estimator).

    Chains are split in halves; autocorrelations (FFT) are combined over
    chains as rho_t = 1 - (W - mean_c acov_c(t)) / var_plus and summed with
    Geyer's initial monotone sequence truncation. ESS = N / tau, capped at
    N log10 N where N counts all split draws.

    Args:
        x: draws shaped (chain, draw) or (chain, draw, *variables), any real
            dtype; a single chain is fine.
        method: "bulk" (default): ESS of rank-normalized draws, for the
            centre of the distribution. "tail": the smaller ESS of the
            indicators x <= q05 and x <= q95 (`prob` may give another pair),
            for the 5% and 95% quantiles. "mean": ESS of the raw draws, for
            the mean (as in `mcse_mean`). "quantile": ESS of the indicator
            x <= q_prob for a single `prob`.
        prob: quantile probability for "quantile" (required) or the pair for
            "tail" (default (0.05, 0.95)).

    Returns:
        A float for (chain, draw) input, else an array over the variable
        axes; nan for a variable that never changes (and for a quantile
        indicator that never changes). For "tail" an undefined indicator ESS
        is skipped when the other is defined: for binary variables such as
        spins x <= q95 always holds and only the 5% indicator counts.

    Raises:
        ValueError: fewer than 4 draws, non-finite draws, an unknown method
            or a probability outside (0, 1).

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.core.diagnostics import ess
        >>> rng = np.random.default_rng(0)
        >>> iid = rng.normal(size=(4, 1000))
        >>> bool(3600 < ess(iid) < 4400)  # independent draws: ESS ~ 4 * 1000
        True
        >>> spins = rng.choice(np.array([-1, 1], dtype=np.int8), size=(2, 500, 5))
        >>> ess(spins, method="tail").shape
        (5,)
    """
    arr, var_shape = _prepare(x)
    if method == "bulk":
        out = _ess_core(_z_scale(_split_chains(arr)))
    elif method == "mean":
        out = _ess_core(_split_chains(arr))
    elif method == "tail":
        probs = (0.05, 0.95) if prob is None else tuple(np.atleast_1d(prob))
        if len(probs) != 2:
            raise ValueError(f"ess(method='tail') needs a pair of probabilities, got {prob!r}")
        lo, hi = probs
        out = np.fmin(
            _ess_quantile(arr, _check_prob(lo)),
            _ess_quantile(arr, _check_prob(hi)),
        )
    elif method == "quantile":
        if prob is None:
            raise ValueError("ess(method='quantile') needs prob, e.g. prob=0.5")
        out = _ess_quantile(arr, _check_prob(prob))
    else:
        raise ValueError(f"unknown ESS method {method!r}; expected one of {_ESS_METHODS}")
    return _finish(out, var_shape)


def effective_sample_size(
    x: ArrayLike, method: str = "bulk", prob: float | tuple[float, float] | None = None
) -> float | np.ndarray:
    """Effective sample size; the public name of `ess` (same arguments and results).

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.core.diagnostics import effective_sample_size
        >>> x = np.random.default_rng(2).normal(size=(1, 2000))  # one chain
        >>> bool(1800 < effective_sample_size(x, method="mean") < 2200)
        True
    """
    return ess(x, method=method, prob=prob)


def mcse_mean(x):
    """Monte-Carlo standard error of the posterior mean: sd / sqrt(ESS_mean).

    `sd` is the standard deviation (ddof=1) of all draws pooled and ESS_mean
    is `ess(x, method="mean")`.

    Args:
        x: draws shaped (chain, draw) or (chain, draw, *variables).

    Returns:
        A float for (chain, draw) input, else an array over the variable
        axes; nan for a variable that never changes (its ESS is undefined).

    Raises:
        ValueError: fewer than 4 draws or non-finite draws.

    Example:
        >>> import numpy as np
        >>> from hamon_nnx.core.diagnostics import mcse_mean
        >>> x = np.random.default_rng(3).normal(size=(4, 2500))
        >>> round(mcse_mean(x), 2)  # ~ 1 / sqrt(10000)
        0.01
    """
    arr, var_shape = _prepare(x)
    ess_mean = _ess_core(_split_chains(arr))
    sd = arr.reshape(arr.shape[0], -1).std(axis=1, ddof=1)
    return _finish(sd / np.sqrt(ess_mean), var_shape)
