"""Block Gibbs sampling: a pure single-chain kernel, vmapped over chains.

Nothing here knows about nnx: a `model` is any object with static `blocks`
and a `block_logits(x, b)` method over the internal order (and optionally
a `gibbs_sweep(key, x, beta, keep)` with the same stationary law). States
are int8 vectors in the model's internal order.

Tempering is affine in the logits: the conditional of a block at inverse
temperature beta has logits `beta * block_logits(x, b)` (uniform reference).

Random streams: chain c uses `fold_in(key, c)` and sweep t of that chain
`fold_in(chain_key, t)`, so a draw depends only on (key, chain, sweep),
never on how many chains run beside it.
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


def sample_block(key: jax.Array, logits: jax.Array, block: Block, beta) -> jax.Array:
    """Draw a block from its tempered conditional; one uniform per variable.

    Args:
        key: PRNG key.
        logits: (m,) for spin / binary blocks, (m, q) for categorical ones.
        block: the block (its kind and q).
        beta: inverse temperature (scalar).

    Returns:
        int8 values of shape (m,).
    """
    if block.kind in (SPIN, BINARY):
        u = jax.random.uniform(key, logits.shape, dtype=jnp.float32)
        up = u < jax.nn.sigmoid(beta * logits)
        low = -1 if block.kind == SPIN else 0
        return jnp.where(up, jnp.int8(1), jnp.int8(low))
    if block.kind == CATEGORICAL:
        z = beta * logits
        p = jnp.exp(z - jnp.max(z, axis=-1, keepdims=True))
        cdf = jnp.cumsum(p, axis=-1)
        u = jax.random.uniform(key, logits.shape[:-1], dtype=jnp.float32) * cdf[..., -1]
        return jnp.sum(u[..., None] >= cdf[..., :-1], axis=-1).astype(jnp.int8)
    raise ValueError(f"unknown block kind {block.kind!r}")


def random_state(key: jax.Array, blocks: tuple[Block, ...], n: int) -> jax.Array:
    """A uniformly random internal state (n,) (the beta = 0 distribution)."""
    parts = []
    for b, blk in enumerate(blocks):
        k = jax.random.fold_in(key, b)
        if blk.kind == SPIN:
            parts.append(jnp.where(jax.random.bernoulli(k, 0.5, (blk.size,)), 1, -1))
        elif blk.kind == BINARY:
            parts.append(jax.random.bernoulli(k, 0.5, (blk.size,)).astype(jnp.int32))
        else:
            parts.append(jax.random.randint(k, (blk.size,), 0, blk.q))
    x = jnp.concatenate(parts).astype(jnp.int8)
    assert x.shape == (n,), "blocks must tile the state"
    return x


def sweep(key: jax.Array, x: jax.Array, model, beta, clamp: Clamp | None = None) -> jax.Array:
    """One systematic-scan sweep over all blocks of one chain.

    Args:
        key: PRNG key for this sweep.
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
        return custom(key, x, beta, keep)
    for b, blk in enumerate(model.blocks):
        new = sample_block(jax.random.fold_in(key, b), model.block_logits(x, b), blk, beta)
        if keep is not None:
            new = jnp.where(keep[blk.slice], x[blk.slice], new)
        x = lax.dynamic_update_slice(x, new, (blk.start,))
    return x


def chain_keys(key: jax.Array, n_chains: int) -> jax.Array:
    """Per-chain keys that depend only on (key, chain index)."""
    return jax.vmap(lambda c: jax.random.fold_in(key, c))(jnp.arange(n_chains))


def run_chains(
    model,
    keys: jax.Array,
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
        keys: (C,) per-chain keys.
        x: (C, n) int8 internal-order states.
        beta: (C,) inverse temperatures.
        n_warmup, n_samples, thin: static sweep counts.
        clamp: optional Clamp shared by all chains.
        start: index of the first sweep (continuing runs keep their streams).

    Returns:
        (C, n_samples, n) int8 internal-order draws.
    """

    def one_sweep(t, x):
        sweep_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)
        return jax.vmap(lambda k, xc, bc: sweep(k, xc, model, bc, clamp))(sweep_keys, x, beta)

    x = lax.fori_loop(start, start + n_warmup, one_sweep, x)

    def record(carry, _):
        t, x = carry
        x = lax.fori_loop(t, t + thin, one_sweep, x)
        return (t + thin, x), x

    _, draws = lax.scan(record, (start + n_warmup, x), None, length=n_samples)
    return jnp.swapaxes(draws, 0, 1)
