"""Chains sharded over 2 and 4 devices give the same bits as on one device.

The devices are four XLA host "devices" of this CPU
(`XLA_FLAGS=--xla_force_host_platform_device_count=4`), which must be set
before JAX starts: each area runs once in a subprocess that prints JSON,
and the tests check its fields.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRELUDE = """
import json, jax, jax.numpy as jnp, numpy as np, optax
from flax import nnx
import hamon_nnx as hn
from hamon_nnx.core import device as device_lib
assert len(jax.devices()) == 4, jax.devices()
DEVICES = {"none": None, "2": jax.devices()[:2], "4": jax.devices()}
out = {}

def same(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(la, lb)
    )

def spread(x):
    return len(x.sharding.device_set)

def error(fn):
    try:
        fn()
    except ValueError as err:
        return str(err)
    return None
"""

SAMPLE = """
ising = hn.IsingModel.lattice((6, 6), coupling=0.4, field=0.1)
rbm = hn.RBM(12, 6, rngs=nnx.Rngs(1))
mask = np.zeros(36, bool)
mask[::7] = True
kw = {
    "ising": dict(model=ising, n_samples=15, n_chains=8, n_warmup=3, thin=2,
                  beta=np.linspace(0.2, 1.0, 8), clamp=(mask, np.ones(36, np.int8)),
                  init=np.where(np.arange(36) % 2, 1, -1).astype(np.int8)),
    "rbm": dict(model=rbm, n_samples=15, n_chains=8, n_warmup=3),
}
# cluster explorers: a chain's bonds and cluster draws come from its own counters
kw["ising_sw"] = dict(kw["ising"], explorer="swendsen_wang")
kw["potts_wolff"] = dict(model=hn.PottsModel.lattice((4, 4), q=3, coupling=0.8), n_samples=10,
                         n_chains=8, n_warmup=2, explorer="wolff")
for name, k in kw.items():
    ref = hn.sample(key=jax.random.key(3), device=None, **k)
    for d, devices in DEVICES.items():
        s = hn.sample(key=jax.random.key(3), device=devices, **k)
        out[f"{name}/{d}"] = {"same": same(ref, s), "spread": spread(s)}
s = hn.sample(rbm, jax.random.key(3), n_samples=15, n_chains=8, n_warmup=3,
              device=hn.chain_mesh())
out["mesh"] = {"same": same(s, hn.sample(key=jax.random.key(3), device=None, **kw["rbm"])),
               "spread": spread(s)}
out["indivisible"] = error(lambda: hn.sample(ising, jax.random.key(0), n_chains=6,
                                             device=DEVICES["4"]))

# the work is split, not replicated: each device holds 2 of the 8 chains
from hamon_nnx import sampling
place = device_lib.resolve(DEVICES["4"])
graphdef, state = nnx.split(ising)
state, key = place.replicate((state, jax.random.key(0)))
beta, x = place.shard_chains((jnp.ones((8,), jnp.float32), jnp.ones((8, 36), jnp.int8)))
counts = tuple(jnp.int32(c) for c in (0, 1, 2, 1))
hlo = sampling._chunk_program.lower(
    graphdef, state, key, x, beta, None, counts, None, capacity=2,
    chain_sharding=place.chain_sharding,
).compile().as_text()
out["local_state_shape"] = "s8[2,36]" in hlo and "s8[8,36]" not in hlo
"""

NRPT = """
m = hn.IsingModel.lattice((6, 6), coupling=0.45, field=0.05)
ref = hn.nrpt(m, jax.random.key(5), n_rounds=120, n_betas=8, device=None)
ref2 = hn.nrpt(m, jax.random.key(6), n_rounds=30, state=ref.state, device=None)
out["round_trips"] = int(ref.round_trips)
for d, devices in DEVICES.items():
    r = hn.nrpt(m, jax.random.key(5), n_rounds=120, n_betas=8, device=devices)
    r2 = hn.nrpt(m, jax.random.key(6), n_rounds=30, state=r.state, device=devices)
    out[d] = {
        "samples": same(ref.samples, r.samples),
        "energy": same(ref.energy, r.energy),
        "acceptance": same(ref.acceptance, r.acceptance),
        "state": same(ref.state, r.state),
        "continued": same(ref2.samples, r2.samples) and same(ref2.state, r2.state),
        "log_z": ref.log_z.estimate == r.log_z.estimate,
        "spread": spread(r.state.x),
    }
out["indivisible"] = error(
    lambda: hn.nrpt(m, jax.random.key(0), n_rounds=2, betas=np.linspace(0, 1, 6),
                    device=DEVICES["4"]))
plans = {}
for d in ("none", "4"):
    plan = hn.autotune(m, jax.random.key(7), n_betas=8, n_explore=1, max_rounds=32,
                       device=DEVICES[d])
    plans[d] = (plan.sample(jax.random.key(8), 50), plan.ladder, spread(plan.state.x))
