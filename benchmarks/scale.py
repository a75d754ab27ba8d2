"""Real sizes (issue 13): dense SK glasses and protein-sized dense Potts models.

Prints ONE JSON document on stdout (progress lines on stderr):

    python benchmarks/scale.py            # SK n = 256, 1024, 4096; Potts L = 200, q = 21
    python benchmarks/scale.py --quick    # SK n = 256, 1024; Potts L = 50

For each model, with the defaults a new user gets (`hn.sample` with its
100 warm-up sweeps, `device="cpu"`):

* `first_call_s`: the first `hn.sample(n_samples=10)` call, compilation
  included; `new_n_samples_call_s`: the same with `n_samples=11` (a run
  length must not recompile: it runs 111 sweeps and compiles nothing).
* `sweep_s`: one sweep, from the difference of two runs (210 and 10
  draws, no warm-up), so fixed costs cancel.
* `multiply_add_floor_s`: the arithmetic a sweep cannot avoid, timed as
  one float32 product of the same number of multiply-adds in the same run
  (best of 20): SK n * n per chain as (C, n) x (n, n); Potts L * L q per
  chain (L q per site update) as (C, L) x (L, L q). Potts also reports
  `one_hot_product_s`, the (C, L q) x (L q, L q) product that any
  formulation through one-hot vectors does (q times the floor).
* `nrpt`: the first and a second `hn.nrpt` call (16 chains, 200 rounds);
  `autotune` (SK n = 1024 only, `--quick` skips it): the whole
  `hn.autotune` + `plan.sample(1000)` with its report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def protein_potts(L: int, q: int = 21, seed: int = 0):
    """Couplings of a trained protein model's scale: weak, dense, random."""
    g = np.random.default_rng(seed)
    J = g.normal(size=(L, L, q, q)).astype(np.float32) * (0.5 / np.sqrt(L))
    J = J + J.transpose(1, 0, 3, 2)
    J[np.arange(L), np.arange(L)] = 0.0
    return hn.PottsModel.dense(J, g.normal(size=(L, q)).astype(np.float32))


def timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def best_of(fn, *args, repeats: int = 20) -> float:
    """Best time of `fn(*args)` compiled (arguments, not constants XLA could fold)."""
    fn = jax.jit(fn)
    jax.block_until_ready(fn(*args))
    return min(timed(lambda: fn(*args))[1] for _ in range(repeats))


def sample_costs(model, n_chains: int) -> dict:
    key = jax.random.key(0)

    def call(n_samples, **kw):
        return timed(
            lambda: hn.sample(
                model, key, n_samples=n_samples, n_chains=n_chains, device="cpu", **kw
            )
        )[1]

    first, other = call(10), call(11)
    long, short = call(210, n_warmup=0), call(10, n_warmup=0)
    return {
        "n_chains": n_chains,
        "first_call_s": first,
        "new_n_samples_call_s": other,
        "sweep_s": (long - short) / 200,
    }


def nrpt_costs(model) -> dict:
    key = jax.random.key(1)

    def call():
        return timed(lambda: hn.nrpt(model, key, n_rounds=200, n_betas=16, device="cpu").energy)[1]

    return {"n_betas": 16, "n_rounds": 200, "first_call_s": call(), "second_call_s": call()}


def autotune_run(model) -> dict:
    start = time.perf_counter()
    plan = hn.autotune(model, jax.random.key(2), device="cpu")
    tuned = time.perf_counter() - start
    plan.sample(jax.random.key(3), 1000)
    log_z, stderr = plan.log_z()
    report = plan.report()
    print(report, file=sys.stderr)
    return {
        "autotune_s": tuned,
        "total_with_1000_rounds_s": time.perf_counter() - start,
        "n_betas": int(plan.n_betas),
        "n_explore": int(plan.n_explore),
        "log_z": float(log_z),
        "log_z_stderr": float(stderr),
        "report": str(report).splitlines(),
    }


def bench_sk(n: int, n_chains: int, tune: bool) -> dict:
    model = sk(n)
    row = {"n": n, **sample_costs(model, n_chains)}
    x, J = jnp.ones((n_chains, n), jnp.float32), jnp.asarray(model._J())
    row["multiply_add_floor_s"] = best_of(jnp.matmul, x, J)
    row["sweep_over_floor"] = row["sweep_s"] / row["multiply_add_floor_s"]
    row["nrpt"] = nrpt_costs(model)
    if tune:
        row["autotune"] = autotune_run(model)
    return row


def bench_potts(L: int, q: int, n_chains: int) -> dict:
    model = protein_potts(L, q)
    row = {"L": L, "q": q, **sample_costs(model, n_chains)}
    a, W = jnp.ones((n_chains, L), jnp.float32), jnp.ones((L, L * q), jnp.float32)
    row["multiply_add_floor_s"] = best_of(jnp.matmul, a, W)
    onehot, full = jnp.ones((n_chains, L * q), jnp.float32), jnp.ones((L * q, L * q), jnp.float32)
    row["one_hot_product_s"] = best_of(jnp.matmul, onehot, full, repeats=5)
    row["sweep_over_floor"] = row["sweep_s"] / row["multiply_add_floor_s"]
    row["sweep_over_one_hot_product"] = row["sweep_s"] / row["one_hot_product_s"]
    row["nrpt"] = nrpt_costs(model)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sk_sizes = ((256, 64), (1024, 64)) if args.quick else ((256, 64), (1024, 64), (4096, 32))
    rows = []
    for n, chains in sk_sizes:
        rows.append(bench_sk(n, chains, tune=n == 1024 and not args.quick))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "autotune"}), file=sys.stderr)
    potts = [bench_potts(50 if args.quick else 200, 21, 64)]
    print(json.dumps(potts[-1]), file=sys.stderr)
    env = {
        "jax": jax.__version__,
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "backend": jax.default_backend(),
    }
    print(json.dumps({"environment": env, "sk_dense": rows, "potts_dense": potts}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
