"""Optax recipes for training energy-based models: schedules, clipping, L1/L2.

`optimizer(...)` builds one `optax.GradientTransformation` from optax pieces:
a learning-rate schedule (constant, cosine, linear, exponential, linear
warm-up then any of these), gradient clipping by global norm, and L1/L2
penalties on the interaction weights. With every recipe off it is exactly
`optax.adam(learning_rate)` or `optax.sgd(learning_rate)`, so the default
reproduces a plain optimizer bit for bit (and reads its checkpoints).

Example:
    >>> import optax
    >>> from hamon_nnx.training.optimizers import learning_rate_schedule, optimizer
    >>> tx = optimizer("adam", 1e-3, schedule="cosine", total_steps=1000, clip_norm=1.0, l2=1e-4)
    >>> isinstance(tx, optax.GradientTransformation)
    True
    >>> lr = learning_rate_schedule(1e-3, "cosine", total_steps=1000)
    >>> round(float(lr(500)), 6)
    0.0005
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "add_l1_penalty",
    "interaction_mask",
    "learning_rate_schedule",
    "optimizer",
]

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear", "exponential", "warmup_cosine")
DECAYING = ("cosine", "linear", "exponential", "warmup_cosine")
# the learning rate a decaying schedule ends at, as a fraction of the peak
_END_FRACTION = {"cosine": 0.0, "linear": 0.0, "warmup_cosine": 0.0, "exponential": 0.01}


def _choice(what: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"{what} must be one of {', '.join(map(repr, choices))}, got {value!r}{hint}"
        )
    return value


def _number(name: str, value, *, low: float = 0.0, low_open: bool = False, high=None) -> float:
    """A finite real number in [low, high] ((low, high] with `low_open`)."""
    if isinstance(value, bool) or not hasattr(value, "__float__"):
        raise ValueError(f"{name} must be a number, got {value!r}")
    x = float(value)
    bad = not math.isfinite(x) or (x <= low if low_open else x < low)
    if bad or (high is not None and x > high):
        left, right = "(" if low_open else "[", "inf)" if high is None else f"{high:g}]"
        raise ValueError(f"{name} must be finite and in {left}{low:g}, {right}, got {value!r}")
    return x


def _steps(name: str, value, low: int) -> int:
    """An integer (Python or NumPy) >= low."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def learning_rate_schedule(
    learning_rate: float,
    schedule: str | None = None,
    *,
    warmup_steps: int = 0,
    total_steps: int | None = None,
    end_fraction: float | None = None,
) -> float | optax.Schedule:
    """The learning rate as a function of the step, from optax's schedules.

    Args:
        learning_rate: the peak learning rate, > 0.
        schedule: None or "constant", "cosine" (`optax.cosine_decay_schedule`),
            "linear" (`optax.linear_schedule`), "exponential"
            (`optax.exponential_decay`, geometric, held at its end value) or
            "warmup_cosine" (`optax.warmup_cosine_decay_schedule`).
        warmup_steps: steps of a linear ramp from 0 to `learning_rate`
            before the schedule (every schedule; "warmup_cosine" needs >= 1).
        total_steps: the run's length in optimizer steps, warm-up included;
            required by the decaying schedules, which reach their end value
            there and stay at it.
        end_fraction: the final learning rate over the peak, in [0, 1]
            (default 0, and 0.01 for "exponential", which needs > 0).

    Returns:
        `learning_rate` itself (a float) for a constant rate without warm-up,
        so `optax.adam(learning_rate_schedule(lr))` is `optax.adam(lr)`;
        otherwise an `optax.Schedule`, step -> learning rate.

    Raises:
        ValueError: an unknown schedule or a value out of range.

    Example:
        >>> from hamon_nnx.training.optimizers import learning_rate_schedule
        >>> lr = learning_rate_schedule(0.1, "linear", warmup_steps=10, total_steps=110)
        >>> [round(float(lr(t)), 4) for t in (0, 5, 10, 60, 110, 200)]
        [0.0, 0.05, 0.1, 0.05, 0.0, 0.0]
    """
    lr = _number("learning_rate", learning_rate, low_open=True)
    schedule = "constant" if schedule in (None, "none") else schedule
    _choice("schedule", schedule, SCHEDULES)
    warmup = _steps("warmup_steps", warmup_steps, 0)
    if schedule == "warmup_cosine" and warmup == 0:
        raise ValueError("schedule 'warmup_cosine' needs warmup_steps >= 1 (or use 'cosine')")
    if end_fraction is None:
        end = _END_FRACTION.get(schedule, 1.0)
    else:
        end = _number("end_fraction", end_fraction, high=1.0)
        if schedule == "exponential" and end == 0:
            raise ValueError("schedule 'exponential' needs end_fraction > 0 (it decays by a ratio)")
    if schedule in DECAYING:
        if total_steps is None:
            raise ValueError(f"schedule {schedule!r} needs total_steps (the run's optimizer steps)")
        total = _steps("total_steps", total_steps, 1)
        if total <= warmup:
            raise ValueError(
                f"total_steps ({total}) must exceed warmup_steps ({warmup}) for {schedule!r}"
            )
    elif total_steps is not None:
        _steps("total_steps", total_steps, 1)
    if schedule == "constant" and warmup == 0:
        return lr
    if schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, total, end_value=lr * end)  # pyright: ignore[reportPossiblyUnboundVariable]
    if schedule == "constant":
        decay = optax.constant_schedule(lr)
    elif schedule == "cosine":
        decay = optax.cosine_decay_schedule(lr, total - warmup, alpha=end)  # pyright: ignore[reportPossiblyUnboundVariable]
    elif schedule == "linear":
        decay = optax.linear_schedule(lr, lr * end, total - warmup)  # pyright: ignore[reportPossiblyUnboundVariable]
    else:
        decay = optax.exponential_decay(lr, total - warmup, end, end_value=lr * end)  # pyright: ignore[reportPossiblyUnboundVariable]
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), decay], [warmup])


