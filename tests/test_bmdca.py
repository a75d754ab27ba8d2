"""bmDCA: moment matching checked by exact enumeration, chunk invariance, bad input."""

import jax
import numpy as np
import pytest

import hamon_nnx as hn
from hamon_nnx.dca import bmdca


def small_family(L=4, q=3, seed=0):
    """Exact frequencies of a random dense Potts model (the data a fit should match)."""
    rng = np.random.default_rng(seed)
    J = rng.normal(size=(L, L, q, q)) * 0.6
    J = J + J.transpose(1, 0, 3, 2)
    J[range(L), range(L)] = 0
    truth = hn.PottsModel.dense(J, rng.normal(size=(L, q)) * 0.5)
    states, probs = hn.exact.probabilities(truth)
    onehot = np.eye(q)[states.astype(int)].reshape(len(states), L * q)
    pair = (onehot * probs[:, None]).T @ onehot
    fij = pair.reshape(L, q, L, q).transpose(0, 2, 1, 3)
    return np.diagonal(pair).reshape(L, q), fij


def exact_marginals(model, L, q):
    states, probs = hn.exact.probabilities(model)
    onehot = np.eye(q)[states.astype(int)].reshape(len(states), L * q)
    pair = (onehot * probs[:, None]).T @ onehot
    return np.diagonal(pair).reshape(L, q), pair.reshape(L, q, L, q).transpose(0, 2, 1, 3)


def test_fit_matches_the_data_moments_by_exact_enumeration():
    fi, fij = small_family()
    run = bmdca.fit((fi, fij), jax.random.key(0), n_chains=4000, learning_rate=0.05,
                    target_pearson=1.0, max_steps=400, progress=False)  # fmt: skip
    pi, pij = exact_marginals(run.model, 4, 3)
    # persistent chains of 4000: moment errors of a few times 1/sqrt(4000) ~ 0.016
    assert np.max(np.abs(pi - fi)) < 0.03, np.max(np.abs(pi - fi))
    assert np.max(np.abs(pij - fij)) < 0.03, np.max(np.abs(pij - fij))
    exact = bmdca.pearson(bmdca.Statistics(fi, fij), bmdca.Statistics(pi, pij))
    assert exact > 0.99
    assert not run.converged and run.pearson > 0.95 and len(run.history["step"]) == 400
    J = np.asarray(run.model.coupling[...])
    np.testing.assert_array_equal(J, J.transpose(1, 0, 3, 2))


def test_chunks_do_not_change_the_fit():
    fi, fij = small_family(L=5, q=2, seed=1)
    runs = [
        bmdca.fit(
            (fi, fij),
            jax.random.key(3),
            n_chains=64,
            target_pearson=1.0,
            max_steps=23,
            steps_per_call=k,
            progress=False,
        )  # fmt: skip
        for k in (4, 23)
    ]
    np.testing.assert_array_equal(runs[0].state.chains, runs[1].state.chains)
    np.testing.assert_array_equal(runs[0].model.coupling[...], runs[1].model.coupling[...])
    assert runs[0].history["pearson"] == runs[1].history["pearson"]
    assert runs[0].history["step"] == list(range(1, 24))
    resumed = bmdca.fit((fi, fij), jax.random.key(3), n_chains=64, target_pearson=1.0,
                        max_steps=10, state=runs[0].state, progress=False)  # fmt: skip
    assert resumed.history["step"][0] == 24


def test_bad_input():
    fi, fij = small_family(L=3, q=2)
    with pytest.raises(ValueError, match=r"fi \(L, q\) and fij"):
        bmdca.fit((fi, fij[0]), jax.random.key(0))
    bad = fi.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bmdca.fit((bad, fij), jax.random.key(0))
    zero = fi.copy()
    zero[0] = [0.0, 1.0]
    with pytest.raises(ValueError, match="pseudocount"):
        bmdca.fit((zero, fij), jax.random.key(0))
    for name, value in (("n_chains", 1), ("learning_rate", 0.0), ("max_steps", 0),
                        ("n_sweeps", 1.5), ("target_pearson", 2.0)):  # fmt: skip
        with pytest.raises(ValueError, match=name):
            bmdca.fit((fi, fij), jax.random.key(0), **{name: value})
