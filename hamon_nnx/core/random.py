"""Exact Bernoulli and categorical draws for many chains at once, cheaply.

`jax.random.uniform` spends one Threefry-2x32 hash (64 random bits, 20
rounds) on each float32 uniform and keeps 23 of the bits. A Gibbs update
of a spin needs far less: comparing a uniform with p bit by bit decides
after two bits on average. `bernoulli` draws one random byte per variable
(eight variables per hash) and compares it with the top byte of p; only
when they tie (probability 1/256) does it draw 24 more bits, so every
decision equals the comparison of a 32-bit uniform with p, exactly, at
about a quarter of the hashing.

Refinement bits come in groups: the variables of a byte group (8 of
them, one hash) share two refinement words at level 0, given to the first
and second tied variable of the group; levels 1-3 supply two more each
and are drawn only when some group anywhere in the batch has more than
two ties (`lax.cond`; about 5% of calls on a 64 x 2048 block).
Every tied variable thus reads its own fresh bits, and the decisions are
exactly independent Bernoulli(p).

Random streams: each call of `bernoulli` hashes counters (chain, word) with
its key, so row c of the result depends only on (key, c, row length), never
on the number of rows: chains sharded over devices draw identical values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

GROUP = 8  # random bytes per Threefry-2x32 hash
_LEVELS = GROUP // 2  # refinement levels: two words each cover all 8 ties


def check_threefry(key: jax.Array) -> None:
    """Raise unless `key` is a typed Threefry-2x32 key (what `bernoulli` hashes with)."""
    impl = str(jax.random.key_impl(key))
    if "threefry" not in impl:
        raise ValueError(f"hamon-nnx samplers need a threefry2x32 PRNG key, got a {impl} key")


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k1, k2, x1, x2):
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011), unrolled.

    Bit-identical to JAX's `threefry2x32_p`, whose CPU lowering is a rolled
    loop that writes every intermediate array to memory; straight-line code
    lets XLA fuse the whole hash into the consumer of its bits.
    """
    ks = (k1, k2, k1 ^ k2 ^ jnp.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = ((x2 << jnp.uint32(r)) | (x2 >> jnp.uint32(32 - r))) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x1, x2


def hash_words(key: jax.Array, n_rows: int, start: int, count: int) -> tuple[jax.Array, jax.Array]:
    """Two (n_rows, count) uint32 arrays: Threefry-2x32 of counters (row, start + j)."""
    k = jax.random.key_data(key)
    rows = lax.broadcasted_iota(jnp.uint32, (n_rows, count), 0)
    cols = lax.broadcasted_iota(jnp.uint32, (n_rows, count), 1) + jnp.asarray(start, jnp.uint32)
    return threefry2x32(k[0], k[1], rows, cols)


def bernoulli(key: jax.Array, p: jax.Array) -> jax.Array:
    """Independent Bernoulli(p) draws, exact to 32-bit resolution.

    Args:
        key: a threefry2x32 PRNG key.
        p: probabilities, shape (rows, m), float32 in [0, 1].

    Returns:
        bool array (rows, m): True with probability p (to within 2^-32).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from hamon_nnx.core.random import bernoulli
        >>> x = bernoulli(jax.random.key(0), jnp.full((4, 10000), 0.3))
        >>> bool(abs(x.mean() - 0.3) < 0.01)
        True
    """
    rows, m = p.shape
    groups = -(-m // GROUP)
    p = jnp.pad(p.astype(jnp.float32), ((0, 0), (0, groups * GROUP - m)))
    p = p.reshape(rows, groups, GROUP)
    pos = jnp.arange(GROUP, dtype=jnp.uint32)
    b1, b2 = hash_words(key, rows, 0, groups)
    word = jnp.where(pos < 4, b1[..., None], b2[..., None])
    byte = ((word >> (8 * (pos % 4))) & 0xFF).astype(jnp.float32)
    # u = (byte + r / 2^24) / 256 with r a fresh 24-bit integer, compared with p
    scaled = p * 256.0
    top = jnp.floor(scaled)
    frac = (scaled - top) * 2.0**24  # exact in float32
    tied = byte == top
    up = byte < top
    # rank of each tie among its group's ties, from a bit mask of the ties
    ties = jnp.sum(jnp.where(tied, jnp.uint32(1) << pos, jnp.uint32(0)), axis=-1)
    rank = lax.population_count(ties[..., None] & ((jnp.uint32(1) << pos) - 1))

    def refine(up, level):
        w1, w2 = hash_words(key, rows, groups * (1 + level), groups)
        word = jnp.where(rank == 2 * level, w1[..., None], w2[..., None])
        mine = tied & (rank // 2 == level)
        return up | (mine & ((word >> 8).astype(jnp.float32) < frac))

    def deeper(up):  # rare: a rolled loop keeps the compiled program small
        return lax.fori_loop(1, _LEVELS, lambda level, up: refine(up, level), up)

    up = refine(up, 0)
    up = lax.cond(jnp.any(lax.population_count(ties) > 2), deeper, lambda u: u, up)
    return up.reshape(rows, groups * GROUP)[:, :m]


def categorical(key: jax.Array, logits: jax.Array) -> jax.Array:
    """Draws from softmax(logits) by inverting the CDF with one uniform each.

    Args:
        key: PRNG key.
        logits: (rows, m, q) float32.

    Returns:
        int8 (rows, m) values in 0..q-1.
    """
    p = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    cdf = jnp.cumsum(p, axis=-1)
    u = jax.random.uniform(key, logits.shape[:-1], dtype=jnp.float32)
    target = u * cdf[..., -1]
    return jnp.sum(target[..., None] >= cdf[..., :-1], axis=-1).astype(jnp.int8)


def uniform(key: jax.Array, n_rows: int, count: int) -> jax.Array:
    """(n_rows, count) float32 uniforms on [0, 1) with 24 random bits each.

    Hashed from counters (row, column) like `bernoulli`, so row c depends
    only on (key, c), never on the number of rows.
    """
    words, _ = hash_words(key, n_rows, 0, count)
    return (words >> jnp.uint32(8)).astype(jnp.float32) * jnp.float32(2.0**-24)
