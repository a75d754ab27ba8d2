"""Annealed importance sampling: log Z against enumeration, a calibrated error bar,
agreement with NRPT's stepping stone, and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hamon_nnx as hn


def rng(seed):
    return np.random.default_rng(seed)


def small_rbm(seed=0, nv=12, nh=6):
    g = rng(seed)
    return hn.RBM.from_params(g.normal(size=(nv, nh)), 0.5 * g.normal(size=nv), g.normal(size=nh))


def within(est, exact, k=4.0):
    assert abs(est.log_z - exact) < k * est.stderr + 0.01, (est.log_z - exact, est.stderr)


@pytest.mark.parametrize(
    "make",
    [
        lambda: hn.IsingModel.lattice((4, 4), coupling=0.4, field=0.1),
        lambda: hn.PottsModel.lattice(
            (3, 3), q=3, coupling=0.8, field=0.3 * rng(1).normal(size=(9, 3))
        ),
        small_rbm,  # annealed on its hidden layer, visible summed out
    ],
    ids=["ising", "potts", "rbm"],
)
def test_log_z_matches_enumeration(key, make):
    model = make()
    est = hn.ais(model, key, n_runs=256, n_betas=300)
    within(est, hn.exact.log_partition(model))
    assert est.log_weights.shape == (256,) and 100 < est.ess <= 256
    assert est.lower_bound(0.01) == pytest.approx(est.log_z - np.log(100))


def test_joint_rbm_and_a_fitted_data_reference(key):
    rbm = small_rbm(2)
    within(hn.ais(rbm, key, n_runs=256, n_betas=300, collapse=False), hn.exact.log_partition(rbm))
    potts = hn.PottsModel.lattice((3, 3), q=3, coupling=0.8, periodic=False)
    states, probs = hn.exact.probabilities(potts)
    data = states[rng(3).choice(len(states), size=400, p=probs)]
    fitted = hn.ais(potts, key, n_runs=256, n_betas=300, reference=data)
    within(fitted, hn.exact.log_partition(potts))


def test_error_bar_is_calibrated_over_seeds():
    """50 seeds of short runs on a 4x4 lattice: z = (estimate - exact) / stderr
    has mean near 0 (AIS is biased low by Jensen, slightly) and sd near 1."""
    m = hn.IsingModel.lattice((4, 4), coupling=0.4)
    exact = hn.exact.log_partition(m)
    z = []
    for seed in range(50):
        est = hn.ais(m, jax.random.key(seed), n_runs=64, n_betas=100)
        z.append((est.log_z - exact) / est.stderr)
    z = np.array(z)
    assert abs(z.mean()) < 0.45, z.mean()  # 3 standard errors of the mean of 50
    assert 0.7 < z.std() < 1.4, z.std()


def test_agrees_with_nrpt_stepping_stone(key):
    """A 6x6 +-J glass (no closed form): AIS and tuned NRPT agree within 3 sigma."""
    g = rng(4)
    edges, _ = hn.core.graph.lattice_edges((6, 6), True)
    glass = hn.IsingModel.from_edges(36, edges, g.choice([-0.7, 0.7], size=len(edges)))
    est = hn.ais(glass, key, n_runs=256, n_betas=500)
    plan = hn.autotune(glass, key, max_rounds=256, device="cpu")
    plan.sample(jax.random.key(1), 2000)
    log_z, stderr = plan.log_z()
    assert abs(est.log_z - log_z) < 3 * np.hypot(est.stderr, stderr) + 0.02


def test_same_key_same_estimate(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.3)
    a, b = (hn.ais(m, key, n_runs=16, n_betas=20) for _ in range(2))
    np.testing.assert_array_equal(a.log_weights, b.log_weights)


def test_bad_input_is_named(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.3)
    with pytest.raises(ValueError, match="n_runs must be an integer >= 2"):
        hn.ais(m, key, n_runs=1)
    with pytest.raises(ValueError, match="n_betas must be an integer >= 2"):
        hn.ais(m, key, n_betas=1)
    with pytest.raises(ValueError, match="increase strictly from 0 to 1"):
        hn.ais(m, key, betas=[0.0, 0.5, 0.4, 1.0])
    with pytest.raises(ValueError, match="reference must be 'uniform'"):
        hn.ais(m, key, reference="fitted")
    with pytest.raises(ValueError, match="logits for each of the 2 blocks"):
        hn.ais(m, key, reference=(np.zeros(8),))
    with pytest.raises(ValueError, match="spin domain"):
        hn.ais(m, key, reference=np.zeros((5, 16), np.int8))
    with pytest.raises(ValueError, match="sums out a layer of an hn.RBM"):
        hn.ais(m, key, collapse=True)
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
        hn.ais(m, key, n_runs=4, n_betas=4).lower_bound(1.5)


def test_grid_length_and_chunking_do_not_recompile_or_change_draws(key, monkeypatch):
    """Any grid length reuses the compiled chunk; the log-weights do not depend
    on how the grid is cut into chunks."""
    from hamon_nnx import annealing

    m = hn.IsingModel.lattice((4, 4), coupling=0.3)
    whole = hn.ais(m, key, n_runs=8, n_betas=40)
    monkeypatch.setattr(annealing, "_CHUNK", 7)
    np.testing.assert_allclose(
        hn.ais(m, key, n_runs=8, n_betas=40).log_weights, whole.log_weights, rtol=1e-6
    )
    monkeypatch.undo()
    hn.ais(m, key, n_runs=8, n_betas=41)
    size = annealing._anneal_chunk._cache_size()
    hn.ais(m, key, n_runs=8, n_betas=300)
    assert annealing._anneal_chunk._cache_size() == size


class _OwnEnergyRBM(hn.RBM):
    """An RBM that only inherits its energy: AIS cannot sum its hidden layer."""

    def energy(self, x):
        return super().energy(x)


def test_joint_path_weights_sum_the_hidden_layer(key):
    """collapse=False: block-Gibbs runs with weights with h summed out
    (Salakhutdinov and Murray): calibrated, and a smaller error bar than the
    joint-energy weights of the same path."""
    rbm = small_rbm(5, nv=10, nh=5)
    exact = hn.exact.log_partition(rbm)
    z, ratio = [], []
    for seed in range(30):
        k = jax.random.key(seed)
        est = hn.ais(rbm, k, n_runs=64, n_betas=100, collapse=False)
        z.append((est.log_z - exact) / est.stderr)
        other = _OwnEnergyRBM.from_params(rbm.W[...], rbm.visible_bias[...], rbm.hidden_bias[...])
        ratio.append(est.stderr / hn.ais(other, k, n_runs=64, n_betas=100).stderr)
    z = np.array(z)
    assert abs(z.mean()) < 3 / np.sqrt(30) + 0.1 and 0.6 < z.std() < 1.4, (z.mean(), z.std())
    assert np.median(ratio) < 0.8, np.median(ratio)


def test_base_rate_reference_from_visible_data(key):
    rbm = small_rbm(6)
    v = rng(6).integers(0, 2, size=(200, rbm.n_visible))
    est = hn.ais(rbm, key, n_runs=256, n_betas=300, collapse=False, reference=v)
    within(est, hn.exact.log_partition(rbm))
    with pytest.raises(ValueError, match="reference data"):
        hn.ais(rbm, key, collapse=False, reference=np.full((5, rbm.n_visible), 2))


def test_categorical_rbm_with_a_base_rate_reference(key):
    g = rng(7)
    crbm = hn.CategoricalRBM.from_params(
        g.normal(size=(6, 3, 4)), g.normal(size=(6, 3)), g.normal(size=4)
    )
    data = g.integers(0, 3, size=(300, 6))
    within(hn.ais(crbm, key, n_runs=256, n_betas=300), hn.exact.log_partition(crbm))  # collapsed
    est = hn.ais(crbm, key, n_runs=256, n_betas=300, collapse=False, reference=data)
    within(est, hn.exact.log_partition(crbm))


def test_visible_data_fit_the_collapsed_hidden_layer(key):
    """On the hidden layer with the visible one summed out, visible data set the
    reference at the data's mean hidden activations (binary and categorical)."""
    rbm = small_rbm(8, nv=10, nh=4)
    v = rng(8).integers(0, 2, size=(300, 10))
    marginal = rbm.marginal()
    from hamon_nnx.annealing import _resolve_reference

    logits = np.concatenate([np.asarray(r) for r in _resolve_reference(marginal, v)])
    p = 1 / (1 + np.exp(-(v @ np.asarray(rbm.W[...]) + np.asarray(rbm.hidden_bias[...]))))
    want = np.log((p.sum(0) + 1) / (len(v) + 1 - p.sum(0)))
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)
    within(hn.ais(rbm, key, n_runs=256, n_betas=300, reference=v), hn.exact.log_partition(rbm))
    g = rng(9)
    crbm = hn.CategoricalRBM.from_params(g.normal(size=(6, 3, 3)), g.normal(size=(6, 3)))
    data = g.integers(0, 3, size=(300, 6))
    within(hn.ais(crbm, key, n_runs=256, n_betas=300, reference=data), hn.exact.log_partition(crbm))
    with pytest.raises(ValueError, match="reference data"):
        hn.ais(crbm, key, reference=np.full((4, 6), 3))


