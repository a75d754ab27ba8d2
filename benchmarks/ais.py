"""AIS against NRPT's stepping stone at equal wall time (issue 15).

Prints ONE JSON document on stdout (progress on stderr):

    python benchmarks/ais.py              # 4 seeds, 20 s a run
    python benchmarks/ais.py --quick      # 2 seeds, 5 s a run
    python benchmarks/ais.py --defaults   # only hn.ais(model, key) as a new user calls it

Models with an exact log Z: the 16x16 periodic Ising model at beta 0.44
(Kaufman), the trained Fashion-MNIST RBM 784x25 of
`benchmarks/results/rbm-fashion-784x25` (exact log Z by enumerating its
2^25 hidden states) and the zoo's `rbm-fashion-mnist-20` (2^20 states;
`--only zoo-rbm-fashion-mnist-20` runs it alone). A model without one: a 16x16 +-J glass, where the two
must agree. Both methods run with the defaults a user gets:

* AIS: `hn.ais(model, key)` with 256 runs; its grid is sized to the budget
  from the time of a first, short call (compilation excluded).
* NRPT: `hn.autotune(model, key)`, then `plan.sample` in batches of rounds
  until the budget (tuning included) is spent; log Z from `plan.log_z()`.

The benchmark reads the clock; the library never does.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import jax
import numpy as np

import hamon_nnx as hn

RBM_DIR = pathlib.Path(__file__).resolve().parent / "results" / "rbm-fashion-784x25"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def models() -> list[tuple[str, object, float | None]]:
    out = [("ising-16x16-beta0.44", hn.IsingModel.lattice((16, 16), coupling=0.44), None)]
    out[0] = (*out[0][:2], hn.exact.ising_lattice_log_partition(16, 0.44))
    if (RBM_DIR / "model.json").is_file():
        exact = json.loads((RBM_DIR / "exact_log_z.json").read_text())["log_z"]
        out.append(("rbm-fashion-784x25", hn.load(RBM_DIR), exact))
    zoo20 = hn.zoo.load("rbm-fashion-mnist-20")  # exact: 2^20 hidden states summed
    out.append(("zoo-rbm-fashion-mnist-20", zoo20, float(hn.exact.log_partition(zoo20))))
    g = np.random.default_rng(0)
    edges, _ = hn.core.graph.lattice_edges((16, 16), True)
    glass = hn.IsingModel.from_edges(256, edges, g.choice([-0.5, 0.5], size=len(edges)))
    out.append(("pm-J-glass-16x16-J0.5", glass, None))
    return out


def run_ais(model, key, budget: float) -> dict:
    start = time.perf_counter()
    hn.ais(model, key, n_runs=256, n_betas=20)  # compile
    t0 = time.perf_counter()
    hn.ais(model, jax.random.fold_in(key, 1), n_runs=256, n_betas=120)
    per_beta = (time.perf_counter() - t0) / 120
    n_betas = max(20, int((budget - (time.perf_counter() - start)) / per_beta))
    est = hn.ais(model, jax.random.fold_in(key, 2), n_runs=256, n_betas=n_betas)
    seconds = time.perf_counter() - start
    return {"log_z": est.log_z, "stderr": est.stderr, "ess": est.ess, "n_betas": n_betas,
            "seconds": seconds}  # fmt: skip


def run_nrpt(model, key, budget: float) -> dict:
    start = time.perf_counter()
    plan = hn.autotune(model, key)
    i = 0
    while time.perf_counter() - start < budget:
        plan.sample(jax.random.fold_in(key, 100 + i), 200)
        i += 1
    log_z, stderr = plan.log_z()
    return {"log_z": log_z, "stderr": stderr, "n_betas": plan.n_betas,
            "rounds": int(plan.energies().shape[1]), "seconds": time.perf_counter() - start}  # fmt: skip


def defaults(zoo) -> list[dict]:
    """`hn.ais(model, key)` with every default (256 runs, 1000 betas), compile included."""
    rows = []
    for name, model, exact in zoo:
        for seed in (0, 1):
            start = time.perf_counter()
            est = hn.ais(model, jax.random.key(seed))
            row = {"model": name, "seed": seed, "log_z": est.log_z, "stderr": est.stderr,
                   "ess": est.ess, "seconds": time.perf_counter() - start}  # fmt: skip
            if exact is not None:
                row["error"] = est.log_z - exact
                row["z"] = row["error"] / est.stderr
            log(json.dumps(row))
            rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--defaults", action="store_true")
    parser.add_argument("--only", default=None, help="run only the model of this name")
    args = parser.parse_args(argv)
    if args.defaults:
        print(json.dumps({"ais_defaults": defaults(models())}, indent=2))
        return 0
    seeds, budget = ((0, 1), 5.0) if args.quick else ((0, 1, 2, 3), 20.0)
    rows, zoo = [], [m for m in models() if args.only in (None, m[0])]
    if not zoo:
        parser.error(f"--only: no model named {args.only!r}")
    for name, model, exact in zoo:
        for seed in seeds:
            key = jax.random.key(seed)
            for method, run in (("ais", run_ais), ("nrpt", run_nrpt)):
                row = {"model": name, "method": method, "seed": seed, **run(model, key, budget)}
                if exact is not None:
                    row["error"] = row["log_z"] - exact
                    row["z"] = row["error"] / row["stderr"]
                log(json.dumps(row))
                rows.append(row)
    summary = {}
    for name, _, exact in zoo:
        for method in ("ais", "nrpt"):
            mine = [r for r in rows if r["model"] == name and r["method"] == method]
            entry = {"mean_log_z": float(np.mean([r["log_z"] for r in mine])),
                     "mean_stderr": float(np.mean([r["stderr"] for r in mine]))}  # fmt: skip
            if exact is not None:
                entry["rms_error"] = float(np.sqrt(np.mean([r["error"] ** 2 for r in mine])))
                entry["mean_z"] = float(np.mean([r["z"] for r in mine]))
            summary[f"{name}/{method}"] = entry
    env = {"jax": jax.__version__, "cpu_count": os.cpu_count(), "backend": jax.default_backend(),
           "budget_s": budget}  # fmt: skip
    print(json.dumps({"environment": env, "summary": summary, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
