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
import numpy as np

from . import random
from .layout import BINARY, CATEGORICAL, SPIN, Block


def _runs(blocks: tuple[Block, ...]):
    """Maximal runs of consecutive blocks of one kind and q: (kind, q, first, last + 1).

    Every function here works run by run, on the run's logits joined into one
    array, so a dense model's thousands of one-site blocks cost one operation.
    """
    runs, first = [], 0
    for b in range(1, len(blocks) + 1):
        if b == len(blocks) or blocks[b][2:] != blocks[first][2:]:
            runs.append((blocks[first].kind, blocks[first].q, first, b))
            first = b
    return runs


def _joined(blocks, reference, first: int, last: int) -> jax.Array:
    """The logits of blocks first..last-1 as one (m,) or (m, q) array."""
    if last - first == 1:
        logits = jnp.asarray(reference[first])
    else:
        logits = jnp.concatenate([jnp.asarray(r) for r in reference[first:last]])
    return logits.reshape(-1, blocks[first].q) if blocks[first].kind == CATEGORICAL else logits


def uniform(blocks: tuple[Block, ...]) -> tuple[jax.Array, ...]:
    """The uniform reference: zero logits for every block."""
    return tuple(
        jnp.zeros((b.size, b.q) if b.kind == CATEGORICAL else (b.size,), jnp.float32)
        for b in blocks
    )


def log_partition(blocks: tuple[Block, ...], reference) -> float:
    """Exact log Z of the reference (n log 2 for uniform spins), on the host in
    float64: a number callers need once per run, so no small device programs."""
    total = 0.0
    for kind, q, first, last in _runs(blocks):
        logits = np.concatenate(
            [np.asarray(r, np.float64).reshape(-1) for r in reference[first:last]]
        )
        if kind == SPIN:
            total += float(np.sum(np.logaddexp(logits / 2, -logits / 2)))
        elif kind == BINARY:
            total += float(np.sum(np.logaddexp(0.0, logits)))
        else:
            logits = logits.reshape(-1, q)
            top = logits.max(axis=-1)
            total += float(np.sum(np.log(np.sum(np.exp(logits - top[:, None]), axis=-1)) + top))
    return total


def energy(x: jax.Array, blocks: tuple[Block, ...], reference) -> jax.Array:
    """E_ref of internal-order states x (..., n)."""
    total = jnp.zeros(x.shape[:-1], jnp.float32)
    for kind, q, first, last in _runs(blocks):
        logits = _joined(blocks, reference, first, last)
        v = x[..., blocks[first].start : blocks[last - 1].stop]
        if kind == SPIN:
            eta = v.astype(jnp.float32) * logits / 2
        elif kind == BINARY:
            eta = v.astype(jnp.float32) * logits
        else:
            eta = jnp.take_along_axis(
                jnp.broadcast_to(logits, (*v.shape, q)), v[..., None].astype(jnp.int32), -1
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
    for kind, q, first, last in _runs(blocks):
        v = flat[:, blocks[first].start : blocks[last - 1].stop]
        if kind == CATEGORICAL:
            counts = jnp.sum(jax.nn.one_hot(v, q, dtype=jnp.float32), axis=0) + pseudocount
            logits = jnp.log(counts) - jnp.log(counts[..., :1])
        else:
            ones = jnp.sum(v == 1, axis=0).astype(jnp.float32) + pseudocount
            logits = jnp.log(ones) - jnp.log(count + 2 * pseudocount - ones)
        offset = blocks[first].start
        out.extend(logits[blk.start - offset : blk.stop - offset] for blk in blocks[first:last])
    return tuple(out)


def sample(key: jax.Array, blocks: tuple[Block, ...], reference, n_chains: int) -> jax.Array:
    """Exact draws (C, n) int8, internal order, from the product reference.

    One draw per run of blocks of a kind (not per block), from
    `core.random`'s exact Bernoulli and categorical samplers.
    """
    parts = []
    for i, (kind, _q, first, last) in enumerate(_runs(blocks)):
        logits = _joined(blocks, reference, first, last)
        k = jax.random.fold_in(key, i)
        if kind == CATEGORICAL:
            z = jnp.broadcast_to(logits, (n_chains, *logits.shape))
            parts.append(random.categorical(k, z))
        else:
            p = jnp.broadcast_to(jax.nn.sigmoid(logits), (n_chains, logits.shape[0]))
            up = random.bernoulli(k, p)
            parts.append(jnp.where(up, jnp.int8(1), jnp.int8(-1 if kind == SPIN else 0)))
    return jnp.concatenate(parts, axis=1)
