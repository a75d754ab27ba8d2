"""Monte-Carlo checks against exact expectations, shared by the tests.

Tolerances come from the Monte-Carlo standard error: chains are independent,
so the per-chain time averages of a statistic are i.i.d. and their spread
gives an honest standard error of the grand mean whatever the
autocorrelation inside a chain (ESS = variance / standard error^2).
"""

from __future__ import annotations

import numpy as np

Z_MAX = 5.0  # per statistic; a correct sampler fails one of ~100 statistics with p < 1e-4


def features(x: np.ndarray, values_per_var: list[np.ndarray]) -> np.ndarray:
    """Indicators of every (variable, value) and every pair of them, last axis."""
    x = np.asarray(x)
    one = [x[..., i : i + 1] == v[None, :] for i, v in enumerate(values_per_var)]
    onehot = np.concatenate([o[..., :-1] for o in one], axis=-1).astype(np.float32)
    n = onehot.shape[-1]
    iu = np.triu_indices(n, k=1)
    pairs = (onehot[..., :, None] * onehot[..., None, :])[..., iu[0], iu[1]]
    return np.concatenate([onehot, pairs], axis=-1)


def exact_expectation(states: np.ndarray, probs: np.ndarray, values_per_var) -> np.ndarray:
    return np.asarray(probs, np.float64) @ features(states, values_per_var).astype(np.float64)


def z_scores(samples: np.ndarray, exact: np.ndarray, values_per_var, mcse: bool = False):
    """z of the sample mean of each feature; samples (chain, draw, n).

    With `mcse`, the standard error is at least the Monte-Carlo one from the
    draws' autocorrelation (`mcse_mean`: sd / sqrt(ESS)): for few chains
    whose draws are strongly correlated (tempering a glass with two
    replicas), where the spread of two chain means says little.
    """
    f = features(samples, values_per_var)
    chain_means = f.mean(axis=1).astype(np.float64)
    n_chains = chain_means.shape[0]
    mean = chain_means.mean(axis=0)
    se = chain_means.std(axis=0, ddof=1) / np.sqrt(n_chains)
    # Rare indicators (a few hits in all draws) make the spread of chain means
    # a poor estimate; Gibbs and tempering draws are positively correlated, so
    # the i.i.d. standard error of the exact frequency is a floor. A feature
    # that never varies (exact 0 or 1) allows float32 rounding only.
    iid = np.sqrt(np.clip(exact * (1 - exact), 0, None) / (f.shape[0] * f.shape[1]))
    if mcse:
        from hamon_nnx.core.diagnostics import mcse_mean

        iid = np.maximum(iid, np.nan_to_num(mcse_mean(f.astype(np.float64)), nan=0.0))
    return (mean - exact) / np.maximum(np.maximum(se, iid), 1e-4)


def assert_matches(samples, states, probs, values_per_var, z_max: float = Z_MAX, mcse=False):
    """Every marginal and pairwise indicator within z_max standard errors."""
    exact = exact_expectation(states, probs, values_per_var)
    z = z_scores(np.asarray(samples), exact, values_per_var, mcse)
    worst = int(np.argmax(np.abs(z)))
    assert np.abs(z[worst]) < z_max, (
        f"feature {worst}: z = {z[worst]:.2f} (exact {exact[worst]:.4f}); "
        f"{int(np.sum(np.abs(z) > 3))} of {len(z)} features beyond 3 sigma"
    )
    return z
