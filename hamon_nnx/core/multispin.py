"""Multispin coding: heat-bath sweeps of periodic Ising lattices on packed words.

A spin is a bit. Each checkerboard sublattice of an even periodic lattice
(shape (*lead, L), sublattice (*lead, m) with m = L / 2 in the models'
internal order) is packed along its last axis into words of `bits` spins:
bit j of word w of a row holds sublattice site k = j * n_words + w, so the
neighbours k -/+ 1 of a whole word are the next/previous word, rotated by
one bit at the row's end. One bitwise operation then acts on up to 32
spins.

The heat-bath update of a sublattice, on words:

1. the number of up neighbours of every spin (0..2d) by bit-sliced adders
   of the 2d neighbour words (`_count`);
2. per chain, the float32 probability p_n = sigmoid(beta * 2 (J (2n - 2d) + h))
   for each count n and its 32-bit threshold T_n = floor(p_n 2^32) (the
   same float32 probability as the int8 kernel);
3. the decision u < p with u a 32-bit uniform, made bit plane by bit plane
   from the most significant: plane k compares one random bit of every
   spin with bit k of its T (selected by the count), deciding "up" where
   the random bit is 0 and T's bit 1, "down" where it is 1 and T's 0.
   After `PLANES` planes a spin is still undecided with probability 2^-10;
   those few compare their remaining 22 random bits with the rest of T as
   integers, two of them per word and level, from fresh refinement words
   (`_refine`), until none is left. Every decision is thus exactly the
   comparison of a 32-bit uniform with p (to within 2^-32, like
   `core.random.bernoulli`), and every bit of every random word serves one
   spin once.

Random streams: half-sweep c of a sweep draws from `fold_in(key, c)`;
plane pair i of word w of chain r hashes the counter (r, i * W + w) with
Threefry-2x32 (`core.random.hash_words`, W words per chain), refinement
level l the counter (r, (PLANES / 2 + l) W + w). A chain's draws depend on
(key, r) only, never on how many chains run beside it or on which device.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from . import graph, random

PLANES = 10  # bit planes compared for every spin before the refinement


def word_bits(m: int) -> int:
    """Spins per word for a sublattice row of m sites: the largest divisor of m up to 32."""
    return max(b for b in range(1, 33) if m % b == 0)


@dataclasses.dataclass(frozen=True)
class Lattice:
    """The packed layout of a periodic lattice with even sizes (hashable, static).

    Args:
        shape: the lattice sizes (*lead, L), every one even.

    Example:
        >>> import jax.numpy as jnp
        >>> lat = Lattice((4, 8))
        >>> x = jnp.where(jnp.arange(32) % 3 == 0, 1, -1).astype(jnp.int8)[None]
        >>> words = lat.pack(x)
        >>> words.shape, words.dtype
        ((1, 2, 4, 1), dtype('uint32'))
        >>> bool((lat.unpack(words) == x).all())
        True
    """

    shape: tuple[int, ...]

    def __post_init__(self):
        if any(s % 2 or s < 2 for s in self.shape):
            raise ValueError(f"multispin lattices need even sizes >= 2, got {self.shape}")

    @property
    def sub_shape(self) -> tuple[int, ...]:
        return (*self.shape[:-1], self.shape[-1] // 2)

    @property
    def bits(self) -> int:
        return word_bits(self.shape[-1] // 2)

    @property
    def n_words(self) -> int:
        """Words per sublattice row."""
        return self.shape[-1] // 2 // self.bits

    @property
    def word_shape(self) -> tuple[int, ...]:
        """Words of one sublattice: (*lead, n_words)."""
        return (*self.shape[:-1], self.n_words)

    @property
    def sweep_cost(self) -> float:
        """The work of a sweep in int8 Gibbs sweeps of the same lattice (for the tuner).

        Measured in NRPT rounds of 26 chains on the project's 2-core AMD EPYC:
        16x16 (8 bits a word) 0.030 ms against 0.049 ms, 32x32 (16 bits)
        0.041 / 0.153 ms; 64 chains of 64x64 (32 bits) about 1/6. About
        5 / bits, at most 1: fixed numbers, so tuning never reads a clock.
        """
        return min(1.0, 5.0 / self.bits)

    def _mask(self) -> jax.Array:
        return jnp.uint32((1 << self.bits) - 1)

    def pack(self, x: jax.Array) -> jax.Array:
        """Internal-order spins (..., n) int8 -> words (..., 2, *lead, n_words) uint32."""
        lead = x.shape[:-1]
        sub = x.reshape(*lead, 2, *self.shape[:-1], self.bits, self.n_words)
        shifts = jnp.arange(self.bits, dtype=jnp.uint32)[:, None]
        return jnp.sum((sub > 0).astype(jnp.uint32) << shifts, axis=-2, dtype=jnp.uint32)

    def unpack(self, words: jax.Array) -> jax.Array:
        """Words (..., 2, *lead, n_words) -> internal-order spins (..., n) int8."""
        lead = words.shape[: words.ndim - len(self.shape) - 1]
        shifts = jnp.arange(self.bits, dtype=jnp.uint32)[:, None]
        bit = (words[..., None, :] >> shifts) & jnp.uint32(1)
        spins = jnp.where(bit == 1, jnp.int8(1), jnp.int8(-1))
        return spins.reshape(*lead, math.prod(self.shape))

    def pack_mask(self, mask: jax.Array) -> jax.Array:
        """A bool mask (n,) in internal order -> words (2, *lead, n_words) (clamps)."""
        return self.pack(jnp.where(mask, jnp.int8(1), jnp.int8(-1)))

    # -- neighbours -------------------------------------------------------------

    def _row_forward(self, colour) -> jax.Array:
        """Where the second last-axis neighbour of a sublattice site is k + 1 (else k - 1)."""
        return jnp.asarray(graph.row_parity(self.shape)) ^ (jnp.asarray(colour) != 0)

    def _next(self, w: jax.Array) -> jax.Array:
        """Words holding site k + 1 of every bit's site k (periodic along the row)."""
        b = self.bits
        first = w[..., :1]
        wrapped = ((first >> 1) | (first << (b - 1))) & self._mask()
        return jnp.concatenate([w[..., 1:], wrapped], axis=-1)

    def _prev(self, w: jax.Array) -> jax.Array:
        """Words holding site k - 1 (periodic)."""
        b = self.bits
        last = w[..., -1:]
        wrapped = ((last << 1) | (last >> (b - 1))) & self._mask()
        return jnp.concatenate([wrapped, w[..., :-1]], axis=-1)

    def neighbours(self, other: jax.Array, colour: int) -> list[jax.Array]:
        """The 2d neighbour words of sublattice `colour`, from the other one's words (C, *lead, n_w)."""
        out = []
        for axis in range(1, len(self.shape)):
            out += [jnp.roll(other, 1, axis=axis), jnp.roll(other, -1, axis=axis)]
        out.append(other)
        out.append(jnp.where(self._row_forward(colour), self._next(other), self._prev(other)))
        return out


