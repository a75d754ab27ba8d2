"""Streaming observers: exact integer sums, compensated float sums, integrations."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hamon_nnx as hn
from hamon_nnx import observers as obs
from hamon_nnx import sampling


def test_exact_sum_survives_int32_overflow():
    acc = obs.exact_zeros((2,))
    total = np.zeros(2, np.int64)
    add = jax.jit(obs.exact_add)
    rng = np.random.default_rng(0)
    for _ in range(300):
        inc = rng.integers(-(2**29), 2**30 - 1, size=2)
        acc = add(acc, jnp.asarray(inc, jnp.int32))
        total += inc
    assert np.abs(total).max() > 2**33  # far past int32 and float32 integers
    np.testing.assert_array_equal(acc.value(), total)


def test_moments_and_correlations_exact_over_ten_million_draws():
    """1e7 draws of large categorical values: sums reach 1e11, still exact integers."""
    n, n_draws, chunk = 3, 10_000_000, 500_000
    rng = np.random.default_rng(1)
    moments, corr = obs.Moments(), obs.Correlations()
    update = jax.jit(lambda m, c, x: (moments.update(m, x), corr.update(c, x)))
    m_state, c_state = moments.init(n), corr.init(n)
    s1 = np.zeros(n, np.int64)
    s2 = np.zeros(n, np.int64)
    sp = np.zeros((n, n), np.int64)
    for _ in range(n_draws // chunk):
        x = rng.integers(90, 127, size=(chunk, n), dtype=np.int8)
        m_state, c_state = update(m_state, c_state, jnp.asarray(x))
        x64 = x.astype(np.int64)
        s1 += x64.sum(0)
        s2 += (x64 * x64).sum(0)
        sp += x64.T @ x64
    assert m_state.n_draws() == c_state.n_draws() == n_draws
    np.testing.assert_array_equal(m_state.sum.value(), s1)
    np.testing.assert_array_equal(m_state.sum_squares.value(), s2)
    np.testing.assert_array_equal(c_state.sum_products.value(), sp)
    mean = s1 / n_draws
    cov = sp / n_draws - np.outer(mean, mean)
    np.testing.assert_allclose(c_state.covariance(), cov, rtol=1e-9)
    np.testing.assert_allclose(m_state.variance(), np.diag(cov), rtol=1e-9)


def test_compensated_mean_over_ten_million_draws():
    """A float statistic summed 1e7 times: compensated float32 matches float64."""
    rng = np.random.default_rng(2)
    mean_obs = obs.Mean(lambda model, x: x.astype(jnp.float32) * 0.1 + 1000.0)
    state = mean_obs.init(1)
    update = jax.jit(mean_obs.update)
    naive = jnp.float32(0.0)
    naive_add = jax.jit(lambda s, x: s + jnp.sum(x.astype(jnp.float32) * 0.1 + 1000.0))
    total = 0.0
    for _ in range(20):
        x = rng.integers(-127, 127, size=(500_000, 1), dtype=np.int8)
        state = update(state, jnp.asarray(x))
        naive = naive_add(naive, jnp.asarray(x))
        total += float(np.sum(x.astype(np.float64) * 0.1 + 1000.0))
    want = total / 1e7
    assert state.n_draws() == 10_000_000
    err = abs(float(state.mean()[0]) - want)
    naive_err = abs(float(naive) / 1e7 - want)
    assert err < 1e-6 * want, err
    assert naive_err > 10 * err  # plain float32 accumulation drifts


def test_sample_observers_see_exactly_the_draws(key):
    m = hn.PottsModel.lattice((3, 4), q=3, coupling=0.5)
    observers = {
        "m": obs.Moments(),
        "c": obs.Correlations(),
        "p": obs.Correlations(pairs=((0, 1), (2, 7))),
        "E": obs.Energy(),
    }
    out = hn.observe(m, key, n_samples=40, n_chains=5, n_warmup=3, thin=2, observers=observers)
    draws = np.asarray(hn.sample(m, key, n_samples=40, n_chains=5, n_warmup=3, thin=2))
    x = draws.reshape(-1, 12).astype(np.int64)
    assert out["m"].n_draws() == 200
    np.testing.assert_array_equal(out["m"].sum.value(), x.sum(0))
    np.testing.assert_array_equal(out["c"].sum_products.value(), x.T @ x)
    np.testing.assert_array_equal(
        out["p"].sum_products.value(), [x[:, 0] @ x[:, 1], x[:, 2] @ x[:, 7]]
    )
    np.testing.assert_allclose(out["c"].covariance(), np.cov(x.T, bias=True), atol=1e-12)
    with np.errstate(invalid="ignore"):
        want = np.corrcoef(x.T)
    np.testing.assert_allclose(out["c"].correlation(), want, atol=1e-12)
    np.testing.assert_allclose(out["p"].correlation(), want[[0, 2], [1, 7]], atol=1e-12)
    e = np.asarray(m.energy(draws.reshape(-1, 12)), np.float64)
    np.testing.assert_allclose(out["E"].mean(), e.mean(), rtol=1e-6)
    np.testing.assert_allclose(out["E"].variance(), e.var(), rtol=1e-4)


def test_sample_with_observers_compiles_once(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.3)
    hn.observe(m, key, n_samples=5, n_chains=2, observers={"m": obs.Moments()})
    before = sampling.TRACE_COUNT
    out = hn.observe(m, jax.random.key(1), n_samples=5, n_chains=2, observers={"m": obs.Moments()})
    assert sampling.TRACE_COUNT == before and out["m"].n_draws() == 10


def test_observed_moments_match_exact_enumeration(key):
    m = hn.IsingModel.lattice((3, 4), coupling=0.3, field=0.1)
    n = 16 * 1000
    out = hn.observe(
        m, key, n_samples=1000, n_chains=16, thin=10, observers={"c": obs.Correlations()}
    )
    mean, second = hn.exact.moments(m)
    # thin = 10 sweeps at weak coupling: nearly independent draws, 5 i.i.d. standard errors
    assert np.all(np.abs(out["c"].mean() - mean) < 5 * np.sqrt((1 - mean**2) / n))
    se2 = np.sqrt(np.clip(1 - second**2, 1e-12, None) / n)
    assert np.all(np.abs(out["c"].second_moment() - second) < 5 * se2 + 1e-9)


def test_nrpt_observers_follow_the_cold_chain(key):
    m = hn.ClockModel.lattice((3, 3), q=4, coupling=0.8)
    res = hn.nrpt(m, key, n_rounds=300, n_betas=4, observers={"m": obs.Moments()})
    cold = np.asarray(res.samples)[0].astype(np.int64)
    assert res.observed["m"].n_draws() == 300
    np.testing.assert_array_equal(res.observed["m"].sum.value(), cold.sum(0))
    assert hn.nrpt(m, key, n_rounds=10, n_betas=4).observed is None


def test_observe_negatives_during_training():
    m = hn.IsingModel.from_edges(3, [(0, 1), (1, 2)], couplings=0.0)
    watch = obs.ObserveNegatives({"m": obs.Moments()})
    trainer = hn.Trainer(
        m,
        optax.sgd(0.1),
        negative=hn.PCD(n_chains=8),
        step_callbacks=[watch],
        eval_every=0,
        progress=False,
    )
    trainer.fit(np.ones((8, 3), np.int8), epochs=3, batch_size=4)
    assert watch.states["m"].n_draws() == 6 * 8
    chains = np.asarray(m.to_natural(trainer.negative_state))
    assert watch.states["m"].sum_squares.value().tolist() == [48, 48, 48]
    assert chains.shape == (8, 3)
    cd = hn.Trainer(m, optax.sgd(0.1), negative=hn.CD(1), step_callbacks=[watch], progress=False)
    with pytest.raises(TypeError, match="needs persistent chains"):
        cd.fit(np.ones((4, 3), np.int8), epochs=1, batch_size=4)


def test_observe_negatives_of_tempered_ladders_sees_each_beta_1_chain():
    m = hn.IsingModel.from_edges(3, [(0, 1), (1, 2)], couplings=0.2)
    watch = obs.ObserveNegatives({"m": obs.Moments()})
    negative = hn.NRPTNegative(n_betas=4, n_rounds=2, adapt_every=0, n_ladders=3)
    trainer = hn.Trainer(
        m, optax.sgd(0.01), negative=negative, step_callbacks=[watch], eval_every=0,
        progress=False,
    )  # fmt: skip
    trainer.fit(np.ones((8, 3), np.int8), epochs=1, batch_size=4)
    assert watch.states["m"].n_draws() == 2 * 3, "one draw per ladder per step"
    cold = np.asarray(trainer.negative_state.tempering.x)[:, -1]  # (ladders, n) at beta = 1
    np.testing.assert_array_equal(
        np.asarray(obs.ObserveNegatives.chains(trainer.negative_state)), cold
    )


def test_bad_observers_are_refused(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.3)
    with pytest.raises(TypeError, match="non-empty dict name -> observer"):
        hn.observe(m, key, n_samples=2, observers=[obs.Moments()])
    with pytest.raises(TypeError, match="observer 'x' is a int"):
        hn.observe(m, key, n_samples=2, observers={"x": 3})
    with pytest.raises(ValueError, match=r"pairs must be \(P, 2\)"):
        obs.Correlations(pairs=((0, 1, 2),))
    with pytest.raises(ValueError, match="outside 0..15"):
        hn.observe(m, key, n_samples=2, observers={"p": obs.Correlations(pairs=((0, 16),))})
    with pytest.raises(ValueError, match=r"states of shape \(C, 3\)"):
        obs.Moments().update(obs.Moments().init(3), jnp.zeros((2, 4), jnp.int8))
