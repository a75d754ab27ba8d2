"""CategoricalRBM: q-state visible units, binary hidden units.

Energies, free energies and log Z against brute force written here in
float64 numpy (not through the model), the sampler against exact
enumeration, training by PCD / NRPT up to the data's own model, save/load,
AIS, and clear errors.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from stats import assert_matches

import hamon_nnx as hn
from hamon_nnx.training import contrastive_loss


def rng(seed):
    return np.random.default_rng(seed)


def random_model(nv, q, nh, seed=0, scale=1.0):
    g = rng(seed)
    return hn.CategoricalRBM.from_params(
        scale * g.normal(size=(nv, q, nh)), g.normal(size=(nv, q)), g.normal(size=nh)
    )


def params(model):
    return tuple(
        np.asarray(p[...], np.float64) for p in (model.W, model.visible_bias, model.hidden_bias)
    )


def brute_energy(model, states):
    """E(v, h) by the definition, float64, one state at a time."""
    W, b, c = params(model)
    nv, q, _ = W.shape
    out = []
    for x in np.asarray(states):
        v, h = x[:nv].astype(int), x[nv:].astype(np.float64)
        onehot = np.eye(q)[v]  # (nv, q)
        out.append(-np.einsum("ia,iaj,j->", onehot, W, h) - np.sum(onehot * b) - c @ h)
    return np.array(out)


def all_joint_states(nv, q, nh):
    return np.array(
        [v + h for v in itertools.product(range(q), repeat=nv)
         for h in itertools.product(range(2), repeat=nh)],
        dtype=np.int8,
    )  # fmt: skip


def brute_log_partition(model, beta=1.0):
    e = brute_energy(model, all_joint_states(model.n_visible, model.q, model.n_hidden))
    a = -beta * e
    return float(a.max() + np.log(np.exp(a - a.max()).sum()))


# -- structure ------------------------------------------------------------------
def test_blocks_config_and_shapes():
    m = hn.CategoricalRBM(5, 3, q=4, rngs=nnx.Rngs(0))
    assert m.n_variables == 8
    assert m.blocks == (hn.Block(0, 5, "categorical", 4), hn.Block(5, 8, "binary", 2))
    assert m.W[...].shape == (5, 4, 3) and m.W[...].dtype == jnp.float32
    assert m.visible_bias[...].shape == (5, 4) and m.hidden_bias[...].shape == (3,)
    assert m.config() == {"class": "CategoricalRBM", "n_visible": 5, "n_hidden": 3, "q": 4}
    rebuilt = hn.models.model_from_config(m.config())
    assert type(rebuilt) is hn.CategoricalRBM and rebuilt.config() == m.config()
    assert nnx.graphdef(rebuilt) == nnx.graphdef(m)
    v = np.zeros((2, 7, 5), np.int8)
    assert m.free_energy(v).shape == (2, 7)
    assert m.hidden_logits(v).shape == (2, 7, 3)
    assert m.visible_logits(np.zeros((2, 7, 3), np.int8)).shape == (2, 7, 5, 4)
    assert m.energy(np.zeros((2, 7, 8), np.int8)).shape == (2, 7)
    assert hn.training.losses.n_data_variables(m) == 5
    assert not hn.exact.is_plain_rbm(m) and hn.exact.is_categorical_rbm(m)


def test_energy_matches_the_definition():
    m = random_model(3, 4, 2, seed=1)
    states = all_joint_states(3, 4, 2)
    np.testing.assert_allclose(m.energy(states), brute_energy(m, states), atol=1e-5)


def test_check_model_passes():
    for nv, q, nh, seed in ((3, 3, 2, 0), (7, 21, 5, 1)):
        result = hn.check_model(random_model(nv, q, nh, seed=seed), n_states=4)
        assert result.n_checked == 4 * (nv + nh)


def test_free_energy_sums_the_hidden_units_out():
    m = random_model(3, 3, 4, seed=2)
    W, b, c = params(m)
    hs = np.array(list(itertools.product(range(2), repeat=4)), np.int8)
    vs = np.array(list(itertools.product(range(3), repeat=3)), np.int8)
    want = []
    for v in vs:
        e = brute_energy(m, np.concatenate([np.repeat(v[None], len(hs), 0), hs], axis=1))
        want.append(-np.log(np.sum(np.exp(-e))))
    np.testing.assert_allclose(m.free_energy(vs), np.array(want), rtol=1e-5, atol=1e-5)
    # the closed form as the docstring states it
    closed = [
        -b[np.arange(3), v].sum() - np.logaddexp(0, c + W[np.arange(3), v].sum(0)).sum() for v in vs
    ]
    np.testing.assert_allclose(m.free_energy(vs), closed, rtol=1e-5, atol=1e-5)


def test_conditionals_are_the_exact_ones():
    m = random_model(3, 3, 2, seed=3)
    states, probs = hn.exact.probabilities(m)
    h = np.array([1, 0], np.int8)
    rows = np.all(states[:, 3:] == h, axis=1)
    p_v = np.zeros((3, 3))
    for x, p in zip(states[rows], probs[rows] / probs[rows].sum(), strict=True):
        p_v[np.arange(3), x[:3]] += p
    np.testing.assert_allclose(jax.nn.softmax(m.visible_logits(h), axis=-1), p_v, atol=1e-5)
    v = np.array([2, 0, 1], np.int8)
    rows = np.all(states[:, :3] == v, axis=1)
    p_h = (probs[rows] / probs[rows].sum()) @ states[rows, 3:]
    np.testing.assert_allclose(jax.nn.sigmoid(m.hidden_logits(v)), p_h, atol=1e-5)


# -- exact log Z --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("nv", "q", "nh", "route"),
    [
        (3, 3, 2, "hidden"),  # 2**2 = 4 <= 27
        (2, 3, 4, "visible"),  # 2**4 = 16 > 9
        (3, 2, 3, "hidden"),  # a tie, 8 = 8: the hidden side
        (1, 5, 6, "visible"),  # 64 > 5
    ],
)
def test_log_partition_by_either_route_matches_brute_force(nv, q, nh, route):
    m = random_model(nv, q, nh, seed=nv + 10 * nh)
    assert hn.exact.enumeration_size(m) == (2**nh if route == "hidden" else q**nv)
    for beta in (1.0, 0.4, 0.0):
        got = hn.exact.log_partition(m, beta=beta)
        assert got == pytest.approx(brute_log_partition(m, beta), abs=1e-9, rel=1e-12)
    # the generic enumeration (through model.energy, float32) agrees too
    energies = np.asarray(m.energy(hn.exact.enumerate_states(m)), np.float64)
    assert hn.exact.log_partition(m) == pytest.approx(np.log(np.exp(-energies).sum()), abs=1e-4)


@pytest.mark.parametrize(("nv", "q", "nh"), [(40, 21, 6), (2, 4, 30)])
def test_log_partition_of_a_large_side_enumerates_only_the_small_one(nv, q, nh):
    """W = 0: log Z = sum_i logsumexp_a b[i, a] + sum_j softplus(c_j), whichever side is summed."""
    g = rng(4)
    b, c = g.normal(size=(nv, q)), g.normal(size=nh)
    m = hn.CategoricalRBM.from_params(np.zeros((nv, q, nh)), b, c)
    assert hn.exact.enumeration_size(m) == min(2**nh, q**nv) <= hn.exact.MAX_ENUMERATION_STATES
    b32, c32 = b.astype(np.float32).astype(np.float64), c.astype(np.float32).astype(np.float64)
    want = np.sum(np.log(np.exp(b32).sum(axis=1))) + np.logaddexp(0, c32).sum()
    assert hn.exact.log_partition(m) == pytest.approx(want, rel=1e-12)


def test_too_large_on_both_sides_is_refused_and_named():
    m = hn.CategoricalRBM(30, 30, q=21, rngs=nnx.Rngs(0))
    assert not hn.exact.can_enumerate(m)
    with pytest.raises(ValueError, match="CategoricalRBM.*MAX_ENUMERATION_STATES"):
        hn.exact.log_partition(m)
    with pytest.raises(ValueError, match="MAX_ENUMERATION_STATES"):
        hn.Trainer(m, optax.sgd(0.1), log_likelihood="exact", progress=False)


def test_a_subclass_with_its_own_energy_is_enumerated_state_by_state():
    class Shifted(hn.CategoricalRBM, register_as="test_categorical_rbm.Shifted"):
        def energy(self, x):
            return super().energy(x) + 1.0

    base = random_model(2, 3, 2, seed=5)
    m = Shifted.from_params(base.W[...], base.visible_bias[...], base.hidden_bias[...])
    assert not hn.exact.is_categorical_rbm(m)
    assert hn.exact.enumeration_size(m) == 9 * 4
    assert hn.exact.log_partition(m) == pytest.approx(hn.exact.log_partition(base) - 1.0, abs=1e-5)


# -- sampling --------------------------------------------------------------------------
def test_sampler_matches_exact_enumeration(key):
    m = random_model(3, 3, 2, seed=6)
    states, probs = hn.exact.probabilities(m)
    s = hn.sample(m, key, n_samples=1000, n_chains=64, n_warmup=100)
    assert s.shape == (64, 1000, 5) and s.dtype == np.int8
    assert_matches(s, states, probs, m.variable_values())


def test_ais_matches_exact_log_partition(key):
    m = random_model(5, 4, 4, seed=7)
    est = hn.ais(m, key, n_runs=256, n_betas=300)
    exact = hn.exact.log_partition(m)
    assert abs(est.log_z - exact) < 4 * est.stderr + 0.01, (est.log_z - exact, est.stderr)


# -- training ----------------------------------------------------------------------------
def test_closed_form_gradient_is_autodiff():
    m = random_model(4, 3, 3, seed=8, scale=0.5)
    g = rng(9)
    data = jnp.asarray(g.integers(0, 3, size=(16, 4)), jnp.int8)
    negatives = jnp.asarray(g.integers(0, 3, size=(24, 4)), jnp.int8)
    loss, grads = m.contrastive_gradient(data, negatives)
    want_loss, want = nnx.value_and_grad(lambda m: contrastive_loss(m, data, negatives))(m)
    assert float(loss) == pytest.approx(float(want_loss), abs=1e-5)
    for name in ("W", "visible_bias", "hidden_bias"):
        np.testing.assert_allclose(grads[name][...], want[name][...], atol=1e-6)


@pytest.mark.parametrize(
    "negative",
    [hn.PCD(n_chains=64, k=2), hn.NRPTNegative(n_betas=4, n_rounds=8)],
    ids=["pcd", "nrpt"],
)
def test_training_recovers_the_likelihood_of_the_data(negative):
    """Data drawn exactly from a random CategoricalRBM; a zero model trained
    by PCD / NRPT climbs most of the way to the true model's log-likelihood."""
    true = random_model(4, 3, 3, seed=10)
    states, probs = hn.exact.probabilities(true)
    data = states[rng(11).choice(len(states), size=2000, p=probs)][:, : true.n_visible]
    model = hn.models.model_from_config(true.config())
    start = hn.training.exact_log_likelihood(model, data)
    best = hn.training.exact_log_likelihood(true, data)
    assert start == pytest.approx(-4 * np.log(3))
    trainer = hn.Trainer(
        model, optax.adam(0.05), negative=negative, seed=0, progress=False, eval_every=0
    )
    trainer.fit(data, epochs=10, batch_size=100)
    end = hn.training.exact_log_likelihood(model, data)
    assert end - start > 0.8 * (best - start), (start, end, best)


