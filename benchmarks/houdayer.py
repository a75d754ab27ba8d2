"""Do Houdayer moves shorten NRPT round trips on a 2-D +-J spin glass?

Prints ONE JSON document on stdout (progress on stderr):

    python benchmarks/houdayer.py > houdayer.json
    python benchmarks/houdayer.py --quick

A 2-D periodic +-J Edwards-Anderson glass (L x L, couplings beta * J with
J = +-1 from numpy's default_rng(disorder seed), zero field) is tuned once
by `hn.autotune(..., n_replicas=2, explorer="gibbs")`; then, for each seed,
`hn.nrpt` runs the tuned ladder with two replicas, without and with
`houdayer=True`, the same rounds each, after the default warm-up. Reported
per run: round trips per 1000 rounds (both replicas together), wall time
per round (compiled programs warm), the stepping-stone log Z and its
standard error; and the medians over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

import hamon_nnx as hn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_stats import cpu_model  # noqa: E402


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def glass(L: int, beta: float, disorder_seed: int) -> hn.IsingModel:
    edges, _ = hn.core.graph.lattice_edges((L, L), periodic=True)
    J = np.random.default_rng(disorder_seed).choice([-1.0, 1.0], size=len(edges))
    return hn.IsingModel.from_edges(L * L, edges, beta * J)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--L", type=int, default=16)
    parser.add_argument("--beta", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=4000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--disorder-seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.L, args.rounds, args.seeds = 8, 500, 2
    model = glass(args.L, args.beta, args.disorder_seed)
    log(f"tuning {args.L}x{args.L} +-J glass at beta {args.beta}")
    plan = hn.autotune(model, jax.random.key(0), n_replicas=2, explorer="gibbs")
    ladder, n_explore = plan.ladder, plan.n_explore
    runs = []
    for seed in range(1, args.seeds + 1):
        for houdayer in (False, True):
            kw = dict(betas=ladder, n_explore=n_explore, n_replicas=2, record=False)
            hn.nrpt(model, jax.random.key(seed), n_rounds=8, houdayer=houdayer, **kw)  # compile
            start = time.perf_counter()
            res = hn.nrpt(
                model, jax.random.key(seed), n_rounds=args.rounds, houdayer=houdayer, **kw
            )
            jax.block_until_ready(res.state)
            wall = time.perf_counter() - start
            est = res.log_z
            runs.append(
                {
                    "seed": seed,
                    "houdayer": houdayer,
                    "round_trips": res.round_trips,
                    "round_trips_per_1000_rounds": 1000 * res.round_trips / args.rounds,
                    "wall_s": wall,
                    "ms_per_round": 1000 * wall / (args.rounds * 1.25),  # warm-up included
                    "log_z": est.estimate,
                    "log_z_stderr": est.stderr,
                    "barrier": res.total_barrier,
                }
            )
            log(json.dumps(runs[-1]))

    def median(key, houdayer):
        return float(np.median([r[key] for r in runs if r["houdayer"] == houdayer]))

    keys = ("round_trips_per_1000_rounds", "ms_per_round", "log_z_stderr")
    summary = {("with" if h else "without"): {k: median(k, h) for k in keys} for h in (False, True)}
    rt = [summary[w]["round_trips_per_1000_rounds"] for w in ("without", "with")]
    ms = [summary[w]["ms_per_round"] for w in ("without", "with")]
    summary["round_trip_ratio"] = rt[1] / rt[0] if rt[0] else None
    summary["round_trips_per_second_ratio"] = (rt[1] / ms[1]) / (rt[0] / ms[0]) if rt[0] else None
    doc = {
        "benchmark": "houdayer",
        "environment": {"jax": jax.__version__, "cpu": cpu_model(), "cpu_count": os.cpu_count()},
        "workload": {
            "lattice": f"{args.L}x{args.L} periodic +-J",
            "beta": args.beta,
            "disorder_seed": args.disorder_seed,
            "rounds": args.rounds,
            "ladder": [float(b) for b in ladder],
            "n_explore": n_explore,
            "explorer": "gibbs",
        },
        "runs": runs,
        "summary": summary,
    }
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
