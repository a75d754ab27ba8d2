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
    tuning and compilation included; steady-state rounds per second;
    medians over 3 seeds. The tuner picks the explorer (Swendsen-Wang here).
(b) `hn.ising_sample` on a 16x16 periodic lattice at beta = 0.44: first
    call (cold, with compilation) and second call.
(c) log Z of that lattice against Kaufman's exact value: RMS error over 8
    seeds at equal wall time. One `hn.autotune`, then 8 independent
    `hn.nrpt` runs on its ladder, each sized (from a calibration call) to
    last as long as one of hamon's thermodynamic-integration replicates (its
    median steady replicate wall time; the hamon side runs first), or
    `--log-z-budget` seconds without hamon.
(d) 3-D +-J Edwards-Anderson glass 6x6x6 at beta = 1 (the same instance on
    both sides): ESS of the energy per wall-second of the whole autosample
    call, medians over 3 seeds (no cluster advantage: the tuner should keep
    Gibbs and must not lose to hamon).
(e) 2-D q = 3 Potts 32x32 at beta_c = ln(1 + sqrt 3): integrated
    autocorrelation time of the energy under Gibbs, Swendsen-Wang and Wolff
    (`hn.sample(..., explorer=...)`, 8 chains), in updates and in seconds.
(f) variational reference: the barrier Lambda with the uniform and with
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
        "n_chains": plan.n_betas,
        "n_explore": plan.n_explore,
        "explorer": plan.explorer.name,
        "exploration_scores": {f"{k[0]} x {k[1]}": v for k, v in report.exploration_scores.items()}
        if report.exploration_scores
        else None,
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
        "n_chains": reports[1].n_betas,
        "explorer": reports[1].explorer,
        "note": "runs after (a) in the same process: JAX's own small programs are warm",
    }


def ea_glass(L: int, disorder_seed: int = 1234):
    """The +-J instance of nrpt_hamon_side.ea_glass: same edges, same couplings."""
    edges, _ = hn.core.graph.lattice_edges((L, L, L), periodic=True)
    J = np.random.default_rng(disorder_seed).choice([-1.0, 1.0], size=len(edges))
    return edges, J


def bench_ea_glass(L: int, n_samples: int, seed: int) -> dict:
    """(d) hn.autosample on the 3-D +-J glass at beta 1: ESS of the energy per second."""
    beta = 1.0
    edges, J = ea_glass(L)
    model = hn.IsingModel.from_edges(L**3, edges, beta * J)
    start = time.perf_counter()
    samples, report = hn.autosample(model, jax.random.key(seed), n_samples=n_samples)
    jax.block_until_ready(samples)
    whole = time.perf_counter() - start
    energy = np.asarray(jax.vmap(model.energy)(samples[0]), np.float64)
    ess = ess_geyer(energy)["ess"]
    return {
        "lattice": f"{L}^3 periodic +-J",
        "beta": beta,
        "seed": seed,
        "whole_call_s": whole,
        "ess_energy": ess,
        "ess_energy_per_s_whole_call": ess / whole,
        "mean_energy_per_spin": float(energy.mean() / L**3 / beta),
        "n_betas": report.n_betas,
        "explorer": report.explorer,
        "n_explore": report.n_explore,
    }


