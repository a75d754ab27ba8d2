"""Block Gibbs sampling: pure kernels over a batch of chains.

Nothing here knows about nnx: a `model` is any object with static `blocks`
and a single-chain `block_logits(x, b)` over the internal order (vmapped
over chains here), and optionally a single-chain `gibbs_sweep(u, x, beta,
keep, reference)` with the same stationary law, fed one uniform per variable,
or a `multispin()` kernel that sweeps bit-packed states (`core.multispin`).
States are int8 vectors in the model's internal order.

Tempering is affine in the logits: the conditional of a block at inverse
temperature beta has logits `beta * block_logits(x, b)` (uniform reference).

Randomness: sweep t of a run uses `fold_in(key, t)` and block b of it
`fold_in(sweep_key, b)`; `core.random` draws the block for all chains from
counters (chain, word), so a chain's draws depend only on (key, t, b, c),
never on how many chains run beside it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import random
from .layout import BINARY, CATEGORICAL, SPIN, Block


class Clamp(NamedTuple):
    """Variables held fixed, in internal order: a bool mask (n,).

    The clamped values live in the state itself; kernels never change them.
    """

    mask: jax.Array


def sample_block(
    key: jax.Array, logits: jax.Array, block: Block, beta: jax.Array, reference=None
) -> jax.Array:
    """Draw one block for every chain from its tempered conditional.

    The tempered logits are `beta * logits + (1 - beta) * reference`: the
    path from a product reference (uniform when `reference` is None) at
    beta = 0 to the model at beta = 1.

    Args:
        key: PRNG key of this block update.
        logits: (C, *shape) for spin / binary blocks, (C, *shape, q) for
            categorical ones, where `shape` holds the block's m variables in
            internal order (the model's choice: (m,) or, e.g., a sublattice).
        block: the block (its kind and q).
        beta: (C,) inverse temperatures.
        reference: optional reference logits of the block, (m,) or (m, q).

    Returns:
        int8 values of shape (C, m).
    """
    n_chains = logits.shape[0]
    if block.kind in (SPIN, BINARY):
        beta = beta.reshape((n_chains,) + (1,) * (logits.ndim - 1))
        z = beta * logits
        if reference is not None:
            z = z + (1.0 - beta) * reference.reshape(logits.shape[1:])
        p = jax.nn.sigmoid(z).reshape(n_chains, block.size)
        up = random.bernoulli(key, p)
        low = -1 if block.kind == SPIN else 0
        return jnp.where(up, jnp.int8(1), jnp.int8(low))
    if block.kind == CATEGORICAL:
        logits = logits.reshape(n_chains, block.size, block.q)
        z = beta[:, None, None] * logits
        if reference is not None:
            z = z + (1.0 - beta[:, None, None]) * reference.reshape(block.size, block.q)
        return random.categorical(key, z)
    raise ValueError(f"unknown block kind {block.kind!r}")


def random_states(key: jax.Array, blocks: tuple[Block, ...], n_chains: int) -> jax.Array:
    """Uniformly random internal states (C, n): the beta = 0 distribution."""
    n = blocks[-1].stop
    u = jax.random.uniform(key, (n_chains, n), dtype=jnp.float32)
    # per-variable constants, so the program does not grow with the number of blocks
    q = np.concatenate([np.full(blk.size, blk.q, np.float32) for blk in blocks])
    spin = np.concatenate([np.full(blk.size, blk.kind == SPIN) for blk in blocks])
    values = jnp.minimum(jnp.floor(u * q), q - 1)
    return jnp.where(spin, jnp.where(u < 0.5, -1.0, 1.0), values).astype(jnp.int8)


def multispin_kernel(model, reference=None, packed: bool = True):
    """The model's multispin kernel (`core.multispin`), or None where it does not apply.

    A model offers one through `multispin()` (periodic Ising lattices with
    a scalar coupling and field); a product reference (None is the
    uniform one), or `packed=False`, selects the int8 kernel. The choice
    depends only on the model's structure: same key, same kernel, same draws.
    """
    offer = getattr(model, "multispin", None)
    if not packed or reference is not None or offer is None:
        return None
    return offer()


def sweep(
    key: jax.Array,
    x: jax.Array,
    model,
    beta: jax.Array,
    clamp: Clamp | None = None,
    reference: tuple[jax.Array, ...] | None = None,
    packed: bool = True,
):
    """One systematic-scan sweep over all blocks, for a batch of chains.

    Each block's conditional logits come from the model's single-chain
    `block_logits`, vmapped over chains; the draws are made for the whole
    batch at once and written into the state in place. Models with a
    multispin kernel (`multispin_kernel`) sweep on packed words instead.

    Args:
        key: PRNG key of this sweep.
        x: (C, n) int8 internal-order states.
        model: object with `blocks` and `block_logits` (see module doc).
        beta: (C,) inverse temperatures.
        clamp: optional Clamp; masked variables keep their values.
        reference: optional product reference, logits per block ((m,) or
            (m, q)); the target of a chain is then the tempered path.
        packed: use the model's multispin kernel where it has one.

    Returns:
        The new states (C, n) int8.
    """
    kernel = multispin_kernel(model, reference, packed)
    if kernel is None:
        return _block_sweep(key, x, model, beta, clamp, reference)
    keep = None if clamp is None else kernel.lattice.pack_mask(clamp.mask)
    return kernel.unpack(kernel.sweep(key, kernel.pack(x), beta, keep))


def sweeps(
    key: jax.Array,
    x: jax.Array,
    model,
    beta: jax.Array,
    start,
    stop,
    clamp: Clamp | None = None,
    reference: tuple[jax.Array, ...] | None = None,
    packed: bool = True,
):
    """Sweeps t = start .. stop - 1 (traced bounds), sweep t drawing from `fold_in(key, t)`.

    The same draws as a loop of `sweep(fold_in(key, t), ...)`; a multispin
    kernel packs the chains once before the loop and unpacks them once after.
    """
    kernel = multispin_kernel(model, reference, packed)
    if kernel is not None:
        keep = None if clamp is None else kernel.lattice.pack_mask(clamp.mask)

        def packed_sweep(t, words):
            return kernel.sweep(jax.random.fold_in(key, t), words, beta, keep)

        return kernel.unpack(lax.fori_loop(start, stop, packed_sweep, kernel.pack(x)))

    def one_sweep(t, x):
        return _block_sweep(jax.random.fold_in(key, t), x, model, beta, clamp, reference)

    return lax.fori_loop(start, stop, one_sweep, x)


def _block_sweep(key, x, model, beta, clamp, reference):
    """One sweep of int8 chains: the model's `gibbs_sweep`, or block by block."""
    keep = None if clamp is None else clamp.mask
    custom = getattr(model, "gibbs_sweep", None)
    if custom is not None:
        u = jax.random.uniform(key, x.shape, dtype=jnp.float32)
        ref = None if reference is None else jnp.concatenate(reference)
        return jax.vmap(lambda uc, xc, bc: custom(uc, xc, bc, keep, ref))(u, x, beta)
    last = len(model.blocks) - 1
    for b, blk in enumerate(model.blocks):
        logits = jax.vmap(lambda xc, b=b: model.block_logits(xc, b))(x)
        ref = None if reference is None else reference[b]
        new = sample_block(jax.random.fold_in(key, b), logits, blk, beta, ref)
        if keep is not None:
            new = jnp.where(keep[blk.slice], x[:, blk.slice], new)
        if b == last:
            # the last block is joined, not written in place: XLA then sees that
            # slices of the result outside it are the earlier blocks, so the
            # conditional logits a caller computes next from them (the RBM's
            # hidden units in a training loss) share this sweep's products
            x = jnp.concatenate([x[:, : blk.start], new, x[:, blk.stop :]], axis=1)
        else:
            x = lax.dynamic_update_slice(x, new, (0, blk.start))
    return x


class GibbsState(NamedTuple):
    """Chains (C, n) int8 in internal order and the number of sweeps made."""

    x: jax.Array
    sweeps: jax.Array


class GibbsInfo(NamedTuple):
    """Nothing to report for a Gibbs sweep beyond the state (kept for the (state, info) shape)."""


def init(x: jax.Array) -> GibbsState:
    """A Gibbs state from internal-order chains x (C, n)."""
    return GibbsState(jnp.asarray(x, jnp.int8), jnp.zeros((), jnp.int32))


def step(
    key: jax.Array,
    state: GibbsState,
    model,
    beta: jax.Array,
    clamp: Clamp | None = None,
    reference: tuple[jax.Array, ...] | None = None,
) -> tuple[GibbsState, GibbsInfo]:
    """One sweep, as a kernel: sweep t draws from `fold_in(key, t)`.

    The same key and state give the same draws, so `lax.scan` over `step`
    with one key reproduces `hn.sample`'s stream layout. Arguments as in
    `sweep`; `model` may be any object with `blocks` and `block_logits`.
    """
    x = sweep(jax.random.fold_in(key, state.sweeps), state.x, model, beta, clamp, reference)
    return GibbsState(x, state.sweeps + 1), GibbsInfo()
