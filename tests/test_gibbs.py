"""Block Gibbs against exact enumeration, for every model and block kind."""

import jax
import numpy as np
import pytest
from stats import assert_matches, exact_expectation, z_scores

import hamon_nnx as hn

N_CHAINS, N_SAMPLES, N_WARMUP = 64, 1000, 100


def rng(seed):
    return np.random.default_rng(seed)


def check_against_exact(model, key, beta=1.0, **kw):
    states, probs = hn.exact.probabilities(model, beta=beta)
    s = hn.sample(
        model, key, n_samples=N_SAMPLES, n_chains=N_CHAINS, n_warmup=N_WARMUP, beta=beta, **kw
    )
    assert s.shape == (N_CHAINS, N_SAMPLES, model.n_variables)
    assert s.dtype == np.int8
    return assert_matches(s, states, probs, model.variable_values())


def spin_glass_edges(n, p, seed):
    g = rng(seed)
    edges = [(i, j) for i in range(n) for j in range(i + 1, n) if g.random() < p]
    return np.array(edges), g.normal(size=len(edges)), 0.5 * g.normal(size=n)


def test_ising_lattice_2d_with_fields(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.35, field=0.2 * rng(0).normal(size=(4, 4)))
    check_against_exact(m, key)


def test_ising_lattice_anisotropic_open_3d(key):
    m = hn.IsingModel.lattice((2, 2, 4), coupling=[0.5, -0.3, 0.4], field=0.1, periodic=False)
    check_against_exact(m, key)


def test_ising_lattice_1d_and_odd_sizes(key):
    check_against_exact(hn.IsingModel.lattice((10,), coupling=0.7, field=-0.2), key)
    # odd periodic sizes are not bipartite: greedy colouring, sparse layout
    m = hn.IsingModel.lattice((3, 5), coupling=0.3, field=0.1)
    assert len(m.blocks) >= 3
    check_against_exact(m, key)


def test_ising_sparse_graph_with_fields(key):
    edges, J, h = spin_glass_edges(11, 0.35, seed=1)
    check_against_exact(hn.IsingModel.from_edges(11, edges, J, h), key)


def test_ising_dense_sk(key):
    g = rng(2)
    n = 10
    J = g.normal(size=(n, n)) / np.sqrt(n)
    J = np.triu(J, 1) + np.triu(J, 1).T
    check_against_exact(hn.IsingModel.dense(J, 0.3 * g.normal(size=n)), key)


def test_ising_beta_not_one(key):
    m = hn.IsingModel.lattice((4, 4), coupling=1.0)
    check_against_exact(m, key, beta=0.3)
    check_against_exact(m, key, beta=0.6)


