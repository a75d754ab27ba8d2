"""Energy-only models: autodiff conditionals, blocks, check_model, shipped models."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree
from scipy import stats as sps
from stats import assert_matches

import hamon_nnx as hn
from hamon_nnx.core import graph
from hamon_nnx.models import custom
from hamon_nnx.models.base import Structure
from hamon_nnx.models.check import ModelCheckError

g = np.random.default_rng(0)
J_DENSE = np.triu(g.normal(size=(6, 6)), 1)
J_DENSE = J_DENSE + J_DENSE.T
EDGES = np.array([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (4, 1), (5, 4)])

BUILTIN = {
    "ising-lattice": lambda: hn.IsingModel.lattice((4, 6), [0.7, -0.3], g.normal(size=(4, 6))),
    "ising-lattice-odd": lambda: hn.IsingModel.lattice((5, 3), 0.5, 0.1),
    "ising-lattice-3d": lambda: hn.IsingModel.lattice((2, 4, 2), 0.3, 0.1, periodic=False),
    "ising-from-edges": lambda: hn.IsingModel.from_edges(
        6, EDGES, g.normal(size=7), g.normal(size=6)
    ),
    "ising-dense": lambda: hn.IsingModel.dense(J_DENSE, g.normal(size=6)),
    "potts-lattice": lambda: hn.PottsModel.lattice((3, 4), 3, 0.8, g.normal(size=(12, 3))),
    "potts-edges-matrix": lambda: hn.PottsModel.from_edges(6, 4, EDGES, g.normal(size=(7, 4, 4))),
    "rbm": lambda: hn.RBM.from_params(g.normal(size=(5, 3)), g.normal(size=5), g.normal(size=3)),
}


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_check_model_passes_every_builtin_model(name):
    result = hn.check_model(BUILTIN[name](), n_states=2)
    assert result.n_checked > 0 and result.max_error < result.tolerance


# -- a custom Ising model against the hand-written one -------------------------------------
class CustomIsing(hn.EnergyModel):
    """The periodic 2-D Ising model written as an energy only."""

    def __init__(self, shape, coupling=1.0, field=0.0, detect=False):
        self.coupling = nnx.Param(jnp.float32(coupling))
        self.field = nnx.Param(jnp.asarray(field, jnp.float32))
        edges, _ = graph.lattice_edges(tuple(shape), True)
        self.declare_variables(hn.Spins(shape, name="s"), interactions=None if detect else edges)

    def energy(self, x):
        s = self.unpack(x)["s"]
        bonds = s * jnp.roll(s, -1, -1) + s * jnp.roll(s, -1, -2)
        return -self.coupling * jnp.sum(bonds, (-2, -1)) - jnp.sum(self.field * s, (-2, -1))


def test_custom_ising_matches_the_handwritten_model():
    field = g.normal(size=(4, 6)).astype(np.float32)
    hand = hn.IsingModel.lattice((4, 6), 0.6, field)
    mine = CustomIsing((4, 6), 0.6, field)
    assert [b.size for b in mine.blocks] == [12, 12]  # the checkerboard, found by colouring
    assert mine.layout_periods == ((2, 2),)  # reached by reshapes, no gathers
    x = hn.exact.enumerate_states(hn.IsingModel.lattice((3, 3), 1.0))[:1]  # any states
    x = np.asarray(hn.sample(hand, jax.random.key(1), n_samples=5, n_chains=3)).reshape(-1, 24)
    np.testing.assert_allclose(mine.energy(x), hand.energy(x), rtol=1e-6, atol=1e-5)
    # conditionals: the autodiff logit of every spin equals the hand-written one
    for xs in x[:3]:
        want = np.concatenate(
            [
                np.asarray(hand.block_logits(hand.to_internal(jnp.asarray(xs)), b)).ravel()
                for b in (0, 1)
            ]
        )
        want = np.asarray(hand.to_natural(jnp.asarray(want)))
        got = np.concatenate(
            [np.asarray(mine.block_logits(mine.to_internal(jnp.asarray(xs)), b)) for b in (0, 1)]
        )
        np.testing.assert_allclose(np.asarray(mine.to_natural(jnp.asarray(got))), want, atol=1e-5)
    for order in (mine.to_internal, mine.to_natural):
        np.testing.assert_array_equal(np.sort(np.asarray(order(jnp.arange(24)))), np.arange(24))


def test_hessian_detection_finds_pairs_and_higher_order_factors():
    det = CustomIsing((4, 4), 0.5, detect=True)
    ref = CustomIsing((4, 4), 0.5)
    assert det.blocks == ref.blocks

    class Mixed(hn.EnergyModel):
        # a 3-spin factor, a spin-label pair and a label-label pair
        def __init__(self):
            self.t = nnx.Param(jnp.float32(0.0))  # zero: the detection still sees it
            self.declare_variables(hn.Spins(4, name="s"), hn.Categorical(2, q=3, name="c"))

        def energy(self, x):
            v = self.unpack(x)
            s, c = v["s"], v["c"]
            return (
                self.t * s[..., 0] * s[..., 1] * s[..., 2]
                + s[..., 3] * c[..., 0, 1]
                + jnp.sum(c[..., 0, :] * c[..., 1, :], -1)
            )

    m = Mixed()
    pairs = {tuple(p) for p in custom.detect_interactions(m).tolist()}
    assert pairs == {(0, 1), (0, 2), (1, 2), (3, 4), (4, 5)}
    # spins: {0, 1, 2} pairwise apart, 3 free; labels 4 and 5 apart
    assert [(b.kind, b.size) for b in m.blocks] == [
        ("spin", 2),
        ("spin", 1),
        ("spin", 1),
        ("categorical", 1),
        ("categorical", 1),
    ]
    hn.check_model(m)


# -- shipped models ------------------------------------------------------------------------
def plaquette():
    return hn.PlaquetteIsing((4, 4), coupling=0.2, plaquette=0.5, field=0.1)


def clock():
    return hn.ClockModel.lattice((3, 3), q=3, coupling=0.6, field=(0.3, -0.2), periodic=False)


def spin_label(init_scale=1.0, seed=0):
    m = hn.SpinLabelModel(3, 1, 3, [(0, 1), (1, 2)], rngs=nnx.Rngs(seed), init_scale=init_scale)
    if init_scale:
        r = np.random.default_rng(seed)
        m.coupling[...] = jnp.asarray([0.5, -0.4], jnp.float32)
        m.field[...] = jnp.asarray(0.3 * r.normal(size=3), jnp.float32)
        m.label_field[...] = jnp.asarray(0.5 * r.normal(size=(1, 3)), jnp.float32)
    return m


SHIPPED = {"plaquette": plaquette, "clock": clock, "spin-label": spin_label}


def brute_force_energy(name, model, x):
    """The documented formulas in numpy, independent of the models' code."""
    x = np.asarray(x, np.float64)
    if name == "plaquette":
        s = x.reshape(-1, 4, 4)
        r, d = np.roll(s, -1, 2), np.roll(s, -1, 1)
        rd = np.roll(r, -1, 1)
        return (
            -0.2 * np.sum(s * r + s * d, (1, 2))
            - 0.5 * np.sum(s * r * d * rd, (1, 2))
            - 0.1 * s.sum((1, 2))
        )
    if name == "clock":
        theta = 2 * np.pi * x / 3
        e = 0.0
        for i, j in graph.lattice_edges((3, 3), False)[0]:
            e = e - 0.6 * np.cos(theta[:, i] - theta[:, j])
        return e - 0.3 * np.cos(theta).sum(1) + 0.2 * np.sin(theta).sum(1)
    W = np.asarray(model.W[...], np.float64)
    J, h = np.asarray(model.coupling[...], np.float64), np.asarray(model.field[...], np.float64)
    b = np.asarray(model.label_field[...], np.float64)
    s, c = x[:, :3], x[:, 3].astype(int)
    return (
        -J[0] * s[:, 0] * s[:, 1]
        - J[1] * s[:, 1] * s[:, 2]
        - s @ h
        - np.sum(s * W[:, 0, c].T, 1)
        - b[0, c]
    )


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_exact_enumeration_and_checks(name):
    model = SHIPPED[name]()
    hn.check_model(model)
    states, probs = hn.exact.probabilities(model)
    e = brute_force_energy(name, model, states)
    np.testing.assert_allclose(model.energy(states), e, atol=2e-5)
    log_z = np.log(np.sum(np.exp(-e - (-e).max()))) + (-e).max()
    assert abs(hn.exact.log_partition(model) - log_z) < 1e-6
    np.testing.assert_allclose(probs, np.exp(-e - log_z), rtol=2e-6, atol=1e-12)