def _count(words: list[jax.Array]) -> list[jax.Array]:
    """Bit-sliced sum of bit words: planes c_0, c_1, ... of the per-bit count."""
    n_planes = max(1, len(words).bit_length())
    planes = [jnp.zeros_like(words[0]) for _ in range(n_planes)]
    for w in words:
        carry = w
        for i in range(n_planes):
            planes[i], carry = planes[i] ^ carry, planes[i] & carry
    return planes


def _equal(planes: list[jax.Array], n: int) -> jax.Array:
    """Words with the bits whose count equals n."""
    out = None
    for i, p in enumerate(planes):
        term = p if (n >> i) & 1 else ~p
        out = term if out is None else out & term
    assert out is not None  # `_count` gives at least one plane
    return out


def thresholds(beta: jax.Array, coupling, field, d: int):
    """Per chain and count n of up neighbours: (T (C, 2d+1) uint32, sure (C, 2d+1) bool).

    T_n = floor(p_n 2^32) with p_n = sigmoid(beta 2 (J (2n - 2d) + h)) in
    float32; `sure` marks p_n = 1 (up whatever the uniform).
    """
    n = jnp.arange(2 * d + 1, dtype=jnp.float32)
    local = 2.0 * (coupling * (2.0 * n - 2.0 * d) + field)
    p = jax.nn.sigmoid(beta[:, None] * local[None, :])
    sure = p >= 1.0
    scaled = jnp.floor(jnp.where(sure, 0.0, p) * jnp.float32(2.0**32))
    return scaled.astype(jnp.uint32), sure


def _broadcast(table: jax.Array, ndim: int) -> list[jax.Array]:
    """Columns of a (C, K) table, each shaped (C, 1, ..., 1) to meet words of `ndim` dims."""
    return [table[:, n].reshape((-1,) + (1,) * (ndim - 1)) for n in range(table.shape[1])]


