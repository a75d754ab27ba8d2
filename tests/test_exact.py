"""Tests of hamon_nnx.exact: enumeration, RBM layer sums and 2-D Ising closed forms."""

from __future__ import annotations

import doctest
import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import hamon_nnx as hn
from hamon_nnx import exact
from hamon_nnx.models.base import BINARY, CATEGORICAL, SPIN, Block

BETA_C = exact.ISING_2D_BETA_C
CATALAN = 0.915965594177219015054603514932384110774


# -- helpers ------------------------------------------------------------------
class Mixed(hn.EnergyModel):
    """A custom model with a spin, a binary and two categorical (q = 3) variables."""

    def __init__(self, w):
        self.n_variables = 4
        self.blocks = (
            Block(0, 1, SPIN, 2),
            Block(1, 2, BINARY, 2),
            Block(2, 4, CATEGORICAL, 3),
        )
        self.w = nnx.Param(jnp.asarray(w, jnp.float32))

    def energy(self, x):
        x = jnp.asarray(x).astype(jnp.float32)
        s, b, c, d = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
        w = self.w[...]

        def eq(a, b):
            return (a == b).astype(jnp.float32)

        return -(
            w[0] * s * b
            + w[1] * s * eq(c, 1)
            + w[2] * eq(c, d)
            + w[3] * b
            + w[4] * eq(d, 2)
            + w[5] * s * c * d
        )


def _logsumexp(a):
    m = np.max(a)
    return float(m + np.log(np.sum(np.exp(a - m))))


def _rbm_energies(W, b, c, states):
    """float64 RBM energies of joint states (K, nv + nh)."""
    nv = W.shape[0]
    v, h = states[:, :nv].astype(np.float64), states[:, nv:].astype(np.float64)
    return -np.sum((v @ W) * h, axis=1) - v @ b - h @ c


def _random_rbm(nv, nh, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    W = scale * rng.normal(size=(nv, nh))
    b = scale * rng.normal(size=nv)
    c = scale * rng.normal(size=nh)
    rbm = hn.RBM.from_params(W, b, c)
    # the model stores float32: compare against exactly those values
    return rbm, np.float64(np.float32(W)), np.float64(np.float32(b)), np.float64(np.float32(c))


def _small_ising():
    rng = np.random.default_rng(3)
    J = rng.normal(size=(6, 6))
    J = np.triu(J, 1)
    J = J + J.T
    return hn.IsingModel.dense(J, rng.normal(size=6))


# -- enumeration ----------------------------------------------------------------
def test_enumerate_states_order_and_dtype():
    model = Mixed(np.zeros(6))
    states = exact.enumerate_states(model)
    expected = list(itertools.product([-1, 1], [0, 1], [0, 1, 2], [0, 1, 2]))
    assert states.dtype == np.int8
    assert states.tolist() == [list(s) for s in expected]


def test_enumerate_states_lattice_is_natural_order():
    # LatticeIsing stores sublattices internally; enumeration is in natural order
    model = hn.IsingModel.lattice((4, 4))
    states = exact.enumerate_states(model)
    assert states.shape == (2**16, 16)
    assert states[1].tolist() == [-1] * 15 + [1]
    assert len(np.unique(states, axis=0)) == 2**16


def test_size_limit_error_names_model_and_limit(monkeypatch):
    model = hn.IsingModel.lattice((5, 5))
    with pytest.raises(ValueError, match=r"25 variables.*33554432 states.*2\*\*24 = 16777216"):
        exact.log_partition(model)
    with pytest.raises(ValueError, match="MAX_ENUMERATION_STATES"):
        exact.enumerate_states(model)
    rbm = hn.RBM.from_params(np.zeros((30, 26)))
    with pytest.raises(ValueError, match=r"n_visible=30, n_hidden=26.*smaller layer \(26 units\)"):
        exact.log_partition(rbm)
    with pytest.raises(ValueError, match=r"visible layer \(30 units\)"):
        exact.visible_probabilities(rbm)
    monkeypatch.setattr(exact, "MAX_ENUMERATION_STATES", 2**10)
    with pytest.raises(ValueError, match=r"16 variables.*65536 states.*2\*\*10 = 1024"):
        exact.marginals(hn.IsingModel.lattice((4, 4)))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), -float("inf")])