def test_per_chain_beta(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.8, field=0.1)
    betas = np.repeat([0.2, 0.5], N_CHAINS // 2)
    s = np.asarray(hn.sample(m, key, n_samples=N_SAMPLES, n_chains=N_CHAINS, beta=betas))
    for beta, part in ((0.2, s[: N_CHAINS // 2]), (0.5, s[N_CHAINS // 2 :])):
        states, probs = hn.exact.probabilities(m, beta=beta)
        assert_matches(part, states, probs, m.variable_values())


def test_potts_q3_lattice_delta_coupling(key):
    m = hn.PottsModel.lattice((3, 3), q=3, coupling=0.6, field=0.3 * rng(3).normal(size=(9, 3)))
    check_against_exact(m, key)


def test_potts_q4_matrix_couplings(key):
    g = rng(4)
    edges = np.array([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 0), (0, 3), (2, 5)])
    m = hn.PottsModel.from_edges(
        7, 4, edges, 0.5 * g.normal(size=(9, 4, 4)), 0.3 * g.normal(size=(7, 4))
    )
    check_against_exact(m, key)


def test_potts_q4_per_edge_delta_and_beta(key):
    g = rng(5)
    edges = np.array([(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (4, 5), (5, 6)])
    m = hn.PottsModel.from_edges(7, 4, edges, g.normal(size=7), 0.3 * g.normal(size=(7, 4)))
    check_against_exact(m, key, beta=1.7)


def test_rbm_visible_and_hidden(key):
    g = rng(6)
    m = hn.RBM.from_params(g.normal(size=(6, 4)), 0.5 * g.normal(size=6), 0.5 * g.normal(size=4))
    check_against_exact(m, key)


def test_rbm_clamped_matches_exact_conditional(key):
    g = rng(7)
    nv, nh = 7, 4
    m = hn.RBM.from_params(1.5 * g.normal(size=(nv, nh)), g.normal(size=nv), g.normal(size=nh))
    mask = np.zeros(nv + nh, bool)
    mask[[0, 2, 3]] = True
    values = np.zeros(nv + nh, np.int8)
    values[[0, 2, 3]] = [1, 0, 1]
    states, probs = hn.exact.probabilities(m)
    keep = np.all(states[:, mask] == values[mask], axis=1)
    cond_states, cond_probs = states[keep], probs[keep] / probs[keep].sum()
    s = np.asarray(hn.sample(m, key, n_samples=N_SAMPLES, n_chains=N_CHAINS, clamp=(mask, values)))
    assert np.all(s[..., mask] == values[mask])
    assert_matches(s, cond_states, cond_probs, m.variable_values())


def test_clamped_ising_lattice_keeps_values(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.5)
    mask = np.zeros(16, bool)
    mask[[0, 5, 15]] = True
    values = np.ones(16, np.int8)
    values[5] = -1
    states, probs = hn.exact.probabilities(m)
    keep = np.all(states[:, mask] == values[mask], axis=1)
    s = hn.sample(m, key, n_samples=N_SAMPLES, n_chains=N_CHAINS, clamp=(mask, values))
    assert_matches(s, states[keep], probs[keep] / probs[keep].sum(), m.variable_values())


def test_potts_q2_is_ising_at_half_coupling(key):
    # delta(s_i, s_j) = (1 + sigma_i sigma_j) / 2 with sigma = 2 s - 1
    g = rng(8)
    edges, J, h = spin_glass_edges(8, 0.5, seed=9)
    fields = np.stack([np.zeros(8), h], axis=1)  # h_i(1) - h_i(0) = h_i
    potts = hn.PottsModel.from_edges(8, 2, edges, J, fields)
    ising = hn.IsingModel.from_edges(8, edges, J / 2, h / 2)
    states, probs = hn.exact.probabilities(ising)
    p_states, p_probs = hn.exact.probabilities(potts)
    order = np.lexsort((2 * p_states - 1).T[::-1])
    np.testing.assert_allclose(p_probs[order], probs[np.lexsort(states.T[::-1])], rtol=1e-5)
    s = np.asarray(hn.sample(potts, key, n_samples=N_SAMPLES, n_chains=N_CHAINS))
    assert_matches(2 * s.astype(np.int8) - 1, states, probs, ising.variable_values())
    del g


def test_check_has_power_against_wrong_temperature(key):
    """The statistical check must reject samples from a slightly wrong target."""
    m = hn.IsingModel.lattice((4, 4), coupling=0.35, field=0.1)
    states, probs = hn.exact.probabilities(m, beta=1.0)
    s = np.asarray(hn.sample(m, key, n_samples=N_SAMPLES, n_chains=N_CHAINS, beta=1.15))
    z = z_scores(s, exact_expectation(states, probs, m.variable_values()), m.variable_values())
    assert np.max(np.abs(z)) > 5.0


def test_compiles_once_per_structure(key):
    from hamon_nnx import sampling

    m1 = hn.IsingModel.lattice((6, 10), coupling=0.3)
    before = sampling.TRACE_COUNT
    hn.sample(m1, key, n_samples=5, n_chains=3, n_warmup=2)
    assert sampling.TRACE_COUNT == before + 1
    m2 = hn.IsingModel.lattice((6, 10), coupling=-0.7, field=0.2)
    m1.coupling[...] = 0.9  # new parameter values, same structure
    hn.sample(m1, jax.random.key(1), n_samples=5, n_chains=3, n_warmup=2, beta=0.5)
    hn.sample(m2, jax.random.key(2), n_samples=5, n_chains=3, n_warmup=2)
    assert sampling.TRACE_COUNT == before + 1
    r1 = hn.RBM(5, 3, rngs=__import__("flax").nnx.Rngs(0))
    hn.sample(r1, key, n_samples=5, n_chains=3)
    after_rbm = sampling.TRACE_COUNT
    r1.W[...] = r1.W[...] * 3.0
    hn.sample(r1, jax.random.key(3), n_samples=5, n_chains=3)
    assert sampling.TRACE_COUNT == after_rbm


def test_run_lengths_never_recompile(key, monkeypatch):
    """n_samples, n_warmup and thin are traced counts of one chunk program;
    chunks of any size give the draws of one long run."""
    from hamon_nnx import sampling

    m = hn.IsingModel.lattice((4, 6), coupling=0.4, field=0.1)
    hn.sample(m, key, n_samples=10, n_chains=4)
    before = sampling.TRACE_COUNT
    whole = np.asarray(hn.sample(m, key, n_samples=23, n_chains=4, n_warmup=7, thin=3))
    hn.sample(m, key, n_samples=3000, n_chains=4, n_warmup=0)  # several chunks
    observed = hn.observe(m, key, n_samples=11, n_chains=4, observers={"m": hn.observers.Moments()})
    assert sampling.TRACE_COUNT == before + 1  # the observers' program only
    hn.observe(m, key, n_samples=12, n_chains=4, thin=5, observers={"m": hn.observers.Moments()})
    assert sampling.TRACE_COUNT == before + 1
    assert observed["m"].n_draws() == 44
    monkeypatch.setattr(sampling, "_capacity", lambda n_chains, n: 5)
    chunked = np.asarray(hn.sample(m, key, n_samples=23, n_chains=4, n_warmup=7, thin=3))
    np.testing.assert_array_equal(chunked, whole)


def test_chain_streams_do_not_depend_on_chain_count(key):
    m = hn.IsingModel.lattice((4, 6), coupling=0.4)
    init = np.ones((8, 24), np.int8)
    a = np.asarray(hn.sample(m, key, n_samples=7, n_chains=8, init=init))
    b = np.asarray(hn.sample(m, key, n_samples=7, n_chains=3, init=init[:3]))
    np.testing.assert_array_equal(a[:3], b)


def test_same_key_same_draws_new_key_new_draws(key):
    m = hn.PottsModel.lattice((4, 4), q=3, coupling=0.5)
    a = hn.sample(m, key, n_samples=10, n_chains=4)
    b = hn.sample(m, key, n_samples=10, n_chains=4)
    c = hn.sample(m, jax.random.key(99), n_samples=10, n_chains=4)
    np.testing.assert_array_equal(a, b)
    assert np.any(np.asarray(a) != np.asarray(c))


@pytest.mark.parametrize("thin", [1, 3])
def test_thin_and_warmup_count_sweeps(key, thin):
    """n_warmup + thin * draws sweeps: the last draw equals a longer run's."""
    m = hn.IsingModel.lattice((4, 4), coupling=0.4)
    init = np.ones(16, np.int8)
    a = np.asarray(hn.sample(m, key, n_samples=4, n_chains=2, n_warmup=5, thin=thin, init=init))
    b = np.asarray(hn.sample(m, key, n_samples=4 * thin + 5, n_chains=2, n_warmup=0, init=init))
    np.testing.assert_array_equal(a, b[:, 5 + thin - 1 :: thin])


def test_program_size_does_not_grow_with_the_number_of_blocks():
    """A dense model has one block per spin: its sweep and its random starting
    states are loops and vectorised constants in the program, not unrolled."""
    from flax import nnx

    from hamon_nnx.core import gibbs

    sizes = []
    for n in (64, 4096):
        graphdef, params = nnx.split(hn.IsingModel.dense(np.zeros((n, n)), np.zeros(n)))

        def program(params, key, x, beta, graphdef=graphdef):
            model = nnx.merge(graphdef, params)
            return gibbs.sweep(key, x, model, beta), gibbs.random_states(key, model.blocks, 4)

        x = jax.numpy.ones((4, n), jax.numpy.int8)
        lowered = jax.jit(program).lower(params, jax.random.key(0), x, jax.numpy.ones(4))
        sizes.append(len(lowered.as_text()))
    assert sizes[1] < 2 * sizes[0], sizes


def test_dense_sweep_in_groups_is_the_site_by_site_heat_bath(key, monkeypatch):
    """Groups of sites (padded at the end) against a written-out sequential
    heat bath with the same uniforms, with a clamp and a reference; and the
    grouped sweep's draws against enumeration."""
    from hamon_nnx.models.ising import DenseIsing

    g = np.random.default_rng(1)
    n = 45
    J = g.normal(size=(n, n)) / np.sqrt(n)
    J = np.triu(J, 1) + np.triu(J, 1).T
    h = g.normal(size=n) * 0.3
    m = hn.IsingModel.dense(J, h)
    x = np.where(g.random(n) < 0.5, 1, -1).astype(np.int8)
    u = g.random(n).astype(np.float32)
    keep = g.random(n) < 0.2
    ref = g.normal(size=n).astype(np.float32)
    beta = 0.7
    got = np.asarray(m.gibbs_sweep(u, x, np.float32(beta), keep, ref))
    want, p_at = x.copy(), np.zeros(n)
    for i in range(n):
        z = 2 * beta * (J[i] @ want + h[i]) + (1 - beta) * ref[i]
        p_at[i] = 1 / (1 + np.exp(-z))
        want[i] = want[i] if keep[i] else (1 if u[i] < p_at[i] else -1)
    close = np.abs(u - p_at) < 1e-5  # float32 sums may decide these either way
    assert np.array_equal(got[~close], want[~close]) and close.sum() <= 1
    monkeypatch.setattr(DenseIsing, "GROUP", 4)  # 2 groups and a padded one
    small = hn.IsingModel.dense(J[:11, :11], h[:11])  # a size no other test compiled
    states, probs = hn.exact.probabilities(small)
    draws = hn.sample(small, key, n_samples=800, n_chains=40)
    assert_matches(np.asarray(draws), states, probs, small.variable_values())