def _refine(key, up, undecided, equal, low_T, n_words):
    """Decide the undecided spins, two per word and level, from fresh 32-bit words.

    At level l the lowest undecided bit of a word compares the top 22 bits of
    refinement word 2l, the next one those of word 2l + 1, with the low 22
    bits of its threshold; levels run until no spin anywhere is undecided.
    """
    rows, shape = up.shape[0], up.shape

    def one_level(carry):
        level, up, und = carry
        start = (PLANES // 2 + level) * n_words
        for r in random.hash_words(key, rows, start, n_words):
            lowest = und & (~und + jnp.uint32(1))
            threshold = jnp.uint32(0)
            for eq, t in zip(equal, low_T, strict=True):
                threshold = jnp.where((eq & lowest) != 0, t, threshold)
            win = (r.reshape(shape) >> jnp.uint32(PLANES)) < threshold
            up = up | jnp.where(win, lowest, jnp.uint32(0))
            und = und & ~lowest
        return level + 1, up, und

    carry = (jnp.int32(0), up, undecided)
    return lax.while_loop(lambda c: jnp.any(c[2] != 0), one_level, carry)[1]


def decide(key, equal, T, sure, valid) -> jax.Array:
    """Words of "up" decisions: bit i is up iff u_i < p_i, u_i a fresh 32-bit uniform.

    Args:
        key: PRNG key of the draws.
        equal: per count n (0..2d), the words (C, *lead, n_w) of the bits with that count.
        T, sure: the thresholds per chain and count (`thresholds`).
        valid: the mask of used bits in a word.
    """
    shape = equal[0].shape
    rows, n_words = shape[0], math.prod(shape[1:])
    T_cols = _broadcast(T, len(shape))
    up = jnp.zeros(shape, jnp.uint32)
    for eq, s in zip(equal, _broadcast(sure, len(shape)), strict=True):
        up = up | jnp.where(s, eq, jnp.uint32(0))
    up = up & valid  # unused bits count 0 up neighbours: keep them 0
    undecided = ~up & valid
    # one hash for all plane pairs: counters pair * W + w, as drawn pair by pair
    pairs = random.hash_words(key, rows, 0, PLANES // 2 * n_words)
    for pair in range(PLANES // 2):
        for half, r in enumerate(p[:, pair * n_words : (pair + 1) * n_words] for p in pairs):
            k = jnp.uint32(31 - 2 * pair - half)
            bit_plane = jnp.uint32(0)
            for eq, t in zip(equal, T_cols, strict=True):
                bit_plane = bit_plane | (eq & (jnp.uint32(0) - ((t >> k) & jnp.uint32(1))))
            r = r.reshape(shape)
            up = up | (undecided & bit_plane & ~r)
            undecided = undecided & ~(bit_plane ^ r)
    low_T = [t & jnp.uint32((1 << (32 - PLANES)) - 1) for t in T_cols]
    # a tie whose remaining threshold bits are all zero is already lost
    for eq, t in zip(equal, low_T, strict=True):
        undecided = undecided & ~jnp.where(t == 0, eq, jnp.uint32(0))
    return _refine(key, up, undecided, equal, low_T, n_words)


def heat_bath(key, neighbours, T, sure, valid) -> jax.Array:
    """New words of one sublattice: every spin drawn from its heat bath (exact).

    Args:
        key: PRNG key of this half-sweep.
        neighbours: the 2d neighbour words, each (C, *lead, n_w) uint32.
        T, sure: the thresholds per chain and count (`thresholds`).
        valid: the mask of used bits in a word.
    """
    planes = _count(neighbours)
    equal = [_equal(planes, n) for n in range(len(neighbours) + 1)]
    return decide(key, equal, T, sure, valid)


class Kernel(NamedTuple):
    """The multispin heat bath of one model: its packed layout, scalar J and h.

    Models that can run it return one from `multispin()` (see
    `IsingModel.lattice`); `core.gibbs` then packs the chains once per run
    of sweeps and unpacks them at the end.
    """

    lattice: Lattice
    coupling: jax.Array
    field: jax.Array

    def pack(self, x):
        return self.lattice.pack(x)

    def unpack(self, words):
        return self.lattice.unpack(words)

    def sweep(self, key, words, beta, keep=None):
        """One checkerboard sweep of packed chains (C, 2, *lead, n_w), both
        sublattices; sublattice c (0: black) draws from `fold_in(key, c)`,
        bits set in `keep` (2, *lead, n_w) stay."""
        lat = self.lattice
        valid = lat._mask()
        T, sure = thresholds(beta, self.coupling, self.field, len(lat.shape))

        def half_sweep(colour, words):  # a rolled loop: one copy of the heat bath to compile
            other = lax.dynamic_index_in_dim(words, 1 - colour, axis=1, keepdims=False)
            nb = lat.neighbours(other, colour)
            new = heat_bath(jax.random.fold_in(key, colour), nb, T, sure, valid)
            if keep is not None:
                stay = lax.dynamic_index_in_dim(keep, colour, axis=0, keepdims=False)
                own = lax.dynamic_index_in_dim(words, colour, axis=1, keepdims=False)
                new = (new & ~stay) | (own & stay)
            return lax.dynamic_update_index_in_dim(words, new, colour, axis=1)

        return lax.fori_loop(0, 2, half_sweep, words)