class _Flat(hn.EnergyModel):
    """E = -1500 on every state: log Z = 1500 + n log 2, every AIS weight known exactly."""

    def __init__(self, n=8, level=-1500.0):
        self.level = level
        self.declare_variables(hn.Spins(n, name="s"))

    def energy(self, x):
        return self.level + 0.0 * jnp.sum(self.unpack(x)["s"], axis=-1)  # multilinear: a constant


def test_log_weights_keep_their_precision_on_a_large_log_z(key):
    """log Z = 1508: a float32 sum of 2000 grid steps is off by 1.1e-3 (an
    ulp of 1500 is 1.2e-4); compensated chunk sums added in float64 are not."""
    model = _Flat()
    est = hn.ais(model, key, n_runs=4, n_betas=2000)
    exact = 1500.0 + model.n_variables * np.log(2.0)
    assert est.log_weights.dtype == np.float64
    np.testing.assert_allclose(est.log_weights, exact, rtol=0, atol=2e-5)


def test_hidden_summed_increments_keep_their_precision():
    """The joint path's weight steps along a trajectory whose v changes at every
    step sum to log pi*_1 - log pi*_0 of float64 within 3e-5 (the difference of
    two float32 softplus sums of 500 hidden units: off by about 1e-3)."""
    from hamon_nnx.annealing import _check_betas, _hidden_summed_increment

    g = rng(10)
    nv, nh, n_betas = 200, 500, 3000
    W, b, c = 0.05 * g.normal(size=(nv, nh)), g.normal(size=nv), g.normal(size=nh)
    rbm = hn.RBM.from_params(W, b, c)
    grid = _check_betas(None, n_betas).astype(np.float32)
    v = (g.random((n_betas - 1, nv)) < 0.5).astype(np.int8)
    x = np.concatenate([v, np.zeros((n_betas - 1, nh), np.int8)], axis=1)
    uniform = (jnp.zeros(nv, jnp.float32), jnp.zeros(nh, jnp.float32))

    def step(xk, b0, b1):
        return _hidden_summed_increment(rbm, xk[None], uniform, b0, b1)[0]

    gains = jax.jit(jax.vmap(step))(jnp.asarray(x), jnp.asarray(grid[:-1]), jnp.asarray(grid[1:]))
    W32 = np.asarray(rbm.W[...], np.float64)
    b32, c32 = (np.asarray(p[...], np.float64) for p in (rbm.visible_bias, rbm.hidden_bias))
    a = v @ W32 + c32
    beta0, beta1 = (np.asarray(part, np.float64)[:, None] for part in (grid[:-1], grid[1:]))
    want = (beta1 - beta0)[:, 0] * (v @ b32) + np.sum(
        np.logaddexp(0, beta1 * a) - np.logaddexp(0, beta0 * a), axis=1
    )
    assert abs(np.sum(np.asarray(gains, np.float64)) - np.sum(want)) < 3e-5