def test_cd_trains_and_the_pseudo_likelihood_is_defined():
    true = random_model(4, 3, 3, seed=12)
    states, probs = hn.exact.probabilities(true)
    data = states[rng(13).choice(len(states), size=500, p=probs)][:, :4]
    model = hn.models.model_from_config(true.config())
    start = hn.training.exact_log_likelihood(model, data)
    trainer = hn.Trainer(model, optax.adam(0.05), negative=hn.CD(1), progress=False, eval_every=0)
    history = trainer.fit(data, epochs=3, batch_size=100)
    assert len(history["loss"]) == 3 and np.all(np.isfinite(history["loss"]))
    assert hn.training.exact_log_likelihood(model, data) > start
    assert np.isfinite(hn.training.pseudo_log_likelihood(model, data))


def test_init_visible_bias_is_the_independent_site_fit():
    data = rng(14).integers(0, 4, size=(300, 5))
    m = hn.CategoricalRBM(5, 2, q=4, rngs=nnx.Rngs(0), init_scale=0.0)
    m.init_visible_bias(data, pseudocount=1e-6)
    freq = (data[:, :, None] == np.arange(4)).mean(axis=0)
    # W = 0: the hidden units cancel, and the model is the independent-site fit
    want = float(np.sum(freq * np.log(freq)))
    assert hn.training.exact_log_likelihood(m, data) == pytest.approx(want, abs=1e-4)