def test_invalid_beta(bad):
    model = hn.IsingModel.from_edges(2, [[0, 1]])
    for fn in (exact.log_partition, exact.probabilities, exact.marginals, exact.mean_energy):
        with pytest.raises(ValueError, match="beta must be finite and >= 0"):
            fn(model, bad)
    with pytest.raises(ValueError, match="beta"):
        exact.ising_lattice_log_partition(4, bad)
    with pytest.raises(ValueError, match="beta"):
        exact.onsager_energy_per_spin(bad)


def test_invalid_lattice_size():
    for bad in (2, 0, -4):
        with pytest.raises(ValueError, match="integer >= 3"):
            exact.ising_lattice_log_partition(bad, 0.3)
    for bad in (3.5, "4", True):
        with pytest.raises(TypeError, match="integer >= 3"):
            exact.ising_lattice_energy(bad, 0.3)
    with pytest.raises(ValueError, match="pair"):
        exact.ising_lattice_log_partition((4, 4, 4), 0.3)
    assert exact.ising_lattice_log_partition(np.int64(4), 0.3) == pytest.approx(
        exact.ising_lattice_log_partition(4, 0.3), rel=1e-15
    )


# -- probabilities and statistics ---------------------------------------------
@pytest.mark.parametrize("beta", [0.0, 0.4, 1.7])
def test_probabilities_are_boltzmann(beta):
    model = _small_ising()
    states, probs = exact.probabilities(model, beta)
    assert probs.dtype == np.float64
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    energy = np.asarray(model.energy(states), dtype=np.float64)
    log_z = exact.log_partition(model, beta)
    np.testing.assert_allclose(probs, np.exp(-beta * energy - log_z), rtol=1e-10)
    assert exact.mean_energy(model, beta) == pytest.approx(float(probs @ energy), abs=1e-10)


def test_beta_zero_gives_n_log_2():
    model = hn.IsingModel.lattice((3, 3), coupling=1.3, field=0.2)
    assert exact.log_partition(model, 0.0) == pytest.approx(9 * math.log(2), rel=1e-14)
    assert exact.ising_lattice_log_partition(4, 0.0) == pytest.approx(16 * math.log(2), rel=1e-14)
    rbm, *_ = _random_rbm(5, 3, seed=0)
    assert exact.log_partition(rbm, 0) == pytest.approx(8 * math.log(2), rel=1e-14)
    assert exact.log_partition(Mixed(np.ones(6)), 0.0) == pytest.approx(math.log(36), rel=1e-14)
    assert exact.ising_lattice_energy(4, 0.0) == 0.0
    assert exact.onsager_energy_per_spin(0.0) == 0.0


@pytest.mark.parametrize(
    "model_fn", [lambda: Mixed([0.7, -1.1, 0.9, 0.3, -0.5, 0.2]), _small_ising]
)
def test_marginals_moments_pairs_consistent_with_probabilities(model_fn):
    model = model_fn()
    beta = 0.8
    states, probs = exact.probabilities(model, beta)
    values = model.variable_values()
    n = model.n_variables
    q_max = max(len(v) for v in values)

    marg = exact.marginals(model, beta)
    assert marg.shape == (n, q_max)
    for i, vals in enumerate(values):
        expected = [probs[states[:, i] == v].sum() for v in vals]
        np.testing.assert_allclose(marg[i, : len(vals)], expected, atol=1e-12)
        assert np.all(marg[i, len(vals) :] == 0)
    np.testing.assert_allclose(marg.sum(axis=1), 1.0, atol=1e-12)

    mean, second = exact.moments(model, beta)
    x = states.astype(np.float64)
    np.testing.assert_allclose(mean, probs @ x, atol=1e-12)
    np.testing.assert_allclose(second, x.T @ (probs[:, None] * x), atol=1e-12)
    np.testing.assert_allclose(second, second.T, atol=1e-14)

    pairs = exact.pair_marginals(model, beta)
    assert pairs.shape == (n, n, q_max, q_max)
    i, j = 0, n - 1
    for a, va in enumerate(values[i]):
        for b, vb in enumerate(values[j]):
            mask = (states[:, i] == va) & (states[:, j] == vb)
            assert pairs[i, j, a, b] == pytest.approx(probs[mask].sum(), abs=1e-12)
    np.testing.assert_allclose(
        pairs.sum(axis=3), np.broadcast_to(marg[:, None, :], pairs.shape[:3]), atol=1e-12
    )
    for k in range(n):
        np.testing.assert_allclose(pairs[k, k], np.diag(marg[k]), atol=1e-12)
    np.testing.assert_allclose(pairs, pairs.transpose(1, 0, 3, 2), atol=1e-14)