def bench_potts_tau(L: int, n_updates: int, seed: int) -> dict:
    """(e) 2-D q = 3 Potts at its critical point: tau_int of the energy per explorer."""
    q = 3
    beta_c = float(np.log(1.0 + np.sqrt(q)))
    model = hn.PottsModel.lattice((L, L), q=q, coupling=1.0)
    out = {"lattice": f"{L}x{L} periodic", "q": q, "beta": beta_c, "n_updates": n_updates}
    for explorer in ("gibbs", "swendsen_wang", "wolff"):
        kw = dict(n_samples=n_updates, n_chains=8, n_warmup=200, beta=beta_c, explorer=explorer)
        hn.sample(model, jax.random.key(seed), **{**kw, "n_samples": 8}).block_until_ready()
        start = time.perf_counter()
        s = hn.sample(model, jax.random.key(seed + 1), **kw)
        jax.block_until_ready(s)
        wall = time.perf_counter() - start
        energy = np.asarray(jax.vmap(jax.vmap(model.energy))(s), np.float64)
        taus = [ess_geyer(e)["tau_int"] for e in energy]
        tau = float(np.median(taus))
        per_update_s = wall / n_updates
        out[explorer] = {
            "tau_int_energy_updates": tau,
            "tau_int_by_chain": taus,
            "s_per_update_8_chains": per_update_s,
            "tau_int_energy_s": tau * per_update_s,
            "mean_energy_per_site": float(energy.mean() / L**2),
        }
    return out


