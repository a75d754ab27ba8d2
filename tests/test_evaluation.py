"""The Trainer's evaluation: its budgeted schedule, the online log Z, model selection."""

import math
import warnings

import numpy as np
import optax
import pytest
from flax import nnx

import hamon_nnx as hn
from hamon_nnx.training import evaluation
from hamon_nnx.training.trajectory import TrajectoryAIS


def bars(n=4, copies=10):
    return np.tile(hn.data.bars_and_stripes(n), (copies, 1))


# -- the schedule --------------------------------------------------------------
@pytest.mark.parametrize("steps_per_epoch", [1, 7, 44])
def test_auto_schedule_keeps_evaluation_within_its_budget(steps_per_epoch):
    """Hand loop or one long fit: evaluation work never exceeds ~10% of training's."""
    period = 1000.0  # BUDGET evaluations' work, in steps
    for one_call in (False, True):
        evaluated, epochs = [], 5000 // steps_per_epoch
        for e in range(1, epochs + 1):
            start, end = (0, epochs) if one_call else (e - 1, e)
            steps = ((e - 1) * steps_per_epoch, e * steps_per_epoch)
            if evaluation.due("auto", e, start, end, steps, period):
                evaluated.append(e)
        for i, e in enumerate(evaluated[: len(evaluated) - one_call]):
            share = (i + 1) * period / evaluation.BUDGET / (e * steps_per_epoch)
            assert share <= 1 / evaluation.BUDGET + 1e-9, (e, share)
        assert evaluated[0] * steps_per_epoch >= period
        assert len(evaluated) <= math.log2(epochs * steps_per_epoch / period) + 1 + one_call
        assert evaluated[-1] == epochs or not one_call, "a long fit ends with an evaluation"


def test_eval_every_is_checked():
    rbm = hn.RBM(4, 2, rngs=nnx.Rngs(0))
    for bad in (-1, 1.5, "often", True):
        with pytest.raises(ValueError, match="eval_every"):
            hn.Trainer(rbm, optax.sgd(0.1), eval_every=bad)
    with pytest.raises(ValueError, match="metrics"):
        hn.Trainer(rbm, optax.sgd(0.1), metrics=("likelihood",))


def test_default_evaluations_follow_the_schedule_and_are_cheap_for_large_models():
    small = hn.Trainer(hn.RBM(16, 4, rngs=nnx.Rngs(0)), optax.adam(1e-2), progress=False)
    history = small.fit(bars(), epochs=20, batch_size=30)
    assert history["eval_epoch"][-1] == 20
    assert 1 <= len(history["eval_epoch"]) <= 8
    assert {"train_log_likelihood", "train_pseudo_log_likelihood"} <= set(history)
    large = hn.Trainer(hn.RBM(30, 30, rngs=nnx.Rngs(0)), optax.adam(1e-2), progress=False)
    assert large.log_likelihood == "none", "the online log Z is asked for, not a default"
    assert large.metrics == ("log_likelihood", "reconstruction_error")


# -- the online log Z ----------------------------------------------------------
ADAM = optax.adam(2e-2)  # one optimizer object: the trainers share their compiled step


def online_trainer(seed, **kw):
    rbm = hn.RBM(16, 6, rngs=nnx.Rngs(seed), init_scale=0.1)
    rbm.init_visible_bias(bars())
    online = TrajectoryAIS(n_particles=128, every=2, n_betas=100)
    return hn.Trainer(
        rbm, ADAM, negative=hn.PCD(30, 1), log_likelihood="online", online=online,
        metrics=("log_likelihood",), seed=seed, progress=False, **kw,
    )  # fmt: skip


def test_online_log_z_is_calibrated_against_exact_log_z():
    """z-scores of the trajectory-AIS log Z along real training runs, one per seed."""
    z = []
    for seed in range(16):
        trainer = online_trainer(seed, eval_every=8)
        trainer.fit(bars(), epochs=8, batch_size=30)
        log_z, stderr = trainer.log_partition()
        z.append((log_z - hn.exact.log_partition(trainer.model)) / stderr)
        assert trainer.online_state.n_updates > 20, "the particles followed many steps"
    z = np.array(z)
    assert abs(z.mean()) < 3 / math.sqrt(len(z)) + 0.25, z
    assert 0.45 < z.std() < 1.7, z