def test_mean_energy_is_log_partition_derivative():
    model = _small_ising()
    beta, h = 0.6, 1e-5
    derivative = (exact.log_partition(model, beta + h) - exact.log_partition(model, beta - h)) / (
        2 * h
    )
    assert exact.mean_energy(model, beta) == pytest.approx(-derivative, rel=1e-7)


# -- RBM ------------------------------------------------------------------------
@pytest.mark.parametrize("nv, nh", [(3, 6), (6, 3), (4, 4), (1, 7)])
@pytest.mark.parametrize("beta", [1.0, 0.37, 2.5])
def test_rbm_log_partition_matches_brute_force(nv, nh, beta):
    rbm, W, b, c = _random_rbm(nv, nh, seed=nv * 10 + nh)
    states = exact.enumerate_states(rbm)
    brute = _logsumexp(-beta * _rbm_energies(W, b, c, states))
    assert exact.log_partition(rbm, beta) == pytest.approx(brute, rel=1e-12, abs=1e-12)


def test_rbm_log_partition_large_weights_and_split_chunks(monkeypatch):
    # |a| > 700 takes the overflow-safe branch
    rbm, W, b, c = _random_rbm(5, 4, seed=7, scale=300.0)
    states = exact.enumerate_states(rbm)
    brute = _logsumexp(-_rbm_energies(W, b, c, states))
    assert exact.log_partition(rbm) == pytest.approx(brute, rel=1e-12)
    # tiny chunks: the enumerated layer is split into high and low bits
    monkeypatch.setattr(exact, "_RBM_CHUNK_ELEMENTS", 12)
    for nv, nh in [(3, 6), (6, 3)]:
        for scale in (1.0, 300.0):
            rbm, W, b, c = _random_rbm(nv, nh, seed=11, scale=scale)
            brute = _logsumexp(-_rbm_energies(W, b, c, exact.enumerate_states(rbm)))
            assert exact.log_partition(rbm) == pytest.approx(brute, rel=1e-12)
            _, p = exact.visible_probabilities(rbm)
            assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_rbm_large_visible_layer_exact():
    # 784 x 20 with weights on the first 4 visible rows only: the other 780
    # visible units are free, so log Z = sum_i>=4 softplus(b_i) + log Z(4 x 20)
    rng = np.random.default_rng(0)
    W = np.zeros((784, 20))
    W[:4] = rng.normal(size=(4, 20))
    b = rng.normal(size=784)
    c = rng.normal(size=20)
    rbm = hn.RBM.from_params(W, b, c)
    W, b, c = (np.float64(np.float32(a)) for a in (W, b, c))
    v = np.array(list(itertools.product([0, 1], repeat=4)), dtype=np.float64)
    log_z_sub = _logsumexp(v @ b[:4] + np.logaddexp(0, v @ W[:4] + c).sum(axis=1))
    expected = log_z_sub + np.logaddexp(0, b[4:]).sum()
    assert exact.log_partition(rbm) == pytest.approx(expected, rel=1e-12)


def test_rbm_free_energy_and_visible_probabilities():
    for nv, nh in [(4, 3), (3, 5)]:
        rbm, W, b, c = _random_rbm(nv, nh, seed=5)
        states, probs = exact.probabilities(rbm)
        energy = _rbm_energies(W, b, c, states)
        v_states, p_v = exact.visible_probabilities(rbm)
        assert v_states.dtype == np.int8 and v_states.shape == (2**nv, nv)
        free = np.asarray(rbm.free_energy(v_states), dtype=np.float64)
        for k, v in enumerate(v_states):
            rows = np.all(states[:, :nv] == v, axis=1)
            assert rows.sum() == 2**nh
            brute_free = -_logsumexp(-energy[rows])
            assert free[k] == pytest.approx(brute_free, abs=1e-5)
            assert p_v[k] == pytest.approx(probs[rows].sum(), rel=1e-6)
        log_z = exact.log_partition(rbm)
        np.testing.assert_allclose(p_v, np.exp(-free - log_z), rtol=1e-5)
        assert p_v.sum() == pytest.approx(1.0, abs=1e-12)
    # at beta != 1 the marginal is exp(beta b.v) prod_j (1 + exp(beta (c + v W)_j))
    beta = 0.6
    states, probs = exact.probabilities(rbm, beta)
    v_states, p_v = exact.visible_probabilities(rbm, beta)
    for k, v in enumerate(v_states):
        rows = np.all(states[:, :nv] == v, axis=1)
        assert p_v[k] == pytest.approx(probs[rows].sum(), rel=1e-6)  # float32 energies


