"""`hn.Trainer`: contrastive training of any model with optax.

Training runs in compiled chunks: one call of `_train_chunk` runs up to a
whole epoch of optimisation steps in a `lax.while_loop` on the device (the
batch gathered there from the epoch's permutation, the model and optimizer
split once with `nnx.split` and merged at the chunk's end); Python acts only
between chunks, at the boundaries where something must happen on the host
(evaluation, checkpoints, callbacks, ladder adaptation, the progress bar).
The step count of a chunk is traced, so no chunk length retraces, and every
step runs the same compiled body, so the result does not depend on where
the chunks end.

Data order is a pure function of (seed, epoch) and every random draw of step
t comes from `fold_in(key, t)`, so a run is reproducible step for step.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .. import exact
from ..core import compilation, tempering
from ..core import device as device_lib
from ..models.base import EnergyModel
from ..sampling import _check_count
from . import evaluation
from . import metrics as metric_lib
from .checkpoint import save as save_model
from .losses import check_data, contrastive_loss, n_data_variables
from .negative import CD, PCD, ExactNegative, NRPTNegative, NRPTNegativeState
from .trajectory import TrajectoryAIS, TrajectoryState

# Incremented each time the training program is traced (tests count retraces).
TRACE_COUNT = 0


class TrainingDiverged(RuntimeError):
    """The loss or a parameter became NaN or inf; training stopped."""


def _one_step(graphdef, negative, chain_sharding, centered, state, negative_state, key, batch):
    """One optimisation step on plain pytrees: (state, negative_state, loss, finite)."""
    model, optimizer = nnx.merge(graphdef, state)
    batch = device_lib.constrain_chains(batch, chain_sharding)
    negatives, negative_state = negative.sample(model, key, negative_state, batch)
    # sampling runs sharded; the gradient sums the batch in one order on every
    # device, so sharded training gives the same parameters bit for bit
    negatives, batch = device_lib.replicate_within((negatives, batch), chain_sharding)
    loss, grads = _loss_and_gradient(model, negative, batch, negatives, centered)
    if centered:  # the optimizer steps in centered coordinates; map its step back
        offsets, W_before = model.centering_offsets(batch), model.W[...]
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int counters and floats
        optimizer.update(model, grads)
    if centered:
        model.uncenter(W_before, offsets)  # pyright: ignore[reportPossiblyUnboundVariable]
    finite = jnp.isfinite(loss)
    for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)):
        # one max-reduction: NaN propagates through max, inf stays inf
        finite = finite & jnp.isfinite(jnp.max(jnp.abs(leaf)))
    return nnx.state((model, optimizer)), negative_state, loss, finite


def _loss_and_gradient(model, negative, batch, negatives, centered=False):
    """The negative phase's own loss, the model's closed-form gradient, or autodiff.

    `centered` asks the model's closed-form gradient for its centered form
    (the Trainer checked at construction that the model has one).
    """
    loss_fn = getattr(negative, "loss", None)
    if loss_fn is None:
        closed_form = getattr(model, "contrastive_gradient", None)
        if centered:
            assert closed_form is not None  # the Trainer checked it at construction
            return closed_form(batch, negatives, centered=True)
        result = None if closed_form is None else closed_form(batch, negatives)
        if result is not None:
            return result
        loss_fn = contrastive_loss
    return nnx.value_and_grad(lambda m: loss_fn(m, batch, negatives))(model)


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _train_chunk(
    graphdef, treedef, negative, chain_sharding, batch_size, centered, leaves, negative_state,
    key, data, order, losses, step, start, n_steps,
):  # fmt: skip
    """Steps `start, ..., start + n_steps - 1` of an epoch, stopping after a non-finite one.

    Args:
        graphdef: `nnx.split((model, optimizer))`'s graph (static).
        treedef: the structure of the split state (static).
        negative, chain_sharding, batch_size, centered: static settings.
        leaves: the (model, optimizer) state's arrays: plain arrays pass in and
            out of the compiled call faster than `nnx.Variable`s.
        negative_state: the negative phase's state.
        key: the run's key; step t draws from `fold_in(key, t)`.
        data: (n, n_data) int8 training data on the device.
        order: (n,) int32, the epoch's permutation of the data.
        losses: (steps_per_epoch,) float32 losses of the epoch so far.
        step: the global index of step `start` of this epoch.
        start, n_steps: traced: the chunk's first step in the epoch, its length.

    Returns:
        (leaves, negative_state, losses, steps run, finite): steps run counts
        the non-finite step that stopped the chunk, if any.
    """
    global TRACE_COUNT
    TRACE_COUNT += 1

    def body(carry):
        state, negative_state, losses, done, _ = carry
        i = start + done
        rows = jax.lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)
        state, negative_state, loss, finite = _one_step(
            graphdef, negative, chain_sharding, centered, state, negative_state,
            jax.random.fold_in(key, step + done), data[rows],
        )  # fmt: skip
        return state, negative_state, losses.at[i].set(loss), done + 1, finite

    def more(carry):
        return (carry[3] < n_steps) & carry[4]

    state = jax.tree.unflatten(treedef, leaves)
    carry = (state, negative_state, losses, jnp.int32(0), jnp.bool_(True))
    state, negative_state, losses, ran, finite = jax.lax.while_loop(more, body, carry)
    return jax.tree.leaves(state), negative_state, losses, ran, finite


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The data permutation of an epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def place_training(
    placement: device_lib.Placement, model, optimizer, negative_state, batch_size: int
):
    """Put a training run on its placement; returns the placed negative-phase state.

    The model's and optimizer's arrays are replicated (updated in place); the
    negative-phase chains are split over the devices like the data batch:
    an `NRPTState` (or a NamedTuple holding one, with any leading axes of
    independent ladders) shards its ladder-slot axis, a bare 2-D array
    (persistent chains, (C, n)) its first axis; scalars and statistics are
    replicated. Cheap when everything is already in place.

    Raises:
        ValueError: the batch size or the negative chains do not split evenly
            over the devices.
    """
    placement.check_chains(int(batch_size), "batch_size")
    if placement.device is None and placement.mesh is None:
        return negative_state
    for obj in (model, optimizer):
        nnx.update(obj, placement.replicate(nnx.state(obj)))

    def place(node):
        if isinstance(node, tempering.NRPTState):
            slots = node.x.ndim - 2  # (..., N, n): leading axes are independent ladders
            placement.check_chains(int(node.x.shape[slots]), "the negative phase's n_chains")
            rest = placement.replicate(node._replace(x=None))
            return rest._replace(x=placement.shard_chains(node.x, axis=slots))
        if hasattr(node, "shape") and len(node.shape) == 2:
            placement.check_chains(int(node.shape[0]), "the negative phase's n_chains")
            return placement.shard_chains(node)
        return placement.replicate(node)

    return jax.tree.map(place, negative_state, is_leaf=lambda n: isinstance(n, tempering.NRPTState))


def _split_base(state: TrajectoryState) -> dict:
    """The online state as a dict with its float64 `base` as its two uint32 halves.

    Checkpoints restore arrays through JAX, which has no 64-bit types unless
    x64 is on; the bits travel exactly.
    """
    return {**state._asdict(), "base": np.array([state.base], np.float64).view(np.uint32)}


LOG_LIKELIHOOD_MODES = ("auto", "exact", "online", "estimate", "none")
COLLAPSED_ESS = 0.1  # the online weights' ESS fraction below which one update made them unreliable
METRICS = ("log_likelihood", "pseudo_log_likelihood", "reconstruction_error")


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        return None
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)


class Trainer:
    """Trains a model's `nnx.Param`s on data by contrastive divergence.

    Args:
        model: any hamon-nnx model (updated in place).
        optimizer: an optax GradientTransformation, e.g. `optax.adam(1e-3)`.
        negative: the negative phase: `hn.CD(k)`, `hn.PCD(n_chains, k)` or
            `hn.NRPTNegative(...)` (default PCD with 100 chains, k = 1).
        checkpoint_dir: folder for training checkpoints (model, optimizer,
            negative-phase state, key, step, epoch, history) written every
            `checkpoint_every` steps and at the end of `fit`, through Orbax's
            CheckpointManager keeping `max_to_keep`; `fit(..., resume=True)`
            continues from the latest one bit for bit.
        checkpoint_every: steps between checkpoints.
        max_to_keep: checkpoints kept on disk.
        seed: seeds the data order and every random draw.
        callbacks: callables `(trainer, epoch, logs) -> bool | None` after each
            epoch; True stops.
        step_callbacks: callables `(trainer, step, loss)` after each compiled
            call: after every step unless `steps_per_call` is set, then after
            every chunk with its last step and loss.
        eval_every: when to evaluate (log-likelihood, pseudo-likelihood,
            reconstruction): "auto" (default) at epochs 1, 2, 4, 8, ... and at
            the end of a `fit` call that ran at least half of the epochs done
            so far, so evaluation stays a small share of any run, a long
            `fit` or a loop of one-epoch calls alike; an integer k every k
            epochs; 0 never (the loss only). Decided from counts, never the
            clock: the same key gives the same history (all but
            `compile_seconds`, the seconds each epoch spent compiling: a
            measurement). Each evaluation's epoch is logged as `eval_epoch`.
        log_likelihood: how evaluations get log Z: "exact" (enumeration),
            "online" (trajectory AIS: particles carried along the training run
            with importance weights and resampling, updated every few steps at
            about a tenth of the training's sampling work; `log_z`,
            `*_log_likelihood_stderr` and `log_z_ess` logged; see
            `TrajectoryAIS` for where it lags), "estimate" (tuned NRPT
            stepping stone at each evaluation: accurate, expensive), "auto"
            (exact for models small enough to enumerate, else "none": the
            cheap metrics only) or "none" (skip it). log Z is computed once
            per evaluation and shared by train and eval data.
        metrics: "auto" (the log-likelihood, the pseudo-log-likelihood and, for
            models with hidden units, the reconstruction error for models
            small enough to enumerate; without the pseudo-likelihood, which
            costs a free energy per variable and value, for larger ones) or a
            tuple of names from "log_likelihood", "pseudo_log_likelihood",
            "reconstruction_error".
        online: the `TrajectoryAIS` settings of the online log Z (default
            256 particles; see `hamon_nnx.training.trajectory`).
        centered: train with the centered gradient (Melchior, Fischer and
            Wiskott 2016; RBMs): the same fixed points, better conditioned
            steps. Needs a model whose `contrastive_gradient` takes `centered`.
        patience: early stopping: stop `fit` after this many evaluations
            without a new best of the monitored metric (None: never).
        keep_best: keep the parameters of the best evaluation of the monitored
            metric (`restore_best()` puts them back; with a `checkpoint_dir`
            they are saved to `checkpoint_dir/best` by `hn.save`).
        monitor: the metric model selection watches (default
            "eval_log_likelihood" when `fit` gets eval data, else
            "train_log_likelihood"); higher is better.
        estimate_samples: NRPT rounds of the log Z estimate after tuning.
        progress: show a progress bar with the current loss.
        device: where to train, resolved at the first `fit` and reused: "auto",
            "cpu", "gpu", a `jax.Device`, None, or several devices (a list or
            `hn.chain_mesh()`): the data batch and the negative chains are
            then sharded (batch size and chain count multiples of the device
            count), with the same parameters as on one device.
        steps_per_call: the most optimisation steps one compiled call runs
            (None: chosen from the boundaries where the host must act: epoch
            ends, checkpoints, ladder adaptation, step callbacks, progress-bar
            updates at least 256 steps apart). Any value gives the same parameters
            bit for bit; larger ones dispatch less.

    Speed: each compiled call runs many steps on the device, so a small model
    trains at the speed of its arithmetic, not of Python. Training by hand one
    epoch at a time costs one compiled call per epoch:

        for _ in range(10):
            trainer.fit(data, epochs=trainer.epoch + 1, batch_size=32)

    Weight decay and momentum come from optax, e.g.
    `optax.chain(optax.add_decayed_weights(1e-4), optax.adam(1e-3))`.

    Example:
        >>> import optax, numpy as np, hamon_nnx as hn
        >>> from flax import nnx
        >>> rbm = hn.RBM(4, 2, rngs=nnx.Rngs(0))
        >>> trainer = hn.Trainer(rbm, optax.sgd(0.1), negative=hn.CD(1), progress=False)
        >>> history = trainer.fit(np.eye(4, dtype="int8"), epochs=2, batch_size=2)
        >>> len(history["loss"])
        2
    """

    def __init__(
        self,
        model: EnergyModel,
        optimizer: optax.GradientTransformation,
        *,
        negative: CD | PCD | NRPTNegative | ExactNegative | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 100,
        max_to_keep: int = 3,
        seed: int = 0,
        callbacks: Sequence[Callable] = (),
        step_callbacks: Sequence[Callable] = (),
        eval_every: int | str = "auto",
        log_likelihood: str = "auto",
        estimate_samples: int = 1000,
        progress: bool = True,
        device: Any = "auto",
        steps_per_call: int | None = None,
        metrics: str | Sequence[str] = "auto",
        online: TrajectoryAIS | None = None,
        centered: bool = False,
        patience: int | None = None,
        keep_best: bool = False,
        monitor: str | None = None,
    ):
        if not isinstance(model, EnergyModel):
            raise TypeError(f"model must be a hamon-nnx EnergyModel, got {type(model).__name__}")
        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(
                "optimizer must be an optax GradientTransformation, e.g. optax.adam(1e-3)"
            )
        self.model = model
        self.tx = optimizer
        self.optimizer = nnx.Optimizer(model, optimizer, wrt=nnx.Param)
        self.negative = PCD() if negative is None else negative
        self._init_checkpoints(checkpoint_dir, checkpoint_every, max_to_keep)
        self.seed = int(seed)
        init_key, self.key = jax.random.split(jax.random.key(self.seed))
        self.callbacks = tuple(callbacks)
        self.step_callbacks = tuple(step_callbacks)
        self._init_evaluation(negative, eval_every, log_likelihood, estimate_samples)
        self._init_metrics(metrics, online)
        self._init_selection(centered, patience, keep_best, monitor)
        self.progress = progress
        self._init_steps_per_call(steps_per_call)
        self._data_cache = None  # (host data, device copy) of the last fit
        self._split = None  # (graphdef, treedef, leaves) of (model, optimizer) while fit runs
        device_lib.check(device)
        self.device = device
        self.placement = None  # resolved at the first fit, then reused
        self.step = 0
        self.epoch = 0
        self._epoch_start_step = 0
        self._fit_start = 0  # epochs done when the current fit call began
        self._eval_period = 1.0  # evaluation budget in steps, set by each fit
        self._epoch_losses: list[float] = []
        self.negative_state = self.negative.init(model, init_key)
        self.history: dict[str, list[float]] = {}

    def _init_checkpoints(self, checkpoint_dir, checkpoint_every, max_to_keep) -> None:
        """Check and store the checkpoint settings (`__init__`)."""
        self.checkpoint_dir = None if checkpoint_dir is None else os.path.abspath(checkpoint_dir)
        self.checkpoint_every = _check_count("checkpoint_every", checkpoint_every, 1)
        self.max_to_keep = _check_count("max_to_keep", max_to_keep, 1)
        self._manager = None

    def _init_evaluation(self, negative, eval_every, log_likelihood, estimate_samples) -> None:
        """Check and store the evaluation settings (`__init__`; `negative` as passed)."""
        self.eval_every = evaluation.check_eval_every(eval_every)
        if log_likelihood not in LOG_LIKELIHOOD_MODES:
            raise ValueError(
                f"log_likelihood must be one of {LOG_LIKELIHOOD_MODES}, got {log_likelihood!r}"
            )
        if log_likelihood == "exact":
            exact.check_enumerable(self.model, "log_likelihood='exact' (use 'estimate')")
        if isinstance(negative, ExactNegative):
            exact.check_enumerable(self.model, "ExactNegative (use PCD or NRPTNegative)")
        self.log_likelihood = log_likelihood
        if isinstance(estimate_samples, bool) or int(estimate_samples) != estimate_samples:
            raise ValueError(f"estimate_samples must be an integer, got {estimate_samples!r}")
        if estimate_samples < 100:
            raise ValueError(f"estimate_samples must be >= 100, got {estimate_samples}")
        self.estimate_samples = int(estimate_samples)
        # evaluation draws its own randomness: metrics never touch the training stream
        self._eval_key = jax.random.fold_in(jax.random.key(self.seed), 1)
        self._online_key = jax.random.fold_in(jax.random.key(self.seed), 2)

    def _init_metrics(self, metrics, online) -> None:
        """Check and store the metrics and the online estimator's settings (`__init__`)."""
        small = exact.can_enumerate(self.model)
        if metrics == "auto":
            metrics = METRICS if small else ("log_likelihood", "reconstruction_error")
        if isinstance(metrics, str) or not all(m in METRICS for m in metrics):
            raise ValueError(f"metrics must be 'auto' or a tuple of names from {METRICS}, got "
                             f"{metrics!r}")  # fmt: skip
        if not hasattr(self.model, "hidden_logits"):
            metrics = tuple(m for m in metrics if m != "reconstruction_error")
        self.metrics = tuple(metrics)
        if online is not None and not isinstance(online, TrajectoryAIS):
            raise TypeError(f"online must be a TrajectoryAIS, got {type(online).__name__}")
        self._asked_online = self.log_likelihood == "online"
        if self.log_likelihood == "auto":
            self.log_likelihood = "exact" if small else "none"
        self.online = None
        wanted = online is not None or self.eval_every != 0 or self._asked_online
        if self.log_likelihood == "online" and "log_likelihood" in self.metrics and wanted:
            self.online = TrajectoryAIS() if online is None else online
        self.online_state = None
        self._warned_collapse = False
        self._online_step = -1  # the training step of the last online update

    def _init_selection(self, centered, patience, keep_best, monitor) -> None:
        """Check and store the centered-gradient and model-selection settings (`__init__`)."""
        self.centered = bool(centered)
        if self.centered:
            if not (exact.is_plain_rbm(self.model) or exact.is_categorical_rbm(self.model)):
                raise ValueError(
                    f"centered=True needs an RBM's closed-form gradient (hn.RBM, hn.CategoricalRBM); "
                    f"{type(self.model).__name__} has none"
                )
            if isinstance(self.negative, ExactNegative):
                raise ValueError("centered=True does not apply to ExactNegative")
        self.patience = None if patience is None else _check_count("patience", patience, 1)
        self.keep_best = bool(keep_best)
        if monitor is not None and not isinstance(monitor, str):
            raise ValueError(f"monitor must be a metric name, got {monitor!r}")
        self.monitor = monitor
        self.stopped = False  # set when early stopping ends a fit
        self._best = None  # (evaluation index, parameters as numpy) with keep_best

    def _init_steps_per_call(self, steps_per_call) -> None:
        """Check and store `steps_per_call` (`__init__`)."""
        if steps_per_call is not None and (
            isinstance(steps_per_call, bool) or int(steps_per_call) != steps_per_call
            or steps_per_call < 1
        ):  # fmt: skip
            raise ValueError(
                f"steps_per_call must be None or an integer >= 1, got {steps_per_call!r}"
            )
        self.steps_per_call = None if steps_per_call is None else int(steps_per_call)

    def _log(self, name: str, value: float) -> None:
        self.history.setdefault(name, []).append(float(value))

    def log_partition(self) -> tuple[float, float]:
        """log Z of the current model and its standard error (0 when exact).

        Exact by enumeration, online (trajectory AIS, carried to the current
        step first) or estimated by tuned NRPT, as `log_likelihood` says; an
        estimate's key is a function of (seed, step), so a resumed run logs
        the same numbers.
        """
        mode = self.log_likelihood
        if mode == "none":
            raise ValueError("this trainer has log_likelihood='none'")
        if mode == "online":
            if self.online is None:
                raise ValueError(
                    "this trainer carries no online log Z (eval_every=0 with log_likelihood="
                    "'auto' skips it): pass log_likelihood='online' or 'estimate'"
                )
            if self.online_state is None:
                raise ValueError("the online log Z starts with the first fit: call fit first")
            self._online_update()
            log_z, stderr, _ = self.online.estimate(self.online_state)
            self._warn_collapsed()
            return log_z, stderr
        self._sync()
        if mode == "exact":
            return float(exact.log_partition(self.model)), 0.0
        key = jax.random.fold_in(self._eval_key, self.step)
        return metric_lib.estimated_log_partition(
            self.model, key, self.estimate_samples, max_rounds=256
        )

    def evaluate(self, data, prefix: str, log_z: tuple[float, float] | None = None):
        """Metrics of the current model on data, as a dict named `{prefix}_...`.

        Args:
            data: (n, n_data) vectors.
            prefix: name prefix, e.g. "train" or "eval".
            log_z: (log Z, stderr) to reuse; computed when None and the
                trainer's `log_likelihood` mode is not "none".

        Returns:
            the trainer's `metrics`: log-likelihood (with `_stderr` when
            estimated), pseudo-log-likelihood (on at most 1000 vectors),
            reconstruction error (models with hidden units, at most 1000
            vectors).
        """
        logs = {}
        subset = data[:1000]
        if self.log_likelihood != "none" and "log_likelihood" in self.metrics:
            log_z, stderr = self.log_partition() if log_z is None else log_z  # pyright: ignore[reportAssignmentType]
            self._sync()
            logs[f"{prefix}_log_likelihood"] = metric_lib.log_likelihood(self.model, data, log_z)  # pyright: ignore[reportArgumentType]
            if stderr > 0:
                logs[f"{prefix}_log_likelihood_stderr"] = stderr
        self._sync()
        if "pseudo_log_likelihood" in self.metrics:
            logs[f"{prefix}_pseudo_log_likelihood"] = metric_lib.pseudo_log_likelihood(
                self.model, subset
            )
        if "reconstruction_error" in self.metrics:
            logs[f"{prefix}_reconstruction_error"] = metric_lib.reconstruction_error(
                self.model, subset
            )
        return logs

    # -- online log Z and model selection --------------------------------------
    def _sweeps_per_step(self, batch_size: int) -> float:
        """Chain sweeps a training step samples (a count for the online update interval)."""
        negative = self.negative
        if isinstance(negative, CD):
            return batch_size * negative.k
        if isinstance(negative, PCD):
            return negative.n_chains * negative.k
        if isinstance(negative, NRPTNegative):
            return negative.n_betas * negative.n_ladders * negative.n_rounds * negative.n_explore
        return float(batch_size)

    def _step_work(self, batch_size: int) -> float:
        """A training step's work in free energies: batch and gradient, 3 per chain sweep."""
        return 2.0 * batch_size + 3.0 * self._sweeps_per_step(batch_size)

    def _evaluation_work(self, n_train: int, n_eval: int) -> float:
        """One evaluation's work in free energies (see `training.evaluation`)."""
        work = 0.0
        if "log_likelihood" in self.metrics and self.log_likelihood != "none":
            work += n_train + n_eval
            if self.log_likelihood == "exact":
                work += exact.enumeration_size(self.model)
            elif self.log_likelihood == "online" and self.online is not None:
                work += self.online.n_particles * (2 * self.online.n_sweeps + 3)
            elif self.log_likelihood == "estimate":  # tuning and sampling a ladder of ~16
                work += 16 * 3 * (self.estimate_samples + 4 * 256)
        subsets = min(n_train, 1000) + min(n_eval, 1000)
        if "pseudo_log_likelihood" in self.metrics:
            n_values = max(len(d) for d in self.model.variable_values())
            work += subsets * n_data_variables(self.model) * n_values
        if "reconstruction_error" in self.metrics:
            work += 2 * subsets
        return work

    def _start_online(self, train: np.ndarray, batch_size: int) -> None:
        """Start the online log Z's particles at the model as it is (first fit only)."""
        if self.online is None:
            return
        self._online_every = self.online.interval(self._sweeps_per_step(batch_size))
        if self.online_state is None:
            self._sync()
            key = jax.random.fold_in(self._online_key, 0)
            self.online_state = self.online.init(self.model, key, data=train)
            self._online_step = self.step

    def _online_update(self) -> None:
        """Carry the online particles to the current parameters (once per step)."""
        if self.online_state is None or self._online_step == self.step:
            return
        if self._split is None:
            graphdef, params = nnx.split(self.model)
        else:  # the model is split with its optimizer while fit runs
            graphdef, treedef, leaves = self._split
            graphdef, params = nnx.split(
                nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))[0]
            )
        key = jax.random.fold_in(jax.random.fold_in(self._online_key, 1), self.step)
        assert self.online is not None  # online_state exists only with an estimator
        self.online_state = self.online.update_split(graphdef, params, key, self.online_state)
        self._online_step = self.step

    def _warn_collapsed(self) -> None:
        """Warn once when an update left the online weights on a few particles."""
        assert self.online_state is not None  # called after an online update
        min_ess = float(self.online_state.min_ess)
        if min_ess < COLLAPSED_ESS and not self._warned_collapse:
            self._warned_collapse = True
            warnings.warn(
                f"the online log Z is unreliable: one update left its weights an ESS of "
                f"{100 * min_ess:.1f}% of the particles (the model moved faster than they "
                "follow), which biases log Z low. Update more often with more sweeps "
                "(TrajectoryAIS(every=1, n_sweeps=...)), use more particles, a smaller "
                "learning rate, or log_likelihood='estimate'",
                stacklevel=3,
            )

    def _select(self, has_eval_data: bool) -> bool:
        """Model selection after an evaluation: keep the best, stop early; True stops."""
        if self.patience is None and not self.keep_best:
            return False
        monitor = self.monitor or evaluation.default_monitor(self.history, has_eval_data)
        if monitor not in self.history:
            raise ValueError(
                f"model selection monitors {monitor!r}, which the evaluations do not log "
                f"(they log {sorted(self.history)}); set monitor= or the metrics"
            )
        best, since = evaluation.selection(self.history, monitor)
        if self.keep_best and since == 0 and best is not None:
            self._sync()
            self._best = (best, jax.tree.map(np.asarray, nnx.state(self.model)))
            if self.checkpoint_dir is not None:
                save_model(self.model, os.path.join(self.checkpoint_dir, "best"), overwrite=True)
        if self.patience is not None and since >= self.patience:
            self.stopped = True
        return self.stopped

    def restore_best(self) -> int:
        """Put the best evaluated parameters (`keep_best=True`) back; returns their epoch.

        Raises:
            ValueError: the trainer does not keep the best model or has not evaluated.
        """
        if not self.keep_best:
            raise ValueError("restore_best needs Trainer(..., keep_best=True)")
        self._sync()
        if self._best is None and self.checkpoint_dir is not None:
            path = os.path.join(self.checkpoint_dir, "best")
            if os.path.isdir(path):
                from .checkpoint import load as load_model

                best_model = load_model(path)
                self._best = (None, jax.tree.map(np.asarray, nnx.state(best_model)))
        if self._best is None:
            raise ValueError("no evaluation has run yet: nothing to restore")
        nnx.update(self.model, jax.tree.map(jnp.asarray, self._best[1]))
        monitor_best, _ = evaluation.selection(
            self.history, self.monitor or evaluation.default_monitor(self.history, True)
        )
        epochs = self.history.get("eval_epoch", [])
        index = self._best[0] if self._best[0] is not None else monitor_best
        return int(epochs[index]) if index is not None and index < len(epochs) else -1

    # -- checkpoints ---------------------------------------------------------
    # Saved over several processes, restored in any number: arrays spread over
    # the processes are written shard by shard (Orbax's multi-host support),
    # arrays every process holds whole are written as numpy by process 0, and a
    # restore reads every array whole into each process; `fit` puts them back
    # on its own mesh.
    def _checkpoint_manager(self):
        if self.checkpoint_dir is None:
            return None
        if self._manager is None:
            import orbax.checkpoint as ocp

            options = ocp.CheckpointManagerOptions(
                max_to_keep=self.max_to_keep, enable_async_checkpointing=False
            )
            self._manager = ocp.CheckpointManager(self.checkpoint_dir, options=options)
        return self._manager

    def _training_state(self) -> dict:
        return {
            "model": nnx.to_pure_dict(nnx.state(self.model)),
            "optimizer": nnx.to_pure_dict(nnx.state(self.optimizer)),
            "negative": self.negative_state,
            "key": jax.random.key_data(self.key),
            "counters": np.array(
                [self.step, self.epoch, self._epoch_start_step, self._fit_start, self._online_step],
                np.int64,
            ),
            "online": () if self.online_state is None else _split_base(self.online_state),
        }

    def _online_template(self) -> dict:
        """Arrays shaped like the online estimator's state, for restoring into."""
        assert self.online is not None  # called only with an estimator
        p, n = self.online.n_particles, n_data_variables(self.model)
        f32, i32 = np.float32, np.int32
        return {
            "v": np.zeros((p, n), np.int8), "log_w": np.zeros(p, f32),
            "log_w_c": np.zeros(p, f32), "f": np.zeros(p, f32), "banked": f32(0),
            "banked_c": f32(0), "banked_var": f32(0), "base": np.zeros(2, np.uint32),
            "n_updates": i32(0), "n_resamples": i32(0), "min_ess": f32(1),
        }  # fmt: skip

    def save_checkpoint(self) -> None:
        """Write a training checkpoint for the current step (no-op without a folder)."""
        manager = self._checkpoint_manager()
        if manager is None or self.step in manager.all_steps():
            return
        self._sync()
        import orbax.checkpoint as ocp

        meta = {
            "history": self.history,
            "epoch_losses": self._epoch_losses,
            "seed": self.seed,
            "negative": repr(self.negative),
            "stopped": self.stopped,
        }
        manager.save(
            self.step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_savable(self._training_state())),
                meta=ocp.args.JsonSave(meta),
            ),
        )
        manager.wait_until_finished()

    def restore_checkpoint(self) -> bool:
        """Load the latest checkpoint into this trainer; False when there is none.

        Raises:
            ValueError: the checkpoint is unreadable or does not match this
                model, optimizer and negative phase.
        """
        manager = self._checkpoint_manager()
        if manager is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        self._split = None  # the checkpoint replaces any state not merged yet
        step = manager.latest_step()
        if step is None:
            return False
        import orbax.checkpoint as ocp

        template = self._training_state()
        if self.online is not None and self.online_state is None:
            template["online"] = self._online_template()
        target = _restore_target(template)
        try:
            restored = manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as err:  # orbax raises several types for damaged files
            raise ValueError(
                f"corrupted or incompatible training checkpoint {self.checkpoint_dir}/{step}: {err}"
            ) from err
        state = restored["state"]
        model_state = nnx.state(self.model)
        nnx.replace_by_pure_dict(model_state, state["model"])
        nnx.update(self.model, model_state)
        opt_state = nnx.state(self.optimizer)
        nnx.replace_by_pure_dict(opt_state, state["optimizer"])
        nnx.update(self.optimizer, opt_state)
        self.negative_state = jax.tree.map(jnp.asarray, state["negative"])
        self.key = jax.random.wrap_key_data(jnp.asarray(state["key"]))
        counters = [int(v) for v in state["counters"]]
        self.step, self.epoch, self._epoch_start_step, self._fit_start, self._online_step = counters
        if self.online is not None:
            online = {k: np.asarray(v) for k, v in state["online"].items()}
            base = online.pop("base").astype(np.uint32).view(np.float64)[0]
            self.online_state = TrajectoryState(
                **{k: jnp.asarray(v) for k, v in online.items()}, base=base
            )
        meta = restored["meta"]
        self.stopped = bool(meta.get("stopped", False))
        self._epoch_losses = [float(v) for v in meta["epoch_losses"]]
        self.history = {k: list(v) for k, v in meta["history"].items()}
        return True

    def _chunk_length(self, steps_left: int, total_left: int) -> int:
        """Steps of the next compiled call: up to the next host-side boundary.

        Boundaries: the end of the epoch (always), a checkpoint, a ladder
        adaptation, every step when there are step callbacks (unless
        `steps_per_call` says otherwise), progress-bar updates (about 50 a
        run, at least 256 steps apart), and `steps_per_call`.
        """
        n = steps_left
        if self.steps_per_call is not None:
            n = min(n, self.steps_per_call)
        elif self.step_callbacks:
            n = 1
        every = [getattr(self.negative, "adapt_every", 0)]
        if self.online_state is not None:
            every.append(self._online_every)
        if self.checkpoint_dir is not None:
            every.append(self.checkpoint_every)
        for e in every:
            if e:
                n = min(n, e - self.step % e)
        if self.progress:  # about 50 bar updates, each after at least 256 steps
            n = min(n, max(256, math.ceil(total_left / 50)))
        return n

    def _device_data(self, train: np.ndarray):
        """The training data on the device, uploaded once for equal data."""
        cached = self._data_cache
        if (
            cached is not None
            and cached[0].shape == train.shape
            and np.array_equal(cached[0], train)
        ):
            return cached[1]
        assert self.placement is not None  # resolved by `_place`, which fit calls first
        placed = self.placement.replicate(jnp.asarray(train))
        self._data_cache = (train, placed)
        return placed

    def fit(
        self, train_data, epochs: int, batch_size: int, eval_data=None, resume: bool = False
    ) -> dict[str, list[float]]:
        """Train until `epochs` passes over the data are done; returns the history.

        Steps run in compiled chunks of up to an epoch (see `steps_per_call`);
        the result is the same whatever the chunk lengths. Calling `fit` once
        per epoch, `trainer.fit(data, epochs=trainer.epoch + 1, ...)`, costs one
        compiled call per epoch: the program, the data on the device and the
        persistent chains are reused between calls.

        Args:
            train_data: (n, n_data) vectors in the model's domain.
            epochs: total epochs of the run (a resumed run counts those done).
            batch_size: vectors per step; the last partial batch is dropped.
            eval_data: optional held-out vectors for the per-epoch metrics.
            resume: continue from the latest checkpoint in `checkpoint_dir`.

        Raises:
            TrainingDiverged: the loss or a parameter became NaN or inf.
        """
        train, evals, epochs, batch_size = self._check_fit_args(
            train_data, eval_data, epochs, batch_size
        )
        steps_per_epoch = len(train) // batch_size
        if not self._start_fit(epochs, resume):
            return self.history
        self._place(batch_size)
        assert self.placement is not None  # `_place` resolved it
        if self.placement.multi_process:  # every process must be given the same run
            self.placement.check_same({"train_data": train_data, "epochs, batch_size": (epochs,
                                       batch_size), "seed": self.seed,
                                       "model": nnx.state(self.model)}, "Trainer.fit's arguments")  # fmt: skip
        self._start_online(train, batch_size)
        self._eval_period = evaluation.period_in_steps(
            self._evaluation_work(len(train), 0 if evals is None else len(evals)),
            self._step_work(batch_size),
        )
        data = self._device_data(train)
        total = max(epochs - self.epoch, 0) * steps_per_epoch - (self.step - self._epoch_start_step)
        bar = _progress(max(epochs - self.epoch, 0) * steps_per_epoch, self.progress, "training")
        if bar is not None:
            bar.update(self.step - self._epoch_start_step)
        try:
            while self.epoch < epochs:
                with compilation.counting() as spent:
                    total = self._train_epoch(
                        data, len(train), batch_size, steps_per_epoch, total, bar
                    )
                    logs = self._epoch_logs(train, evals, epochs)
                # a measurement, not a result: the one history entry a key does not fix
                logs["compile_seconds"] = spent.seconds
                if self._end_epoch(logs, evals is not None):
                    break
            self.save_checkpoint()
        finally:
            self._sync()
            if bar is not None:
                bar.close()
        return self.history

    def _check_fit_args(self, train_data, eval_data, epochs, batch_size):
        """The checked (train, evals, epochs, batch_size) of a `fit` call."""
        train = check_data(self.model, train_data, "train_data")
        evals = None if eval_data is None else check_data(self.model, eval_data, "eval_data")
        epochs, size = _check_count("epochs", epochs, 1), _check_count("batch_size", batch_size, 1)
        if batch_size > len(train):  # the message shows batch_size as passed
            raise ValueError(f"batch_size {batch_size} exceeds the {len(train)} training vectors")
        return train, evals, epochs, size

    def _start_fit(self, epochs: int, resume: bool) -> bool:
        """Restore the latest checkpoint if resuming, else check that epochs are left to run.

        Returns False when early stopping has ended this trainer's run.
        """
        if resume and self.restore_checkpoint():
            pass  # the checkpoint holds where the interrupted fit call began
        elif epochs <= self.epoch:
            raise ValueError(
                f"this trainer has already run {self.epoch} epochs and fit(epochs=...) counts the "
                f"total: pass epochs > {self.epoch} to train more"
            )
        else:
            self._fit_start = self.epoch
        if self.stopped:
            warnings.warn(
                f"early stopping ended this run at epoch {self.epoch} (patience {self.patience}): "
                "fit does nothing; set trainer.stopped = False to train on",
                stacklevel=3,
            )
            return False
        return True

    def _place(self, batch_size: int) -> None:
        """Resolve the placement at the first fit and put the training state on it."""
        if self.placement is None:  # resolved once, so the compiled program stays warm
            chains = max(batch_size, getattr(self.negative, "n_chains", 0))
            self.placement = device_lib.resolve(
                self.device, n_chains=chains, n_variables=self.model.n_variables
            )
        self.negative_state = place_training(
            self.placement, self.model, self.optimizer, self.negative_state, batch_size
        )

    def _train_epoch(self, data, n: int, batch_size: int, steps_per_epoch: int, total, bar):
        """Run the steps left in the current epoch; returns the steps left in the run."""
        assert self.placement is not None  # resolved by `_place`, which fit calls first
        order = self.placement.replicate(
            jnp.asarray(epoch_order(n, self.seed, self.epoch), jnp.int32)
        )
        losses = np.zeros(steps_per_epoch, np.float32)
        done = self.step - self._epoch_start_step
        losses[: len(self._epoch_losses)] = self._epoch_losses
        while done < steps_per_epoch:
            chunk = self._chunk_length(steps_per_epoch - done, total)
            losses = self._run_chunk(data, order, losses, batch_size, done, chunk)
            done += chunk
            total -= chunk
            last = self._epoch_losses[-1]
            if bar is not None:
                bar.update(chunk)
                bar.set_postfix(epoch=self.epoch, loss=f"{last:.4f}")
            self._at_boundary(last)
        return total

    def _epoch_logs(self, train, evals, epochs: int) -> dict:
        """The finished epoch's mean loss and, when due, its evaluation metrics."""
        logs = {"loss": float(np.mean(self._epoch_losses)) if self._epoch_losses else math.nan}
        if self.callbacks:
            self._sync()
        steps = (self._epoch_start_step, self.step)
        if evaluation.due(
            self.eval_every, self.epoch + 1, self._fit_start, epochs, steps, self._eval_period
        ):
            logs["eval_epoch"] = self.epoch + 1
            log_z = None
            if self.log_likelihood != "none" and "log_likelihood" in self.metrics:
                log_z = self.log_partition()
                if self.online is not None:
                    logs["log_z"], logs["log_z_stderr"] = log_z
                    assert self.online_state is not None  # fit started the estimator
                    logs["log_z_ess"] = self.online.estimate(self.online_state)[2]
            logs.update(self.evaluate(train, "train", log_z))
            if evals is not None:
                logs.update(self.evaluate(evals, "eval", log_z))
        return logs

    def _end_epoch(self, logs: dict, has_eval_data: bool) -> bool:
        """Log the epoch, select, start the next one, run the callbacks; True stops."""
        for name, value in logs.items():
            self._log(name, value)
        stop = "eval_epoch" in logs and self._select(has_eval_data)
        self.epoch += 1
        self._epoch_start_step = self.step
        self._epoch_losses = []
        return any([cb(self, self.epoch, logs) for cb in self.callbacks]) or stop

    def _run_chunk(self, data, order, losses, batch_size: int, start: int, n: int):
        """Run `n` steps from step `start` of the epoch in one compiled call.

        The model and optimizer stay split between chunks (`_sync` merges
        them back before anything reads them); returns the epoch's losses.

        Raises:
            TrainingDiverged: a step gave a NaN/inf loss or parameter; the model
                then holds the values of that step.
        """
        if self._split is None:
            graphdef, state = nnx.split((self.model, self.optimizer))
            self._split = (graphdef, *jax.tree.flatten(state)[::-1])
        graphdef, treedef, leaves = self._split
        assert self.placement is not None  # resolved by `_place`, which fit calls first
        leaves, self.negative_state, losses, ran, finite = _train_chunk(
            graphdef, treedef, self.negative, self.placement.chain_sharding, batch_size,
            self.centered, leaves, self.negative_state, self.key, data, order, losses,
            np.int32(self.step), np.int32(start), np.int32(n),
        )  # fmt: skip
        self._split = (graphdef, treedef, leaves)
        losses, ran, finite = jax.device_get((losses, ran, finite))
        values = losses[start : start + ran].astype(np.float64)
        if not finite:
            self.step += int(ran) - 1
            self._sync()
            raise TrainingDiverged(
                f"loss or parameters became NaN/inf at epoch {self.epoch}, step {self.step} "
                f"(loss {values[-1]}); lower the learning rate. The model holds the diverged "
                "values; earlier checkpoints are untouched."
            )
        self.step += int(ran)
        self._epoch_losses.extend(values.tolist())
        return losses

    def _sync(self) -> None:
        """Merge the split training state back into the model and the optimizer."""
        if self._split is not None:
            _, treedef, leaves = self._split
            nnx.update((self.model, self.optimizer), jax.tree.unflatten(treedef, leaves))
            self._split = None

    def _at_boundary(self, loss: float) -> None:
        """Host-side work after a chunk: ladder adaptation, checkpoint, step callbacks."""
        adapt_every = getattr(self.negative, "adapt_every", 0)
        if adapt_every and self.step % adapt_every == 0:
            # only NRPTNegative adapts its ladder (has adapt_every)
            negative = cast(NRPTNegative, self.negative)
            self.negative_state = negative.adapt(cast(NRPTNegativeState, self.negative_state))
        if self.online_state is not None and self.step % self._online_every == 0:
            self._online_update()
        if self.step % self.checkpoint_every == 0:
            self.save_checkpoint()
        if self.step_callbacks:
            self._sync()
        for callback in self.step_callbacks:
            callback(self, self.step, loss)


def _savable(tree):
    """Arrays Orbax can write from several processes: a process-local jax.Array
    (held whole by every process) becomes numpy; global arrays stay."""
    if jax.process_count() == 1:
        return tree
    return jax.tree.map(
        lambda x: np.asarray(x) if isinstance(x, jax.Array) and x.is_fully_addressable else x, tree
    )


def _restore_target(template):
    """Shapes and dtypes to restore into, each array whole on every process."""
    if jax.process_count() == 1:
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    else:
        mesh = jax.sharding.Mesh(np.array(jax.devices()), ("all",))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype, sharding=sharding),
        template,
    )
