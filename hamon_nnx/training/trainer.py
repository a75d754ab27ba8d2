"""`hn.Trainer`: contrastive training of any model with optax.

One jitted step (compiled once per model structure, negative phase and
batch shape): draw negatives with the negative phase, differentiate the
contrastive loss, update the `nnx.Param`s through `nnx.Optimizer`. Data
order is a pure function of (seed, epoch) and every random draw of step t
comes from `fold_in(key, t)`, so a run is reproducible step for step.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .. import exact
from ..models.base import KINDS, SPIN, EnergyModel
from . import metrics as metric_lib
from .losses import contrastive_loss, n_data_variables
from .negative import PCD

# Incremented each time the training step is traced (tests count retraces).
TRACE_COUNT = 0


class TrainingDiverged(RuntimeError):
    """The loss or a parameter became NaN or inf; training stopped."""


@nnx.jit(static_argnums=(2,))
def _train_step(model, optimizer, negative, negative_state, key, batch):
    global TRACE_COUNT
    TRACE_COUNT += 1
    negatives, negative_state = negative.sample(model, key, negative_state, batch)
    loss_fn = getattr(negative, "loss", contrastive_loss)
    loss, grads = nnx.value_and_grad(lambda m: loss_fn(m, batch, negatives))(model)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int counters and floats
        optimizer.update(model, grads)
    finite = jnp.isfinite(loss)
    for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)):
        finite = finite & jnp.all(jnp.isfinite(leaf))
    return loss, finite, negative_state


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The data permutation of an epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def check_data(model: EnergyModel, data, name: str = "data") -> np.ndarray:
    """Data vectors (B, n_data) as int8, or a ValueError naming the bad rows."""
    arr = np.asarray(data)
    n_data = n_data_variables(model)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != n_data:
        raise ValueError(f"{name} must have shape (n_samples, {n_data}), got {np.shape(data)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        rows = np.flatnonzero(~np.all(np.isfinite(arr) & (arr == np.round(arr)), axis=1))
        raise ValueError(f"{name} rows {rows[:10].tolist()} hold non-integer values")
    kinds, qs = model.variable_kinds()
    kinds, qs = kinds[:n_data], qs[:n_data]
    spin = kinds == KINDS.index(SPIN)
    lo = np.where(spin, -1, 0)
    hi = np.where(spin, 1, np.where(kinds == KINDS.index("binary"), 1, qs - 1))
    bad = (arr < lo) | (arr > hi) | (spin & (arr == 0))
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} rows {rows[:10].tolist()} hold values outside the model's domain "
            f"(first: {arr[r, c]} at row {r}, column {c})"
        )
    return arr.astype(np.int8)


def _small_enough_for_exact(model) -> bool:
    if hasattr(model, "n_hidden"):
        return min(model.n_visible, model.n_hidden) <= 20
    return model.n_variables <= 20


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
        checkpoint_dir: reserved for training checkpoints.
        seed: seeds the data order and every random draw.
        callbacks: callables `(trainer, epoch, logs) -> bool | None`; True stops.
        progress: show a progress bar with the current loss.

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
        negative=None,
        checkpoint_dir=None,
        seed: int = 0,
        callbacks: Sequence[Callable] = (),
        progress: bool = True,
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
        self.checkpoint_dir = checkpoint_dir
        self.seed = int(seed)
        init_key, self.key = jax.random.split(jax.random.key(self.seed))
        self.callbacks = tuple(callbacks)
        self.progress = progress
        self.step = 0
        self.epoch = 0
        self.negative_state = self.negative.init(model, init_key)
        self.history: dict[str, list[float]] = {}
        self._log_z_cache = None

    def _log(self, name: str, value: float) -> None:
        self.history.setdefault(name, []).append(float(value))

    def evaluate(self, data, prefix: str) -> dict[str, float]:
        """Metrics of the current model on data: exact LL when small, PLL, reconstruction."""
        logs = {}
        subset = data[:1000]
        if _small_enough_for_exact(self.model):
            log_z = exact.log_partition(self.model)
            logs[f"{prefix}_log_likelihood"] = metric_lib.exact_log_likelihood(
                self.model, data, log_z
            )
        logs[f"{prefix}_pseudo_log_likelihood"] = metric_lib.pseudo_log_likelihood(
            self.model, subset
        )
        if hasattr(self.model, "hidden_logits"):
            logs[f"{prefix}_reconstruction_error"] = metric_lib.reconstruction_error(
                self.model, subset
            )
        return logs

    def fit(
        self, train_data, epochs: int, batch_size: int, eval_data=None
    ) -> dict[str, list[float]]:
        """Train for `epochs` passes over the data; returns the history.

        Raises:
            TrainingDiverged: the loss or a parameter became NaN or inf.
        """
        train = check_data(self.model, train_data, "train_data")
        evals = None if eval_data is None else check_data(self.model, eval_data, "eval_data")
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if batch_size > len(train):
            raise ValueError(f"batch_size {batch_size} exceeds the {len(train)} training vectors")
        steps_per_epoch = len(train) // batch_size
        bar = _progress(epochs * steps_per_epoch, self.progress, "training")
        try:
            for _ in range(int(epochs)):
                order = epoch_order(len(train), self.seed, self.epoch)
                losses = []
                for i in range(steps_per_epoch):
                    batch = jnp.asarray(train[order[i * batch_size : (i + 1) * batch_size]])
                    loss, finite, state = _train_step(
                        self.model,
                        self.optimizer,
                        self.negative,
                        self.negative_state,
                        jax.random.fold_in(self.key, self.step),
                        batch,
                    )
                    if not bool(finite):
                        raise TrainingDiverged(
                            f"loss or parameters became NaN/inf at epoch {self.epoch}, step "
                            f"{self.step} (loss {float(loss)}); lower the learning rate. The "
                            "model holds the diverged values; earlier checkpoints are untouched."
                        )
                    self.negative_state = state
                    self.step += 1
                    adapt_every = getattr(self.negative, "adapt_every", 0)
                    if adapt_every and self.step % adapt_every == 0:
                        self.negative_state = self.negative.adapt(self.negative_state)
                    losses.append(float(loss))
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(epoch=self.epoch, loss=f"{losses[-1]:.4f}")
                logs = {"loss": float(np.mean(losses)) if losses else math.nan}
                logs.update(self.evaluate(train, "train"))
                if evals is not None:
                    logs.update(self.evaluate(evals, "eval"))
                for name, value in logs.items():
                    self._log(name, value)
                self.epoch += 1
                if any(cb(self, self.epoch, logs) for cb in self.callbacks):
                    break
        finally:
            if bar is not None:
                bar.close()
        return self.history
