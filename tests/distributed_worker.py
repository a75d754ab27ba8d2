"""Run by tests/test_distributed.py: the entry points over one global mesh, results to an npz.

    python tests/distributed_worker.py OUT.npz [AREA ...]

Plain: one process with `HAMON_NNX_LOCAL_DEVICES` CPU devices (1 by
default). Under `python -m hamon_nnx.launch -n P --local-devices K`: P
processes x K devices. Every array result is gathered to every process;
process 0 writes them.
"""

import json
import os
import sys

import jax
import numpy as np

from hamon_nnx.core import distributed

if distributed.launched():
    distributed.initialize()
else:
    jax.config.update("jax_num_cpu_devices", int(os.environ.get("HAMON_NNX_LOCAL_DEVICES", "1")))

import optax  # noqa: E402
from flax import nnx  # noqa: E402

import hamon_nnx as hn  # noqa: E402

AREAS = ("sample", "nrpt", "autotune", "ais", "train")


def sample(mesh) -> dict:
    ising = hn.IsingModel.lattice((6, 6), coupling=0.4, field=0.1)
    rbm = hn.RBM(12, 6, rngs=nnx.Rngs(1))
    observers = {"energy": hn.observers.Energy(), "moments": hn.observers.Moments()}
    return {
        "ising": hn.sample(ising, jax.random.key(3), n_samples=10, n_chains=8, device=mesh),
        "rbm": hn.sample(rbm, jax.random.key(3), n_samples=10, n_chains=8, device=mesh),
        "observed": hn.observe(
            ising, jax.random.key(4), observers, n_samples=10, n_chains=8, device=mesh
        ),  # fmt: skip
    }


def nrpt(mesh) -> dict:
    m = hn.IsingModel.lattice((6, 6), coupling=0.45, field=0.05)
    r = hn.nrpt(m, jax.random.key(5), n_rounds=60, n_betas=8, device=mesh)
    r2 = hn.nrpt(m, jax.random.key(6), n_rounds=20, state=r.state, device=mesh)
    return {
        "samples": r.samples, "energy": r.energy, "acceptance": r.acceptance,
        "log_z": np.float64(r.log_z.estimate), "continued": r2.samples,
    }  # fmt: skip


def autotune(mesh) -> dict:
    m = hn.IsingModel.lattice((6, 6), coupling=0.45, field=0.05)
    plan = hn.autotune(m, jax.random.key(7), max_rounds=32, device=mesh)
    samples = plan.sample(jax.random.key(8), 40)
    return {"ladder": plan.ladder, "samples": samples, "log_z": np.float64(plan.log_z()[0])}


def ais(mesh) -> dict:
    rbm = hn.RBM(12, 6, rngs=nnx.Rngs(2))
    r = hn.ais(rbm, jax.random.key(9), n_runs=16, n_betas=50, device=mesh)
    return {"log_weights": r.log_weights, "log_z": np.float64(r.log_z)}


def train(mesh, epochs=4, **kwargs) -> dict:
    """20 steps of PCD; with CHECKPOINT_DIR set, checkpointed (and resumed if it holds one)."""
    data = np.random.default_rng(0).integers(0, 2, size=(80, 12)).astype(np.int8)
    rbm = hn.RBM(12, 6, rngs=nnx.Rngs(0))
    trainer = hn.Trainer(rbm, optax.adam(1e-2), negative=hn.PCD(n_chains=16, k=1),
                         progress=False, eval_every=0, device=mesh, **kwargs)  # fmt: skip
    history = trainer.fit(data, epochs=epochs, batch_size=16, resume="checkpoint_dir" in kwargs)
    params = nnx.state(rbm, nnx.Param)
    return {"params": params, "loss": np.asarray(history["loss"]), "chains": trainer.negative_state}


def checkpoint_first_half(mesh) -> dict:
    """Steps 1-10, checkpointed to $CHECKPOINT_DIR; the model then `hn.save`d to $MODEL_DIR."""
    out = train(mesh, 2, checkpoint_dir=os.environ["CHECKPOINT_DIR"], checkpoint_every=5)
    if "MODEL_DIR" in os.environ:  # every process calls it; process 0 writes
        rbm = hn.RBM(12, 6, rngs=nnx.Rngs(0))
        nnx.update(rbm, out["params"])
        hn.save(rbm, os.environ["MODEL_DIR"])
    return out


def checkpoint_resumed(mesh) -> dict:
    """Steps 11-20 after resuming from $CHECKPOINT_DIR."""
    return train(mesh, 4, checkpoint_dir=os.environ["CHECKPOINT_DIR"], checkpoint_every=5)


def mismatch(mesh) -> dict:
    """Each process passes its own key (or model, or chain count): named before any work."""
    me = distributed.process_index()
    ising = hn.IsingModel.lattice((6, 6), coupling=0.4)
    errors = {}
    calls = {
        "key": lambda: hn.sample(ising, jax.random.key(me), n_chains=8, device=mesh),
        "model": lambda: hn.nrpt(hn.IsingModel.lattice((6, 6), coupling=0.4 + me), jax.random.key(0),
                                 n_rounds=4, n_betas=8, device=mesh),
        "n_runs": lambda: hn.ais(ising, jax.random.key(0), n_runs=8 * (me + 1), n_betas=10,
                                 device=mesh),
    }  # fmt: skip
    for name, call in calls.items():
        try:
            call()
            errors[name] = ""
        except ValueError as err:
            errors[name] = str(err)
    print(json.dumps(errors), flush=True)
    return {}


def main() -> int:
    out, areas = sys.argv[1], sys.argv[2:] or AREAS
    mesh = hn.chain_mesh()
    results = {}
    for area in areas:
        flat = jax.tree_util.tree_flatten_with_path(globals()[area](mesh))[0]
        for path, leaf in flat:
            results[area + jax.tree_util.keystr(path)] = distributed.gather(leaf)
    if distributed.is_writer():
        np.savez(out, **results)
    print(f"process {distributed.process_index()} of {distributed.process_count()}: done")
    return 0


def die(mesh) -> dict:
    """Process 1 dies after a first run; the others go on sampling until they fail."""
    ising = hn.IsingModel.lattice((6, 6), coupling=0.4)
    hn.sample(ising, jax.random.key(0), n_samples=2, n_chains=8, device=mesh)
    if distributed.process_index() == 1:
        print("process 1: exiting", flush=True)
        os._exit(3)
    for i in range(10_000):
        x = hn.sample(ising, jax.random.key(i), n_samples=2, n_chains=8, device=mesh)
        distributed.gather(x)
    return {}


if __name__ == "__main__":
    sys.exit(main())
