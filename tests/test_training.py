"""Training: the loss gradient is the likelihood gradient; the Trainer trains, once compiled."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import hamon_nnx as hn
from hamon_nnx.training import trainer as trainer_module


def small_rbm(seed=0, nv=5, nh=3):
    g = np.random.default_rng(seed)
    return hn.RBM.from_params(g.normal(size=(nv, nh)), g.normal(size=nv), g.normal(size=nh))


def exact_log_likelihood_jax(model, data):
    """Mean log p(v) with log Z by summing all visible states, differentiable."""
    nv = model.n_visible
    states = jnp.asarray(hn.exact.enumerate_states(hn.RBM(nv, 1, rngs=nnx.Rngs(0)))[:, :nv])
    states = jnp.unique(states, axis=0)
    log_z = jax.nn.logsumexp(-model.free_energy(states))
    return -jnp.mean(model.free_energy(data)) - log_z


def param_grads(fn, model):
    grads = nnx.grad(fn)(model)
    return {k: np.asarray(v) for k, v in nnx.to_flat_state(grads)}


def test_gradient_is_the_exact_likelihood_gradient_with_exact_negatives():
    model = small_rbm()
    g = np.random.default_rng(1)
    data = jnp.asarray(g.integers(0, 2, size=(20, 5)), jnp.int8)
    v_states, v_probs = hn.exact.visible_probabilities(model)
    m = 20000
    negatives = jnp.asarray(v_states[g.choice(len(v_states), size=m, p=v_probs)])
    got = param_grads(lambda mm: hn.training.contrastive_loss(mm, data, negatives), model)
    want = param_grads(lambda mm: -exact_log_likelihood_jax(mm, data), model)
    # standard error of the negative-phase term from the spread of per-sample
    # grad F: dF/dW = -v p(h|v)^T, dF/db = -v, dF/dc = -p(h|v)
    v = np.asarray(negatives, np.float64)
    ph = 1 / (1 + np.exp(-(v @ np.asarray(model.W[...]) + np.asarray(model.hidden_bias[...]))))
    per_sample = {
        ("W",): v[:, :, None] * ph[:, None, :],
        ("visible_bias",): v,
        ("hidden_bias",): ph,
    }
    for k, values in per_sample.items():
        se = values.std(axis=0) / np.sqrt(m)
        z = (got[k] - want[k]) / np.maximum(se, 1e-6)
        assert np.max(np.abs(z)) < 5, (k, np.max(np.abs(z)))


def test_gradient_equals_rbm_moment_matching():
    model = small_rbm(2)
    g = np.random.default_rng(3)
    data = g.integers(0, 2, size=(16, 5)).astype(np.float32)
    neg = g.integers(0, 2, size=(32, 5)).astype(np.float32)
    W, c = np.asarray(model.W[...]), np.asarray(model.hidden_bias[...])
    ph = lambda v: 1 / (1 + np.exp(-(v @ W + c)))  # noqa: E731
    want_W = -(data.T @ ph(data) / 16 - neg.T @ ph(neg) / 32)
    want_b = -(data.mean(0) - neg.mean(0))
    want_c = -(ph(data).mean(0) - ph(neg).mean(0))
    got = param_grads(
        lambda mm: hn.training.contrastive_loss(mm, jnp.asarray(data), jnp.asarray(neg)), model
    )
    np.testing.assert_allclose(got[("W",)], want_W, atol=1e-5)
    np.testing.assert_allclose(got[("visible_bias",)], want_b, atol=1e-5)
    np.testing.assert_allclose(got[("hidden_bias",)], want_c, atol=1e-5)


def bars_and_stripes(n):
    images = set()
    for bits in range(2**n):
        row = [(bits >> i) & 1 for i in range(n)]
        images.add(tuple(np.repeat(row, n)))  # bars
        images.add(tuple(np.tile(row, n)))  # stripes
    return np.array(sorted(images), np.int8)


@pytest.mark.parametrize(
    "negative",
    [hn.CD(1), hn.PCD(n_chains=64, k=1), hn.NRPTNegative(n_betas=4, n_rounds=16, adapt_every=20)],
)
def test_training_raises_the_exact_likelihood(negative):
    data = bars_and_stripes(3)  # 14 images of 9 pixels
    rbm = hn.RBM(9, 8, rngs=nnx.Rngs(0), init_scale=0.1)
    before = hn.training.exact_log_likelihood(rbm, data)
    trainer = hn.Trainer(rbm, optax.adam(0.05), negative=negative, seed=1, progress=False)
    traces = trainer_module.TRACE_COUNT
    history = trainer.fit(np.tile(data, (8, 1)), epochs=40, batch_size=14)
    assert trainer_module.TRACE_COUNT - traces <= 1, "the training step compiles once"
    after = hn.training.exact_log_likelihood(rbm, data)
    optimum = -np.log(2**4 - 2)
    assert after > before + 1.0, (before, after)  # optimum -2.56, start about -6.3
    assert after <= optimum + 1e-6
    assert history["train_log_likelihood"][-1] == pytest.approx(after, abs=1e-4)


def test_fully_visible_ising_trains_toward_the_data():
    data = np.array([[1, 1, 1, 1], [-1, -1, -1, -1]] * 16, np.int8)
    m = hn.IsingModel.from_edges(4, [(0, 1), (1, 2), (2, 3)], 0.0, 0.0)
    trainer = hn.Trainer(m, optax.adam(0.1), negative=hn.PCD(32, 2), progress=False)
    trainer.fit(data, epochs=20, batch_size=16)
    assert np.all(np.asarray(m.coupling[...]) > 0.5)  # aligned neighbours: ferromagnetic


def test_same_seed_same_parameters():
    data = bars_and_stripes(2)
    out = []
    for _ in range(2):
        rbm = hn.RBM(4, 3, rngs=nnx.Rngs(0), init_scale=0.1)
        hn.Trainer(rbm, optax.adam(0.05), negative=hn.PCD(16), seed=7, progress=False).fit(
            np.tile(data, (4, 1)), epochs=3, batch_size=4
        )
        out.append(np.asarray(rbm.W[...]))
    np.testing.assert_array_equal(out[0], out[1])


def test_divergence_stops_with_a_clear_message():
    rbm = hn.RBM(4, 2, rngs=nnx.Rngs(0))
    trainer = hn.Trainer(rbm, optax.scale(float("nan")), negative=hn.CD(1), progress=False)
    with pytest.raises(hn.training.TrainingDiverged, match="NaN/inf at epoch 0, step 0"):
        trainer.fit(np.eye(4, dtype=np.int8), epochs=1, batch_size=2)


def test_bad_data_and_settings():
    rbm = hn.RBM(4, 2, rngs=nnx.Rngs(0))
    trainer = hn.Trainer(rbm, optax.sgd(0.1), progress=False)
    bad = np.zeros((5, 4), np.int8)
    bad[[1, 3], 2] = 2
    with pytest.raises(ValueError, match=r"rows \[1, 3\] hold values outside"):
        trainer.fit(bad, epochs=1, batch_size=2)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 4\)"):
        trainer.fit(np.zeros((5, 3)), epochs=1, batch_size=2)
    with pytest.raises(ValueError, match="batch_size 9 exceeds"):
        trainer.fit(np.zeros((5, 4)), epochs=1, batch_size=9)
    with pytest.raises(TypeError, match="optax"):
        hn.Trainer(rbm, "adam")
    with pytest.raises(ValueError, match="n_chains must be an integer >= 1"):
        hn.PCD(n_chains=0)


def test_exact_negative_follows_the_exact_gradient():
    model = small_rbm(4)
    data = jnp.asarray(np.random.default_rng(5).integers(0, 2, size=(12, 5)), jnp.int8)
    got = param_grads(lambda mm: hn.training.losses.exact_loss(mm, data), model)
    want = param_grads(lambda mm: -exact_log_likelihood_jax(mm, data), model)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)
    assert float(hn.training.losses.log_partition(model)) == pytest.approx(
        hn.exact.log_partition(model), rel=1e-6
    )
    wide = small_rbm(6, nv=3, nh=6)  # sums the visible layer instead
    assert float(hn.training.losses.log_partition(wide)) == pytest.approx(
        hn.exact.log_partition(wide), rel=1e-6
    )


def test_training_with_the_exact_gradient():
    data = bars_and_stripes(3)
    rbm = hn.RBM(9, 8, rngs=nnx.Rngs(0), init_scale=0.1)
    before = hn.training.exact_log_likelihood(rbm, data)
    hn.Trainer(rbm, optax.adam(0.05), negative=hn.ExactNegative(), progress=False).fit(
        np.tile(data, (8, 1)), epochs=20, batch_size=14
    )
    assert hn.training.exact_log_likelihood(rbm, data) > before + 1.5


def test_fit_counts_total_epochs_and_refuses_a_silent_no_op():
    rbm = hn.RBM(4, 2, rngs=nnx.Rngs(0))
    trainer = hn.Trainer(rbm, optax.sgd(0.1), negative=hn.CD(1), progress=False, eval_every=0)
    data = np.eye(4, dtype=np.int8)
    trainer.fit(data, epochs=2, batch_size=2)
    trainer.fit(data, epochs=3, batch_size=2)
    assert trainer.epoch == 3 and trainer.step == 6 and len(trainer.history["loss"]) == 3
    with pytest.raises(ValueError, match="already run 3 epochs"):
        trainer.fit(data, epochs=1, batch_size=2)


def test_metrics_compile_once_per_structure():
    rbm = hn.RBM(6, 3, rngs=nnx.Rngs(0))
    data = np.random.default_rng(0).integers(0, 2, size=(10, 6)).astype(np.int8)
    hn.training.pseudo_log_likelihood(rbm, data)
    size = hn.training.metrics._pseudo_log_likelihood_program._cache_size()
    rbm.W[...] = rbm.W[...] + 1.0
    hn.training.pseudo_log_likelihood(rbm, data)
    assert hn.training.metrics._pseudo_log_likelihood_program._cache_size() == size


def test_log_likelihood_modes_of_the_trainer():
    """'estimate' logs an NRPT log-likelihood with an error bar that covers the
    exact one; 'auto' is exact for a small model; 'none' skips it."""
    rbm = small_rbm(3, nv=8, nh=4)
    data = np.random.default_rng(1).integers(0, 2, size=(40, 8)).astype(np.int8)
    evals = np.random.default_rng(2).integers(0, 2, size=(20, 8)).astype(np.int8)
    exact_train = hn.training.exact_log_likelihood(rbm, data)
    exact_eval = hn.training.exact_log_likelihood(rbm, evals)
    trainer = hn.Trainer(
        rbm,
        optax.sgd(0.0),
        negative=hn.CD(1),
        progress=False,
        log_likelihood="estimate",
        eval_every=1,
    )
    history = trainer.fit(data, epochs=1, batch_size=40, eval_data=evals)
    se = history["train_log_likelihood_stderr"][0]
    assert 0 < se < 0.1
    # one log Z serves both data sets: the same error bar, the same offset
    assert history["eval_log_likelihood_stderr"][0] == se
    offset = history["train_log_likelihood"][0] - exact_train
    assert abs(offset) < 4 * se
    assert history["eval_log_likelihood"][0] - exact_eval == pytest.approx(offset, abs=1e-5)

    auto = hn.Trainer(
        small_rbm(3, nv=8, nh=4), optax.sgd(0.0), negative=hn.CD(1), progress=False, eval_every=1
    )
    logged = auto.fit(data, epochs=1, batch_size=40)
    assert logged["train_log_likelihood"][0] == pytest.approx(exact_train, abs=1e-5)
    assert "train_log_likelihood_stderr" not in logged

    none = hn.Trainer(
        small_rbm(3, nv=8, nh=4),
        optax.sgd(0.0),
        progress=False,
        log_likelihood="none",
        eval_every=1,
    )
    logged = none.fit(data, epochs=1, batch_size=40)
    assert "train_log_likelihood" not in logged and "train_reconstruction_error" in logged

    with pytest.raises(ValueError, match="log_likelihood must be one of"):
        hn.Trainer(rbm, optax.sgd(0.1), log_likelihood="exakt")
    big = hn.RBM(40, 30, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="too large"):
        hn.Trainer(big, optax.sgd(0.1), log_likelihood="exact")
    with pytest.raises(ValueError, match="estimate_samples"):
        hn.Trainer(rbm, optax.sgd(0.1), estimate_samples=10)


def brute_force_pseudo_log_likelihood(model, data):
    """sum_i log p(x_i | x_-i) by trying every value of x_i, averaged over rows."""
    domains = model.variable_values()[: data.shape[1]]
    total = 0.0
    for row in data:
        for i, domain in enumerate(domains):
            trial = np.repeat(row[None], len(domain), axis=0)
            trial[:, i] = domain
            logits = -np.asarray(hn.training.free_energy(model, jnp.asarray(trial)), np.float64)
            total += logits[list(domain).index(row[i])] - np.logaddexp.reduce(logits)
    return total / len(data)


@pytest.mark.parametrize(
    "model, data",
    [
        (
            hn.PottsModel.lattice((3, 3), q=3, coupling=0.7),
            np.random.default_rng(0).integers(0, 3, size=(5, 9)),
        ),
        (small_rbm(4, nv=5, nh=3), np.random.default_rng(1).integers(0, 2, size=(4, 5))),
        # all +1: the spin domain comes from the model, not from the data's signs
        (hn.IsingModel.lattice((3, 3), coupling=0.5), np.ones((2, 9))),
    ],
    ids=["potts", "rbm", "ising-all-up"],
)
def test_pseudo_log_likelihood_against_brute_force(model, data):
    data = data.astype(np.int8)
    assert hn.training.pseudo_log_likelihood(model, data) == pytest.approx(
        brute_force_pseudo_log_likelihood(model, data), abs=1e-4
    )


@pytest.mark.parametrize(
    "model",
    [
        hn.PottsModel.lattice((3, 3), q=2, coupling=0.1),
        hn.IsingModel.lattice((4, 4), coupling=0.1),
    ],
    ids=["potts-lattice", "ising-lattice"],
)
def test_exact_negative_trains_models_that_reorder_their_variables(model):
    """The exact log Z inside the jitted step enumerates in internal order."""
    log_z = float(hn.training.losses.log_partition(model))
    assert log_z == pytest.approx(hn.exact.log_partition(model), abs=1e-4)
    data = np.asarray(hn.sample(model, jax.random.key(0), n_samples=20, n_chains=4)).reshape(
        -1, model.n_variables
    )
    kinds = model.variable_values_first()
    data = np.where(np.arange(len(data))[:, None] % 2 == 0, data, kinds)  # a biased data set
    before = hn.training.exact_log_likelihood(model, data)
    trainer = hn.Trainer(model, optax.adam(0.05), negative=hn.ExactNegative(), progress=False)
    trainer.fit(data, epochs=5, batch_size=len(data))
    assert hn.training.exact_log_likelihood(model, data) > before + 0.1


# -- compiled chunks of steps -------------------------------------------------


def chunked_run(negative, steps_per_call, epochs=3, **kw):
    data = np.tile(bars_and_stripes(3), (3, 1))  # 42 vectors: 6 steps of 7 an epoch
    rbm = hn.RBM(9, 5, rngs=nnx.Rngs(0), init_scale=0.1)
    kw.setdefault("progress", False)
    trainer = hn.Trainer(
        rbm, optax.adam(0.05), negative=negative, seed=4, eval_every=0,
        steps_per_call=steps_per_call, **kw,
    )  # fmt: skip
    trainer.fit(data, epochs=epochs, batch_size=7)
    return trainer


@pytest.mark.parametrize(
    "make_negative",
    [
        lambda: hn.PCD(16, 2),
        lambda: hn.CD(3),
        lambda: hn.NRPTNegative(4, n_rounds=3, adapt_every=4),
    ],
    ids=["pcd", "cd", "nrpt"],
)
def test_the_chunk_length_does_not_change_the_result(make_negative):
    runs = [chunked_run(make_negative(), n) for n in (1, 7, None)]
    for other in runs[1:]:
        for name in ("W", "visible_bias", "hidden_bias"):
            np.testing.assert_array_equal(
                np.asarray(getattr(other.model, name)[...]),
                np.asarray(getattr(runs[0].model, name)[...]),
            )
        assert other.history["loss"] == runs[0].history["loss"]
        for a, b in zip(
            jax.tree.leaves(other.negative_state),
            jax.tree.leaves(runs[0].negative_state),
            strict=True,
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_new_lengths_and_chunk_sizes_do_not_retrace():
    trainer = chunked_run(hn.PCD(16, 1), None, epochs=1)
    traces = trainer_module.TRACE_COUNT
    data = np.tile(bars_and_stripes(3), (3, 1))
    trainer.fit(data, epochs=4, batch_size=7)  # three more epochs, one call each
    trainer.steps_per_call = 4
    trainer.fit(data, epochs=5, batch_size=7)  # chunks of 4 and 2
    for _ in range(2):  # training by hand, one epoch per call
        trainer.fit(data, epochs=trainer.epoch + 1, batch_size=7)
    assert trainer_module.TRACE_COUNT == traces
    assert trainer.step == 7 * 6


def test_one_compiled_call_per_epoch_by_default(monkeypatch):
    calls = []
    original = trainer_module._train_chunk

    def counting(*args):
        calls.append(int(args[-1]))
        return original(*args)

    monkeypatch.setattr(trainer_module, "_train_chunk", counting)
    chunked_run(hn.PCD(16, 1), None, epochs=3)
    assert calls == [6, 6, 6]
    calls.clear()
    chunked_run(hn.PCD(16, 1), None, epochs=3, progress=True)
    assert calls == [6, 6, 6], "a progress bar does not cut short runs into small chunks"
    calls.clear()
    chunked_run(hn.PCD(16, 1), None, epochs=1, step_callbacks=[lambda *a: None])
    assert calls == [1] * 6, "step callbacks see every step"
    calls.clear()
    chunked_run(hn.NRPTNegative(4, n_rounds=2, adapt_every=4), None, epochs=2)
    assert calls == [4, 2, 2, 4], "chunks end where the ladder adapts"


def test_divergence_inside_a_chunk_names_its_step():
    blow_up = optax.chain(
        optax.sgd(0.1), optax.scale_by_schedule(lambda t: jnp.where(t >= 8, jnp.nan, 1.0))
    )
    for steps_per_call in (None, 1):
        rbm = hn.RBM(9, 5, rngs=nnx.Rngs(0), init_scale=0.1)
        trainer = hn.Trainer(
            rbm, blow_up, negative=hn.CD(1), progress=False, steps_per_call=steps_per_call
        )
        with pytest.raises(hn.training.TrainingDiverged, match="NaN/inf at epoch 1, step 8"):
            trainer.fit(np.tile(bars_and_stripes(3), (3, 1)), epochs=3, batch_size=7)
        assert trainer.step == 8
        assert not np.all(np.isfinite(np.asarray(rbm.W[...]))), "the model holds step 8's values"


def test_steps_per_call_is_checked():
    rbm = hn.RBM(4, 2, rngs=nnx.Rngs(0))
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="steps_per_call"):
            hn.Trainer(rbm, optax.sgd(0.1), steps_per_call=bad)


def large_products(negative, nv=40, nh=30, batch=20) -> int:
    """Matrix products of the RBM's size in one compiled training step."""
    rbm = hn.RBM(nv, nh, rngs=nnx.Rngs(0))
    trainer = hn.Trainer(rbm, optax.adam(1e-3), negative=negative, progress=False)
    graphdef, state = nnx.split((trainer.model, trainer.optimizer))
    leaves, treedef = jax.tree.flatten(state)
    data = jnp.zeros((3 * batch, nv), jnp.int8)
    hlo = (
        trainer_module._train_chunk.lower(
            graphdef,
            treedef,
            negative,
            None,
            batch,
            False,  # centered
            leaves,
            trainer.negative_state,
            trainer.key,
            data,
            jnp.arange(3 * batch, dtype=jnp.int32),
            jnp.zeros(3, jnp.float32),
            jnp.int32(0),
            jnp.int32(0),
            jnp.int32(1),
        )  # fmt: skip
        .compile()
        .as_text()
    )
    shapes = {f"f32[{a},{b}]" for a, b in ((batch, nh), (batch, nv), (nv, nh), (nh, nv))}
    return sum(1 for line in hlo.splitlines() if " dot(" in line and any(s in line for s in shapes))