def test_shipped_model_blocks():
    assert [b.size for b in plaquette().blocks] == [4, 4, 4, 4]  # the 2 x 2 sublattices
    assert plaquette().layout_periods == ((2, 2),)
    assert [b.kind for b in spin_label().blocks] == ["spin", "spin", "categorical"]
    assert len(hn.PlaquetteIsing((6, 8)).blocks) == 4


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_gibbs_and_nrpt_match_exact(name, key):
    model = SHIPPED[name]()
    states, probs = hn.exact.probabilities(model)
    values = model.variable_values()
    s = hn.sample(model, key, n_samples=200, n_chains=32, n_warmup=50)
    assert_matches(s, states, probs, values)
    res = hn.nrpt(model, key, n_rounds=3000, n_betas=10)
    cold = np.asarray(res.samples)[0]
    assert_matches(cold.reshape(40, -1, model.n_variables), states, probs, values)
    lz = res.log_z
    assert abs(lz.estimate - hn.exact.log_partition(model)) < 5 * lz.stderr + 1e-3


class DetectedRing(hn.EnergyModel, register_as="test_custom.DetectedRing"):
    """Blocks detected from the Hessian (no interactions given), saved and loaded."""

    def __init__(self, n=7, coupling=0.5, triple=0.3):
        self.n = n
        self.coupling = nnx.Param(jnp.float32(coupling))
        self.triple = nnx.Param(jnp.float32(triple))
        self.declare_variables(hn.Spins(n, name="s"))

    def config(self):
        return {"class": type(self).registered_name(), "n": self.n}

    def energy(self, x):
        s = self.unpack(x)["s"]
        right = jnp.roll(s, -1, -1)
        return -self.coupling * jnp.sum(s * right, -1) - self.triple * jnp.sum(
            s * right * jnp.roll(s, -2, -1), -1
        )