def test_visible_probabilities_needs_rbm():
    with pytest.raises(TypeError, match="RBM"):
        exact.visible_probabilities(_small_ising())


# -- 2-D Ising closed forms ---------------------------------------------------
BETAS = [0.05, 0.2, 0.4, BETA_C, 0.47, 0.6, 1.0, 3.0]


@pytest.mark.parametrize("shape", [(4, 4), (3, 3), (3, 4), (4, 3), (3, 5)])
def test_kaufman_matches_enumeration(shape):
    model = hn.IsingModel.lattice(shape, coupling=1.0, periodic=True)
    n = shape[0] * shape[1]
    arg = shape[0] if shape[0] == shape[1] else shape
    for beta in BETAS:
        log_z = exact.ising_lattice_log_partition(arg, beta)
        assert log_z == pytest.approx(exact.log_partition(model, beta), rel=1e-10)
        u = exact.ising_lattice_energy(arg, beta)
        assert u == pytest.approx(exact.mean_energy(model, beta) / n, rel=1e-9, abs=1e-12)


def test_kaufman_coupling_scaling_and_antiferromagnet():
    # J enters only through K = beta J
    assert exact.ising_lattice_log_partition(4, 0.25, coupling=2.0) == pytest.approx(
        exact.ising_lattice_log_partition(4, 0.5), rel=1e-14
    )
    assert exact.ising_lattice_energy(4, 0.25, coupling=2.0) == pytest.approx(
        2.0 * exact.ising_lattice_energy(4, 0.5), rel=1e-13
    )
    model = hn.IsingModel.lattice((4, 4), coupling=-1.0)
    for beta in (0.3, 0.7):
        assert exact.ising_lattice_log_partition(4, beta, coupling=-1.0) == pytest.approx(
            exact.log_partition(model, beta), rel=1e-10
        )
    with pytest.raises(ValueError, match="frustrated"):
        exact.ising_lattice_log_partition(3, 0.5, coupling=-1.0)


def test_kaufman_energy_is_log_partition_derivative():
    for L, beta in [(8, 0.3), (16, BETA_C), (32, 0.5), (256, 0.44)]:
        h = 1e-5
        lz = exact.ising_lattice_log_partition
        derivative = (lz(L, beta + h) - lz(L, beta - h)) / (2 * h) / L**2
        assert exact.ising_lattice_energy(L, beta) == pytest.approx(-derivative, rel=1e-6)


@pytest.mark.parametrize("beta", [0.3, 0.6])
def test_onsager_matches_large_finite_lattice(beta):
    L = 256
    u = exact.ising_lattice_energy(L, beta)
    assert u == pytest.approx(exact.onsager_energy_per_spin(beta), abs=1e-4)
    assert u == pytest.approx(exact.onsager_energy_per_spin(beta), abs=1e-9)  # away from beta_c
    per_spin = exact.ising_lattice_log_partition(L, beta) / L**2
    # below T_c the finite torus counts both ordered states: + log 2 / N
    offset = math.log(2) / L**2 if beta > BETA_C else 0.0
    assert per_spin - offset == pytest.approx(exact.onsager_log_partition_per_spin(beta), abs=1e-10)