out["plan_same"] = same(plans["none"][:2], plans["4"][:2])
out["plan_spread"] = plans["4"][2]
tuned = hn.autotune(m, jax.random.key(7), max_rounds=32, n_explore=1, device=DEVICES["4"])
out["tuned_n_chains"] = tuned.n_betas
"""

TRAIN = """
data = np.random.default_rng(0).integers(0, 2, size=(64, 12)).astype(np.int8)
negatives = {
    "pcd": (lambda: hn.PCD(n_chains=16, k=1), ("none", "2", "4")),
    "cd": (lambda: hn.CD(k=1), ("none", "4")),
    "nrpt": (lambda: hn.NRPTNegative(n_betas=8, n_rounds=4, adapt_every=2), ("none", "4")),
}
for name, (negative, placements) in negatives.items():
    results = {}
    for d in placements:
        devices = DEVICES[d]
        rbm = hn.RBM(12, 6, rngs=nnx.Rngs(0))
        trainer = hn.Trainer(rbm, optax.adam(1e-2), negative=negative(), progress=False,
                             eval_every=0, device=devices)
        history = trainer.fit(data, epochs=1, batch_size=16)
        leaves = [l for l in jax.tree.leaves(trainer.negative_state) if np.ndim(l) == 2]
        results[d] = (nnx.state(rbm, nnx.Param), trainer.negative_state, history["loss"],
                      max([spread(l) for l in leaves], default=0))
    for d in placements:
        out[f"{name}/{d}"] = {
            "params": same(results["none"][0], results[d][0]),
            "negative_state": same(results["none"][1], results[d][1]),
            "loss": results["none"][2] == results[d][2],
            "spread": results[d][3],
        }
out["indivisible_batch"] = error(lambda: hn.Trainer(
    hn.RBM(12, 6, rngs=nnx.Rngs(0)), optax.sgd(0.1), negative=hn.CD(1), progress=False,
    eval_every=0, device=DEVICES["4"]).fit(data, epochs=1, batch_size=6))
out["indivisible_chains"] = error(lambda: hn.Trainer(
    hn.RBM(12, 6, rngs=nnx.Rngs(0)), optax.sgd(0.1), negative=hn.PCD(6), progress=False,
    eval_every=0, device=DEVICES["4"]).fit(data, epochs=1, batch_size=8))
"""


def _run(body: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "HAMON_", "XLA_"))}
    env.update(
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        JAX_PLATFORMS="cpu",
        JAX_NUMPY_DTYPE_PROMOTION="strict",
        PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""),
    )
    code = textwrap.dedent(PRELUDE) + textwrap.dedent(body) + "\nprint(json.dumps(out))\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sample_results():
    return _run(SAMPLE)


@pytest.fixture(scope="module")
def nrpt_results():
    return _run(NRPT)


@pytest.fixture(scope="module")
def train_results():
    return _run(TRAIN)


@pytest.mark.parametrize("name", ["ising", "rbm", "ising_sw", "potts_wolff"])
@pytest.mark.parametrize("devices", ["none", "2", "4"])
def test_sample_identical_on_1_2_4_devices(sample_results, name, devices):
    r = sample_results[f"{name}/{devices}"]
    assert r["same"]
    assert r["spread"] == {"none": 1, "2": 2, "4": 4}[devices]


def test_sample_mesh_and_local_shards(sample_results):
    assert sample_results["mesh"] == {"same": True, "spread": 4}
    assert sample_results["local_state_shape"], "the chains were replicated, not split"


def test_sample_indivisible_chains_is_a_clear_error(sample_results):
    assert "n_chains = 6 must be a multiple of the 4 devices" in sample_results["indivisible"]


@pytest.mark.parametrize("devices", ["none", "2", "4"])
def test_nrpt_identical_on_1_2_4_devices(nrpt_results, devices):
    r = nrpt_results[devices]
    assert r == {
        "samples": True,
        "energy": True,
        "acceptance": True,
        "state": True,
        "continued": True,
        "log_z": True,
        "spread": {"none": 1, "2": 2, "4": 4}[devices],
    }


def test_nrpt_swaps_cross_device_boundaries(nrpt_results):
    # a round trip carries a replica from slot 0 to slot 7 and back, through
    # every pair, including (1, 2), (3, 4), (5, 6) that straddle two devices
    assert nrpt_results["round_trips"] >= 2


def test_nrpt_indivisible_ladder_is_a_clear_error(nrpt_results):
    assert "ladder size N = 6 must be a multiple of the 4 devices" in nrpt_results["indivisible"]


def test_autotune_plan_sharded(nrpt_results):
    assert nrpt_results["plan_same"]
    assert nrpt_results["plan_spread"] == 4
    assert nrpt_results["tuned_n_chains"] % 4 == 0


@pytest.mark.parametrize(
    "negative, devices", [("pcd", "2"), ("pcd", "4"), ("cd", "4"), ("nrpt", "4")]
)
def test_training_identical_on_1_2_4_devices(train_results, negative, devices):
    r = train_results[f"{negative}/{devices}"]
    assert r["params"] and r["negative_state"] and r["loss"]
    if negative != "cd":  # CD keeps no chains between steps
        assert r["spread"] == int(devices)


def test_training_indivisible_is_a_clear_error(train_results):
    assert (
        "batch_size = 6 must be a multiple of the 4 devices" in train_results["indivisible_batch"]
    )
    assert "n_chains = 6 must be a multiple" in train_results["indivisible_chains"]