def _warmup(n_rounds: int) -> int:
    """hn.nrpt's default warm-up of a fresh run."""
    return max(32, n_rounds // 4)


def _rounds_within(total: int, floor: int = 64) -> int:
    """The largest n_rounds whose run, warm-up included, is at most `total` rounds."""
    n = max(total - 32, (4 * total) // 5)
    while n > floor and n + _warmup(n) > total:
        n -= 1
    return max(n, floor)


def bench_log_z(
    seed: int, budget_s: float, replicates: int = 8, calibration_rounds: int = 512
) -> dict:
    """log Z errors of independent runs, each given `budget_s` seconds.

    One `hn.autotune` (default settings, timed, like hamon's one autotune),
    then per seed a fresh `hn.nrpt` on the tuned ladder, exploration and
    reference, with n_rounds chosen so that the call (warm-up included) takes
    about `budget_s`: the rate comes from one calibration call run after a
    compiling call.
    """
    L, beta = 16, 0.44
    model = hn.IsingModel.lattice((L, L), coupling=beta)
    exact = hn.exact.ising_lattice_log_partition(L, beta)
    start = time.perf_counter()
    plan = hn.autotune(model, jax.random.key(seed))
    jax.block_until_ready(plan.state)
    autotune_s = time.perf_counter() - start
    fixed = {
        "betas": plan.ladder,
        "n_explore": plan.n_explore,
        "reference": plan.runner.reference,
        "record": False,
        "explorer": plan.explorer,
    }
    calib_key = jax.random.fold_in(jax.random.key(seed), 1_000_003)
    start = time.perf_counter()
    # compiles everything a run uses, the warm-up path included
    hn.nrpt(model, calib_key, n_rounds=16, n_warmup=16, **fixed)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    hn.nrpt(model, calib_key, n_rounds=calibration_rounds, n_warmup=0, **fixed)
    calibration_s = time.perf_counter() - start
    rate = calibration_rounds / calibration_s
    n_rounds = _rounds_within(int(rate * budget_s))
    n_warmup = _warmup(n_rounds)
    log(
        f"(c) budget {budget_s:.2f}s at {rate:.0f} rounds/s: "
        f"{n_rounds} rounds + {n_warmup} warm-up per seed"
    )
    rows = []
    for i in range(replicates):
        seed_i = seed + 1 + i
        start = time.perf_counter()
        res = hn.nrpt(model, jax.random.key(seed_i), n_rounds=n_rounds, **fixed)
        jax.block_until_ready(res.state)
        wall = time.perf_counter() - start
        est = res.log_z
        error = est.estimate - exact
        rows.append(
            {
                "seed": seed_i,
                "log_z": est.estimate,
                "stderr": est.stderr,
                "error": error,
                "z": error / est.stderr,
                "wall_s": wall,
            }
        )
        log(f"(c) seed {seed_i}: error {error:+.4f}, z {rows[-1]['z']:+.2f}, {wall:.2f}s")
    errors = np.array([row["error"] for row in rows])
    z = np.array([row["z"] for row in rows])
    walls = np.array([row["wall_s"] for row in rows])
    return {
        "lattice": f"{L}x{L} periodic",
        "L": L,
        "beta": beta,
        "calls": {
            "plan": "hn.autotune(model, key) (defaults)",
            "run": "hn.nrpt(model, jax.random.key(seed_i), betas=plan.ladder, "
            "n_explore=plan.n_explore, reference=plan.runner.reference, explorer=plan.explorer, "
            f"n_rounds={n_rounds}, record=False) (default warm-up {n_warmup} rounds)",
            "estimate": "res.log_z.estimate, res.log_z.stderr",
        },
        "autotune_s": autotune_s,
        "n_chains": plan.n_betas,
        "n_explore": plan.n_explore,
        "reference": "uniform" if plan.runner.reference is None else "variational",
        "budget_s": budget_s,
        "calibration": {
            "compile_call_s": compile_s,
            "rounds": calibration_rounds,
            "s": calibration_s,
            "rounds_per_s": rate,
        },
        "n_rounds": n_rounds,
        "n_warmup": n_warmup,
        "replicates": rows,
        "rms_error": float(np.sqrt(np.mean(errors**2))),
        "mean_error": float(errors.mean()),
        "mean_z": float(z.mean()),
        "sd_z": float(z.std(ddof=1)) if len(z) > 1 else None,
        "wall_s_median": float(np.median(walls)),
        "wall_over_budget": float(np.median(walls)) / budget_s,
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
                "n_chains": report.n_betas,
                "log_z": report.log_z,
                "log_z_stderr": report.log_z_stderr,
            }
        if isinstance(model, hn.RBM):
            row["log_z_exact"] = hn.exact.log_partition(model)
        row["barrier_ratio"] = row["variational"]["barrier"] / row["uniform"]["barrier"]
        out[name] = row
        log(name, json.dumps(row))
    return out


def _rms_hamon(runs) -> float:
    """RMS error of hamon's replicates against the exact value of its own lattice."""
    errors = [
        rep["log_z_trapezoid"] - run["log_z_exact_kaufman"]
        for run in runs
        for rep in run["replicates"]
    ]
    return float(np.sqrt(np.mean(np.square(errors))))


def log_z_budget(hamon: dict | None, args) -> tuple[float, str]:
    """Seconds per log Z run: hamon's median steady replicate, else --log-z-budget."""
    if hamon is None:
        return args.log_z_budget, "--log-z-budget (hamon side not run: --no-hamon)"
    if not hamon.get("available"):
        return args.log_z_budget, "--log-z-budget (hamon side unavailable)"
    try:
        run = hamon["log_z"]["runs"][0]
        budget = float(run["steady_wall_s_median"])
    except (KeyError, IndexError, TypeError, ValueError):
        return args.log_z_budget, "--log-z-budget (hamon side gave no steady log Z wall time)"
    n = len(run["replicates"])
    return budget, (
        f"hamon's median steady replicate wall_s ({n - 1} of its {n} TI runs, "
        f"the first one compiles; {run['L']}x{run['L']} lattice)"
    )


def fresh_process(workload: str, seed: int, args) -> dict:
    """One run of workload "a" or "d" in a new Python process (compilation included,
    as on hamon's side, whose every repeat is a fresh process)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", workload, "--seed", str(seed)]
    cmd += ["--samples", str(args.samples)] + (["--quick"] if args.quick else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {workload} {seed} failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    out["process_wall_s"] = time.perf_counter() - start
    return out


def child(args) -> dict:
    if args.child == "a":
        return bench_two_modes(args.samples, args.seed, 2 if args.quick else 9)
    return bench_ea_glass(4 if args.quick else 6, args.samples, args.seed)


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
    parser.add_argument(
        "--log-z-budget",
        type=float,
        default=10.0,
        help="seconds per log Z run of (c) when hamon's replicate time is unavailable",
    )
    parser.add_argument("--child", choices=("a", "d"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples = min(args.samples, 300)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    result = {
        "environment": {
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "cpu_count": os.cpu_count(),
            "hamon_nnx": hn.__version__,
        }
    }
    log("(a) two modes, 3 seeds, each in a fresh process")
    runs = [fresh_process("a", args.seed + r, args) for r in range(3)]
    result["two_modes"] = dict(runs[0])
    result["two_modes"]["runs"] = runs
    for k in ("whole_call_s", "ess_magnetization", "ess_per_s"):
        result["two_modes"][k] = float(np.median([r[k] for r in runs]))
    result["two_modes"]["long_trace"]["implied_ess_per_s_whole_call"] = float(
        np.median([r["long_trace"]["implied_ess_per_s_whole_call"] for r in runs])
    )
    result["two_modes"]["summary"] = (
        "medians over the 3 runs (seed, seed + 1, seed + 2), each in a fresh process"
    )
    log(json.dumps(result["two_modes"]))
    log("(b) ising_sample front door")
    result["front_door"] = bench_front_door(args.samples, args.seed)
    log(json.dumps(result["front_door"]))
    if not args.no_hamon:
        log("hamon side (before (c): its log Z replicate time is (c)'s budget)")
        result["hamon"] = run_hamon(args.hamon_python, args)
    hamon = result.get("hamon", {})
    budget, source = log_z_budget(result.get("hamon"), args)
    log(f"(c) log Z of 8 seeds at {budget:.2f}s each ({source})")
    result["log_z"] = bench_log_z(args.seed, budget)
    result["log_z"]["budget_source"] = source
    log(json.dumps(result["log_z"]))
    log("(d) 3-D +-J Edwards-Anderson glass, 3 seeds, each in a fresh process")
    runs = [fresh_process("d", args.seed + r, args) for r in range(3)]
    result["ea_glass"] = {
        "runs": runs,
        "median_ess_energy_per_s_whole_call": float(
            np.median([r["ess_energy_per_s_whole_call"] for r in runs])
        ),
    }
    log(json.dumps(result["ea_glass"]))
    log("(e) 2-D q = 3 Potts at beta_c: tau_int of the energy")
    result["potts_tau"] = bench_potts_tau(16 if args.quick else 32, 2000, args.seed)
    log(json.dumps(result["potts_tau"]))
    log("(f) variational reference")
    result["variational_reference"] = bench_variational(args.seed, 256 if args.quick else 1024)
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
                "log_z_rms_error_ratio": _rms_hamon(hamon_runs) / result["log_z"]["rms_error"],
                "log_z_rms_error": {"hamon": _rms_hamon(hamon_runs),
                                    "hamon_nnx": result["log_z"]["rms_error"]},
                "log_z_equal_time": {
                    "budget_s_per_run": result["log_z"]["budget_s"],
                    "budget_source": result["log_z"]["budget_source"],
                    "hamon_nnx_median_wall_s": result["log_z"]["wall_s_median"],
                    "replicates": {"hamon": len(hamon_runs[0]["replicates"]),
                                   "hamon_nnx": len(result["log_z"]["replicates"])},
                    "lattices": {"hamon": f"{hamon_runs[0]['L']}x{hamon_runs[0]['L']}",
                                 "hamon_nnx": result["log_z"]["lattice"]},
                },
                "ea_glass_ess_per_s_ratio": result["ea_glass"]["median_ess_energy_per_s_whole_call"]
                / hamon["ea_glass"]["summary"]["ess_energy_per_s_whole_call"]["median"],
                "targets": {"ess_per_s_ratio": ">= 3", "cold_call_ratio": "<= 1/3",
                            "log_z_rms_error_ratio": ">= 10", "ea_glass_ess_per_s_ratio": ">= 1"},
            }  # fmt: skip
        except (KeyError, TypeError, ZeroDivisionError) as err:
            result["comparison"] = {"error": f"hamon output lacks a field: {err!r}"}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
