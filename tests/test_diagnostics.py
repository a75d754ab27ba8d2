"""Tests of the MCMC convergence diagnostics (R-hat, ESS, MCSE).

Statistical tolerances were sized by running the same checks over hundreds of
independent replicates (vectorised as extra variables) and are stated next to
each check; the seeds are fixed, so every test is deterministic.
"""

from __future__ import annotations

import statistics
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from hamon_nnx.core import diagnostics as diag
from hamon_nnx.core.diagnostics import (
    effective_sample_size,
    ess,
    mcse_mean,
    normal_quantile,
    rhat,
    split_rhat,
)

# ----------------------------------------------------------------------------
# helpers


def ar1(rng, phi, n_chains, n_draws, n_vars=1):
    """Stationary Gaussian AR(1) chains, unit innovations, shape (chain, draw, var)."""
    e = rng.normal(size=(n_chains, n_draws, n_vars))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0] / np.sqrt(1.0 - phi**2)  # start in the stationary law: no burn-in
    for t in range(1, n_draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def spin_chains(rng, flip, n_chains, n_draws, n_vars):
    """int8 +-1 spins that flip with probability `flip` per step (autocorrelation
    (1 - 2 flip)^t, so ESS = N flip / (1 - flip)), shape (chain, draw, var)."""
    flips = rng.random((n_chains, n_draws, n_vars)) < flip
    start = rng.choice(np.array([-1, 1]), size=(n_chains, 1, n_vars))
    parity = np.cumsum(flips, axis=1) % 2
    return (start * (1 - 2 * parity)).astype(np.int8)


def reference_ess(chains):
    """ESS of (chain, draw) chains, already split: a literal, loop-based port of the
    estimator in ArviZ (`arviz.stats.diagnostics._ess`, itself Stan's), with an
    O(n^2) autocovariance instead of the FFT."""
    n_chain, n_draw = chains.shape
    centered = chains - chains.mean(axis=1, keepdims=True)
    acov = np.array([np.correlate(c, c, "full")[n_draw - 1 :] / n_draw for c in centered])
    chain_mean = chains.mean(axis=1)
    mean_var = np.mean(acov[:, 0]) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus += np.var(chain_mean, ddof=1)
    rho_hat_t = np.zeros(n_draw)
    rho_hat_even = 1.0
    rho_hat_t[0] = rho_hat_even
    rho_hat_odd = 1 - (mean_var - np.mean(acov[:, 1])) / var_plus
    rho_hat_t[1] = rho_hat_odd
    t = 1
    while t < (n_draw - 3) and (rho_hat_even + rho_hat_odd) > 0.0:
        rho_hat_even = 1.0 - (mean_var - np.mean(acov[:, t + 1])) / var_plus
        rho_hat_odd = 1.0 - (mean_var - np.mean(acov[:, t + 2])) / var_plus
        if (rho_hat_even + rho_hat_odd) >= 0:
            rho_hat_t[t + 1] = rho_hat_even
            rho_hat_t[t + 2] = rho_hat_odd
        t += 2
    max_t = t - 2
    if rho_hat_even > 0:
        rho_hat_t[max_t + 1] = rho_hat_even
    t = 1
    while t <= max_t - 2:
        if (rho_hat_t[t + 1] + rho_hat_t[t + 2]) > (rho_hat_t[t - 1] + rho_hat_t[t]):
            rho_hat_t[t + 1] = (rho_hat_t[t - 1] + rho_hat_t[t]) / 2.0
            rho_hat_t[t + 2] = rho_hat_t[t + 1]
        t += 2
    total = n_chain * n_draw
    tau_hat = -1.0 + 2.0 * np.sum(rho_hat_t[: max_t + 1]) + np.sum(rho_hat_t[max_t + 1 : max_t + 2])
    tau_hat = max(tau_hat, 1 / np.log10(total))
    return total / tau_hat


def reference_split(x):
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


# ----------------------------------------------------------------------------
# normal quantile


@pytest.mark.parametrize(
    ("p", "z"),
    [
        # Published percentage points; where the decimal p is not a double, z is the
        # quantile of the double nearest to it (what scipy.special.ndtri returns).
        (0.5, 0.0),
        (0.975, 1.959963984540054),
        (0.025, -1.959963984540054),
        (0.95, 1.6448536269514722),
        (0.999, 3.090232306167813),
        (0.001, -3.090232306167813),
        (0.8413447460685429, 1.0),  # Phi(1)
        (0.15865525393145707, -1.0),  # Phi(-1)
        (1e-10, -6.361340902404056),
        (1e-300, -37.0470962993612),  # deep tail branch (r > 5) of AS 241
    ],
)
def test_normal_quantile_known_values(p, z):
    # AS 241 is accurate to ~1e-16 relative; 1e-9 is the required accuracy, with a
    # relative term for the |z| ~ 37 point.
    assert normal_quantile(p) == pytest.approx(z, abs=1e-9, rel=1e-12)


def test_normal_quantile_array_edges_and_stdlib():
    p = np.concatenate([np.linspace(1e-6, 1 - 1e-6, 2001), np.logspace(-300, -2, 300)])
    z = normal_quantile(p)
    assert z.shape == p.shape and z.dtype == np.float64
    # CPython's NormalDist.inv_cdf is an independent (C) implementation of AS 241; they
    # may differ in the last bits only.
    ref = np.array([statistics.NormalDist().inv_cdf(float(v)) for v in p])
    np.testing.assert_allclose(z, ref, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(normal_quantile(1.0 - p[:2001]), -z[:2001], atol=1e-9)
    assert np.all(np.diff(normal_quantile(np.linspace(0.001, 0.999, 999))) > 0)
    edges = normal_quantile(np.array([[0.0, 1.0], [-0.5, np.nan]]))
    assert edges[0, 0] == -np.inf and edges[0, 1] == np.inf
    assert np.isnan(edges[1]).all()
    assert isinstance(normal_quantile(0.3), float)


# ----------------------------------------------------------------------------
# the estimators against literal references


def test_average_ranks_with_ties_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    a = np.random.default_rng(0).integers(0, 6, size=(5, 300)).astype(np.float64)
    np.testing.assert_array_equal(diag._average_ranks(a), stats.rankdata(a, axis=1))


_REFERENCE_CASES = ["iid", "ar_0.9", "antithetic", "short_4", "short_5", "short_9", "one_chain"]


@pytest.mark.parametrize("case", [*_REFERENCE_CASES, "spins"])
def test_ess_core_matches_loop_reference(case):
    rng = np.random.default_rng(100 + [*_REFERENCE_CASES, "spins"].index(case))
    data = {
        "iid": lambda: rng.normal(size=(4, 300)),
        "ar_0.9": lambda: ar1(rng, 0.9, 3, 400)[..., 0],
        "antithetic": lambda: ar1(rng, -0.6, 4, 200)[..., 0],
        "short_4": lambda: rng.normal(size=(2, 4)),
        "short_5": lambda: rng.normal(size=(2, 5)),
        "short_9": lambda: rng.normal(size=(3, 9)),
        "one_chain": lambda: ar1(rng, 0.5, 1, 301)[..., 0],
        "spins": lambda: spin_chains(rng, 0.05, 4, 500, 1)[..., 0].astype(np.float64),
    }[case]()
    split = reference_split(data)
    # Same arithmetic up to FFT versus direct sums: agreement to rounding.
    assert ess(data, method="mean") == pytest.approx(reference_ess(split), rel=1e-9)
    # Bulk ESS is the same estimator on the normal scores of the pooled ranks.
    stats = pytest.importorskip("scipy.stats")
    z = normal_quantile((stats.rankdata(split).reshape(split.shape) - 0.375) / (split.size + 0.25))
    assert ess(data) == pytest.approx(reference_ess(z), rel=1e-9)


def test_rank_rhat_matches_direct_formula():
    stats = pytest.importorskip("scipy.stats")

    def classic(chains):
        n = chains.shape[1]
        b = n * chains.mean(axis=1).var(ddof=1)
        w = chains.var(axis=1, ddof=1).mean()
        return np.sqrt((b / w + n - 1) / n)

    def znorm(a):
        return normal_quantile((stats.rankdata(a).reshape(a.shape) - 0.375) / (a.size + 0.25))

    x = ar1(np.random.default_rng(5), 0.7, 4, 501)[..., 0]  # odd: the middle draw is dropped
    x[1] *= 1.3
    bulk = classic(znorm(reference_split(x)))
    tail = classic(znorm(reference_split(np.abs(x - np.median(x)))))
    assert rhat(x, method="z_scale") == pytest.approx(bulk, rel=1e-12)
    assert rhat(x, method="folded") == pytest.approx(tail, rel=1e-12)
    assert rhat(x) == pytest.approx(max(bulk, tail), rel=1e-12)
    assert split_rhat(x) == pytest.approx(classic(reference_split(x)), rel=1e-12)
    assert rhat(x, method="identity") == pytest.approx(classic(x), rel=1e-12)


# ----------------------------------------------------------------------------
# statistical behaviour


def test_iid_normal_draws():
    x = np.random.default_rng(11).normal(size=(4, 5000, 4))
    n = 4 * 5000
    # Over 2000 replicates of this size the bulk ESS / N had median 0.993 and
    # 0.1%-99.9% quantiles 0.90-1.04 (Geyer's truncation biases it down a little);
    # mean and tail ESS spread similarly (relative sd ~2%).
    for method in ("bulk", "mean", "tail"):
        np.testing.assert_allclose(ess(x, method=method), n, rtol=0.10)
    # R-hat of mixed chains of 5000 draws: max over 2000 replicates was 1.0008.
    assert np.all(rhat(x) < 1.01)
    assert np.all(np.abs(split_rhat(x) - 1.0) < 0.01)


def test_ar1_ess_matches_theory():
    phi, chains, draws = 0.9, 8, 5000
    x = ar1(np.random.default_rng(12), phi, chains, draws, n_vars=4)
    expected = chains * draws * (1 - phi) / (1 + phi)  # 2105: tau = (1 + phi) / (1 - phi)
    # Relative sd of the estimate at this size is ~6% (200 replicates: mean 0.996, sd
    # 0.062), so 15% is ~2.5 sd; the seed is fixed.
    np.testing.assert_allclose(ess(x, method="bulk"), expected, rtol=0.15)
    np.testing.assert_allclose(ess(x, method="mean"), expected, rtol=0.15)
    # MCSE of the mean: sd / sqrt(ESS) with the stationary sd 1 / sqrt(1 - phi^2);
    # 300 replicates: 0.3%-99.7% quantiles of the ratio 0.91-1.10.
    mcse_theory = 1 / np.sqrt(1 - phi**2) / np.sqrt(expected)
    np.testing.assert_allclose(mcse_mean(x), mcse_theory, rtol=0.15)
    assert np.all(rhat(x) < 1.01)  # 300 replicates: median 1.003, max 1.009


def test_antithetic_chains_are_capped_at_n_log10_n():
    # phi = -0.9: tau = 0.1 / 1.9, "ESS" 19 N would exceed Stan's cap N log10 N.
    x = ar1(np.random.default_rng(13), -0.9, 4, 1000)[..., 0]
    n = 4 * 1000
    assert ess(x, method="mean") == pytest.approx(n * np.log10(n), rel=1e-12)
    # Mildly antithetic chains (phi = -0.3): ESS = N 1.3 / 0.7 > N, below the cap;
    # 300 replicates: 0.3%-99.7% quantiles of ESS / theory 0.86-1.12.
    y = ar1(np.random.default_rng(14), -0.3, 4, 2000)[..., 0]
    assert 8000 * 1.3 / 0.7 * 0.85 < ess(y, method="mean") < 8000 * 1.3 / 0.7 * 1.15


def test_shifted_chain_means_give_large_rhat():
    x = np.random.default_rng(15).normal(size=(4, 1000, 3))
    x[2:] += 4.0  # two chains stuck 4 sd away: 200 replicates gave rank R-hat >= 1.71
    assert np.all(rhat(x) > 1.5)
    assert np.all(split_rhat(x) > 1.5)
    # A single chain whose halves disagree is caught as well (split R-hat).
    one = np.random.default_rng(16).normal(size=(1, 2000))
    one[0, 1000:] += 4.0
    assert rhat(one) > 1.5


def test_different_chain_scales_caught_by_folded_rhat():
    x = np.random.default_rng(17).normal(size=(4, 1000, 3))
    x[2:] *= 4.0  # same location, four times the scale
    # Location-based R-hats see nothing (200 replicates: max 1.003) ...
    assert np.all(split_rhat(x) < 1.01)
    assert np.all(rhat(x, method="z_scale") < 1.01)
    # ... the folded (tail) R-hat does (200 replicates: min 1.21), and so does the
    # default rank R-hat, the larger of the two.
    assert np.all(rhat(x, method="folded") > 1.1)
    np.testing.assert_array_equal(rhat(x), rhat(x, method="folded"))


def test_int8_spin_samples():
    flip = 0.2
    x = spin_chains(np.random.default_rng(18), flip, 8, 5000, 6)
    assert x.dtype == np.int8
    expected = 8 * 5000 * flip / (1 - flip)
    for method in ("bulk", "tail", "mean"):
        out = ess(x, method=method)
        assert out.shape == (6,) and out.dtype == np.float64
        # 300 replicates: relative sd 3.5%, extremes 0.85-1.09.
        np.testing.assert_allclose(out, expected, rtol=0.15)
    r = rhat(x)
    assert r.shape == (6,) and np.all(r < 1.01)  # 300 replicates: max 1.0017
    assert split_rhat(x).shape == (6,) and mcse_mean(x).shape == (6,)
    # A sampler's native layout at MNIST size: (chain, draw, 784) -> (784,).
    big = spin_chains(np.random.default_rng(19), 0.3, 4, 1000, 784)
    assert rhat(big).shape == (784,) and ess(big).shape == (784,)


def test_vectorised_results_equal_per_variable_results():
    rng = np.random.default_rng(20)
    x = ar1(rng, 0.5, 3, 400, n_vars=15).reshape(3, 400, 3, 5)
    for fn in (rhat, split_rhat, ess, mcse_mean, lambda a: ess(a, method="tail")):
        out = fn(x)
        assert out.shape == (3, 5)
        for i, j in [(0, 0), (1, 3), (2, 4)]:
            single = fn(x[:, :, i, j])
            assert isinstance(single, float)
            assert out[i, j] == pytest.approx(single, rel=1e-12)


def test_single_chain():
    x = np.random.default_rng(21).normal(size=(1, 20000))
    # One chain split in two halves. Over 500 replicates of this size bulk ESS / N had
    # 0.2%-99.8% quantiles 0.91-1.03 and tail ESS / N 0.89-1.02: 10% holds.
    assert effective_sample_size(x) == pytest.approx(20000, rel=0.10)
    assert effective_sample_size(x, method="tail") == pytest.approx(20000, rel=0.10)
    assert rhat(x) < 1.01
    with pytest.raises(ValueError, match="2 chains"):
        rhat(x, method="identity")


def test_constant_variables_give_nan_without_warnings():
    rng = np.random.default_rng(22)
    x = spin_chains(rng, 0.2, 4, 500, 3)
    x[..., 1] = 1  # a clamped spin
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any numpy RuntimeWarning fails the test
        for fn in (rhat, split_rhat, ess, mcse_mean):
            out = fn(x)
            assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
            assert out[0] == pytest.approx(fn(x[..., 0]), rel=1e-12)
        assert np.isnan(ess(x, method="tail")[1])
        for method in ("split", "folded", "z_scale", "identity"):
            assert np.isnan(rhat(x, method=method)[1])
        assert np.isnan(rhat(np.full((2, 10), 3.5)))
        assert np.isnan(ess(np.zeros((1, 10), dtype=np.int8)))
        # Constant inside each chain but different between chains: certainly unmixed.
        stuck = np.repeat(np.array([[-1], [1]], dtype=np.int8), 50, axis=1)
        assert rhat(stuck) == np.inf and split_rhat(stuck) == np.inf


def test_other_input_types():
    x = spin_chains(np.random.default_rng(23), 0.3, 2, 300, 4)
    expected = ess(x)
    np.testing.assert_allclose(ess(jnp.asarray(x)), expected, rtol=1e-12)
    np.testing.assert_allclose(ess(x == 1), expected, rtol=1e-12)  # bool indicators
    np.testing.assert_allclose(ess(x.astype(np.float32)), expected, rtol=1e-12)
    np.testing.assert_allclose(ess(x.tolist()), expected, rtol=1e-12)


def test_bad_input_errors():
    good = np.zeros((2, 10)) + np.arange(10)
    with pytest.raises(ValueError, match="at least 4 draws"):
        ess(np.ones((4, 3)))
    with pytest.raises(ValueError, match="at least one chain"):
        rhat(np.ones((0, 10)))
    with pytest.raises(ValueError, match=r"\(chain, draw\)"):
        ess(np.arange(10.0))
    bad = good.copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        rhat(bad)
    bad[1, 2] = -np.inf
    with pytest.raises(ValueError, match="1 NaN and 1 infinite"):
        mcse_mean(bad)
    with pytest.raises(TypeError, match="real-valued"):
        ess(good.astype(np.complex128))
    with pytest.raises(ValueError, match="unknown R-hat method"):
        rhat(good, method="bulk")
    with pytest.raises(ValueError, match="unknown ESS method"):
        ess(good, method="median")
    with pytest.raises(ValueError, match="needs prob"):
        ess(good, method="quantile")
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        ess(good, method="tail", prob=(0.0, 0.9))
    with pytest.raises(ValueError, match="pair of probabilities"):
        ess(good, method="tail", prob=0.1)
    # Other probabilities are accepted: the 25% / 75% indicators of iid draws.
    iid = np.random.default_rng(24).normal(size=(4, 1000))
    assert ess(iid, method="tail", prob=(0.25, 0.75)) == pytest.approx(4000, rel=0.15)
    assert ess(iid, method="quantile", prob=0.5) == pytest.approx(4000, rel=0.15)
