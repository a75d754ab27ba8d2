"""Negative phases: where the model samples of the contrastive loss come from.

Each is a small object holding static settings, with an explicit state
pytree (so training checkpoints and resumes exactly):

* `CD(k)`: k Gibbs sweeps started at the data batch (hidden units first
  drawn given the data), no state between steps.
* `PCD(n_chains, k)`: persistent chains, k sweeps per step.
* `NRPTNegative(n_betas, n_rounds, ..., n_ladders)`: persistent tempered
  ladders; their beta = 1 chains after each round give the negatives, and
  `adapt` moves the shared ladder to equal rejection as the model changes.

`init(model, key)` makes the state; `sample(model, key, state, batch)`
returns (negatives (M, n_data), new state) and is traceable, so it runs
inside the jitted training step. States are in the model's internal order.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import gibbs, schedule, tempering
from ..deprecation import UNSET, renamed
from .losses import exact_loss, n_data_variables, visible


class _Settings:
    """Negative phases compare and hash by their settings.

    The compiled training program is cached on the negative phase (a static
    argument), so two equal phases, e.g. `CD(1)` made twice, share it.
    """

    def _settings(self) -> tuple:
        return tuple(sorted(vars(self).items()))

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._settings() == self._settings()

    def __hash__(self) -> int:
        return hash((type(self), self._settings()))


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _sweeps(model, key, x, k: int):
    """k sweeps at beta = 1; the last one outside the loop, in the caller's program.

    Sweep t uses `fold_in(key, t)` whatever the loop structure. Keeping the
    last sweep out of the `fori_loop` lets XLA share its final block's
    products with the loss that reads the result (for an RBM, the hidden
    logits of the negatives: one matrix product fewer per step).
    """
    beta = jnp.ones((x.shape[0],), jnp.float32)
    x = gibbs.sweeps(key, x, model, beta, 0, k - 1) if k > 1 else x
    return gibbs.sweep(jax.random.fold_in(key, k - 1), x, model, beta)


def _hidden_blocks(model):
    """Blocks made only of hidden (non-data) variables, in internal order."""
    n_data = n_data_variables(model)
    if n_data == model.n_variables:
        return ()
    # hidden units follow the data units; models with hidden units keep that order
    return tuple(b for b, blk in enumerate(model.blocks) if blk.start >= n_data)


def start_from_data(model, key, batch):
    """Internal states (B, n) holding the batch, hidden units drawn given it.

    Hidden blocks are drawn in order, each given the batch and the hidden
    values so far (uniformly random before their own draw).
    """
    n_data = n_data_variables(model)
    batch = batch.astype(jnp.int8)
    if n_data == model.n_variables:
        return model.to_internal(batch)
    x = gibbs.random_states(jax.random.fold_in(key, 0), model.blocks, batch.shape[0])
    x = model.to_internal(jnp.concatenate([batch, model.to_natural(x)[:, n_data:]], axis=1))
    beta = jnp.ones((x.shape[0],), jnp.float32)
    for b in _hidden_blocks(model):
        blk = model.blocks[b]
        logits = jax.vmap(lambda xc, b=b: model.block_logits(xc, b))(x)
        new = gibbs.sample_block(jax.random.fold_in(key, 1 + b), logits, blk, beta)
        # joined, not written in place, so that XLA can see the batch in the
        # result and drop the random values that every hidden draw replaces
        x = jnp.concatenate([x[:, : blk.start], new, x[:, blk.stop :]], axis=1)
    return x


class CD(_Settings):
    """Contrastive divergence: k sweeps from the data batch.

    Example:
        >>> import hamon_nnx as hn
        >>> cd = hn.CD(k=1)
    """

    def __init__(self, k: int = 1):
        self.k = _check_int("k", k, 1)

    def init(self, model, key):
        return ()

    def sample(self, model, key, state, batch):
        start_key, sweep_key = jax.random.split(key)
        x = _sweeps(model, sweep_key, start_from_data(model, start_key, batch), self.k)
        return visible(model, model.to_natural(x)), state

    def __repr__(self) -> str:
        return f"CD(k={self.k})"


class PCD(_Settings):
    """Persistent contrastive divergence: n_chains chains, k sweeps per step.

    Example:
        >>> import hamon_nnx as hn
        >>> pcd = hn.PCD(n_chains=64, k=1)
    """

    def __init__(self, n_chains: int = 100, k: int = 1):
        self.n_chains = _check_int("n_chains", n_chains, 1)
        self.k = _check_int("k", k, 1)

    def init(self, model, key):
        return gibbs.random_states(key, model.blocks, self.n_chains)

    def sample(self, model, key, state, batch):
        x = _sweeps(model, key, state, self.k)
        return visible(model, model.to_natural(x)), x

    def __repr__(self) -> str:
        return f"PCD(n_chains={self.n_chains}, k={self.k})"


class NRPTNegativeState(NamedTuple):
    tempering: tempering.NRPTState


class NRPTNegative(_Settings):
    """Persistent NRPT ladders; their beta = 1 chains supply the negatives.

    Args:
        n_betas: the ladder size N (temperatures, one chain at each).
        n_rounds: NRPT rounds per training step; each round's beta = 1 state
            of every ladder is one negative, so a step yields
            `n_rounds * n_ladders` negatives.
        n_explore: Gibbs sweeps per chain per round.
        adapt_every: training steps between ladder adaptations (the trainer
            calls `adapt`); 0 keeps the ladder fixed.
        n_ladders: independent ladders run side by side (vmapped); they
            share one schedule, adapted from their pooled rejection rates.
            More ladders give more, less correlated negatives per step.
        n_chains, rounds: the old names of `n_betas`, `n_rounds` (deprecated).

    Example:
        >>> import hamon_nnx as hn
        >>> neg = hn.NRPTNegative(n_betas=8, n_rounds=16, n_ladders=4)
    """

    def __init__(
        self,
        n_betas: int = UNSET,
        n_rounds: int = UNSET,
        n_explore: int = 1,
        adapt_every: int = 50,
        n_ladders: int = 1,
        *,
        n_chains: int | None = None,
        rounds: int | None = None,
    ):
        n_betas = renamed("NRPTNegative", "n_chains", n_chains, "n_betas", n_betas, 8)
        n_rounds = renamed("NRPTNegative", "rounds", rounds, "n_rounds", n_rounds, 16)
        self.n_betas = _check_int("n_betas", n_betas, 2)
        self.n_rounds = _check_int("n_rounds", n_rounds, 1)
        self.n_explore = _check_int("n_explore", n_explore, 1)
        self.adapt_every = _check_int("adapt_every", adapt_every, 0)
        self.n_ladders = _check_int("n_ladders", n_ladders, 1)

    def init(self, model, key):
        x = gibbs.random_states(key, model.blocks, self.n_betas * self.n_ladders)
        x = x.reshape(self.n_ladders, self.n_betas, -1)
        ladder = jnp.linspace(0.0, 1.0, self.n_betas, dtype=jnp.float32)
        return NRPTNegativeState(tempering.init(x, ladder))

    def sample(self, model, key, state, batch):
        pt, info = tempering.run(
            key,
            state.tempering,
            model,
            n_rounds=self.n_rounds,
            capacity=self.n_rounds,
            n_explore=self.n_explore,
        )
        assert info.cold is not None  # run records the beta = 1 states by default
        cold = info.cold.reshape(self.n_ladders * self.n_rounds, -1)
        return visible(model, model.to_natural(cold)), NRPTNegativeState(pt)

    def adapt(self, state: NRPTNegativeState) -> NRPTNegativeState:
        """Move the shared ladder to equal pooled rejection rates (host side)."""
        pt = state.tempering
        n_stats = int(np.sum(pt.n_stats))
        if n_stats == 0:
            return state
        rejection = np.asarray(pt.rejection, np.float64).sum(axis=0) / n_stats
        ladder = schedule.equal_barrier_ladder(np.asarray(pt.ladder[0], np.float64), rejection)
        ladder = jnp.asarray(ladder, jnp.float32)
        return NRPTNegativeState(tempering.reset_statistics(pt, ladder))

    def __repr__(self) -> str:
        return (
            f"NRPTNegative(n_betas={self.n_betas}, n_rounds={self.n_rounds}, "
            f"n_explore={self.n_explore}, adapt_every={self.adapt_every}, "
            f"n_ladders={self.n_ladders})"
        )


class ExactNegative(_Settings):
    """No sampling: the exact log-likelihood gradient by enumeration.

    For small models (an RBM with at most 16 units on its smaller side, or a
    fully visible model with at most 16 variables): the ceiling the sampled
    negative phases are measured against.

    Example:
        >>> import hamon_nnx as hn
        >>> neg = hn.ExactNegative()
    """

    def init(self, model, key):
        return ()

    def sample(self, model, key, state, batch):
        return None, state

    def loss(self, model, batch, negatives):
        return exact_loss(model, batch)

    def __repr__(self) -> str:
        return "ExactNegative()"