def test_joint_path_is_unbiased_with_few_betas(key):
    """collapse=False with 10 betas on a 4 x 3 RBM with strong weights: within
    4 standard errors of the exact log Z (with v drawn given an h of the
    previous beta, E[w] is off: log Z by -0.41, 50 standard errors)."""
    g = rng(11)
    rbm = hn.RBM.from_params(3 * g.normal(size=(4, 3)), g.normal(size=4), g.normal(size=3))
    within(hn.ais(rbm, key, n_runs=20_000, n_betas=10, collapse=False), hn.exact.log_partition(rbm))


def _weighted_mean(values, log_w):
    """Self-normalized importance-sampling mean of each column, and its standard error."""
    w = np.exp(log_w - log_w.max())
    w = w / w.sum()
    mean = w @ values
    return mean, np.sqrt(w**2 @ (values - mean) ** 2)


@pytest.mark.parametrize(
    "make, collapse",
    [
        (lambda: small_rbm(12, nv=6, nh=4), None),  # hidden layer kept, v drawn to complete
        (lambda: small_rbm(13, nv=4, nh=6), None),  # visible layer kept, h drawn
        (lambda: small_rbm(14, nv=6, nh=4), False),  # joint path
        (
            lambda: hn.CategoricalRBM.from_params(
                rng(16).normal(size=(5, 3, 3)), rng(17).normal(size=(5, 3)), rng(18).normal(size=3)
            ),
            None,  # hidden layer kept, categorical v drawn
        ),
        (
            lambda: hn.IsingModel.lattice((3, 3), coupling=0.5, field=rng(15).normal(size=(3, 3))),
            None,
        ),
    ],
    ids=["rbm-keep-hidden", "rbm-keep-visible", "rbm-joint", "categorical-rbm", "ising"],
)
def test_particles_are_a_weighted_sample_of_the_model(key, make, collapse):
    """Weighted means of x and of the products x_i x_j of the particles match
    enumeration within 4.5 standard errors (the RBM's joint (v, h), whatever
    layer it was annealed on; the lattice's natural order)."""
    from hamon_nnx.annealing import anneal_particles

    model = make()
    x, log_w, log_z_ref = anneal_particles(model, key, n_runs=2000, n_betas=100, collapse=collapse)
    assert x.shape == (2000, model.n_variables) and x.dtype == jnp.int8
    assert log_w.dtype == np.float64 and log_w.shape == (2000,)
    est = hn.ais(model, key, n_runs=2000, n_betas=100, collapse=collapse)
    np.testing.assert_array_equal(log_w, est.log_weights)  # the same runs
    assert np.isfinite(log_z_ref)
    states, probs = hn.exact.probabilities(model)
    n = model.n_variables
    pairs = np.triu_indices(n, 1)

    def features(s):
        s = np.asarray(s, np.float64)
        return np.concatenate([s, (s[:, :, None] * s[:, None, :])[:, pairs[0], pairs[1]]], axis=1)

    mean, stderr = _weighted_mean(features(x), log_w)
    want = probs @ features(states)
    assert np.all(np.abs(mean - want) < 4.5 * stderr + 1e-3), np.max(np.abs(mean - want) / stderr)
