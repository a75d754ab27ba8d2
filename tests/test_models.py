"""The model contract: conditionals equal energy differences, orders, conventions."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import hamon_nnx as hn
from hamon_nnx.models.base import KINDS


def random_states(model, count, seed):
    g = np.random.default_rng(seed)
    values = model.variable_values()
    return np.stack([[g.choice(v) for v in values] for _ in range(count)]).astype(np.int8)


def assert_conditionals_exact(model, n_states=3, seed=0):
    """block_logits equals minus the energy differences of each variable's values."""
    covered = np.zeros(model.n_variables, int)
    for x in random_states(model, n_states, seed):
        xi = model.to_internal(jnp.asarray(x))
        np.testing.assert_array_equal(model.to_natural(xi), x)
        for b, blk in enumerate(model.blocks):
            logits = np.asarray(model.block_logits(xi, b))
            logits = logits.reshape((blk.size, blk.q) if blk.kind == "categorical" else (blk.size,))
            for j in range(blk.start, blk.stop):
                covered[j] += 1
                values = hn.models.base.kind_values(blk.kind, blk.q)
                e = np.array([float(model.internal_energy(xi.at[j].set(v))) for v in values])
                if blk.kind == "categorical":
                    got = logits[j - blk.start] - logits[j - blk.start][0]
                    want = -(e - e[0])
                else:
                    got, want = logits[j - blk.start], e[0] - e[1]
                np.testing.assert_allclose(got, want, atol=2e-4, err_msg=f"block {b} var {j}")
    assert np.all(covered == n_states), "blocks must tile the state exactly once"


def assert_blocks_independent(model):
    """No two variables of a block interact: flipping one leaves the others' logits."""
    x = random_states(model, 1, seed=1)[0]
    xi = model.to_internal(jnp.asarray(x))
    for b, blk in enumerate(model.blocks):
        base = np.asarray(model.block_logits(xi, b))
        values = hn.models.base.kind_values(blk.kind, blk.q)
        for j in range(blk.start, blk.stop):
            other = values[values != xi[j]][0]
            moved = np.asarray(model.block_logits(xi.at[j].set(other), b))
            np.testing.assert_allclose(moved, base, atol=1e-5, err_msg=f"block {b} var {j}")


g = np.random.default_rng(0)
J_dense = g.normal(size=(7, 7))
J_dense = np.triu(J_dense, 1) + np.triu(J_dense, 1).T
EDGES = np.array([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (4, 1), (5, 4)])

