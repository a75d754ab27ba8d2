"""Dense Potts models (protein families): the grouped sweep, enumeration, gauge, training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from stats import assert_matches

import hamon_nnx as hn
from hamon_nnx.models.potts import DensePotts


def couplings(L, q, seed, scale=0.5):
    g = np.random.default_rng(seed)
    J = g.normal(size=(L, L, q, q)) * scale
    J = J + J.transpose(1, 0, 3, 2)
    J[np.arange(L), np.arange(L)] = 0.0
    return J, g.normal(size=(L, q)) * scale


def written_out_energy(J, h, s):
    L = len(s)
    pair = sum(J[i, j, s[i], s[j]] for i in range(L) for j in range(i + 1, L))
    return -pair - sum(h[i, s[i]] for i in range(L))


def test_energy_is_the_pair_sum_and_logits_match_it():
    J, h = couplings(6, 4, seed=0)
    m = hn.PottsModel.dense(J, h)
    s = np.random.default_rng(1).integers(0, 4, size=(5, 6)).astype(np.int8)
    want = [written_out_energy(J, h, row) for row in s]
    np.testing.assert_allclose(np.asarray(m.energy(s)), want, rtol=1e-5, atol=1e-5)
    hn.check_model(m)  # block logits against energy differences, blocks independent


def test_grouped_sweep_is_the_site_by_site_heat_bath(monkeypatch):
    """Groups of 3 with a padded last group, a clamp, a reference and
    beta != 1, against a sequential heat bath written out with the same
    uniforms (inverse CDF)."""
    monkeypatch.setattr(DensePotts, "GROUP", 3)
    L, q, beta = 11, 5, 0.7
    J, h = couplings(L, q, seed=2)
    m = hn.PottsModel.dense(J, h)
    g = np.random.default_rng(3)
    x = g.integers(0, q, size=L).astype(np.int8)
    u = g.random(L).astype(np.float32)
    keep = g.random(L) < 0.2
    ref = g.normal(size=(L, q)).astype(np.float32)
    got = np.asarray(m.gibbs_sweep(u, x, np.float32(beta), keep, ref.reshape(-1)))
    want, margin = x.copy(), np.inf
    for i in range(L):
        z = beta * (sum(J[i, j, :, want[j]] for j in range(L)) + h[i]) + (1 - beta) * ref[i]
        cdf = np.cumsum(np.exp(z - z.max()))
        margin = min(margin, np.min(np.abs(u[i] * cdf[-1] - cdf[:-1]) / cdf[-1]))
        if not keep[i]:
            want[i] = np.sum(u[i] * cdf[-1] >= cdf[:-1])
    assert margin > 1e-5  # no decision that float32 rounding could flip
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("group", [8, 2])  # one group; three with padding
def test_draws_match_enumeration(key, monkeypatch, group):
    monkeypatch.setattr(DensePotts, "GROUP", group)
    J, h = couplings(5, 3, seed=4)
    m = hn.PottsModel.dense(J, h)
    for beta in (1.0, 0.5):
        states, probs = hn.exact.probabilities(m, beta=beta)
        draws = hn.sample(m, key, n_samples=800, n_chains=40, beta=beta)
        assert_matches(np.asarray(draws), states, probs, m.variable_values())


def test_zero_sum_gauge_keeps_the_distribution():
    J, h = couplings(5, 4, seed=5)
    m = hn.PottsModel.dense(J, h)
    z = m.to_zero_sum_gauge()
    J0, h0 = np.asarray(z.coupling[...]), np.asarray(z.field[...])
    np.testing.assert_allclose(J0.sum(axis=2), 0, atol=1e-5)
    np.testing.assert_allclose(J0.sum(axis=3), 0, atol=1e-5)
    np.testing.assert_allclose(h0.sum(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(J0, J0.transpose(1, 0, 3, 2), atol=1e-6)
    s = np.random.default_rng(6).integers(0, 4, size=(50, 5)).astype(np.int8)
    shift = np.asarray(m.energy(s)) - np.asarray(z.energy(s))
    np.testing.assert_allclose(shift, shift[0], atol=1e-4)  # one constant
    assert np.std(np.asarray(m.energy(s))) > 1.0  # and the energies do vary
    assert m.n_gauge_invariant_parameters() == 5 * 3 + 10 * 9


def test_config_rebuilds_the_structure():
    J, h = couplings(4, 3, seed=7)
    m = hn.PottsModel.dense(J, h)
    rebuilt = hn.models.model_from_config(m.config())
    assert type(rebuilt) is DensePotts and rebuilt.config() == m.config()
    assert rebuilt.coupling[...].shape == (4, 4, 3, 3) and rebuilt.field[...].shape == (4, 3)


@pytest.mark.parametrize(
    "negative", [hn.PCD(n_chains=64, k=2), hn.NRPTNegative(n_betas=4, n_rounds=8)]
)
def test_training_recovers_the_likelihood_of_the_data(key, negative):
    """Data drawn exactly from a dense Potts model; a zero model trained by
    PCD / NRPT climbs most of the way to the true model's log-likelihood."""
    J, h = couplings(4, 3, seed=8, scale=0.6)
    true = hn.PottsModel.dense(J, h)
    states, probs = hn.exact.probabilities(true)
    data = states[np.random.default_rng(9).choice(len(states), size=2000, p=probs)]
    model = hn.models.model_from_config(true.config())
    start = hn.training.exact_log_likelihood(model, data)
    best = hn.training.exact_log_likelihood(true, data)
    trainer = hn.Trainer(model, optax.adam(0.05), negative=negative, seed=0, progress=False)
    trainer.fit(data, epochs=15, batch_size=100)
    end = hn.training.exact_log_likelihood(model, data)
    assert end - start > 0.8 * (best - start), (start, end, best)
    # the sampler reads J as symmetric with zero diagonal blocks: training keeps both exactly
    trained = np.asarray(model.coupling[...])
    np.testing.assert_array_equal(trained, trained.transpose(1, 0, 3, 2))
    assert not trained[np.arange(4), np.arange(4)].any()


@pytest.mark.parametrize(
    ("J", "h", "message"),
    [
        (np.zeros((3, 3, 2)), None, "shape"),
        (np.zeros((3, 4, 2, 2)), None, "shape"),
        (np.zeros((3, 3, 1, 1)), None, "q must be"),
        (np.zeros((3, 3, 2, 2)) + np.eye(3)[:, :, None, None], None, "diagonal"),
        (couplings(3, 2, 0)[0] + np.arange(36).reshape(3, 3, 2, 2) * 0.1, None, "symmetric"),
        (np.full((3, 3, 2, 2), np.nan), None, "finite|NaN"),
        (np.zeros((3, 3, 2, 2)), np.zeros((2, 3)), "h must"),
    ],
)
def test_bad_couplings_and_fields_are_named(J, h, message):
    with pytest.raises(ValueError, match=message):
        hn.PottsModel.dense(J, h)


def test_first_call_of_a_protein_sized_model_is_one_small_program():
    """The program holds one group: its size does not grow with L."""
    sizes = []
    for L in (16, 256):
        m = hn.PottsModel.dense(np.zeros((L, L, 3, 3)), None)
        u, x = jnp.zeros(L), jnp.zeros(L, jnp.int8)
        text = jax.jit(lambda u, x, m=m: m.gibbs_sweep(u, x, 1.0, None)).lower(u, x).as_text()
        sizes.append(len(text))
    assert sizes[1] < 1.2 * sizes[0], sizes