# -- persistence ---------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    m = random_model(4, 5, 3, seed=15)
    path = hn.save(m, tmp_path / "crbm")
    loaded = hn.load(path)
    assert type(loaded) is hn.CategoricalRBM and loaded.config() == m.config()
    x = hn.sample(m, jax.random.key(0), n_samples=8, n_chains=2).reshape(-1, m.n_variables)
    np.testing.assert_array_equal(loaded.energy(x), m.energy(x))
    for name in ("W", "visible_bias", "hidden_bias"):
        np.testing.assert_array_equal(getattr(loaded, name)[...], getattr(m, name)[...])
    assert hn.exact.log_partition(loaded) == hn.exact.log_partition(m)


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("W", "b", "c", "message"),
    [
        (np.zeros((3, 2)), None, None, r"W must have shape \(n_visible, q, n_hidden\)"),
        (np.zeros((3, 1, 2)), None, None, "q .* must be an integer in 2..127"),
        (np.zeros((3, 128, 2)), None, None, "q .* must be an integer in 2..127"),
        (np.zeros((0, 3, 2)), None, None, "n_visible >= 1"),
        (np.full((3, 3, 2), np.nan), None, None, "W holds a non-finite value"),
        (np.zeros((3, 3, 2)), np.zeros(3), None, r"b must have shape \(3, 3\)"),
        (np.zeros((3, 3, 2)), np.zeros((3, 3)), np.zeros(3), r"c must have shape \(2,\)"),
        (np.zeros((3, 3, 2)), np.full((3, 3), np.inf), None, "b holds a non-finite value"),
        (np.zeros((3, 3, 2)), None, [0.0, np.nan], r"c holds a non-finite value at index \(1,\)"),
    ],
)
def test_bad_parameters_are_named(W, b, c, message):
    with pytest.raises(ValueError, match=message):
        hn.CategoricalRBM.from_params(W, b, c)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((3, 2, 1), "q must be an integer in 2..127"),
        ((3, 2, 200), "q must be an integer in 2..127"),
        ((3, 2, 2.5), "q must be"),
        ((0, 2, 3), "n_visible must be an integer >= 1"),
        ((3, True, 3), "n_hidden must be"),
    ],
)
def test_bad_sizes_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        hn.CategoricalRBM(*args, rngs=nnx.Rngs(0))


