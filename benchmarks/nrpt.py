"""NRPT benchmark: hamon-nnx against hamon on the same machine, in one run.

Prints ONE JSON document on stdout (progress on stderr):

    python benchmarks/nrpt.py > nrpt.json
    python benchmarks/nrpt.py --quick

Workloads (hamon-nnx here; hamon through `benchmarks/nrpt_hamon_side.py`
run with a Python 3.12 interpreter that has hamon installed, given by
`--hamon-python`, default /work/hamon-venv/bin/python; skipped with a
reason when it is missing):

(a) 2-D Ising 32x32 periodic at beta = 0.5, zero field (two modes):
    ESS of the signed magnetization per wall-second of the whole call,
    tuning and compilation included; steady-state rounds per second.
(b) `hn.ising_sample` on a 16x16 periodic lattice at beta = 0.44: first
    call (cold, with compilation) and second call.
(c) log Z of that lattice against Kaufman's exact value.
(d) variational reference: the barrier Lambda with the uniform and with
    the fitted product reference on models with strong fields (a
    random-field Ising model, an RBM with strong biases).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np

import hamon_nnx as hn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_stats import ess_geyer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def lattice_edges(L: int) -> np.ndarray:
    edges, _ = hn.core.graph.lattice_edges((L, L), periodic=True)
    return edges


def bench_two_modes(n_samples: int, seed: int, long_windows: int) -> dict:
    L, beta = 32, 0.5
    model = hn.IsingModel.lattice((L, L), coupling=beta)
    start = time.perf_counter()
    samples, report = hn.autosample(model, jax.random.key(seed), n_samples=n_samples)
    jax.block_until_ready(samples)
    whole = time.perf_counter() - start
    magnetization = np.asarray(samples, np.float64).mean(axis=-1)[0]
    ess = ess_geyer(magnetization)["ess"]
    plan = report.plan
    start = time.perf_counter()
    second = plan.sample(jax.random.key(seed + 1), n_samples)
    jax.block_until_ready(second)
    steady = time.perf_counter() - start
    # 2000 draws are too few to see the slow mode balance: continue the chain
    trace = [np.asarray(second, np.float64).mean(axis=-1)[0]]
    for i in range(long_windows):
        more = plan.extend(jax.random.key(seed + 2 + i), n_samples)[0, -n_samples:]
        trace.append(np.asarray(more, np.float64).mean(axis=-1))
    long = ess_geyer(np.concatenate(trace))
    return {
        "lattice": f"{L}x{L} periodic",
        "beta": beta,
        "n_samples": n_samples,
        "whole_call_s": whole,
        "ess_magnetization": ess,
        "ess_per_s": ess / whole,
        "long_trace": {
            "n": long["n"],
            "tau_int_signed_m": long["tau_int"],
            "implied_ess_per_s_whole_call": n_samples / long["tau_int"] / whole,
            "mean_signed_m": float(np.concatenate(trace).mean()),
        },
        "mean_abs_magnetization": float(np.abs(magnetization).mean()),
        "fraction_positive": float((magnetization > 0).mean()),
        "steady_rounds_per_s": n_samples / steady,
        "n_chains": plan.n_chains,
        "n_explore": plan.n_explore,
        "barrier": report.total_barrier,
        "round_trips": report.round_trips,
    }


def bench_front_door(n_samples: int, seed: int) -> dict:
    L, beta = 16, 0.44
    edges = lattice_edges(L)
    fields = np.zeros(L * L)
    couplings = np.full(len(edges), beta)
    times, reports = [], []
    for call in range(2):
        start = time.perf_counter()
        s, report = hn.ising_sample(
            fields, edges, couplings, key=jax.random.key(seed + call), n_samples=n_samples
        )
        jax.block_until_ready(s)
        times.append(time.perf_counter() - start)
        reports.append(report)
    exact = hn.exact.ising_lattice_log_partition(L, beta)
    log_z = reports[1].log_z
    return {
        "lattice": f"{L}x{L} periodic",
        "beta": beta,
        "n_samples": n_samples,
        "first_call_s": times[0],
        "second_call_s": times[1],
        "log_z": log_z,
        "log_z_stderr": reports[1].log_z_stderr,
        "log_z_exact": exact,
        "log_z_abs_error": abs(log_z - exact),
        "n_chains": reports[1].n_chains,
    }


def bench_log_z(seed: int, replicates: int = 4, n_rounds: int = 1000) -> dict:
    """Single-run log Z errors of independent replicates (same production rounds as hamon's)."""
    L, beta = 16, 0.44
    model = hn.IsingModel.lattice((L, L), coupling=beta)
    exact = hn.exact.ising_lattice_log_partition(L, beta)
    plan = hn.autotune(model, jax.random.key(seed))
    rows = []
    for r in range(replicates):
        plan.sample(jax.random.key(seed + 100 + r), n_rounds)
        log_z, stderr = plan.log_z()
        rows.append({"log_z": log_z, "stderr": stderr, "error": log_z - exact})
    errors = np.array([row["error"] for row in rows])
    return {
        "lattice": f"{L}x{L} periodic",
        "beta": beta,
        "production_rounds": n_rounds,
        "n_chains": plan.n_chains,
        "replicates": rows,
        "rms_error": float(np.sqrt(np.mean(errors**2))),
        "z_scores": [row["error"] / row["stderr"] for row in rows],
        "log_z_exact": exact,
    }


def bench_variational(seed: int, max_rounds: int) -> dict:
    g = np.random.default_rng(seed)
    L = 16
    rfim = hn.IsingModel.lattice((L, L), coupling=0.3, field=1.5 * g.normal(size=(L, L)))
    rbm = hn.RBM.from_params(
        0.3 * g.normal(size=(64, 16)), 2.5 * g.normal(size=64), 1.5 * g.normal(size=16)
    )
    out = {}
    for name, model in (("random_field_ising_16x16", rfim), ("rbm_64x16_strong_biases", rbm)):
        row = {}
        for ref in ("uniform", "variational"):
            plan = hn.autotune(model, jax.random.key(seed), reference=ref, max_rounds=max_rounds)
            plan.sample(jax.random.key(seed + 1), 2000)
            report = plan.report()
            row[ref] = {
                "barrier": report.total_barrier,
                "n_chains": report.n_chains,
                "log_z": report.log_z,
                "log_z_stderr": report.log_z_stderr,
            }
        if isinstance(model, hn.RBM):
            row["log_z_exact"] = hn.exact.log_partition(model)
        row["barrier_ratio"] = row["variational"]["barrier"] / row["uniform"]["barrier"]
        out[name] = row
        log(name, json.dumps(row))
    return out


def _rms_hamon(runs, exact: float) -> float:
    values = [rep["log_z_trapezoid"] for run in runs for rep in run["replicates"]]
    return float(np.sqrt(np.mean((np.array(values) - exact) ** 2)))


def run_hamon(python: str, args) -> dict:
    script = os.path.join(HERE, "nrpt_hamon_side.py")
    if not os.path.exists(python):
        return {"available": False, "reason": f"no interpreter at {python}"}
    if not os.path.exists(script):
        return {"available": False, "reason": f"missing {script}"}
    cmd = [python, script, "--seed", str(args.seed), "--samples", str(args.samples)]
    if args.quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"available": False, "reason": proc.stderr.strip().splitlines()[-1:]}
    result = json.loads(proc.stdout)
    result["available"] = True
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--hamon-python", default="/work/hamon-venv/bin/python")
    parser.add_argument("--no-hamon", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples = min(args.samples, 300)
    result = {
        "environment": {
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "cpu_count": os.cpu_count(),
            "hamon_nnx": hn.__version__,
        }
    }
    log("(a) two modes")
    result["two_modes"] = bench_two_modes(args.samples, args.seed, 2 if args.quick else 9)
    log(json.dumps(result["two_modes"]))
    log("(b, c) ising_sample front door and log Z")
    result["front_door"] = bench_front_door(args.samples, args.seed)
    log(json.dumps(result["front_door"]))
    log("(c) log Z replicates")
    result["log_z"] = bench_log_z(args.seed)
    log(json.dumps(result["log_z"]))
    log("(d) variational reference")
    result["variational_reference"] = bench_variational(args.seed, 256 if args.quick else 1024)
    if not args.no_hamon:
        log("hamon side")
        result["hamon"] = run_hamon(args.hamon_python, args)
    hamon = result.get("hamon", {})
    if hamon.get("available"):
        try:
            ours, theirs = result["two_modes"], hamon["ising_nrpt"]["summary"]
            hamon_runs = hamon["log_z"]["runs"]
            result["comparison"] = {
                "ess_per_s_ratio_short": ours["ess_per_s"]
                / theirs["ess_signed_m_per_s_whole_call"]["median"],
                "ess_per_s_ratio_long_trace": ours["long_trace"]["implied_ess_per_s_whole_call"]
                / theirs["long_implied_ess_per_s_whole_call"]["median"],
                "cold_call_ratio": result["front_door"]["first_call_s"]
                / hamon["front_door"]["summary"]["first_call_s"]["median"],
                "log_z_rms_error_ratio": _rms_hamon(hamon_runs, result["log_z"]["log_z_exact"])
                / result["log_z"]["rms_error"],
                "targets": {"ess_per_s_ratio": ">= 3", "cold_call_ratio": "<= 1/3",
                            "log_z_rms_error_ratio": ">= 10"},
            }  # fmt: skip
        except (KeyError, TypeError, ZeroDivisionError) as err:
            result["comparison"] = {"error": f"hamon output lacks a field: {err!r}"}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
