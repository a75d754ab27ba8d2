"""Streaming observers, `hn.observers`: statistics of draws without storing them.

The observers themselves (`Moments`, `Correlations`, `Mean`, `Energy`) are
pure (init, update) pairs of the core (`hamon_nnx.core.observers`, where the
precision notes live); this module adds what needs an nnx model:
`observe_draws` over stored draws and `ObserveNegatives`, a Trainer callback.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .core.observers import Correlations as Correlations
from .core.observers import CorrelationsState as CorrelationsState
from .core.observers import Energy as Energy
from .core.observers import ExactSum as ExactSum
from .core.observers import KahanSum as KahanSum
from .core.observers import Mean as Mean
from .core.observers import MeanState as MeanState
from .core.observers import Moments as Moments
from .core.observers import MomentsState as MomentsState
from .core.observers import check_observers as check_observers
from .core.observers import exact_add as exact_add
from .core.observers import exact_zeros as exact_zeros
from .core.observers import init_all as init_all
from .core.observers import kahan_add as kahan_add
from .core.observers import kahan_zeros as kahan_zeros
from .core.observers import observe_chains as observe_chains
from .core.observers import update_all as update_all


@jax.jit(static_argnames=("graphdef", "observers"))
def _observe_batch(graphdef, params, states, x, *, observers):
    model = nnx.merge(graphdef, params)
    return update_all(dict(observers), states, x, model)


def observe_draws(observers: dict, model, draws, states: dict | None = None, chunk: int = 4096):
    """Feed stored natural-order draws (..., n) to observers, `chunk` rows per call.

    Args:
        observers: dict name -> observer.
        model: the model the draws come from (observers like `Energy` use it).
        draws: (..., n) int8 states; leading axes are flattened.
        states: observer states to continue from (default: fresh ones).
        chunk: rows per jitted update.

    Returns:
        dict name -> observer state.
    """
    observers = check_observers(observers)
    graphdef, params = nnx.split(model)
    draws = np.asarray(draws)
    draws = draws.reshape(-1, draws.shape[-1])
    if states is None:
        states = init_all(observers, model)
    key = tuple(sorted(observers.items()))
    for start in range(0, len(draws), chunk):
        x = jnp.asarray(draws[start : start + chunk])
        states = _observe_batch(graphdef, params, states, x, observers=key)
    return states


class ObserveNegatives:
    """A `hn.Trainer` step callback streaming the negative-phase chains into observers.

    After every training step it feeds the persistent chains (PCD: all
    chains; NRPTNegative: the beta = 1 chain of each ladder) in natural order to the
    observers; `states` holds the observer states, so the model's moments
    can be followed during training without storing samples.

    Args:
        observers: dict name -> observer.

    Example:
        >>> import optax, numpy as np, hamon_nnx as hn
        >>> m = hn.IsingModel.from_edges(3, [(0, 1), (1, 2)], couplings=0.0)
        >>> watch = hn.observers.ObserveNegatives({"m": hn.observers.Moments()})
        >>> trainer = hn.Trainer(m, optax.sgd(0.1), negative=hn.PCD(n_chains=8),
        ...                      step_callbacks=[watch], eval_every=0, progress=False)
        >>> _ = trainer.fit(np.ones((4, 3), np.int8), epochs=2, batch_size=4)
        >>> watch.states["m"].n_draws()
        16
    """

    def __init__(self, observers: dict):
        self.observers = check_observers(observers)
        self.states: dict | None = None

    @staticmethod
    def chains(negative_state) -> jax.Array:
        """Internal-order persistent chains (C, n) of a negative-phase state."""
        tempering = getattr(negative_state, "tempering", None)
        if tempering is not None:  # x is (..., N, n): the beta = 1 slot of every ladder
            return tempering.x[..., -1, :].reshape(-1, tempering.x.shape[-1])
        if isinstance(negative_state, jax.Array) and negative_state.ndim == 2:
            return negative_state
        raise TypeError(
            "ObserveNegatives needs persistent chains (hn.PCD or hn.NRPTNegative); this "
            f"negative phase keeps {type(negative_state).__name__}"
        )

    def __call__(self, trainer, step, loss) -> None:
        model = trainer.model
        x = model.to_natural(self.chains(trainer.negative_state))
        self.states = observe_draws(self.observers, model, x, self.states)