@pytest.mark.parametrize("negative", [hn.CD(1), hn.PCD(20, 1)], ids=["cd1", "pcd1"])
def test_an_rbm_step_makes_five_matrix_products(negative):
    """h|v_data, v|h, h|v_model and the two outer products: the hidden logits of
    the data and of the negatives are shared between sampling and gradient."""
    assert large_products(negative) == 5


def test_rbm_closed_form_gradient_equals_autodiff():
    model = small_rbm(7, nv=6, nh=4)
    g = np.random.default_rng(8)
    data = jnp.asarray(g.integers(0, 2, size=(10, 6)), jnp.int8)
    negatives = jnp.asarray(g.integers(0, 2, size=(14, 6)), jnp.int8)
    loss, grads = model.contrastive_gradient(data, negatives)
    want_loss, want = nnx.value_and_grad(
        lambda m: hn.training.contrastive_loss(m, data, negatives)
    )(model)
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-5, abs=1e-5)
    got = dict(nnx.to_flat_state(grads))
    for k, v in nnx.to_flat_state(want):
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(v), rtol=1e-5, atol=1e-6)

    class OwnFreeEnergy(hn.RBM):
        def free_energy(self, v):
            return 2.0 * super().free_energy(v)

    other = OwnFreeEnergy(6, 4, rngs=nnx.Rngs(0))
    assert other.contrastive_gradient(data, negatives) is None, "autodiff for a changed energy"


def test_rbm_softplus_from_sigmoid_is_accurate():
    from hamon_nnx.models.rbm import _softplus_sum

    z = jnp.linspace(-40.0, 40.0, 8001, dtype=jnp.float32).reshape(-1, 1)
    got = np.asarray(_softplus_sum(z, jax.nn.sigmoid(z)), np.float64)
    want = np.logaddexp(0.0, np.asarray(z[:, 0], np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
