"""core.random: the hash is Threefry-2x32 bit for bit; Bernoulli draws are exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry2x32_p

from hamon_nnx.core import random as hr


def test_threefry_matches_jax_bit_for_bit():
    k = jax.random.key_data(jax.random.key(123))
    x1 = jnp.arange(5000, dtype=jnp.uint32) * jnp.uint32(2654435761)
    x2 = jnp.arange(5000, dtype=jnp.uint32)[::-1]
    ours = jax.jit(hr.threefry2x32)(k[0], k[1], x1, x2)
    ref = threefry2x32_p.bind(k[0], k[1], x1, x2)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a, b)


def reference_bernoulli(key, p):
    """The decision u < p for u = (byte + r / 2^24) / 256, written out in numpy."""
    rows, m = p.shape
    groups = m // hr.GROUP
    b1, b2 = (np.asarray(w) for w in hr.hash_words(key, rows, 0, groups))
    words = np.stack([b1, b2], axis=-1).astype("<u4")
    byte = words.view(np.uint8).reshape(rows, groups, hr.GROUP).astype(np.float64)
    pp = np.asarray(p, np.float32).reshape(rows, groups, hr.GROUP).astype(np.float64)
    top = np.floor(pp * 256)
    tied = byte == top
    rank = np.cumsum(tied, axis=-1) - 1
    refine = np.zeros((hr.GROUP // 2, 2, rows, groups), np.uint64)
    for level in range(hr.GROUP // 2):
        w1, w2 = hr.hash_words(key, rows, groups * (1 + level), groups)
        refine[level] = np.stack([np.asarray(w1), np.asarray(w2)])
    level, which = np.maximum(rank, 0) // 2, np.maximum(rank, 0) % 2
    g_idx = np.broadcast_to(np.arange(groups)[None, :, None], rank.shape)
    r_idx = np.broadcast_to(np.arange(rows)[:, None, None], rank.shape)
    r = refine[level, which, r_idx, g_idx] >> 8
    u = (byte * 2**24 + r) / 2**32
    return (u < pp).reshape(rows, m), int(np.sum(tied & (rank >= 2)))


def test_bernoulli_equals_the_written_out_32_bit_comparison():
    key = jax.random.key(7)
    g = np.random.default_rng(0)
    rows, m = 16, 1024
    p = g.random((rows, m)).astype(np.float32)
    p[:, :16] = [0.0, 1.0, 0.5, 1 / 512, 255.5 / 256, 1 / 256, 1e-9, 1 - 1e-7] * 2
    # force ties: in some groups give every variable the top byte its hash will draw,
    # so that all refinement levels (ranks 0..7) are used
    b1, b2 = (np.asarray(w) for w in hr.hash_words(key, rows, 0, m // hr.GROUP))
    byte = np.stack([b1, b2], axis=-1).astype("<u4").view(np.uint8).reshape(rows, m)
    forced = np.zeros((rows, m), bool)
    forced[:, 64:128] = True
    forced[3, :] = g.random(m) < 0.3
    p = np.where(forced, (byte + g.random((rows, m))) / 256, p).astype(np.float32)
    got = np.asarray(jax.jit(hr.bernoulli)(key, jnp.asarray(p)))
    want, deep = reference_bernoulli(key, p)
    assert deep > 0, "the test must reach the refinement levels past the first"
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("p", [1 / 512, 0.5 + 0.3 / 256, 0.9])
def test_bernoulli_frequency_within_standard_error(p):
    """p = 1/512 is decided by refinement bits alone (its top byte is 0)."""
    draw = jax.jit(lambda k: hr.bernoulli(k, jnp.full((256, 8192), p, jnp.float32)).mean())
    freq = np.mean([float(draw(jax.random.key(s))) for s in range(8)])
    n = 8 * 256 * 8192
    se = np.sqrt(p * (1 - p) / n)
    assert abs(freq - p) < 5 * se, (freq, p, se)


def test_bernoulli_edges_and_odd_lengths():
    key = jax.random.key(1)
    p = jnp.concatenate([jnp.zeros((3, 5)), jnp.ones((3, 6))], axis=1)
    x = np.asarray(hr.bernoulli(key, p))
    assert x.shape == (3, 11)
    assert not x[:, :5].any() and x[:, 5:].all()


def test_rows_do_not_depend_on_the_number_of_rows():
    key = jax.random.key(3)
    p = jnp.full((10, 100), 0.37)
    np.testing.assert_array_equal(hr.bernoulli(key, p)[:4], hr.bernoulli(key, p[:4]))


def test_categorical_frequencies():
    logits = jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4]))
    x = hr.categorical(jax.random.key(0), jnp.broadcast_to(logits, (64, 4096, 4)))
    freq = np.bincount(np.asarray(x).ravel(), minlength=4) / x.size
    se = np.sqrt(np.array([0.1, 0.2, 0.3, 0.4]) * 0.9 / x.size)
    assert np.all(np.abs(freq - [0.1, 0.2, 0.3, 0.4]) < 5 * se)


def test_non_threefry_keys_are_refused():
    with pytest.raises(ValueError, match="threefry2x32"):
        hr.check_threefry(jax.random.key(0, impl="rbg"))
