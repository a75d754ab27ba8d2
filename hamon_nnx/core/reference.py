"""Product-form references: the beta = 0 end of a tempering path.

A reference assigns each variable i independent log-weights eta_i(v) and
E_ref(x) = -sum_i eta_i(x_i). It is stored as logits per block, in the
block's internal order, matching what `block_logits` returns:

* spin: l = log P(+1)/P(-1), eta(+1) = l/2, eta(-1) = -l/2;
* binary: l = log P(1)/P(0), eta(1) = l, eta(0) = 0;
* categorical: q logits, eta(k) = l_k.

All zeros is the uniform reference (beta = 0 samples i.i.d. uniform). Its
log normaliser is exact: log Z_ref = sum_i log sum_v exp(eta_i(v)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..models.base import BINARY, CATEGORICAL, SPIN, Block


def uniform(blocks: tuple[Block, ...]) -> tuple[jax.Array, ...]:
    """The uniform reference: zero logits for every block."""
    return tuple(
        jnp.zeros((b.size, b.q) if b.kind == CATEGORICAL else (b.size,), jnp.float32)
        for b in blocks
    )


def log_partition(blocks: tuple[Block, ...], reference) -> jax.Array:
    """Exact log Z of the reference (n log 2 for uniform spins)."""
    total = jnp.float32(0.0)
    for blk, logits in zip(blocks, reference, strict=True):
        if blk.kind == SPIN:
            total = total + jnp.sum(jnp.logaddexp(logits / 2, -logits / 2))
        elif blk.kind == BINARY:
            total = total + jnp.sum(jax.nn.softplus(logits))
        else:
            total = total + jnp.sum(jax.nn.logsumexp(logits, axis=-1))
    return total


def energy(x: jax.Array, blocks: tuple[Block, ...], reference) -> jax.Array:
    """E_ref of internal-order states x (..., n)."""
    total = jnp.zeros(x.shape[:-1], jnp.float32)
    for blk, logits in zip(blocks, reference, strict=True):
        v = x[..., blk.slice]
        if blk.kind == SPIN:
            eta = v.astype(jnp.float32) * logits / 2
        elif blk.kind == BINARY:
            eta = v.astype(jnp.float32) * logits
        else:
            eta = jnp.take_along_axis(
                jnp.broadcast_to(logits, (*v.shape, blk.q)), v[..., None].astype(jnp.int32), -1
            )[..., 0]
        total = total - jnp.sum(eta, axis=-1)
    return total


def fit(samples: jax.Array, blocks: tuple[Block, ...], pseudocount: float = 1.0):
    """The product reference matching the marginals of internal-order samples.

    Args:
        samples: (..., n) int8 states; all leading axes are pooled.
        blocks: the model's blocks.
        pseudocount: added to every value's count, so no logit is infinite.

    Returns:
        Logits per block.
    """
    flat = samples.reshape(-1, samples.shape[-1])
    count = flat.shape[0]
    out = []
    for blk in blocks:
        v = flat[:, blk.slice]
        if blk.kind == CATEGORICAL:
            counts = jnp.sum(jax.nn.one_hot(v, blk.q, dtype=jnp.float32), axis=0) + pseudocount
            out.append(jnp.log(counts) - jnp.log(counts[..., :1]))
        else:
            ones = jnp.sum(v == 1, axis=0).astype(jnp.float32) + pseudocount
            out.append(jnp.log(ones) - jnp.log(count + 2 * pseudocount - ones))
    return tuple(out)