def test_onsager_known_values():
    assert BETA_C == pytest.approx(0.44068679350977147, rel=1e-15)
    assert exact.onsager_energy_per_spin(BETA_C) == pytest.approx(-math.sqrt(2), rel=1e-12)
    assert exact.onsager_energy_per_spin(BETA_C / 2, coupling=2.0) == pytest.approx(
        -2 * math.sqrt(2), rel=1e-12
    )
    assert exact.onsager_log_partition_per_spin(BETA_C) == pytest.approx(
        math.log(2) / 2 + 2 * CATALAN / math.pi, rel=1e-12
    )
    # continuous through beta_c, and the ground state at low temperature
    for eps in (1e-6, 1e-9):
        for side in (-1, 1):
            assert exact.onsager_energy_per_spin(BETA_C + side * eps) == pytest.approx(
                -math.sqrt(2), abs=1e-4
            )
    assert exact.onsager_energy_per_spin(30.0) == -2.0
    assert exact.onsager_energy_per_spin(0.5, coupling=-1.0) == exact.onsager_energy_per_spin(0.5)


def test_high_and_low_temperature_limits():
    for beta in (1e-8, 1e-4, 0.999e-3, 1.001e-3, 0.01):
        onsager = exact.onsager_energy_per_spin(beta)
        assert onsager == pytest.approx(exact.ising_lattice_energy(256, beta), rel=1e-9)
        # u = -2 tanh K - 4 tanh^3 K + O(K^5)
        assert onsager == pytest.approx(-2 * math.tanh(beta), rel=3 * beta**2)
        assert onsager == pytest.approx(-2 * math.tanh(beta) - 4 * math.tanh(beta) ** 3, rel=1e-6)
    for beta in (20.0, 60.0, 1e4):
        assert exact.ising_lattice_energy(256, beta) == pytest.approx(-2.0, rel=1e-14)
        assert exact.ising_lattice_log_partition(4, beta) == pytest.approx(
            32 * beta + math.log(2), rel=1e-14
        )


def test_large_lattice_is_fast_and_finite():
    for L in (256, 512, (64, 1024)):
        for beta in (0.1, BETA_C, 0.9):
            assert math.isfinite(exact.ising_lattice_log_partition(L, beta))
            assert -2.0 <= exact.ising_lattice_energy(L, beta) <= 0.0


def test_docstring_examples():
    result = doctest.testmod(exact, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 12
    assert result.failed == 0


def test_one_capability_check_counts_q_and_the_smaller_layer():
    """hn.exact, the Trainer and ExactNegative share `check_enumerable`: a
    4x5 Potts model with q = 4 (4^20 states) is refused at construction,
    naming the count and the limit; a plain RBM counts its smaller layer,
    an RBM subclass with its own energy counts every unit."""
    import optax
    from flax import nnx

    potts = hn.PottsModel.lattice((4, 5), q=4, coupling=0.1)
    assert exact.enumeration_size(potts) == 4**20
    for make in (
        lambda: hn.Trainer(potts, optax.sgd(0.1), log_likelihood="exact", progress=False),
        lambda: hn.Trainer(potts, optax.sgd(0.1), negative=hn.ExactNegative(), progress=False),
        lambda: exact.log_partition(potts),
    ):
        with pytest.raises(ValueError, match=f"{4**20} states.*MAX_ENUMERATION_STATES = 2\\*\\*24"):
            make()
    rbm = hn.RBM(30, 6, rngs=nnx.Rngs(0))
    assert exact.enumeration_size(rbm) == 2**6 and exact.can_enumerate(rbm)

    class Tilted(hn.RBM, register_as="test_tilted_rbm"):
        def energy(self, x):
            return super().energy(x) + 0.1 * x[..., 0]

    tilted = Tilted(30, 6, rngs=nnx.Rngs(0))
    assert exact.enumeration_size(tilted) == 2**36 and not exact.can_enumerate(tilted)


def test_exact_negative_enumerates_in_chunks_with_the_exact_gradient(monkeypatch):
    """The differentiable log Z over several chunks (padded last chunk) equals
    the float64 enumeration, and so does its gradient's sum rule."""
    from hamon_nnx.training import losses

    monkeypatch.setattr(losses, "_CHUNK", 100)  # 3^5 = 243 states: 3 chunks
    m = hn.PottsModel.lattice((5,), q=3, coupling=0.4, field=0.2, periodic=False)
    assert float(losses.log_partition(m)) == pytest.approx(exact.log_partition(m), abs=1e-5)
    from flax import nnx

    grads = nnx.grad(losses.log_partition)(m)
    # d log Z / d h_i(a) = P(s_i = a): sums to one over a
    np.testing.assert_allclose(np.asarray(grads.field[...]).sum(-1), 1.0, atol=1e-5)