def interaction_mask(params):
    """True for the interaction parameters, False for biases and fields.

    A parameter whose name ends in "bias" or "field" (an RBM's
    `visible_bias`, `hidden_bias`; an Ising or Potts model's `field`) is a
    bias; every other one (`W`, `coupling`, ...) is an interaction. The
    default `mask` of `optimizer`'s L1/L2 penalties: weight decay on the
    weights only, as in Hinton's practical guide to training RBMs (the
    biases set the marginals and are not shrunk toward 1/2).

    Example:
        >>> import hamon_nnx as hn
        >>> from flax import nnx
        >>> from hamon_nnx.training.optimizers import interaction_mask
        >>> params = nnx.as_pure(nnx.state(hn.RBM(3, 2, rngs=nnx.Rngs(0)), nnx.Param))
        >>> mask = interaction_mask(params)  # what optax sees inside nnx.Optimizer
        >>> mask["W"], mask["visible_bias"], mask["hidden_bias"]
        (True, False, False)
    """

    def is_interaction(path, _):
        names = [str(getattr(k, "key", getattr(k, "name", ""))) for k in path]
        names = [n for n in names if n not in ("", "value", "raw_value")]
        return not (names and names[-1].endswith(("bias", "field")))

    return jax.tree_util.tree_map_with_path(is_interaction, params)


def add_l1_penalty(strength: float, mask=None) -> optax.GradientTransformation:
    """Add `strength * sign(param)` to the updates: the (sub)gradient of an L1 penalty.

    optax has `add_decayed_weights` for L2 but no L1 term. A parameter at
    exactly 0 gets no push (sign(0) = 0); others hover within a step
    (learning rate x strength) of 0 once the penalty wins, rather than
    landing on 0 as a proximal step would.

    Args:
        strength: the penalty's weight, >= 0 (the loss gains strength * |w|).
        mask: as in `optax.masked`: a pytree of bools or a callable of the
            parameters giving one; None penalises every parameter.

    Example:
        >>> import jax.numpy as jnp
        >>> from hamon_nnx.training.optimizers import add_l1_penalty
        >>> tx = add_l1_penalty(0.5)
        >>> w = jnp.array([2.0, -1.0, 0.0])
        >>> updates, _ = tx.update(jnp.zeros(3), tx.init(w), w)
        >>> updates.tolist()
        [0.5, -0.5, 0.0]
    """
    strength = _number("l1", strength)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(
                "add_l1_penalty needs the parameters: tx.update(updates, state, params)"
            )
        updates = jax.tree.map(
            lambda u, p: u + strength * jnp.sign(p).astype(u.dtype), updates, params
        )
        return updates, state

    tx = optax.GradientTransformation(init_fn, update_fn)
    return tx if mask is None else optax.masked(tx, mask)


def _optimizer_keywords(name: str, kwargs: dict) -> None:
    """Reject keyword arguments that optax.adam / optax.sgd do not take."""
    base = optax.adam if name == "adam" else optax.sgd
    allowed = [p for p in inspect.signature(base).parameters if p != "learning_rate"]
    for key in kwargs:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; it takes {', '.join(allowed)}"
            raise TypeError(f"optimizer {name!r} got an unexpected keyword argument {key!r}{hint}")


def _preconditioner(name: str, kwargs: dict) -> optax.GradientTransformation:
    """optax.adam / optax.sgd without the learning rate (the first piece of their chain)."""
    if name == "adam":
        return optax.scale_by_adam(**kwargs)
    momentum = kwargs.get("momentum")
    if momentum is None:
        return optax.identity()
    return optax.trace(
        decay=momentum,
        nesterov=kwargs.get("nesterov", False),
        accumulator_dtype=kwargs.get("accumulator_dtype"),
    )