def test_detected_blocks_survive_save_and_load(tmp_path):
    """hn.load rebuilds under nnx.eval_shape; the detection runs on concrete values."""
    model = DetectedRing(coupling=0.0)  # a zero parameter must not hide its interaction
    assert len(model.blocks) >= 3  # the three-spin term keeps neighbours apart
    hn.save(model, tmp_path / "ring")
    loaded = hn.load(tmp_path / "ring")
    assert loaded.blocks == model.blocks
    x = hn.exact.enumerate_states(model)[::5]
    np.testing.assert_array_equal(loaded.energy(x), model.energy(x))
    hn.check_model(loaded)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_save_load(name, tmp_path):
    model = SHIPPED[name]()
    hn.save(model, tmp_path / name)
    loaded = hn.load(tmp_path / name)
    assert type(loaded) is type(model) and loaded.blocks == model.blocks
    x = hn.exact.enumerate_states(model)[::7]
    np.testing.assert_array_equal(loaded.energy(x), model.energy(x))


# -- training recovers the parameters --------------------------------------------------------
def exact_fisher(model):
    """Cov_p[dE/dtheta] over all states: the Fisher information of the Params."""
    states, probs = hn.exact.probabilities(model)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    flat, unravel = ravel_pytree(params)

    def energy(theta, x):
        return nnx.merge(graphdef, unravel(theta), rest).energy(x)

    grads = jax.vmap(jax.grad(energy), (None, 0))(flat, jnp.asarray(states))
    grads = np.asarray(grads, np.float64)
    centred = grads - probs @ grads
    return centred.T @ (probs[:, None] * centred), np.asarray(flat, np.float64)


