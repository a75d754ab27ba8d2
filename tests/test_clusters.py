"""Swendsen-Wang and Wolff explorers against exact enumeration and closed forms."""

import jax
import numpy as np
import pytest
from stats import assert_matches, z_scores

import hamon_nnx as hn
from hamon_nnx.core import clusters, explorers

N_CHAINS, N_SAMPLES, N_WARMUP = 32, 600, 20
CLUSTER = ("swendsen_wang", "wolff")


def rng(seed):
    return np.random.default_rng(seed)


def check_against_exact(model, key, explorer, beta=1.0, clamp=None, **kw):
    states, probs = hn.exact.probabilities(model, beta=beta)
    s = hn.sample(
        model, key, n_samples=N_SAMPLES, n_chains=N_CHAINS, n_warmup=N_WARMUP, beta=beta,
        explorer=explorer, clamp=clamp, **kw,
    )  # fmt: skip
    s = np.asarray(s)
    if clamp is not None:
        mask, values = clamp
        assert np.all(s[..., mask] == values[mask])
        keep = np.all(states[:, mask] == values[mask], axis=1)
        states, probs = states[keep], probs[keep] / probs[keep].sum()
    return assert_matches(s, states, probs, model.variable_values())


@pytest.mark.parametrize("explorer", CLUSTER)
def test_periodic_lattice_with_fields_off_beta_one(key, explorer):
    m = hn.IsingModel.lattice((4, 4), coupling=0.45, field=0.3 * rng(0).normal(size=(4, 4)))
    assert m.cluster_grid()
    check_against_exact(m, key, explorer, beta=0.9)


@pytest.mark.parametrize("explorer", CLUSTER)
def test_open_anisotropic_3d_lattice(key, explorer):
    m = hn.IsingModel.lattice(
        (2, 2, 4), coupling=[0.6, -0.4, 0.5], field=0.2, periodic=False
    )  # open boundaries cut the wrap bonds of the grid
    check_against_exact(m, key, explorer)


@pytest.mark.parametrize("explorer", CLUSTER)
def test_sparse_graph_mixed_signs_and_fields(key, explorer):
    g = rng(1)
    n = 10
    edges = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if g.random() < 0.4])
    m = hn.IsingModel.from_edges(n, edges, g.normal(size=len(edges)), 0.5 * g.normal(size=n))
    assert not m.cluster_grid()
    check_against_exact(m, key, explorer)