def test_online_log_z_warns_when_its_weights_collapse():
    """A model that moves faster than the particles follow gets a warning, not a silent bias."""
    calm = online_trainer(0, eval_every=8)
    calm.fit(bars(), epochs=8, batch_size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calm.log_partition()
    rbm = hn.RBM(16, 6, rngs=nnx.Rngs(0), init_scale=0.1)
    fast = hn.Trainer(
        rbm, optax.adam(0.2), negative=hn.PCD(30, 1), log_likelihood="online",
        online=TrajectoryAIS(n_particles=128, every=8, n_betas=100), metrics=("log_likelihood",),
        eval_every=8, progress=False,
    )  # fmt: skip
    with pytest.warns(UserWarning, match="online log Z is unreliable"):
        fast.fit(bars(), epochs=8, batch_size=30)
    assert float(fast.online_state.min_ess) < 0.1


@pytest.mark.slow
def test_online_log_z_agrees_with_nrpt_on_a_model_too_large_to_enumerate():
    rbm = hn.RBM(36, 30, rngs=nnx.Rngs(0), init_scale=0.1)
    data = np.tile(hn.data.bars_and_stripes(6), (4, 1))
    rbm.init_visible_bias(data)
    trainer = hn.Trainer(rbm, optax.adam(1e-2), negative=hn.PCD(64, 1), progress=False,
                         log_likelihood="online")  # fmt: skip
    history = trainer.fit(data, epochs=10, batch_size=32)
    log_z, stderr = trainer.log_partition()
    assert history["log_z"][-1] == log_z
    import jax

    nrpt, nrpt_se = hn.training.estimated_log_partition(
        trainer.model, jax.random.key(1), 500, max_rounds=128
    )
    assert abs(log_z - nrpt) < 3 * math.hypot(stderr, nrpt_se), (log_z, stderr, nrpt, nrpt_se)


def test_online_state_resumes_exactly(tmp_path):
    def crash(trainer, epoch, logs):
        if epoch == 3:
            raise KeyboardInterrupt

    full = online_trainer(0, eval_every=2)
    full.fit(bars(), epochs=4, batch_size=30)
    first = online_trainer(0, eval_every=2, checkpoint_dir=tmp_path, checkpoint_every=10,
                           callbacks=[crash])  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        first.fit(bars(), epochs=4, batch_size=30)
    again = online_trainer(0, eval_every=2, checkpoint_dir=tmp_path, checkpoint_every=10)
    again.fit(bars(), epochs=4, batch_size=30, resume=True)
    timed = "compile_seconds"  # the one measurement in a history
    assert {k: v for k, v in again.history.items() if k != timed} == {
        k: v for k, v in full.history.items() if k != timed
    }
    assert len(again.history[timed]) == len(full.history[timed]) == 4
    np.testing.assert_array_equal(again.online_state.v, full.online_state.v)


# -- model selection -----------------------------------------------------------
def test_early_stopping_and_keep_best(tmp_path):
    rbm = hn.RBM(16, 6, rngs=nnx.Rngs(0))
    data = bars()
    # a learning rate that overshoots: the log-likelihood peaks, then falls
    trainer = hn.Trainer(rbm, optax.sgd(3.0), negative=hn.CD(1), eval_every=1, patience=3,
                         keep_best=True, checkpoint_dir=tmp_path, progress=False)  # fmt: skip
    history = trainer.fit(data, epochs=200, batch_size=30, eval_data=data[:60])
    ll = history["eval_log_likelihood"]
    best = int(np.argmax(ll))
    assert trainer.stopped and len(ll) == best + 4, "stops 3 evaluations after the best"
    assert trainer.epoch < 200
    with pytest.warns(UserWarning, match="early stopping"):
        trainer.fit(data, epochs=300, batch_size=30)
    assert trainer.restore_best() == history["eval_epoch"][best]
    assert hn.training.log_likelihood(rbm, data[:60], hn.exact.log_partition(rbm)) == pytest.approx(
        ll[best], abs=1e-9
    )
    saved = hn.load(tmp_path / "best")
    np.testing.assert_array_equal(saved.W[...], rbm.W[...])


def test_selection_needs_a_logged_metric():
    trainer = hn.Trainer(hn.RBM(16, 4, rngs=nnx.Rngs(0)), optax.sgd(0.1), eval_every=1,
                         patience=2, monitor="eval_accuracy", progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="eval_accuracy"):
        trainer.fit(bars(), epochs=2, batch_size=30)


def test_centered_training_is_checked_and_trains():
    with pytest.raises(ValueError, match="centered"):
        hn.Trainer(hn.IsingModel.lattice((4, 4)), optax.sgd(0.1), centered=True)
    rbm = hn.RBM(16, 6, rngs=nnx.Rngs(0))
    start = hn.training.exact_log_likelihood(rbm, bars())
    trainer = hn.Trainer(rbm, optax.sgd(0.5), negative=hn.CD(1), centered=True, eval_every=0,
                         progress=False)  # fmt: skip
    trainer.fit(bars(), epochs=20, batch_size=30)
    assert hn.training.exact_log_likelihood(rbm, bars()) > start + 1.0