MODELS = {
    "ising-2d": lambda: hn.IsingModel.lattice((4, 6), [0.7, -0.3], g.normal(size=(4, 6))),
    "ising-2d-open": lambda: hn.IsingModel.lattice((4, 6), 0.4, 0.2, periodic=False),
    "ising-1d": lambda: hn.IsingModel.lattice((8,), 0.5, 0.1),
    "ising-3d": lambda: hn.IsingModel.lattice(
        (4, 4, 6), [0.7, -0.3, 0.2], g.normal(size=(4, 4, 6))
    ),
    "ising-3d-open": lambda: hn.IsingModel.lattice((2, 4, 2), 0.3, 0.1, periodic=False),
    "ising-odd": lambda: hn.IsingModel.lattice((5, 3), [0.7, -0.3], g.normal(size=(5, 3))),
    "ising-sparse": lambda: hn.IsingModel.from_edges(6, EDGES, g.normal(size=7), g.normal(size=6)),
    "ising-dense": lambda: hn.IsingModel.dense(J_dense, g.normal(size=7)),
    "potts-lattice": lambda: hn.PottsModel.lattice((4, 4), 3, 0.8, g.normal(size=(16, 3))),
    "potts-lattice-matrix": lambda: hn.PottsModel.lattice((3, 4), 3, g.normal(size=(3, 3))),
    "potts-edges": lambda: hn.PottsModel.from_edges(
        6, 4, EDGES, g.normal(size=7), g.normal(size=(6, 4))
    ),
    "potts-edges-matrix": lambda: hn.PottsModel.from_edges(6, 4, EDGES, g.normal(size=(7, 4, 4))),
    "rbm": lambda: hn.RBM.from_params(g.normal(size=(5, 3)), g.normal(size=5), g.normal(size=3)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_conditionals_are_exact(name):
    assert_conditionals_exact(MODELS[name]())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_blocks_are_conditionally_independent(name):
    model = MODELS[name]()
    if name == "ising-dense":
        assert all(blk.size == 1 for blk in model.blocks)
    assert_blocks_independent(model)


def test_params_are_nnx_params_and_structure_is_not():
    m = MODELS["ising-sparse"]()
    params = nnx.state(m, nnx.Param)
    assert set(dict(nnx.to_flat_state(params)).keys()) == {("coupling",), ("field",)}
    r = hn.RBM(4, 3, rngs=nnx.Rngs(1))
    names = {p[0] for p, _ in nnx.to_flat_state(nnx.state(r, nnx.Param))}
    assert names == {"W", "visible_bias", "hidden_bias"}


def test_ising_energy_convention():
    m = hn.IsingModel.from_edges(3, [(0, 1), (1, 2)], [1.0, -2.0], [0.5, 0.0, -1.0])
    s = np.array([1, -1, -1], np.int8)
    # E = -(J01 s0 s1 + J12 s1 s2) - sum h s = -(-1 - 2) - (0.5 + 1) = 1.5
    assert float(m.energy(s)) == pytest.approx(1.5)


def test_lattice_energy_counts_each_bond_once():
    m = hn.IsingModel.lattice((4, 4), coupling=1.0)
    assert float(m.energy(np.ones(16, np.int8))) == pytest.approx(-32.0)
    m = hn.IsingModel.lattice((4, 4), coupling=1.0, periodic=False)
    assert float(m.energy(np.ones(16, np.int8))) == pytest.approx(-24.0)


def test_potts_energy_convention():
    m = hn.PottsModel.from_edges(3, 3, [(0, 1), (1, 2)], [2.0, 1.0], np.eye(3))
    s = np.array([1, 1, 0], np.int8)
    # -(2 * 1 + 1 * 0) - (h_0(1) + h_1(1) + h_2(0)) = -2 - (0 + 1 + 0) = -3
    assert float(m.energy(s)) == pytest.approx(-3.0)
    M = np.arange(9.0).reshape(3, 3)
    m = hn.PottsModel.from_edges(2, 3, [(0, 1)], M[None])
    assert float(m.energy(np.array([2, 0], np.int8))) == pytest.approx(-M[2, 0])


def test_rbm_energy_and_free_energy():
    g = np.random.default_rng(3)
    W, b, c = g.normal(size=(4, 3)), g.normal(size=4), g.normal(size=3)
    r = hn.RBM.from_params(W, b, c)
    v = np.array([1, 0, 1, 1], np.int8)
    h = np.array([0, 1, 1], np.int8)
    assert float(r.energy(np.concatenate([v, h]))) == pytest.approx(
        -(v @ W @ h + b @ v + c @ h), rel=1e-5
    )
    hs = np.array([[i >> k & 1 for k in range(3)] for i in range(8)])
    brute = -np.log(np.sum(np.exp(v @ W @ hs.T + b @ v + hs @ c)))
    assert float(r.free_energy(v)) == pytest.approx(brute, rel=1e-5)


def test_variable_kinds_in_natural_order():
    m = hn.RBM(3, 2, rngs=nnx.Rngs(0))
    kinds, q = m.variable_kinds()
    assert [KINDS[k] for k in kinds] == ["binary"] * 5
    _, q = hn.PottsModel.lattice((4, 4), q=5).variable_kinds()
    assert set(q.tolist()) == {5}


def test_rbm_init_from_rngs_is_reproducible():
    a = hn.RBM(10, 4, rngs=nnx.Rngs(7))
    b = hn.RBM(10, 4, rngs=nnx.Rngs(7))
    np.testing.assert_array_equal(a.W[...], b.W[...])
    assert float(jnp.std(a.W[...])) > 0
