"""Training recipes: centered gradients, optax schedules, clipping, L1/L2, and their configs."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import hamon_nnx as hn
from hamon_nnx import config, runs
from hamon_nnx.models.rbm import _centered
from hamon_nnx.training.optimizers import (
    add_l1_penalty,
    interaction_mask,
    learning_rate_schedule,
    optimizer,
)

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


# -- centered gradient --------------------------------------------------------------------------
def centered_step(W, b, c, od, on, eta):
    """One plain gradient step on the contrastive loss of the centered energy
    E = -(o - mu)^T W (h - lam) - b'^T (o - mu) - c'^T (h - lam), mapped back.

    o are the visible vectors (one-hot for categorical units), flattened to
    (batch, n); mu, lam are the data batch's offsets. Autodiff through the
    centered free energy, independent of the closed form under test.
    """
    mu = od.mean(0)
    lam = jax.nn.sigmoid(od @ W + c).mean(0)
    b_c, c_c = b + W @ lam, c + W.T @ mu  # the same model, centered

    def free_energy(params, o):
        Wc, bc, cc = params
        x = o - mu
        return -x @ bc + x @ Wc @ lam + cc @ lam - jnp.sum(jax.nn.softplus(cc + x @ Wc), -1)

    def loss(params):
        return free_energy(params, od).mean() - free_energy(params, on).mean()

    gW, gb, gc = jax.grad(loss)((W, b_c, c_c))
    W1, b1c, c1c = W - eta * gW, b_c - eta * gb, c_c - eta * gc
    return W1, b1c - W1 @ lam, c1c - W1.T @ mu  # back to E = -o^T W h - b^T o - c^T h


def random_rbm(seed, nv=6, nh=4):
    g = np.random.default_rng(seed)
    W, b, c = 0.5 * g.normal(size=(nv, nh)), g.normal(size=nv), g.normal(size=nh)
    return hn.RBM.from_params(W, b, c), g


def grads_of(result):
    loss, grads = result
    return float(loss), {k: np.asarray(v) for k, v in nnx.to_pure_dict(grads).items()}


def test_centered_with_zero_offsets_is_the_plain_gradient():
    g = np.random.default_rng(0)
    gW, gb, gc = (jnp.asarray(g.normal(size=s), jnp.float32) for s in ((5, 3), (5,), (3,)))
    zW, zb, zc = _centered(gW, gb, gc, jnp.zeros(5, jnp.float32), jnp.zeros(3, jnp.float32))
    for got, want in ((zW, gW), (zb, gb), (zc, gc)):
        np.testing.assert_array_equal(got, want)
    # through the model: all-zero data (mu = 0) and hidden units that are off (lam ~ 1e-13)
    rbm, g = random_rbm(1)
    rbm.hidden_bias[...] = jnp.full(4, -30.0)
    data, negatives = np.zeros((8, 6), np.int8), g.integers(0, 2, (16, 6)).astype(np.int8)
    _, plain = grads_of(rbm.contrastive_gradient(data, negatives))
    _, centered = grads_of(rbm.contrastive_gradient(data, negatives, centered=True))
    for name in plain:
        np.testing.assert_allclose(centered[name], plain[name], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_centered_rbm_step_is_a_step_of_the_centered_model(seed):
    rbm, g = random_rbm(seed)
    data = g.integers(0, 2, (12, 6)).astype(np.int8)
    negatives = g.integers(0, 2, (20, 6)).astype(np.int8)
    loss, grads = grads_of(rbm.contrastive_gradient(data, negatives, centered=True))
    plain_loss, plain = grads_of(rbm.contrastive_gradient(data, negatives))
    assert loss == plain_loss  # centering reparametrises; the model and its loss are the same
    assert not np.allclose(grads["W"], plain["W"])  # offsets far from 0: a different step
    W, b, c = rbm.W[...], rbm.visible_bias[...], rbm.hidden_bias[...]
    eta = 0.5
    want = centered_step(W, b, c, jnp.float32(data), jnp.float32(negatives), eta)
    offsets = rbm.centering_offsets(data)  # of the model before the step
    rbm.W[...] = W - eta * grads["W"]
    rbm.visible_bias[...] = b - eta * grads["visible_bias"]
    rbm.hidden_bias[...] = c - eta * grads["hidden_bias"]
    rbm.uncenter(W, offsets)
    got = (rbm.W[...], rbm.visible_bias[...], rbm.hidden_bias[...])
    for name, x, y in zip(("W", "visible_bias", "hidden_bias"), got, want, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=name)


def test_centered_categorical_rbm_step_is_a_step_of_the_centered_model():
    g = np.random.default_rng(3)
    nv, q, nh = 4, 3, 5
    model = hn.CategoricalRBM.from_params(
        0.5 * g.normal(size=(nv, q, nh)), g.normal(size=(nv, q)), g.normal(size=nh)
    )
    data = g.integers(0, q, (10, nv)).astype(np.int8)
    negatives = g.integers(0, q, (14, nv)).astype(np.int8)
    loss, grads = grads_of(model.contrastive_gradient(data, negatives, centered=True))
    assert loss == grads_of(model.contrastive_gradient(data, negatives))[0]
    W, b = model._flat()
    c = model.hidden_bias[...]
    eta = 0.5
    want = centered_step(W, b, c, model.onehot(data), model.onehot(negatives), eta)
    W0, offsets = model.W[...], model.centering_offsets(data)
    model.W[...] = W0 - eta * grads["W"]
    model.visible_bias[...] = model.visible_bias[...] - eta * grads["visible_bias"]
    model.hidden_bias[...] = c - eta * grads["hidden_bias"]
    model.uncenter(W0, offsets)
    W1, b1 = model._flat()
    got = (W1, b1, model.hidden_bias[...])
    for name, x, y in zip(("W", "visible_bias", "hidden_bias"), got, want, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=name)


def test_centered_gradient_vanishes_where_the_plain_one_does():
    # the map from plain to centered gradients is invertible: the same fixed points
    rbm, g = random_rbm(4)
    data = g.integers(0, 2, (9, 6)).astype(np.int8)
    _, grads = grads_of(rbm.contrastive_gradient(data, data, centered=True))
    for value in grads.values():
        np.testing.assert_allclose(value, 0.0, atol=1e-6)


# -- optimizers: schedules ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "schedule, kwargs, expected",
    [
        (None, {}, {0: 0.1, 1000: 0.1}),
        ("constant", {"warmup_steps": 10}, {0: 0.0, 5: 0.05, 10: 0.1, 500: 0.1}),
        ("cosine", {"total_steps": 100}, {0: 0.1, 50: 0.05, 100: 0.0, 150: 0.0}),
        ("cosine", {"total_steps": 100, "end_fraction": 0.1}, {50: 0.055, 100: 0.01}),
        ("linear", {"total_steps": 100}, {0: 0.1, 25: 0.075, 100: 0.0, 200: 0.0}),
        ("exponential", {"total_steps": 100}, {0: 0.1, 50: 0.01, 100: 0.001, 300: 0.001}),
        (
            "warmup_cosine",
            {"warmup_steps": 10, "total_steps": 110},
            {0: 0.0, 5: 0.05, 10: 0.1, 60: 0.05, 110: 0.0},
        ),
        (
            "cosine",
            {"warmup_steps": 10, "total_steps": 110},
            {0: 0.0, 5: 0.05, 10: 0.1, 60: 0.05, 110: 0.0},
        ),
    ],
)
def test_schedule_learning_rates(schedule, kwargs, expected):
    lr = learning_rate_schedule(0.1, schedule, **kwargs)
    for step, want in expected.items():
        got = lr if isinstance(lr, float) else float(lr(step))
        assert math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-7), (step, got, want)


def sgd_updates(tx, grads, params, n):
    """The updates of n steps of `tx` for constant gradients, params held fixed."""
    state, out = tx.init(params), []
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int counters and floats
        for _ in range(n):
            updates, state = tx.update(grads, state, params)
            out.append(np.asarray(updates))
    return np.stack(out)


def test_optimizer_steps_follow_the_schedule():
    tx = optimizer("sgd", 0.1, schedule="warmup_cosine", warmup_steps=4, total_steps=20)
    ones = jnp.ones(3, jnp.float32)
    updates = sgd_updates(tx, ones, ones, 25)
    lr = learning_rate_schedule(0.1, "warmup_cosine", warmup_steps=4, total_steps=20)
    want = np.array([float(lr(t)) for t in range(25)])
    np.testing.assert_allclose(updates, -want[:, None] * np.ones(3), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name, cls", [("adam", optax.adam), ("sgd", optax.sgd)])
def test_defaults_are_the_plain_optax_optimizer(name, cls):
    params = {"W": jnp.ones((3, 2), jnp.float32), "b": jnp.zeros(3, jnp.float32)}
    grads = jax.tree.map(lambda p: jnp.linspace(-1, 2, p.size).reshape(p.shape), params)
    ours, theirs = optimizer(name, 0.01), cls(0.01)
    assert jax.tree.structure(ours.init(params)) == jax.tree.structure(theirs.init(params))
    with jax.numpy_dtype_promotion("standard"):
        a, _ = ours.update(grads, ours.init(params), params)
        b, _ = theirs.update(grads, theirs.init(params), params)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


# -- optimizers: clipping and penalties ---------------------------------------------------------
def test_clipping_bounds_the_update_norm():
    tx = optimizer("sgd", 1.0, clip_norm=2.0)
    params = {"W": jnp.zeros((4, 3), jnp.float32), "b": jnp.zeros(4, jnp.float32)}
    big = {"W": jnp.full((4, 3), 30.0), "b": jnp.full(4, -40.0)}
    small = {"W": jnp.full((4, 3), 0.1), "b": jnp.full(4, 0.1)}
    with jax.numpy_dtype_promotion("standard"):
        clipped, _ = tx.update(big, tx.init(params), params)
        kept, _ = tx.update(small, tx.init(params), params)
    assert math.isclose(float(optax.tree.norm(clipped)), 2.0, rel_tol=1e-6)
    ratio = np.asarray(clipped["W"])[0, 0] / np.asarray(clipped["b"])[0]
    assert math.isclose(ratio, 30.0 / -40.0, rel_tol=1e-6)  # clipped as one vector
    np.testing.assert_allclose(kept["W"], -small["W"], rtol=1e-7)


def minimise_quadratic(tx, target, n_steps):
    """Minimise 0.5 |w - target|^2 from w = 0 with `tx`."""
    w = jnp.zeros_like(target)
    state = tx.init(w)
    with jax.numpy_dtype_promotion("standard"):
        for _ in range(n_steps):
            updates, state = tx.update(w - target, state, w)
            w = optax.apply_updates(w, updates)
    return np.asarray(w)


def test_l2_pulls_the_optimum_toward_zero():
    target = jnp.array([3.0, -2.0, 0.5], jnp.float32)
    w = minimise_quadratic(optimizer("sgd", 0.1, l2=0.5, mask=None), target, 400)
    np.testing.assert_allclose(w, target / 1.5, rtol=1e-5)  # argmin 0.5|w-t|^2 + 0.25|w|^2


def test_l1_soft_thresholds_the_optimum():
    target = jnp.array([3.0, -2.0, 0.2], jnp.float32)
    lr, l1 = 0.01, 0.5
    w = minimise_quadratic(optimizer("sgd", lr, l1=l1, mask=None), target, 3000)
    np.testing.assert_allclose(w[:2], [2.5, -1.5], atol=1e-3)  # sign(t) max(|t| - l1, 0)
    assert abs(w[2]) <= lr * (l1 + 0.2 + 0.01)  # hovers within a step of 0


def test_penalties_are_decoupled_from_adam():
    # zero gradients: adam's direction is 0, so each step shrinks w by lr * l2 * w exactly;
    # a penalty before adam would be normalised to a step of about lr whatever l2
    tx = optimizer("adam", 0.5, l2=0.1, mask=None)
    w = jnp.array([1.0, -4.0], jnp.float32)
    updates = sgd_updates(tx, jnp.zeros(2, jnp.float32), w, 3)
    np.testing.assert_allclose(updates, -0.05 * np.stack([w] * 3), rtol=1e-6)


def test_penalties_spare_biases_by_default():
    rbm, _ = random_rbm(5)
    before = {k: np.asarray(v) for k, v in nnx.to_pure_dict(nnx.state(rbm, nnx.Param)).items()}
    opt = nnx.Optimizer(rbm, optimizer("adam", 0.1, l1=0.01, l2=0.01), wrt=nnx.Param)
    zeros = jax.tree.map(jnp.zeros_like, nnx.state(rbm, nnx.Param))
    with jax.numpy_dtype_promotion("standard"):
        opt.update(rbm, zeros)
    after = {k: np.asarray(v) for k, v in nnx.to_pure_dict(nnx.state(rbm, nnx.Param)).items()}
    assert np.all(np.abs(after["W"]) < np.abs(before["W"]))
    np.testing.assert_array_equal(after["visible_bias"], before["visible_bias"])
    np.testing.assert_array_equal(after["hidden_bias"], before["hidden_bias"])
    params = nnx.as_pure(nnx.state(hn.PottsModel.lattice((3, 3), q=3), nnx.Param))
    assert dict(interaction_mask(params)) == {"coupling": True, "field": False}


def test_l1_penalty_needs_params():
    tx = add_l1_penalty(0.1)
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(jnp.zeros(2), tx.init(jnp.zeros(2)))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"name": "adma"}, ValueError, "did you mean 'adam'"),
        ({"schedule": "cosin", "total_steps": 10}, ValueError, "did you mean 'cosine'"),
        ({"learning_rate": 0.0}, ValueError, r"learning_rate must be finite and in \(0, inf\)"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate must be finite"),
        ({"learning_rate": "fast"}, ValueError, "learning_rate must be a number"),
        ({"warmup_steps": -1}, ValueError, "warmup_steps must be an integer >= 0"),
        ({"warmup_steps": 2.5}, ValueError, "warmup_steps must be an integer"),
        ({"schedule": "cosine"}, ValueError, "needs total_steps"),
        ({"schedule": "linear", "warmup_steps": 10, "total_steps": 10}, ValueError, "exceed"),
        ({"schedule": "warmup_cosine", "total_steps": 10}, ValueError, "warmup_steps >= 1"),
        ({"schedule": "exponential", "total_steps": 9, "end_fraction": 0}, ValueError, "> 0"),
        ({"schedule": "cosine", "total_steps": 9, "end_fraction": 2}, ValueError, "end_fraction"),
        ({"total_steps": 0}, ValueError, "total_steps must be an integer >= 1"),
        ({"clip_norm": 0.0}, ValueError, r"clip_norm must be finite and in \(0"),
        ({"l1": -0.1}, ValueError, r"l1 must be finite and in \[0"),
        ({"l2": float("inf")}, ValueError, "l2 must be finite"),
        ({"momentum": 0.9}, TypeError, "'adam' got an unexpected keyword argument 'momentum'"),
        ({"name": "sgd", "momentun": 0.9}, TypeError, "did you mean 'momentum'"),
    ],
)
def test_bad_optimizer_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        optimizer(**kwargs)


def test_sgd_momentum_with_penalties_is_sgd_momentum_without_them_at_zero_decay():
    # the decoupled chain rebuilds optax.sgd's pieces: with a zero-strength L2 on no
    # parameter, the numbers are optax.sgd's
    tx = optimizer("sgd", 0.1, l2=0.5, mask=lambda p: jax.tree.map(lambda _: False, p),
                   momentum=0.9, nesterov=True)  # fmt: skip
    ref = optax.sgd(0.1, momentum=0.9, nesterov=True)
    target = jnp.array([1.0, -1.0], jnp.float32)
    np.testing.assert_allclose(
        minimise_quadratic(tx, target, 7), minimise_quadratic(ref, target, 7), rtol=1e-6
    )


# -- configs and runs ---------------------------------------------------------------------------
PLAIN = [p for p in CONFIGS if p.stem != "rbm-fashion-mnist-500"]  # that one uses the recipes


@pytest.mark.parametrize("path", PLAIN, ids=[p.stem for p in PLAIN])
def test_shipped_configs_build_the_plain_optimizer(path):
    t = config.load_config(path).training
    assert (t.schedule, t.clip_norm, t.l1, t.l2, t.centered) == ("none", None, 0.0, 0.0, False)
    assert (t.patience, t.keep_best) == (None, False)
    params = {"w": jnp.linspace(-1.0, 1.0, 5)}
    grads = {"w": jnp.linspace(2.0, -1.0, 5)}
    ours = runs.build_optimizer(t, steps_per_epoch=10)
    theirs = {"adam": optax.adam, "sgd": optax.sgd}[t.optimizer](t.learning_rate)
    assert jax.tree.structure(ours.init(params)) == jax.tree.structure(theirs.init(params))
    with jax.numpy_dtype_promotion("standard"):
        a, _ = ours.update(grads, ours.init(params), params)
        b, _ = theirs.update(grads, theirs.init(params), params)
    np.testing.assert_array_equal(a["w"], b["w"])


def test_build_optimizer_schedules_over_the_whole_run():
    cfg = config.from_dict(
        {"name": "x", "training": {"optimizer": "sgd", "learning_rate": 0.2, "epochs": 3,
                                   "schedule": "linear"}}
    )  # fmt: skip
    with pytest.raises(ValueError, match="needs steps_per_epoch"):
        runs.build_optimizer(cfg.training)
    tx = runs.build_optimizer(cfg.training, steps_per_epoch=5)  # 15 steps in all
    updates = sgd_updates(tx, jnp.ones(1, jnp.float32), jnp.ones(1, jnp.float32), 17)[:, 0]
    np.testing.assert_allclose(updates, -0.2 * np.maximum(1 - np.arange(17) / 15, 0), atol=1e-7)


RECIPES = {
    "schedule": "warmup_cosine", "warmup_steps": 2, "clip_norm": 5.0, "l1": 1e-4, "l2": 1e-3,
    "centered": True, "eval_every": "auto", "patience": 3, "keep_best": True,
}  # fmt: skip


def tiny_config(**training):
    return config.from_dict({
        "name": "tiny", "data": {"name": "bars_and_stripes", "size": 3},
        "model": {"n_hidden": 4},
        "training": {"epochs": 3, "batch_size": 4, "learning_rate": 0.05, **training},
    })  # fmt: skip


def test_build_trainer_passes_the_recipes():
    # needs Trainer(..., centered=, patience=, keep_best=)
    cfg = tiny_config(**RECIPES)
    data = runs.load_data(cfg)
    model = runs.build_model(cfg, data)
    trainer = runs.build_trainer(
        cfg, model, progress=False, steps_per_epoch=runs.steps_per_epoch(cfg, data)
    )
    assert trainer.centered is True and trainer.patience == 3 and trainer.keep_best is True
    assert trainer.eval_every == "auto"


def test_train_with_every_recipe(tmp_path):
    # needs Trainer(..., centered=, patience=, keep_best=) and Trainer.restore_best()
    lines = []
    result = runs.train(tiny_config(**RECIPES), output=tmp_path, progress=False, log=lines.append)
    selection = result.metadata["training"]["selection"]
    assert 1 <= selection["best_epoch"] <= selection["epochs_run"] <= 3
    assert result.metadata["config"]["training"]["eval_every"] == "auto"
    assert any("warmup_cosine schedule" in line and "centered" in line for line in lines)
    assert any("no validation split" in line for line in lines)  # selected on the test set
    assert np.isfinite(result.metrics["test_log_likelihood"]["value"])


def test_run_data_prefers_the_validation_split_for_selection():
    g = np.random.default_rng(0)
    x = g.integers(0, 2, (6, 4)).astype(np.int8)
    base = dict(train=x, test=x[:2], name="d", description="", encoding="binary", levels=2,
                image_shape=None)  # fmt: skip
    without = runs.RunData(**base)
    with_validation = runs.RunData(**base, validation=x[:3])
    assert without.selection() is without.test and "n_validation" not in without.metadata()
    assert with_validation.selection() is with_validation.validation
    assert with_validation.metadata()["n_validation"] == 3
