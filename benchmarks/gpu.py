"""GPU check: run the test suite on the accelerator, then measure throughput.

One call, a few minutes; writes JSON (and the pytest log) to --out:

    python benchmarks/gpu.py --out results/        # on a machine with a GPU

Measures, each as the best of a few timed calls after compilation:
* spin updates per nanosecond of `hn.sample` on 2-D periodic Ising lattices
  (64 chains, beta = 0.4) up to sizes that fill the chip, next to the floor
  of one `jax.random.uniform` per update, with the energy per spin compared
  with the exact finite-lattice value as a check of the run itself;
* an RBM 784x500 sweep against its two matrix products alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import hamon_nnx as hn


def best_time(fn, repeats: int = 3) -> float:
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def ising(L: int, chains: int, sweeps: int) -> dict:
    model = hn.IsingModel.lattice((L, L), coupling=1.0, periodic=True)
    draws = 4
    thin = sweeps // draws

    def run():
        return hn.sample(
            model,
            jax.random.key(L),
            n_samples=draws,
            n_chains=chains,
            n_warmup=0,
            thin=thin,
            beta=0.4,
        )

    seconds = best_time(run)
    updates = chains * L * L * draws * thin
    last = run()[:, -1]
    per_chain = np.asarray(model.energy(last)) / L**2

    @jax.jit
    def floor(key):
        def body(t, acc):
            return acc + jax.random.uniform(jax.random.fold_in(key, t), (chains, L * L)).sum()

        return jax.lax.fori_loop(0, draws * thin, body, 0.0)

    floor_s = best_time(lambda: floor(jax.random.key(1)))
    return {
        "L": L,
        "chains": chains,
        "sweeps": draws * thin,
        "seconds": seconds,
        "flips_per_ns": updates / seconds / 1e9,
        "floor_uniforms_per_ns": updates / floor_s / 1e9,
        "energy_per_spin": float(per_chain.mean()),
        "energy_stderr": float(per_chain.std(ddof=1) / np.sqrt(chains)),
        "energy_exact_finite": hn.exact.ising_lattice_energy(L, 0.4),
    }


def rbm(chains: int, sweeps: int) -> dict:
    model = hn.RBM(784, 500, rngs=nnx.Rngs(0))
    W = model.W[...]

    def run():
        return hn.sample(
            model, jax.random.key(0), n_samples=1, n_chains=chains, n_warmup=sweeps - 1
        )

    @jax.jit
    def matmuls(v):
        def body(_, v):
            return ((v @ W > 0).astype(jnp.float32) @ W.T > 0).astype(jnp.float32)

        return jax.lax.fori_loop(0, sweeps, body, v)

    sweep_s = best_time(run) / sweeps
    mm_s = best_time(lambda: matmuls(jnp.ones((chains, 784), jnp.float32))) / sweeps
    return {"chains": chains, "sweep_s": sweep_s, "matmul_s": mm_s, "ratio": sweep_s / mm_s}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder for gpu.json and pytest.log")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048, 4096])
    parser.add_argument("--no-tests", action="store_true")
    parser.add_argument("--test-args", default="tests -q -x -p no:cacheprovider")
    parser.add_argument("--test-timeout", type=float, default=300.0, help="seconds")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    report = {
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
    }
    if not args.no_tests:
        start = time.perf_counter()
        with open(os.path.join(args.out, "pytest.log"), "w") as log:
            try:
                code = subprocess.call(
                    [sys.executable, "-m", "pytest", *args.test_args.split()],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=args.test_timeout,
                )
            except subprocess.TimeoutExpired:
                code = "timeout"
        report["pytest"] = {"exit_code": code, "seconds": time.perf_counter() - start}
        print(f"pytest exit {code}", file=sys.stderr, flush=True)
    report["ising"] = []
    for L in args.sizes:
        row = ising(L, chains=64, sweeps=200 if L <= 1024 else 40)
        report["ising"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    report["rbm"] = [rbm(c, 50) for c in (512, 4096)]
    print(json.dumps(report["rbm"]), file=sys.stderr, flush=True)
    text = json.dumps(report, indent=2)
    with open(os.path.join(args.out, "gpu.json"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