def optimizer(
    name: str = "adam",
    learning_rate: float = 1e-3,
    *,
    schedule: str | None = None,
    warmup_steps: int = 0,
    total_steps: int | None = None,
    end_fraction: float | None = None,
    clip_norm: float | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    mask: Callable | object | None = interaction_mask,
    **kwargs,
) -> optax.GradientTransformation:
    """An optax optimizer with a learning-rate schedule, clipping and L1/L2 penalties.

    The chain, in order:

    1. `optax.clip_by_global_norm(clip_norm)`: rescales the loss gradient
       (all parameters together) to norm at most `clip_norm`; first, so a
       rare huge gradient (a PCD chain far from the data) cannot blow up
       adam's moment estimates. The penalties are not clipped.
    2. The optimizer's preconditioner: `optax.scale_by_adam` for "adam",
       momentum (`optax.trace`) or nothing for "sgd".
    3. The penalties, decoupled as in AdamW (Loshchilov and Hutter 2019):
       `optax.add_decayed_weights(l2)` and `add_l1_penalty(l1)` after the
       preconditioner, before the learning rate. Each step then shrinks a
       weight by lr * (l2 * w + l1 * sign(w)) whatever adam's per-parameter
       scale, which is what weight decay means; added before adam, the
       penalty would be divided by each weight's gradient RMS (strong on
       quiet weights, weak on busy ones) and, for weights with tiny
       gradients, turn into a constant-size push of about lr. With "sgd"
       (no momentum) both orders are the same update.
    4. `optax.scale_by_learning_rate(schedule)`: the step size, following
       the schedule (`learning_rate_schedule`), so the penalties decay
       with it.

    With no schedule, warm-up, clipping or penalty this is exactly
    `optax.adam(learning_rate, **kwargs)` / `optax.sgd(learning_rate, **kwargs)`
    (same numbers, same state).

    Args:
        name: "adam" or "sgd".
        learning_rate: the (peak) learning rate, > 0.
        schedule: None, "constant", "cosine", "linear", "exponential" or
            "warmup_cosine" (see `learning_rate_schedule`).
        warmup_steps: steps of linear warm-up from 0 before the schedule.
        total_steps: optimizer steps of the whole run; needed by the
            decaying schedules (e.g. epochs x steps per epoch).
        end_fraction: a decaying schedule's final rate over the peak.
        clip_norm: the largest global norm of the gradient, > 0, or None.
        l1: weight of the L1 penalty sum |w|, >= 0.
        l2: weight of the L2 penalty (1/2) sum w^2 (decoupled weight decay), >= 0.
        mask: which parameters the penalties act on, as in `optax.masked`:
            default `interaction_mask` (weights and couplings, not biases
            or fields); None penalises every parameter.
        **kwargs: passed to `optax.adam` (b1, b2, eps, ...) or `optax.sgd`
            (momentum, nesterov, ...).

    Returns:
        The `optax.GradientTransformation`, ready for `hn.Trainer`.

    Raises:
        ValueError: an unknown optimizer or schedule, or a value out of range.
        TypeError: a keyword argument that the optax optimizer does not take.

    Example:
        >>> import numpy as np, hamon_nnx as hn
        >>> from flax import nnx
        >>> from hamon_nnx.training.optimizers import optimizer
        >>> tx = optimizer("adam", 0.01, schedule="warmup_cosine", warmup_steps=4,
        ...                total_steps=20, clip_norm=1.0, l2=1e-4)
        >>> rbm = hn.RBM(4, 2, rngs=nnx.Rngs(0))
        >>> trainer = hn.Trainer(rbm, tx, negative=hn.CD(1), eval_every=0, progress=False)
        >>> len(trainer.fit(np.eye(4, dtype="int8"), epochs=10, batch_size=2)["loss"])
        10
    """
    _choice("optimizer name", name, OPTIMIZERS)
    _optimizer_keywords(name, kwargs)
    rate = learning_rate_schedule(
        learning_rate,
        schedule,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        end_fraction=end_fraction,
    )
    clip = None if clip_norm is None else _number("clip_norm", clip_norm, low_open=True)
    l1, l2 = _number("l1", l1), _number("l2", l2)
    if l1 == 0 and l2 == 0:
        tx = (optax.adam if name == "adam" else optax.sgd)(rate, **kwargs)
    else:
        penalties = []
        if l2 > 0:
            penalties.append(optax.add_decayed_weights(l2, mask=mask))
        if l1 > 0:
            penalties.append(add_l1_penalty(l1, mask=mask))
        tx = optax.chain(
            _preconditioner(name, kwargs), *penalties, optax.scale_by_learning_rate(rate)
        )
    if clip is not None:
        tx = optax.chain(optax.clip_by_global_norm(clip), tx)
    return tx
