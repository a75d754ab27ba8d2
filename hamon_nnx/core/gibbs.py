"""Block Gibbs sampling: a pure single-chain kernel, vmapped over chains.

Nothing here knows about nnx: a `model` is any object with static `blocks`
and a `block_logits(x, b)` method over the internal order (and optionally
a `gibbs_sweep(u, x, beta, keep)` with the same stationary law). States
are int8 vectors in the model's internal order.

Tempering is affine in the logits: the conditional of a block at inverse
temperature beta has logits `beta * block_logits(x, b)` (uniform reference).

Randomness: a sweep consumes one uniform per variable. Sweep t of a run
draws all chains' uniforms as one (C, n) array from `fold_in(key, t)`;
with partitionable threefry row c depends only on (key, t, c), so a chain's
draws never depend on how many chains run beside it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ..models.base import BINARY, CATEGORICAL, SPIN, Block


class Clamp(NamedTuple):
    """Variables held fixed, in internal order: a bool mask (n,).

    The clamped values live in the state itself; kernels never change them.
    """

    mask: jax.Array


def sample_block(u: jax.Array, logits: jax.Array, block: Block, beta) -> jax.Array:
    """Draw a block from its tempered conditional by inversion.

    Args:
        u: uniforms in [0, 1), one per variable, shape (m,).
        logits: (m,) for spin / binary blocks, (m, q) for categorical ones.
        block: the block (its kind and q).
        beta: inverse temperature (scalar).

    Returns:
        int8 values of shape (m,).
    """
    if block.kind in (SPIN, BINARY):
        up = u < jax.nn.sigmoid(beta * logits)
        low = -1 if block.kind == SPIN else 0
        return jnp.where(up, jnp.int8(1), jnp.int8(low))
    if block.kind == CATEGORICAL:
        z = beta * logits
        p = jnp.exp(z - jnp.max(z, axis=-1, keepdims=True))
        cdf = jnp.cumsum(p, axis=-1)
        target = u * cdf[..., -1]
        return jnp.sum(target[..., None] >= cdf[..., :-1], axis=-1).astype(jnp.int8)
    raise ValueError(f"unknown block kind {block.kind!r}")


def random_states(key: jax.Array, blocks: tuple[Block, ...], n_chains: int) -> jax.Array:
    """Uniformly random internal states (C, n): the beta = 0 distribution."""
    n = blocks[-1].stop
    u = jax.random.uniform(key, (n_chains, n), dtype=jnp.float32)
    parts = []
    for blk in blocks:
        ub = u[:, blk.slice]
        if blk.kind == SPIN:
            parts.append(jnp.where(ub < 0.5, jnp.int8(-1), jnp.int8(1)))
        else:
            parts.append(jnp.minimum(jnp.floor(ub * blk.q), blk.q - 1).astype(jnp.int8))
    return jnp.concatenate(parts, axis=-1)


def sweep(u: jax.Array, x: jax.Array, model, beta, clamp: Clamp | None = None) -> jax.Array:
    """One systematic-scan sweep over all blocks of one chain.

    A sweep consumes exactly one uniform per variable (categorical variables
    are drawn by inverting their CDF), so its randomness is an array `u`
    of shape (n,) in internal order; `sweep_with_key` draws it.

    Args:
        u: uniforms in [0, 1) of shape (n,).
        x: internal-order state (n,) int8.
        model: object with `blocks` and `block_logits` (see module doc).
        beta: inverse temperature of this chain.
        clamp: optional Clamp; masked variables keep their values.

    Returns:
        The new state (n,) int8.
    """
    keep = None if clamp is None else clamp.mask
    custom = getattr(model, "gibbs_sweep", None)
    if custom is not None:
        return custom(u, x, beta, keep)
    for b, blk in enumerate(model.blocks):
        new = sample_block(u[blk.slice], model.block_logits(x, b), blk, beta)
        if keep is not None:
            new = jnp.where(keep[blk.slice], x[blk.slice], new)
        x = lax.dynamic_update_slice(x, new, (blk.start,))
    return x


def batched_sweep(u: jax.Array, x: jax.Array, model, beta: jax.Array, clamp: Clamp | None = None):
    """`sweep` for a batch of chains: u, x of shape (C, n), beta (C,).

    Equal to `jax.vmap(sweep)` but vmaps each block's update and writes it
    into the batched state outside the vmap, where XLA updates it in place
    (a vmapped dynamic_update_slice costs a bounds-checked copy).
    """
    keep = None if clamp is None else clamp.mask
    custom = getattr(model, "gibbs_sweep", None)
    if custom is not None:
        return jax.vmap(lambda uc, xc, bc: custom(uc, xc, bc, keep))(u, x, beta)
    for b, blk in enumerate(model.blocks):

        def update(uc, xc, bc, b=b, blk=blk):
            return sample_block(uc[blk.slice], model.block_logits(xc, b), blk, bc)

        new = jax.vmap(update)(u, x, beta)
        if keep is not None:
            new = jnp.where(keep[blk.slice], x[:, blk.slice], new)
        x = lax.dynamic_update_slice(x, new, (0, blk.start))
    return x


def sweep_with_key(key: jax.Array, x: jax.Array, model, beta, clamp: Clamp | None = None):
    """`sweep` with its uniforms drawn from `key`."""
    return sweep(jax.random.uniform(key, x.shape, dtype=jnp.float32), x, model, beta, clamp)


def sweep_uniforms(key: jax.Array, t, shape: tuple[int, int]) -> jax.Array:
    """The uniforms of sweep t for all chains, shape (C, n).

    Drawn as one array from `fold_in(key, t)`: with JAX's partitionable
    threefry (the default), row c depends only on (key, t, c), not on the
    number of chains, and shards without communication.
    """
    return jax.random.uniform(jax.random.fold_in(key, t), shape, dtype=jnp.float32)


def run_chains(
    model,
    key: jax.Array,
    x: jax.Array,
    beta: jax.Array,
    *,
    n_warmup: int,
    n_samples: int,
    thin: int,
    clamp: Clamp | None = None,
    start: int = 0,
) -> jax.Array:
    """Run chains and record every `thin`-th state after `n_warmup` sweeps.

    Args:
        model: see module doc.
        key: PRNG key of the run; sweep t uses `sweep_uniforms(key, t, x.shape)`.
        x: (C, n) int8 internal-order states.
        beta: (C,) inverse temperatures.
        n_warmup, n_samples, thin: static sweep counts.
        clamp: optional Clamp shared by all chains.
        start: index of the first sweep (continuing runs keep their streams).

    Returns:
        (C, n_samples, n) int8 internal-order draws.
    """

    def one_sweep(t, x):
        return batched_sweep(sweep_uniforms(key, t, x.shape), x, model, beta, clamp)

    x = lax.fori_loop(start, start + n_warmup, one_sweep, x)

    def record(carry, _):
        t, x = carry
        x = lax.fori_loop(t, t + thin, one_sweep, x)
        return (t + thin, x), x

    _, draws = lax.scan(record, (start + n_warmup, x), None, length=n_samples)
    return jnp.swapaxes(draws, 0, 1)