def test_bad_data_is_named():
    m = random_model(3, 3, 2, seed=16)
    too_big = np.array([[0, 1, 2], [0, 3, 1]])
    with pytest.raises(ValueError, match=r"value 3 at variable 1 .*categorical domain \(0..2\)"):
        hn.training.exact_log_likelihood(m, too_big)
    trainer = hn.Trainer(m, optax.sgd(0.1), negative=hn.CD(1), progress=False, eval_every=0)
    with pytest.raises(ValueError, match="categorical domain"):
        trainer.fit(too_big, epochs=1, batch_size=2)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 3\)"):
        hn.training.exact_log_likelihood(m, np.zeros((2, 5), np.int8))
    with pytest.raises(ValueError, match=r"v must have shape \(\.\.\., 3\)"):
        m.free_energy(np.zeros((2, 5), np.int8))
    with pytest.raises(ValueError, match=r"h must have shape \(\.\.\., 2\)"):
        m.visible_logits(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="categorical domain"):
        m.init_visible_bias(too_big)
    with pytest.raises(ValueError, match="outside"):
        m.validate_state(np.array([0, 0, 3, 0, 1]))


# -- the training package's exact log Z and reconstruction error ---------------------------
@pytest.mark.parametrize(("nv", "q", "nh"), [(3, 3, 2), (2, 3, 4)], ids=["hidden", "visible"])
def test_differentiable_log_partition_is_exact(nv, q, nh):
    m = random_model(nv, q, nh, seed=17)
    got = float(hn.training.losses.log_partition(m))
    assert got == pytest.approx(hn.exact.log_partition(m), abs=1e-4)


