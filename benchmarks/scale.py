"""Compile cost at real sizes (issue 13): dense SK models through `hn.sample`.

Prints ONE JSON document on stdout:

    python benchmarks/scale.py            # n = 256, 1024, 4096
    python benchmarks/scale.py --quick    # n = 256, 1024

For each size: the first `hn.sample` call (compilation included), the same
call with another `n_samples` (a run length must not recompile), and one
sweep against its multiply-add floor (a matrix-vector product per site
update: n * n multiply-adds per chain and sweep, timed as one (C, n) x
(n, n) product in the same run). Dense Potts models are not here yet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import hamon_nnx as hn


def sk(n: int, seed: int = 0) -> hn.IsingModel:
    g = np.random.default_rng(seed)
    J = np.triu(g.normal(size=(n, n)) / np.sqrt(n), 1)
    return hn.IsingModel.dense(J + J.T, np.zeros(n))


def timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def bench(n: int, n_chains: int = 32) -> dict:
    model = sk(n)
    key = jax.random.key(0)
    _, first = timed(lambda: hn.sample(model, key, n_samples=10, n_chains=n_chains, device="cpu"))
    _, other = timed(lambda: hn.sample(model, key, n_samples=11, n_chains=n_chains, device="cpu"))
    sweeps = 20
    _, run = timed(
        lambda: hn.sample(model, key, n_samples=sweeps, n_chains=n_chains, n_warmup=0, device="cpu")
    )
    x = jnp.ones((n_chains, n), jnp.float32)
    J = jnp.asarray(model._J())
    matmul = jax.jit(lambda x, J: x @ J)
    timed(lambda: matmul(x, J))
    _, floor = timed(lambda: matmul(x, J))
    return {
        "n": n,
        "n_chains": n_chains,
        "first_call_s": first,
        "new_n_samples_call_s": other,
        "sweep_s": run / sweeps,
        "multiply_add_floor_s": floor,
        "sweep_over_floor": run / sweeps / floor,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes = (256, 1024) if args.quick else (256, 1024, 4096)
    rows = []
    for n in sizes:
        rows.append(bench(n))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    env = {"jax": jax.__version__, "cpu_count": os.cpu_count(), "backend": jax.default_backend()}
    print(json.dumps({"environment": env, "sk_dense": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