FRESH = {
    "plaquette": lambda: hn.PlaquetteIsing((4, 4), 0.0, 0.0, 0.0),
    "clock": lambda: hn.ClockModel.lattice((3, 3), 3, 0.0, (0.0, 0.0), periodic=False),
    "spin-label": lambda: spin_label(init_scale=0.0, seed=1),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_training_recovers_the_true_parameters(name):
    """Maximum likelihood on 2000 self-generated draws: N d' F d ~ chi2(rank F).

    d = learned - true parameters, F the exact Fisher information; the
    statistic ignores directions F does not see (gauge freedom of the
    spin-label model), and exceeds the chi2 quantile at 1e-4 by chance only
    once in 10^4 seeds.
    """
    truth, fresh = SHIPPED[name](), FRESH[name]()
    n_data, steps = 2000, 300
    data = hn.sample(truth, jax.random.key(7), n_samples=1, n_chains=n_data, n_warmup=200)[:, 0]
    F, theta_true = exact_fisher(truth)
    trainer = hn.Trainer(
        fresh,
        optax.adam(optax.cosine_decay_schedule(0.05, steps)),
        negative=hn.ExactNegative(),
        eval_every=0,
        progress=False,
    )
    trainer.fit(np.asarray(data), epochs=steps, batch_size=n_data)
    _, theta = exact_fisher(fresh)
    d = theta - theta_true
    rank = np.linalg.matrix_rank(F, tol=1e-8 * np.abs(F).max())
    chi2 = n_data * d @ F @ d
    assert chi2 < sps.chi2.isf(1e-4, rank), (chi2, rank, theta, theta_true)
    if name != "spin-label":  # identifiable: every parameter within 5 standard errors
        se = np.sqrt(np.diag(np.linalg.inv(F)) / n_data)
        assert np.all(np.abs(d) < 5 * se), (d, se)


# -- users' mistakes get clear errors ----------------------------------------------------------
class SquaredSpin(hn.EnergyModel):
    """E = -J s0 s1 + a s1**2: s1**2 is 1 on spins but breaks the autodiff rule."""

    def __init__(self, colouring=None):
        self.J = nnx.Param(jnp.float32(0.7))
        self.a = nnx.Param(jnp.float32(1.3))
        self.declare_variables(hn.Spins(3, name="s"), interactions=[(0, 1)], colouring=colouring)

    def energy(self, x):
        s = self.unpack(x)["s"]
        return -self.J * s[..., 0] * s[..., 1] + self.a * s[..., 1] ** 2


def test_non_multilinear_energy_is_named_by_check_model():
    with pytest.raises(ModelCheckError, match=r"variable 1 \(s\[1\].*s\*\*2 as 1"):
        hn.check_model(SquaredSpin())


def test_non_multilinear_energy_is_named_by_the_detection():
    class Squared(SquaredSpin):
        def __init__(self):
            self.J = nnx.Param(jnp.float32(0.7))
            self.a = nnx.Param(jnp.float32(1.3))
            self.declare_variables(hn.Spins(3, name="s"))

    with pytest.raises(ValueError, match=r"not multilinear in variable 1 \(s\[1\]\)"):
        Squared()


def test_colouring_that_breaks_conditional_independence_is_refused():
    with pytest.raises(
        ValueError, match=r"variables 0 \(s\[0\]\) and 1 \(s\[1\]\).*not conditionally"
    ):
        SquaredSpin(colouring=[0, 0, 1])


def test_check_model_names_a_block_that_is_not_conditionally_independent():
    class Wrong(hn.EnergyModel):
        # the colouring is trusted without interactions; the check catches the lie
        def __init__(self):
            self.declare_variables(hn.Spins(3, name="s"), colouring=[0, 0, 0])

        def energy(self, x):
            s = self.unpack(x)["s"]
            return -s[..., 0] * s[..., 2]

    with pytest.raises(ModelCheckError, match=r"block 0 is not conditionally independent"):
        hn.check_model(Wrong())


def test_check_model_names_a_wrong_handwritten_conditional():
    class Off(hn.EnergyModel):
        def __init__(self):
            self.n_variables = 2
            self.blocks = (hn.Block(0, 1, "spin", 2), hn.Block(1, 2, "spin", 2))

        def energy(self, x):
            s = jnp.asarray(x).astype(jnp.float32)
            return -s[..., 0] * s[..., 1]

        def block_logits(self, x, b):
            return jnp.full((1,), 1.0, jnp.float32)  # ignores the neighbour

    with pytest.raises(ModelCheckError, match=r"block_logits of block 0 is wrong for variable 0"):
        hn.check_model(Off())


def test_bad_declarations_are_refused():
    class Declares(hn.EnergyModel):
        def __init__(self, *groups, **kw):
            self.declare_variables(*groups, **kw)

        def energy(self, x):
            return jnp.sum(jnp.asarray(x).astype(jnp.float32), -1)

    with pytest.raises(ValueError, match="q must be an integer in 2..127"):
        hn.Categorical(3, q=1)
    with pytest.raises(ValueError, match="positive sizes"):
        hn.Spins(0)
    with pytest.raises(ValueError, match="at least one variable group"):
        Declares()
    with pytest.raises(TypeError, match=r"hn.Spins\(shape\)"):
        Declares(4)
    with pytest.raises(ValueError, match="two variable groups are named 'a'"):
        Declares(hn.Spins(2, name="a"), hn.Binary(2, name="a"))
    with pytest.raises(ValueError, match=r"interaction 1 = \[2, 9\] references a variable outside"):
        Declares(hn.Spins(4), interactions=[(0, 1), (2, 9)])
    with pytest.raises(ValueError, match=r"interaction 0 = \[1, 1, 2\] names a variable twice"):
        Declares(hn.Spins(4), interactions=[(1, 1, 2)])
    with pytest.raises(ValueError, match=r"colouring must be \(4,\) integers"):
        Declares(hn.Spins(4), interactions=[], colouring=[0, 1])


@pytest.mark.filterwarnings("ignore:jax.nn.one_hot input should be integer-typed")
def test_bad_energies_are_refused():
    class PerSite(hn.EnergyModel):
        def __init__(self):
            self.declare_variables(hn.Spins(3))

        def energy(self, x):
            return jnp.asarray(x).astype(jnp.float32)  # no sum over sites

    with pytest.raises(ValueError, match=r"one value per state: shape \(\) .* got \(3,\)"):
        PerSite()

    class Integer(hn.EnergyModel):
        def __init__(self):
            self.declare_variables(hn.Binary(3))

        def energy(self, x):
            return jnp.sum(jnp.asarray(x).astype(jnp.int32), -1)

    with pytest.raises(ValueError, match="must return floats"):
        Integer()

    class IndexesValues(hn.EnergyModel):
        # indexes a table with categorical values instead of using one-hot vectors
        def __init__(self):
            self.declare_variables(hn.Categorical(2, q=3))

        def energy(self, x):
            table = jnp.arange(9, dtype=jnp.float32).reshape(3, 3)
            x = jnp.asarray(x).astype(jnp.int32)
            return table[x[..., 0], x[..., 1]]

    with pytest.raises(ValueError, match=r"applies `convert_element_type` to the state at"):
        IndexesValues()

    class OneHotOfState(hn.EnergyModel):
        def __init__(self):
            self.declare_variables(hn.Categorical(2, q=3))

        def energy(self, x):
            o = jax.nn.one_hot(jnp.asarray(x), 3)
            return jnp.sum(o[..., 0, :] * o[..., 1, :], -1)

    with pytest.raises(ValueError, match=r"applies `eq` to the state.*self.unpack"):
        OneHotOfState()

    class ParamsLater(hn.EnergyModel):
        def __init__(self):
            self.declare_variables(hn.Spins(2))
            self.J = nnx.Param(jnp.float32(1.0))

        def energy(self, x):
            s = jnp.asarray(x).astype(jnp.float32)
            return -self.J * s[..., 0] * s[..., 1]

    with pytest.raises(AttributeError, match="create the parameters before"):
        ParamsLater()


def test_model_without_declaration_or_block_logits_says_what_to_do():
    class Bare(hn.EnergyModel):
        def energy(self, x):
            return jnp.zeros(jnp.shape(x)[:-1], jnp.float32)

    with pytest.raises(NotImplementedError, match="declare the variables"):
        Bare().block_logits(jnp.zeros((2,), jnp.int8), 0)
    with pytest.raises(ValueError, match="declares no variables"):
        Bare().unpack(jnp.zeros((2,), jnp.int8))


def test_unpack_and_variable_index():
    m = spin_label()
    x = jnp.asarray([[1, -1, 1, 2]], jnp.int8)
    v = m.unpack(x)
    assert v["s"].shape == (1, 3) and v["c"].shape == (1, 1, 3)
    np.testing.assert_array_equal(v["c"][0, 0], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(m.variable_index("c"), [3])
    with pytest.raises(KeyError, match="no variable group named 'z'"):
        m.variable_index("z")
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\) or relaxed \(\.\.\., 6\)"):
        m.unpack(jnp.zeros((5,), jnp.int8))


def test_detection_under_tracing():
    class Chain(hn.EnergyModel, register_as="test_custom.traced_chain"):
        def __init__(self):
            self.declare_variables(hn.Spins(3))

        def energy(self, x):
            s = self.unpack(x)["spin"]
            return -jnp.sum(s[..., 1:] * s[..., :-1], -1)

    # under nnx.eval_shape (how hn.load rebuilds) the blocks are the eager ones
    assert nnx.eval_shape(Chain).blocks == Chain().blocks

    class Indexed(Chain, register_as="test_custom.traced_indexed"):
        # integer state made before the declaration has no value under tracing
        def __init__(self):
            self.sign = Structure(jnp.array([1, 1, 1], jnp.int32))
            self.declare_variables(hn.Spins(3))

        def energy(self, x):
            s = self.unpack(x)["spin"] * self.sign.astype(jnp.float32)
            return -jnp.sum(s[..., 1:] * s[..., :-1], -1)

    Indexed()  # fine eagerly
    with pytest.raises(ValueError, match="pass interactions= .* or colouring="):
        nnx.eval_shape(Indexed)


def test_sampling_a_custom_model_compiles_once(key):
    from hamon_nnx import sampling

    m = CustomIsing((4, 4), 0.3)
    hn.sample(m, key, n_samples=3, n_chains=2)
    before = sampling.TRACE_COUNT
    m.coupling[...] = jnp.float32(0.5)
    hn.sample(m, jax.random.key(3), n_samples=3, n_chains=2)
    assert sampling.TRACE_COUNT == before


def test_binary_units_with_a_three_body_term(key):
    class Triple(hn.EnergyModel):
        def __init__(self):
            self.w = nnx.Param(jnp.float32(1.5))
            self.b = nnx.Param(jnp.asarray([0.3, -0.2, 0.1, 0.4], jnp.float32))
            self.declare_variables(hn.Binary(4, name="x"))

        def energy(self, x):
            v = self.unpack(x)["x"]
            return -self.w * v[..., 0] * v[..., 1] * v[..., 2] - v @ self.b

    m = Triple()
    assert [b.size for b in m.blocks] == [2, 1, 1]  # x3 is free, joins x0's block
    hn.check_model(m)
    x = jnp.asarray([1, 1, 0, 0], jnp.int8)
    # logit of x2 = -(E(x2=1) - E(x2=0)) = w x0 x1 + b2
    b2 = next(b for b, blk in enumerate(m.blocks) if 2 in np.asarray(m.variable_order[blk.slice]))
    assert np.isclose(float(m.block_logits(m.to_internal(x), b2)[0]), 1.5 + 0.1)
    states, probs = hn.exact.probabilities(m)
    s = hn.sample(m, key, n_samples=300, n_chains=16)
    assert_matches(s, states, probs, m.variable_values())


def test_lattice_sweep_of_a_custom_model_has_no_gathers():
    """A periodic colouring is laid out by reshapes and slices: no gathers in the hot loop."""
    m = CustomIsing((8, 8), 0.4)
    graphdef, state = nnx.split(m)

    def one_sweep(state, key, x):
        model = nnx.merge(graphdef, state)
        return hn.core.gibbs.sweep(key, x, model, jnp.ones((4,), jnp.float32))

    x = jnp.ones((4, 64), jnp.int8)
    hlo = jax.jit(one_sweep).lower(state, jax.random.key(0), x).compile().as_text()
    assert sum(" gather(" in line for line in hlo.splitlines()) == 0