def test_trainer_evaluation_includes_the_reconstruction_error():
    m = random_model(3, 3, 2, seed=18)
    data = rng(19).integers(0, 3, size=(40, 3))
    trainer = hn.Trainer(m, optax.sgd(0.01), negative=hn.CD(1), progress=False, eval_every=1)
    history = trainer.fit(data, epochs=1, batch_size=20)
    error = history["train_reconstruction_error"][0]
    assert 0 <= error <= 2


# -- the collapsed model: hidden layer with the visible one summed out ------------
def test_marginal_has_the_same_log_z_and_hidden_distribution():
    model = random_model(5, 3, 4, seed=11)
    marginal = model.marginal()
    assert isinstance(marginal, hn.CategoricalRBMMarginal) and marginal.n_variables == 4
    assert hn.exact.log_partition(marginal) == pytest.approx(hn.exact.log_partition(model))
    states, probs = hn.exact.probabilities(model)
    hidden, hp = hn.exact.probabilities(marginal)
    for i, h in enumerate(hidden):
        want = probs[np.all(states[:, 5:] == h, axis=1)].sum()
        assert hp[i] == pytest.approx(want, abs=1e-6)


def test_marginal_sweep_and_completed_draws_match_enumeration(key):
    """The hand-written sequential sweep at beta = 0.6 against enumeration of
    the tempered marginal; completed joint draws of the tuned (collapsed,
    fitted-reference) ladder at beta = 1 against the joint model."""
    model = random_model(4, 3, 4, seed=12)
    marginal = model.marginal()
    draws = hn.sample(marginal, key, n_samples=3000, n_chains=16, beta=0.6)
    states, probs = hn.exact.probabilities(marginal, beta=0.6)
    assert_matches(np.asarray(draws), states, probs, [np.arange(2)] * 4)
    plan = hn.autotune(model, key, max_rounds=128)
    assert plan.report().collapsed == "hidden"
    joint = np.asarray(plan.sample(jax.random.fold_in(key, 1), 3000))[0]
    states, probs = hn.exact.probabilities(model)
    batches = joint.reshape(10, 300, 8)  # batch means of one chain
    assert_matches(batches, states, probs, [np.arange(3)] * 4 + [np.arange(2)] * 4)


def test_marginal_saves_and_loads(tmp_path):
    marginal = random_model(3, 4, 2, seed=13).marginal()
    hn.save(marginal, tmp_path / "m")
    back = hn.load(tmp_path / "m")
    assert type(back) is hn.CategoricalRBMMarginal and back.config() == marginal.config()
    assert hn.exact.log_partition(back) == pytest.approx(hn.exact.log_partition(marginal))
