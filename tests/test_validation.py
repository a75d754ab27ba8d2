"""Bad input gets a clear error that names the problem."""

import jax
import numpy as np
import pytest
from flax import nnx

import hamon_nnx as hn


@pytest.fixture
def ising():
    return hn.IsingModel.lattice((4, 4), coupling=0.5)


def test_unknown_lattice_shapes():
    with pytest.raises(ValueError, match="1, 2 or 3 axes"):
        hn.IsingModel.lattice((2, 2, 2, 2))
    with pytest.raises(ValueError, match=">= 3"):
        hn.IsingModel.lattice((2, 8))
    with pytest.raises(ValueError, match="tuple of ints"):
        hn.PottsModel.lattice("big", q=3)


def test_parameter_shapes_and_values():
    with pytest.raises(ValueError, match=r"coupling must be a scalar or have shape \(2,\)"):
        hn.IsingModel.lattice((4, 4), coupling=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"field must be a scalar or have shape \(4, 4\)"):
        hn.IsingModel.lattice((4, 4), field=np.zeros(16))
    with pytest.raises(ValueError, match="non-finite"):
        hn.IsingModel.lattice((4, 4), coupling=np.nan)
    with pytest.raises(ValueError, match="non-finite"):
        hn.IsingModel.from_edges(3, [(0, 1)], [np.inf])
    with pytest.raises(ValueError, match="symmetric"):
        hn.IsingModel.dense(np.array([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="zero diagonal"):
        hn.IsingModel.dense(np.eye(3))
    with pytest.raises(ValueError, match="square"):
        hn.IsingModel.dense(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="q must be an integer"):
        hn.PottsModel.lattice((4, 4), q=1)
    with pytest.raises(ValueError, match=r"\(E, q, q\)|q x q matrix per edge"):
        hn.PottsModel.from_edges(3, 3, [(0, 1)], np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match=r"fields must be"):
        hn.PottsModel.from_edges(3, 3, [(0, 1)], 1.0, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="n_hidden must be a positive integer"):
        hn.RBM(4, 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="W holds a non-finite"):
        hn.RBM.from_params(np.array([[np.nan]]))


def test_edges_that_reference_missing_nodes_or_repeat():
    with pytest.raises(ValueError, match=r"edge 1 = \(2, 5\) references a node outside 0..3"):
        hn.IsingModel.from_edges(4, [(0, 1), (2, 5)])
    with pytest.raises(ValueError, match=r"edge \(0, 1\) is repeated \(edges \[0, 2\]\)"):
        hn.IsingModel.from_edges(4, [(0, 1), (1, 2), (1, 0)])
    with pytest.raises(ValueError, match="self-loop"):
        hn.PottsModel.from_edges(4, 3, [(2, 2)])
    with pytest.raises(ValueError, match=r"shape \(E, 2\)"):
        hn.IsingModel.from_edges(4, [(0, 1, 2)])
    with pytest.raises(ValueError, match=r"couplings must be a scalar or have shape \(2,\)"):
        hn.IsingModel.from_edges(4, [(0, 1), (1, 2)], [1.0, 2.0, 3.0])


def test_sample_counts(ising, key):
    for name in ("n_samples", "n_chains", "thin"):
        for bad in (0, -3, 2.5):
            with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
                hn.sample(ising, key, **{name: bad})
    with pytest.raises(ValueError, match="n_warmup must be an integer >= 0"):
        hn.sample(ising, key, n_warmup=-1)
    with pytest.raises(ValueError, match="beta must be finite and >= 0"):
        hn.sample(ising, key, beta=-1.0)
    with pytest.raises(ValueError, match=r"beta must be a scalar or have shape \(n_chains,\)"):
        hn.sample(ising, key, n_chains=4, beta=[1.0, 2.0])
    with pytest.raises(TypeError, match="PRNG key"):
        hn.sample(ising, 0)


def test_init_values_shapes_and_dtypes(ising, key):
    bad = np.ones(16, np.int8)
    bad[3] = 0
    with pytest.raises(
        ValueError, match=r"init: value 0 at variable 3 .* spin domain \(-1 or \+1\)"
    ):
        hn.sample(ising, key, init=bad)
    with pytest.raises(ValueError, match=r"init must have shape \(\.\.\., 16\)"):
        hn.sample(ising, key, init=np.ones(15, np.int8))
    with pytest.raises(ValueError, match=r"init must have shape \(16,\) or \(4, 16\)"):
        hn.sample(ising, key, n_chains=4, init=np.ones((3, 16), np.int8))
    with pytest.raises(ValueError, match="integer values"):
        hn.sample(ising, key, init=np.full(16, 0.5))
    potts = hn.PottsModel.lattice((4, 4), q=3)
    x = np.zeros(16, np.int8)
    x[7] = 3
    with pytest.raises(ValueError, match=r"value 3 at variable 7 .* categorical domain \(0..2\)"):
        hn.sample(potts, key, init=x)
    r = hn.RBM(3, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"binary domain \(0 or 1\)"):
        hn.sample(r, key, init=np.array([0, 1, -1, 0, 0]))


def test_clamp_must_match_model(ising, key):
    with pytest.raises(ValueError, match=r"clamp mask must have shape \(16,\)"):
        hn.sample(ising, key, clamp=(np.ones(9, bool), np.ones(9, np.int8)))
    with pytest.raises(ValueError, match=r"clamp values must have shape \(16,\)"):
        hn.sample(ising, key, clamp=(np.ones(16, bool), np.ones(3, np.int8)))
    with pytest.raises(ValueError, match="pair"):
        hn.sample(ising, key, clamp=np.ones(16, bool))
    mask = np.zeros(16, bool)
    mask[2] = True
    with pytest.raises(ValueError, match="clamp values: value 5 at variable 2"):
        hn.sample(ising, key, clamp=(mask, np.full(16, 5, np.int8)))
    # values outside the mask are ignored
    s = hn.sample(ising, key, n_samples=3, clamp=(mask, np.where(mask, -1, 9).astype(np.int8)))
    assert np.all(np.asarray(s)[..., 2] == -1)


def test_nan_parameters_are_refused_before_sampling(key):
    m = hn.IsingModel.lattice((4, 4))
    m.field[...] = jax.numpy.full((), jax.numpy.nan)
    with pytest.raises(ValueError, match="'field' holds NaN or inf"):
        hn.sample(m, key)
    r = hn.RBM(3, 2, rngs=nnx.Rngs(0))
    r.W[...] = r.W[...].at[1, 1].set(jax.numpy.inf)
    with pytest.raises(ValueError, match="'W' holds NaN or inf"):
        hn.sample(r, key)


def test_not_a_model(key):
    with pytest.raises(TypeError, match="EnergyModel"):
        hn.sample(object(), key)


def test_metrics_validate_their_data():
    """The metrics go through the one validator: 0/1 data for a spin model, a
    value outside a Potts domain and a wrong width are errors, not numbers."""
    spins = hn.IsingModel.lattice((3, 3), coupling=0.2)
    with pytest.raises(ValueError, match=r"value 0 at variable 0 .* spin domain"):
        hn.training.pseudo_log_likelihood(spins, np.zeros((4, 9), np.int8))
    with pytest.raises(ValueError, match=r"spin domain"):
        hn.training.exact_log_likelihood(spins, np.zeros((4, 9), np.int8))
    potts = hn.PottsModel.lattice((2, 2), q=3, coupling=0.1, periodic=False)
    with pytest.raises(ValueError, match=r"categorical domain \(0..2\)"):
        hn.training.pseudo_log_likelihood(potts, np.full((2, 4), 3, np.int8))
    with pytest.raises(ValueError, match=r"must have shape \(n_samples, 4\)"):
        hn.training.pseudo_log_likelihood(potts, np.zeros((2, 5), np.int8))
    rbm = hn.RBM(6, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"must hold integer values; rows \[1\]"):
        hn.training.reconstruction_error(rbm, np.array([[0] * 6, [0.5] * 6]))


def test_renamed_arguments_warn_and_keep_working(key):
    """n_chains means independent chains (hn.sample); the ladder size is n_betas.
    The old spellings still work, with a DeprecationWarning; both at once is an error."""
    m = hn.IsingModel.lattice((4, 4), coupling=0.3)
    with pytest.warns(DeprecationWarning, match="n_chains= is renamed n_betas="):
        old = hn.nrpt(m, key, n_rounds=20, n_chains=4)
    new = hn.nrpt(m, key, n_rounds=20, n_betas=4)
    np.testing.assert_array_equal(old.energy, new.energy)
    with pytest.raises(TypeError, match="pass n_betas= only"):
        hn.nrpt(m, key, n_betas=4, n_chains=4)
    with pytest.warns(DeprecationWarning, match="rounds= is renamed n_rounds="):
        negative = hn.NRPTNegative(4, rounds=3)
    assert negative == hn.NRPTNegative(n_betas=4, n_rounds=3)
    with pytest.warns(DeprecationWarning, match="max_chains= is renamed max_betas="):
        plan = hn.autotune(m, key, max_rounds=32, n_betas=4, n_explore=1, max_chains=8)
    with pytest.warns(DeprecationWarning, match="renamed n_betas"):
        assert plan.n_chains == plan.n_betas == 4
    with pytest.warns(DeprecationWarning, match="hn.zoo.names"):
        assert hn.zoo.list() == hn.zoo.names()


def test_sample_returns_draws_and_observe_returns_observer_states(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.3)
    moments = {"m": hn.observers.Moments()}
    out = hn.observe(m, key, moments, n_samples=30, n_chains=2)
    draws = np.asarray(hn.sample(m, key, n_samples=30, n_chains=2), np.float64)
    np.testing.assert_allclose(out["m"].mean(), draws.reshape(-1, 16).mean(0))
    with pytest.warns(DeprecationWarning, match="hn.observe"):
        old = hn.sample(m, key, n_samples=30, n_chains=2, observers=moments)
    np.testing.assert_array_equal(old["m"].mean(), out["m"].mean())
