"""The multispin (bit-packed) heat bath of periodic Ising lattices.

Bit for bit against a written-out per-spin reference (forced ties and real
random words), and statistically against enumeration and Kaufman's exact
energy, at several betas per chain.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from stats import assert_matches

import hamon_nnx as hn
from hamon_nnx.core import explorers, gibbs, multispin
from hamon_nnx.core import random as hn_random

PLANES = multispin.PLANES
LOW = (1 << (32 - PLANES)) - 1


def random_internal(model, seed, n_chains):
    return gibbs.random_states(jax.random.key(seed), model.blocks, n_chains)


# -- layout -------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(4,), (10,), (4, 6), (6, 64), (4, 100), (4, 4, 6), (4, 4, 128), (4, 130)]
)
def test_pack_unpack_round_trip(shape):
    model = hn.IsingModel.lattice(shape)
    lat = multispin.Lattice(shape)
    x = random_internal(model, 0, 3)
    words = lat.pack(x)
    assert words.dtype == jnp.uint32
    assert words.shape == (3, 2, *shape[:-1], lat.n_words)
    assert lat.n_words * lat.bits == shape[-1] // 2
    assert int(jnp.max(words >> lat.bits)) == 0 if lat.bits < 32 else True
    np.testing.assert_array_equal(lat.unpack(words), x)


def test_word_bits():
    assert [multispin.word_bits(m) for m in (1, 3, 8, 32, 50, 64, 65, 37)] == [
        1, 3, 8, 32, 25, 32, 13, 1
    ]  # fmt: skip


def test_lattice_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even sizes"):
        multispin.Lattice((4, 5))


def up_neighbour_counts(model, x):
    """Per chain and internal-order site: the number of up neighbours (numpy, natural order)."""
    nat = (np.asarray(model.to_natural(x)).reshape(x.shape[0], *model.shape) > 0).astype(np.int64)
    count = np.zeros(nat.shape, np.int64)
    for axis in range(1, nat.ndim):
        count += np.roll(nat, 1, axis=axis) + np.roll(nat, -1, axis=axis)
    return np.asarray(model.to_internal(jnp.asarray(count.reshape(x.shape[0], -1), jnp.int8)))


def as_words_of_bits(lat, per_site):
    """Internal-order values (C, n) -> (C, 2, *lead, n_words, bits): the value of every bit."""
    c = per_site.shape[0]
    arr = np.asarray(per_site).reshape(c, 2, *lat.shape[:-1], lat.bits, lat.n_words)
    return np.moveaxis(arr, -2, -1)


@pytest.mark.parametrize("shape", [(6,), (4, 6), (6, 64), (4, 4, 6), (4, 6, 4)])
def test_neighbour_words_count_the_up_neighbours(shape):
    model = hn.IsingModel.lattice(shape)
    lat = multispin.Lattice(shape)
    x = random_internal(model, 1, 2)
    words = lat.pack(x)
    want = as_words_of_bits(lat, up_neighbour_counts(model, x))
    for colour in (0, 1):
        planes = multispin._count(lat.neighbours(words[:, 1 - colour], colour))
        bits = np.arange(lat.bits)
        got = sum(((np.asarray(p)[..., None] >> bits) & 1) << i for i, p in enumerate(planes))
        np.testing.assert_array_equal(got, want[:, colour])


# -- the decision, bit for bit ------------------------------------------------


def test_thresholds_are_the_float32_probability_in_32_bits():
    beta = jnp.asarray([0.0, 0.3, 1.0, 5.0, 40.0], jnp.float32)
    T, sure = multispin.thresholds(beta, jnp.float32(1.0), jnp.float32(0.25), 2)
    n = np.arange(5)
    z = np.asarray(beta)[:, None] * np.float32(2.0) * (np.float32(2 * n - 4) + np.float32(0.25))
    p = np.asarray(jax.nn.sigmoid(jnp.asarray(z, jnp.float32)), np.float64)
    np.testing.assert_array_equal(np.asarray(sure), p >= 1.0)
    want = np.where(p >= 1.0, 0, np.floor(p * 2.0**32)).astype(np.uint64)
    np.testing.assert_array_equal(np.asarray(T, np.uint64), want)
    assert np.asarray(T)[0, 2] == 2**31  # p = 1/2 at beta 0
    assert np.asarray(sure)[4, 4] and not np.asarray(sure)[3, 0]


def reference_decide(counts, T, sure, plane_words, refine_words, bits):
    """Written out, spin by spin: up iff u < p with u the spin's 32-bit uniform.

    counts (C, W, bits); plane_words[i] (C, W): bit j of plane i is bit 31 - i
    of spin j's uniform; the s-th spin of a word (in bit order) still tied
    after the planes, with a nonzero rest of threshold, takes the low 22 bits
    of its uniform from the top of refine_words(s) (C, W).
    """
    C, W, _ = counts.shape
    up = np.zeros((C, W), np.uint64)
    most_tied = 0
    for r in range(C):
        for w in range(W):
            tied = []
            for j in range(bits):
                n = counts[r, w, j]
                if sure[r, n]:
                    up[r, w] |= 1 << j
                    continue
                high = 0
                for i in range(PLANES):
                    high |= ((int(plane_words[i][r, w]) >> j) & 1) << (31 - i)
                t = int(T[r, n])
                if high < (t & ~LOW):
                    up[r, w] |= 1 << j
                elif high == (t & ~LOW) and t & LOW:
                    tied.append((j, high, t))
            most_tied = max(most_tied, len(tied))
            for s, (j, high, t) in enumerate(tied):
                u = high | (int(refine_words(s)[r, w]) >> PLANES)
                if u < t:
                    up[r, w] |= 1 << j
    return up, most_tied


def forced_words(rows, count, pattern, seed):
    """A stand-in for `core.random.hash_words`: words from a table by counter block.

    Block i holds plane pair i (i < PLANES / 2) or refinement level
    i - PLANES / 2; pattern(i) may give its two words (rows, count) to force
    ties, else they are random.
    """
    g = np.random.default_rng(seed)
    table = []
    for block in range(PLANES // 2 + 16):
        forced = pattern(block)
        table.append(forced if forced is not None else tuple(
            g.integers(0, 2**32, size=(rows, count), dtype=np.uint64).astype(np.uint32)
            for _ in range(2)
        ))  # fmt: skip
    stacked = jnp.asarray(np.asarray(table))

    def hash_words(key, n_rows, start, n):
        """Counters start .. start + n - 1, a whole number of blocks (start may be traced)."""
        assert n_rows == rows and n % count == 0
        blocks = [stacked[start // count + i] for i in range(n // count)]
        return tuple(jnp.concatenate([b[half] for b in blocks], axis=1) for half in (0, 1))

    return hash_words, table


@pytest.mark.parametrize("force", ["random", "all_tied", "half_tied"])
def test_decide_matches_the_written_out_reference(monkeypatch, force):
    bits, C, W, d = 32, 3, 5, 2
    g = np.random.default_rng(7)
    counts = g.integers(0, 2 * d + 1, size=(C, W, bits))
    beta = jnp.asarray([0.2, 0.9, 3.0], jnp.float32)
    T, sure = multispin.thresholds(beta, jnp.float32(0.8), jnp.float32(0.1), d)
    T, sure = np.asarray(T), np.asarray(sure)
    Tj = T[np.arange(C)[:, None, None], counts]  # (C, W, bits): each spin's threshold
    weights = np.uint64(1) << np.arange(bits, dtype=np.uint64)

    def tie_plane(i, keep):
        """Random bits equal to the threshold's bit plane i where `keep` (so still tied)."""
        t_bits = (Tj >> np.uint64(31 - i)) & 1
        noise = g.integers(0, 2, size=t_bits.shape)
        chosen = np.where(keep, t_bits, noise).astype(np.uint64)
        return (chosen * weights).sum(axis=-1).astype(np.uint32)

    keep = {"random": np.zeros_like(counts, bool), "all_tied": np.ones_like(counts, bool)}.get(
        force, g.random(size=counts.shape) < 0.5
    )

    def pattern(block):
        if block < PLANES // 2 and force != "random":
            return tie_plane(2 * block, keep), tie_plane(2 * block + 1, keep)
        return None

    fake, table = forced_words(C, W, pattern, seed=3)
    monkeypatch.setattr(multispin.random, "hash_words", fake)
    equal = [jnp.asarray((((counts == n) * weights).sum(-1)).astype(np.uint32)) for n in range(5)]
    got = multispin.decide(None, equal, jnp.asarray(T), jnp.asarray(sure), jnp.uint32(2**32 - 1))
    planes = [table[i // 2][i % 2] for i in range(PLANES)]
    want, most_tied = reference_decide(
        counts, T, sure, planes, lambda s: table[PLANES // 2 + s // 2][s % 2], bits
    )
    np.testing.assert_array_equal(np.asarray(got, np.uint64), want)
    # forced: words whose every spin (but the sure ones) needs refinement bits
    assert most_tied == {"random": most_tied, "half_tied": most_tied}.get(force, bits)
    assert force == "random" or most_tied > 8


@pytest.mark.parametrize("shape", [(4, 6), (6, 64), (4, 4, 4), (12,)])
def test_sweep_matches_the_written_out_reference(shape):
    """A whole sweep: black from the white neighbours, then white from the new black."""
    model = hn.IsingModel.lattice(shape, coupling=0.9, field=-0.2)
    lat = multispin.Lattice(shape)
    C = 4
    beta = jnp.asarray([0.1, 0.44, 1.0, 2.5], jnp.float32)
    x = random_internal(model, 4, C)
    key = jax.random.key(11)
    kernel = model.multispin()
    got = np.asarray(kernel.unpack(kernel.sweep(key, kernel.pack(x), beta)))

    T, sure = (np.asarray(a) for a in multispin.thresholds(beta, 0.9, -0.2, len(shape)))
    state = np.asarray(x).copy()
    W = int(np.prod(lat.word_shape))
    for colour in (0, 1):
        counts = as_words_of_bits(lat, up_neighbour_counts(model, jnp.asarray(state)))[:, colour]
        counts = counts.reshape(C, W, lat.bits)
        key_c = jax.random.fold_in(key, colour)

        def words(block, key_c=key_c):
            return [np.asarray(w) for w in hn_random.hash_words(key_c, C, block * W, W)]

        planes = [words(i // 2)[i % 2] for i in range(PLANES)]
        up, _ = reference_decide(
            counts, T, sure, planes, lambda s, w=words: w(PLANES // 2 + s // 2)[s % 2], lat.bits
        )
        spins = np.where((up[..., None] >> np.arange(lat.bits, dtype=np.uint64)) & 1, 1, -1)
        spins = np.moveaxis(spins.reshape(C, *lat.word_shape, lat.bits), -1, -2)
        half = state.shape[1] // 2
        state[:, colour * half : (colour + 1) * half] = spins.reshape(C, half)
    np.testing.assert_array_equal(got, state)


def test_certain_flips_leave_the_unused_bits_of_a_word_empty(key):
    """p = 1 at every count (a huge field): all up, nothing written past `bits`."""
    m = hn.IsingModel.lattice((4, 6), coupling=0.5, field=6.0)
    kernel = m.multispin()
    assert kernel.lattice.bits == 3
    words = kernel.pack(random_internal(m, 6, 2))
    for t in range(3):
        words = kernel.sweep(jax.random.fold_in(key, t), words, jnp.full((2,), 2.5))
    assert int(jnp.max(words)) == 7
    assert (np.asarray(kernel.unpack(words)) == 1).all()


# -- where it runs ------------------------------------------------------------


def test_selected_for_periodic_lattices_with_scalar_coupling_and_field():
    assert hn.IsingModel.lattice((8, 8), coupling=0.5, field=0.1).multispin() is not None
    assert hn.IsingModel.lattice((4, 4, 4)).multispin() is not None
    assert hn.IsingModel.lattice((8, 8), periodic=False).multispin() is None
    assert hn.IsingModel.lattice((8, 8), coupling=[1.0, 0.5]).multispin() is None
    assert hn.IsingModel.lattice((4, 4), field=np.zeros((4, 4))).multispin() is None
    m = hn.IsingModel.lattice((8, 8))
    assert gibbs.multispin_kernel(m, reference=(jnp.zeros(32), jnp.zeros(32))) is None
    assert gibbs.multispin_kernel(m, packed=False) is None


def test_the_report_names_the_kernel(key):
    m = hn.IsingModel.lattice((8, 8), coupling=0.3)
    plan = hn.autotune(m, key, max_rounds=32, explorer="gibbs", n_explore=1, n_betas=4)
    assert plan.report().multispin and "explorer gibbs (multispin)" in str(plan.report())
    assert explorers.multispin(explorers.resolve("swendsen_wang+gibbs"), m)
    assert not explorers.multispin(explorers.Gibbs(packed=False), m)
    assert not explorers.multispin(explorers.GIBBS, hn.IsingModel.lattice((8, 8), periodic=False))


def test_packed_and_int8_kernels_draw_differently(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.5, field=0.2)
    a = hn.sample(m, key, n_samples=5, n_chains=2)
    b = hn.sample(m, key, n_samples=5, n_chains=2, explorer=explorers.Gibbs(packed=False))
    # (the int8 law: tests/test_gibbs.py, lattices with site fields or open boundaries)
    assert not np.array_equal(a, b)


def test_one_sweep_and_a_run_of_sweeps_agree(key):
    m = hn.IsingModel.lattice((4, 8), coupling=0.7)
    x = random_internal(m, 5, 3)
    beta = jnp.full((3,), 0.6)
    run = gibbs.sweeps(key, x, m, beta, 2, 5)
    loop = x
    for t in range(2, 5):
        loop = gibbs.sweep(jax.random.fold_in(key, t), loop, m, beta)
    np.testing.assert_array_equal(run, loop)


def test_chain_streams_do_not_depend_on_the_chain_count(key):
    m = hn.IsingModel.lattice((4, 64), coupling=0.4)
    a = hn.sample(m, key, n_samples=3, n_chains=2, n_warmup=5)
    b = hn.sample(m, key, n_samples=3, n_chains=5, n_warmup=5)
    np.testing.assert_array_equal(a, b[:2])


def test_clamped_spins_stay_and_the_rest_follow_the_conditional(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.6, field=0.1)
    mask = np.zeros(16, bool)
    mask[[0, 5, 10]] = True
    values = np.where(mask, np.array([1, -1] * 8), 1).astype(np.int8)
    s = np.asarray(hn.sample(m, key, n_samples=600, n_chains=64, clamp=(mask, values)))
    assert (s[..., mask] == values[mask]).all()
    states, probs = hn.exact.probabilities(m)
    fit = np.all(states[:, mask] == values[mask], axis=1)
    assert_matches(s, states[fit], probs[fit] / probs[fit].sum(), m.variable_values())


# -- the law: enumeration and Kaufman -------------------------------------------


@pytest.mark.parametrize(
    "shape, coupling, field",
    [((4, 4), 1.0, 0.0), ((4, 4), -0.8, 0.3), ((16,), 1.2, -0.4)],
)
def test_matches_enumeration_at_several_betas_per_chain(key, shape, coupling, field):
    m = hn.IsingModel.lattice(shape, coupling=coupling, field=field)
    assert m.multispin() is not None
    betas = np.repeat([0.25, 0.6, 1.1], 32)
    s = np.asarray(hn.sample(m, key, n_samples=800, n_chains=96, n_warmup=50, beta=betas))
    for i, beta in enumerate((0.25, 0.6, 1.1)):
        states, probs = hn.exact.probabilities(m, beta=beta)
        assert_matches(s[32 * i : 32 * (i + 1)], states, probs, m.variable_values())


def group_means(s, model, groups, per):
    """Per beta group: chain means of the energy per spin and of m^2 (chains, 2)."""
    x = np.asarray(s)
    e = np.asarray(model.energy(jnp.asarray(x)), np.float64) / model.n_variables
    m2 = x.astype(np.float64).mean(axis=-1) ** 2
    stats = np.stack([e.mean(axis=1), m2.mean(axis=1)], axis=-1)
    return [stats[per * i : per * (i + 1)] for i in range(groups)]


def test_3d_lattice_agrees_with_the_int8_kernel_at_several_betas_per_chain(key):
    """4x4x4 is past enumeration: the two exact kernels must agree within their errors."""
    m = hn.IsingModel.lattice((4, 4, 4), coupling=1.0, field=0.05)
    betas, per = (0.15, 0.22, 0.3), 32
    kw = dict(n_samples=300, n_chains=per * 3, n_warmup=100, beta=np.repeat(betas, per))
    packed = hn.sample(m, key, **kw)
    int8 = hn.sample(m, jax.random.fold_in(key, 1), explorer=explorers.Gibbs(packed=False), **kw)
    for a, b in zip(group_means(packed, m, 3, per), group_means(int8, m, 3, per), strict=True):
        se = np.sqrt(a.var(axis=0, ddof=1) / per + b.var(axis=0, ddof=1) / per)
        z = (a.mean(axis=0) - b.mean(axis=0)) / se
        assert np.all(np.abs(z) < 5.0), z


def kaufman_z(s, L, betas, per):
    """z of the mean energy per spin of each beta group against Kaufman's finite lattice."""
    m = hn.IsingModel.lattice((L, L))
    e = np.asarray(m.energy(jnp.asarray(s)), np.float64) / L**2  # (chains, draws)
    out = []
    for i, beta in enumerate(betas):
        chain_means = e[per * i : per * (i + 1)].mean(axis=1)
        se = chain_means.std(ddof=1) / np.sqrt(per)
        out.append((chain_means.mean() - hn.exact.ising_lattice_energy(L, beta)) / se)
    return np.asarray(out)


def test_energy_matches_kaufman_on_16x16_at_several_betas_per_chain(key):
    L, betas, per = 16, (0.3, 0.4406868, 0.6), 32
    m = hn.IsingModel.lattice((L, L))
    chain_betas = np.repeat(betas, per)
    s = hn.sample(m, key, n_samples=400, n_chains=len(chain_betas), n_warmup=500, thin=5,
                  beta=chain_betas)  # fmt: skip
    z = kaufman_z(s, L, betas, per)
    assert np.all(np.abs(z) < 5.0), z
    # power: the same draws against the energy at a 2% different temperature fail
    wrong = kaufman_z(s, L, tuple(b * 1.02 for b in betas), per)
    assert np.max(np.abs(wrong)) > 5.0, wrong


def test_nrpt_on_the_packed_kernel_matches_exact_log_z(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.9, field=0.15)
    assert m.multispin() is not None
    log_z = hn.nrpt(m, key, n_rounds=3000, n_betas=8, n_explore=2).log_z
    exact = hn.exact.log_partition(m)
    assert abs(log_z.estimate - exact) < 4 * log_z.stderr, (log_z, exact)


def mle_standard_errors(draws):
    """Delta-method standard errors of the (J, h) maximum-likelihood estimate
    from draws (chains, draws, L, L) of a periodic lattice: I^-1 Cov(mean T) I^-1
    with T = (sum of bonds, magnetization), I = Cov(T) per draw, and the
    covariance of the mean from the spread of the chains' means."""
    x = draws.astype(np.float64)
    bonds = (x * np.roll(x, 1, -1) + x * np.roll(x, 1, -2)).sum((-1, -2))
    T = np.stack([bonds, x.sum((-1, -2))], axis=-1)
    info_inv = np.linalg.inv(np.cov(T.reshape(-1, 2).T))
    cov_mean = np.cov(T.mean(axis=1).T) / T.shape[0]
    return np.sqrt(np.diag(info_inv @ cov_mean @ info_inv))


def test_training_a_lattice_coupling_and_field_on_the_packed_kernel(key, monkeypatch):
    """PCD on data of a known periodic lattice recovers J and h within the
    data's own standard error; its sweeps are packed."""
    import optax

    truth = hn.IsingModel.lattice((8, 8), coupling=0.3, field=0.15)
    draws = np.asarray(hn.sample(truth, key, n_samples=250, n_chains=16, thin=5))
    se = mle_standard_errors(draws.reshape(16, 250, 8, 8))
    traced = []
    sweep = multispin.Kernel.sweep
    monkeypatch.setattr(
        multispin.Kernel, "sweep", lambda *a, **k: traced.append(1) or sweep(*a, **k)
    )
    model = hn.IsingModel.lattice((8, 8), coupling=0.0, field=0.0)
    steps = 12 * (draws.shape[0] * draws.shape[1] // 200)
    learning_rate = optax.cosine_decay_schedule(0.05, steps)  # ends still: no optimizer noise
    trainer = hn.Trainer(
        model, optax.adam(learning_rate), negative=hn.PCD(n_chains=64, k=5), progress=False,
        eval_every=0,
    )  # fmt: skip
    trainer.fit(draws.reshape(-1, truth.n_variables), epochs=12, batch_size=200)
    assert traced, "the negative phase did not use the multispin kernel"
    learned = np.array([float(model.coupling[...]), float(model.field[...])])
    z = (learned - [0.3, 0.15]) / se
    assert np.all(np.abs(z) < 5.0), (learned, se, z)