def test_dense_sk_every_pair_is_an_edge(key):
    g = rng(2)
    n = 8
    J = np.triu(g.normal(size=(n, n)) / np.sqrt(n), 1)
    m = hn.IsingModel.dense(J + J.T, 0.3 * g.normal(size=n))
    assert m.cluster_bonds().edges.shape == (n * (n - 1) // 2, 2)
    check_against_exact(m, key, "swendsen_wang")


@pytest.mark.parametrize("explorer", CLUSTER)
def test_potts_lattice_with_fields(key, explorer):
    m = hn.PottsModel.lattice((3, 3), q=3, coupling=0.8, field=0.4 * rng(3).normal(size=(9, 3)))
    check_against_exact(m, key, explorer, beta=1.2)


def test_potts_per_edge_couplings(key):
    g = rng(4)
    n, q = 7, 4
    edges = np.array([(i, (i + 1) % n) for i in range(n)] + [(0, 3), (2, 5)])
    m = hn.PottsModel.from_edges(n, q, edges, g.uniform(0, 1.5, size=len(edges)))
    check_against_exact(m, key, "swendsen_wang")


@pytest.mark.parametrize("explorer", CLUSTER)
def test_clamped_variables_freeze_their_cluster(key, explorer):
    m = hn.IsingModel.lattice((4, 4), coupling=0.5, field=0.1)
    mask = np.zeros(16, bool)
    mask[[0, 5, 15]] = True
    values = np.ones(16, np.int8)
    values[5] = -1
    check_against_exact(m, key, explorer, clamp=(mask, values))


def test_clamped_potts(key):
    m = hn.PottsModel.lattice((3, 3), q=3, coupling=1.0)
    mask = np.zeros(9, bool)
    mask[[0, 4]] = True
    values = np.zeros(9, np.int8)
    values[4] = 2
    check_against_exact(m, key, "wolff", clamp=(mask, values))


def test_per_chain_betas(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.5, field=0.2)
    betas = np.array([0.3, 1.4] * (N_CHAINS // 2))
    s = np.asarray(
        hn.sample(m, key, n_samples=N_SAMPLES, n_chains=N_CHAINS, beta=betas,
                  explorer="swendsen_wang")
    )  # fmt: skip
    for b in (0.3, 1.4):
        states, probs = hn.exact.probabilities(m, beta=b)
        assert_matches(s[betas == b], states, probs, m.variable_values())


def test_check_has_power_against_wrong_temperature(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.45)
    s = hn.sample(m, key, n_samples=N_SAMPLES, n_chains=N_CHAINS, explorer="swendsen_wang")
    states, probs = hn.exact.probabilities(m, beta=0.8)
    z = z_scores(np.asarray(s), probs @ _features(states, m), m.variable_values())
    assert np.max(np.abs(z)) > 10


def _features(states, m):
    from stats import features

    return features(states, m.variable_values()).astype(np.float64)


@pytest.mark.parametrize("explorer", ["swendsen_wang", "wolff", "swendsen_wang+gibbs"])
def test_tempering_with_product_reference_matches_exact_log_z(key, explorer):
    # the explorer runs every slot on the path from a non-uniform product
    # reference: a wrong reference term would bias the stepping stone
    g = rng(5)
    m = hn.IsingModel.lattice((4, 4), coupling=0.4, field=0.3 * g.normal(size=(4, 4)))
    reference = tuple(np.asarray(0.8 * g.normal(size=blk.size), np.float32) for blk in m.blocks)
    res = hn.nrpt(
        m, key, n_betas=8, n_rounds=3000, reference=reference, explorer=explorer, n_replicas=2
    )
    est = res.log_z
    exact = hn.exact.log_partition(m)
    assert abs(est.estimate - exact) < 4 * est.stderr + 1e-3, (est.estimate, est.stderr, exact)
    states, probs = hn.exact.probabilities(m)
    assert_matches(np.asarray(res.samples), states, probs, m.variable_values())


def test_potts_tempering_with_reference(key):
    g = rng(6)
    m = hn.PottsModel.lattice(
        (2, 4), q=3, coupling=0.9, field=0.3 * g.normal(size=(8, 3)), periodic=False
    )
    reference = tuple(np.asarray(g.normal(size=(blk.size, 3)), np.float32) for blk in m.blocks)
    res = hn.nrpt(
        m, key, n_betas=6, n_rounds=3000, reference=reference, explorer="swendsen_wang",
        n_replicas=2,
    )  # fmt: skip
    est = res.log_z
    assert abs(est.estimate - hn.exact.log_partition(m)) < 4 * est.stderr + 1e-3


def test_critical_energy_and_specific_heat_match_kaufman(key):
    # 16x16 periodic lattice at K_c: Swendsen-Wang's energy per spin and
    # specific heat against the exact finite-lattice values (Kaufman 1949;
    # Ferdinand and Fisher 1969), C = beta^2 d^2 log Z / d beta^2
    L, beta = 16, float(np.log(1 + np.sqrt(2)) / 2)
    m = hn.IsingModel.lattice((L, L), coupling=1.0)
    s = hn.sample(
        m, key, n_samples=1500, n_chains=32, n_warmup=50, beta=beta, explorer="swendsen_wang"
    )
    e = np.asarray(jax.vmap(m.energy)(s), np.float64)  # (chains, draws)
    n = L * L
    exact_e = hn.exact.ising_lattice_energy(L, beta)  # per spin
    h = 1e-3
    log_z = [hn.exact.ising_lattice_log_partition(L, beta + d) for d in (-h, 0.0, h)]
    exact_c = beta**2 * (log_z[0] - 2 * log_z[1] + log_z[2]) / h**2 / n
    per_chain_e = e.mean(axis=1) / n
    per_chain_c = beta**2 * e.var(axis=1) / n
    for est, exact in ((per_chain_e, exact_e), (per_chain_c, exact_c)):
        se = est.std(ddof=1) / np.sqrt(len(est))
        assert abs(est.mean() - exact) < 4 * se, (est.mean(), exact, se)
    # and the test has power: Gibbs' 1500 sweeps would also pass, a wrong beta must not
    wrong = hn.exact.ising_lattice_energy(L, beta * 1.02)
    assert abs(per_chain_e.mean() - wrong) > 4 * per_chain_e.std(ddof=1) / np.sqrt(32)


def test_components_label_each_cluster_once():
    edges = np.array([[0, 1], [1, 2], [3, 4], [5, 6], [6, 7], [7, 5]], np.int32)
    active = np.array([True, True, True, False, True, True])
    label = np.asarray(clusters.components(8, edges, active))
    groups = [{0, 1, 2}, {3, 4}, {5, 6, 7}]
    for g in groups:
        assert len({label[i] for i in g}) == 1
    assert len({label[min(g)] for g in groups}) == 3
    grid = np.zeros((2, 4, 4), bool)
    grid[1, 0, :] = True  # the first row joined around the torus
    label = np.asarray(clusters.grid_components(grid))
    assert len(set(label[:4])) == 1 and len(set(label)) == 13


def test_chain_streams_do_not_depend_on_chain_count(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.5)
    init = np.ones(16, np.int8)
    a = hn.sample(m, key, n_samples=20, n_chains=2, init=init, explorer="swendsen_wang")
    b = hn.sample(m, key, n_samples=20, n_chains=5, init=init, explorer="swendsen_wang")
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[:2])


def test_bad_explorers_say_why(key):
    rbm = hn.RBM.from_params(np.zeros((3, 2)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="not a pairwise Ising or Potts"):
        hn.sample(rbm, key, n_samples=2, explorer="swendsen_wang")
    J = np.ones((3, 3))
    p = hn.PottsModel.lattice((3, 3), q=3, coupling=J)
    with pytest.raises(ValueError, match="q x q coupling matrices"):
        hn.nrpt(p, key, n_rounds=2, explorer="wolff")
    neg = hn.PottsModel.lattice((3, 3), q=3, coupling=-0.5)
    with pytest.raises(ValueError, match="J >= 0"):
        hn.autotune(neg, key, explorer="swendsen_wang", max_rounds=32)
    m = hn.IsingModel.lattice((4, 4))
    with pytest.raises(ValueError, match="unknown explorer 'metropolis'"):
        hn.sample(m, key, n_samples=2, explorer="metropolis")
    with pytest.raises(TypeError, match="explorer must be a name"):
        hn.sample(m, key, n_samples=2, explorer=3)


def test_explorer_names_and_cycles():
    e = explorers.resolve("swendsen_wang+gibbs")
    assert e.name == "swendsen_wang+gibbs" and e == explorers.resolve("swendsen_wang+gibbs")
    m = hn.IsingModel.lattice((4, 4))
    assert e.cost(m) == explorers.SWENDSEN_WANG.cost(m) + 1.0
    assert explorers.candidates(m) == (explorers.GIBBS, explorers.SWENDSEN_WANG)
    rbm = hn.RBM.from_params(np.zeros((3, 2)), np.zeros(3), np.zeros(2))
    assert explorers.candidates(rbm) == (explorers.GIBBS,)


def test_autotune_picks_clusters_in_the_ordered_phase_deterministically():
    # 16x16 at beta 0.6: two magnetized modes; Gibbs changes mode only by
    # round trips, Swendsen-Wang inside the beta = 1 chain
    m = hn.IsingModel.lattice((16, 16), coupling=0.6)
    plans = [hn.autotune(m, jax.random.key(3), max_rounds=64) for _ in range(2)]
    assert plans[0].explorer == plans[1].explorer == explorers.SWENDSEN_WANG
    assert plans[0].n_explore == plans[1].n_explore
    report = plans[0].report()
    assert report.explorer == "swendsen_wang" and "explorer swendsen_wang" in str(report)
    assert report.exploration_scores == plans[1].report().exploration_scores
    s = np.asarray(plans[0].sample(jax.random.key(4), 400))
    m_signed = s[0].mean(axis=1)
    assert (m_signed > 0.5).mean() > 0.2 and (m_signed < -0.5).mean() > 0.2  # both modes


def test_fixed_explorer_is_used(key):
    m = hn.PottsModel.lattice((4, 4), q=3, coupling=1.0)
    plan = hn.autotune(m, key, max_rounds=32, explorer="wolff", n_explore=2)
    assert plan.explorer == explorers.WOLFF and plan.n_explore == 2
    assert "explorer wolff, n_explore = 2" in str(plan.report())


def test_potts_lattice_keeps_its_grid_through_config():
    p = hn.PottsModel.lattice((4, 3), q=3, coupling=0.7, periodic=False)
    assert p.cluster_grid() and p.cluster_bonds().coupling.shape == (2, 4, 3)
    again = hn.models.model_from_config(p.config())
    assert again.grid == p.grid == ((4, 3), False)
    config = dict(p.config(), grid=[[3, 4], False])
    with pytest.raises(ValueError, match="not those of the"):
        hn.models.model_from_config(config)
    free = hn.PottsModel.from_edges(12, 3, np.asarray(p.edges[...]), 0.7)
    assert not free.cluster_grid()


def test_observe_streams_the_same_cluster_draws(key):
    m = hn.PottsModel.lattice((3, 3), q=3, coupling=0.9)
    kw = dict(n_samples=50, n_chains=4, n_warmup=3, thin=2, explorer="swendsen_wang")
    draws = np.asarray(hn.sample(m, key, **kw), np.float64)
    out = hn.observe(m, key, {"m": hn.observers.Moments()}, **kw)
    np.testing.assert_allclose(out["m"].mean(), draws.reshape(-1, 9).mean(axis=0), atol=1e-6)


def glass_4x4(seed=7, field=0.2):
    g = rng(seed)
    edges, _ = hn.core.graph.lattice_edges((4, 4), periodic=True)
    return hn.IsingModel.from_edges(16, edges, g.choice([-1.0, 1.0], size=len(edges)),
                                    field * g.normal(size=16))  # fmt: skip


def test_houdayer_keeps_the_pair_energy_and_overlap(key):
    from hamon_nnx.core import gibbs

    for m in (glass_4x4(), hn.IsingModel.lattice((4, 4), coupling=[0.5, -0.5], field=0.3)):
        xa = gibbs.random_states(jax.random.key(1), m.blocks, 32)
        xb = gibbs.random_states(jax.random.key(2), m.blocks, 32)
        na, nb = clusters.houdayer(key, xa, xb, m)
        e = jax.vmap(m.internal_energy)
        np.testing.assert_allclose(e(na) + e(nb), e(xa) + e(xb), atol=1e-4)
        np.testing.assert_array_equal(np.asarray(na * nb), np.asarray(xa * xb))
        assert np.mean(np.asarray(na != xa)) > 0.1  # clusters moved
        same = clusters.houdayer(key, xa, xa, m)  # equal replicas: nothing to swap
        np.testing.assert_array_equal(np.asarray(same[0]), np.asarray(xa))


def test_tempering_with_houdayer_matches_exact(key):
    m = glass_4x4()
    res = hn.nrpt(m, key, n_betas=6,
                  n_rounds=2500, n_replicas=2, houdayer=True)  # fmt: skip
    est = res.log_z
    assert abs(est.estimate - hn.exact.log_partition(m)) < 4 * est.stderr + 1e-3
    states, probs = hn.exact.probabilities(m)
    assert_matches(np.asarray(res.samples), states, probs, m.variable_values())


def test_houdayer_bad_input(key):
    m = glass_4x4()
    with pytest.raises(ValueError, match="n_replicas must be even"):
        hn.nrpt(m, key, n_rounds=4, n_replicas=3, houdayer=True)
    p = hn.PottsModel.lattice((3, 3), q=3)
    with pytest.raises(ValueError, match="needs an Ising model"):
        hn.nrpt(p, key, n_rounds=4, n_replicas=2, houdayer=True)
    with pytest.raises(TypeError, match="houdayer must be True or False"):
        hn.nrpt(m, key, n_rounds=4, n_replicas=2, houdayer="yes")
    with pytest.raises(ValueError, match="n_replicas must be even"):
        hn.autotune(m, key, houdayer=True)


def test_autotune_with_houdayer_runs_every_stage_with_it(key):
    m = glass_4x4(field=0.0)
    plan = hn.autotune(m, key, max_rounds=64, n_replicas=2, houdayer=True, explorer="gibbs")
    assert plan.runner.houdayer and "explorer gibbs + Houdayer" in str(plan.report())
    s = np.asarray(plan.sample(jax.random.key(1), 1500))
    states, probs = hn.exact.probabilities(m)
    # two replicas of a field-free glass: the global flip mode mixes slowly, so the
    # error bar must come from the draws' autocorrelation (two chain means say little)
    assert_matches(s, states, probs, m.variable_values(), mcse=True)


def test_symmetry_images_of_the_own_mode_test(key):
    from hamon_nnx import tuning

    p = hn.PottsModel.lattice((4, 4), q=3, coupling=1.0)
    assert tuning.label_symmetric(p, key)
    assert not tuning.label_symmetric(hn.PottsModel.lattice((4, 4), q=3, field=[0.5, 0, 0]), key)
    assert not tuning.label_symmetric(hn.IsingModel.lattice((4, 4)), key)
    runner = tuning.Runner(p, n_chains=4)
    draws = np.zeros((4, 16), np.int8)
    starts = tuning._with_images(runner, key, draws)
    assert starts[::2].max() == 0 and set(starts[1::2, 0]) == {1, 2}  # relabelled images
    ising = tuning.Runner(hn.IsingModel.lattice((4, 4)), n_chains=4)
    spins = tuning._with_images(ising, key, np.ones((4, 16), np.int8))
    np.testing.assert_array_equal(spins[:, 0], [1, -1, 1, -1])


def test_exploration_rate_is_capped_by_the_round_trips_the_run_made():
    """A ladder's predicted trips need chains that forget their state between
    swaps; the run's own count (plus one) bounds them."""
    from hamon_nnx import tuning
    from hamon_nnx.parallel_tempering import Rounds

    energy = np.random.default_rng(0).normal(size=(1, 256, 8)).astype(np.float32)
    info = Rounds(energy, np.full((1, 256, 7), 0.9), np.zeros((1, 256, 7), bool), None, None)
    assert tuning._exploration_rate(info, None) > 0.5  # uncapped: the energy ESS
    assert tuning._exploration_rate(info, 0.0, trips=0) == pytest.approx(1 / 256)
    assert tuning._exploration_rate(info, 0.0, trips=10) == pytest.approx(11 / 256)
    assert tuning._exploration_rate(info, 0.3, trips=0) == pytest.approx(0.3)  # its own moves
    predicted = hn.core.schedule.predicted_round_trip_rate_for(np.full(7, 0.1))
    assert tuning._exploration_rate(info, 0.0, trips=200) == pytest.approx(predicted)
