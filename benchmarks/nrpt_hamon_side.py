"""The peer library hamon's non-reversible parallel tempering, measured as a user sees it.

This is the hamon side of an NRPT comparison. It imports only hamon's public
API (no hamon-nnx) and runs in its own Python >= 3.12 environment:

    /work/hamon-venv/bin/python benchmarks/nrpt_hamon_side.py > hamon_side.json
    /work/hamon-venv/bin/python benchmarks/nrpt_hamon_side.py --quick   # smoke run

ONE JSON document goes to stdout, progress to stderr. Every workload runs in a
fresh child process (this same script with ``--workload``), so a "first call"
is truly cold: nothing it compiles was compiled before by another workload.
Times are wall-clock (``time.perf_counter``), each ended by
``jax.block_until_ready``; every default tuning knob of hamon is left as is.

Workloads
(a) 2-D periodic Ising L x L (32 x 32), J = 1, h = 0, beta = 0.5 (ordered
    phase, two modes). ``hamon.autotune`` (chain count, exploration count and
    schedule, with compilation) then ``NRPTPlan.sample(key, N)``, the tempered
    cold-chain draw; together they are exactly ``hamon.autosample``. Signed
    magnetisation per sample, its ESS (Geyer initial monotone sequence, FFT
    autocorrelation, computed here) and ESS per wall-second of that whole call.
    Steady state: a second ``plan.sample`` with a new key reuses the tuned
    ladder and the compiled round loop; rounds/s = N / its wall time.
    Long-trace check: that draw continued by ``--long-windows`` calls of
    ``plan.extend(key, N)``; tau_int of the signed magnetisation on the whole
    trace, since one window of N can be too short to see its slow tail.
(b) ``hamon.ising_sample`` (the Ising front door: biases, edges, weights) on
    a 16 x 16 periodic lattice at beta = 0.44: first call (cold, compiles and
    autotunes) and a second call with the same shapes and a new key.
(c) log Z of the 16 x 16 lattice at beta = 0.44 by hamon's thermodynamic
    integration: ``hamon.autotune`` for the chain count, then
    ``hamon.tune_schedule(..., observer=hamon.NRPTEnergyObserver(N))`` and
    ``hamon.nrpt_log_normalizing_constant(stats, log_z0=n log 2)`` (the route
    hamon's README documents). hamon gives no error bar; the one reported is
    the spread over independent replicates made here. Exact value: Kaufman's
    formula for the finite periodic lattice, computed here in float64.
    8 replicates (quick: 2), one autotune shared by all; each replicate's
    wall time is reported (the first includes compilation), with the median
    of the steady ones (replicates 2..8): the hamon-nnx side gives each of
    its 8 seeds that much time, so the RMS errors compare at equal time.

hamon's convention (checked numerically in each child): the energy of spin
configuration s in {-1,+1}^n is E_beta(s) = -beta (sum_i b_i s_i +
sum_(ij) J_ij s_i s_j), Z = sum_s exp(-E_beta(s)); so with b = 0, J = 1 the
model is E = -J sum s_i s_j at inverse temperature beta (K = beta J). hamon's
samples are booleans with True = +1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback

import hamon
import jax
import jax.numpy as jnp
import numpy as np
from bench_stats import ess_geyer
from hamon.models import IsingEBM, IsingSamplingProgram, hinton_init

FULL = {
    "a": {"L": 32, "beta": 0.5},
    "b": {"L": 16, "beta": 0.44},
    "c": {"L": 16, "beta": 0.44, "replicates": 8},
    "d": {"L": 6, "beta": 1.0, "disorder_seed": 1234},
}
QUICK = {
    "a": {"L": 16, "beta": 0.5},
    "b": {"L": 8, "beta": 0.44},
    "c": {"L": 8, "beta": 0.44, "replicates": 2},
    "d": {"L": 4, "beta": 1.0, "disorder_seed": 1234},
}


def ea_glass(L: int, disorder_seed: int):
    """(edges, couplings) of the L^3 periodic +-J Edwards-Anderson glass: row-major
    sites, bonds to the +1 neighbour along axes 0, 1, 2 in that order (the
    order of hamon_nnx.core.graph.lattice_edges), J = +-1 from numpy's
    default_rng(disorder_seed): the same instance on both sides."""
    idx = np.arange(L**3).reshape(L, L, L)
    edges = np.concatenate(
        [np.stack([idx.ravel(), np.roll(idx, -1, axis=a).ravel()], axis=1) for a in range(3)]
    ).astype(np.int32)
    J = np.random.default_rng(disorder_seed).choice([-1.0, 1.0], size=len(edges))
    return edges, J.astype(np.float32)


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Model construction (hamon public API only)
# --------------------------------------------------------------------------


def lattice_edges(L: int) -> np.ndarray:
    """(2 L^2, 2) int32 edges of the L x L periodic square lattice, row-major
    sites, each bond once (right and down neighbour). Needs L >= 3."""
    idx = np.arange(L * L).reshape(L, L)
    right = np.stack([idx.ravel(), np.roll(idx, -1, axis=1).ravel()], axis=1)
    down = np.stack([idx.ravel(), np.roll(idx, -1, axis=0).ravel()], axis=1)
    return np.concatenate([right, down]).astype(np.int32)


def build_ising(L: int, beta: float):
    """IsingEBM + two-colour (checkerboard) IsingSamplingProgram, J = 1, h = 0."""
    n = L * L
    edges = lattice_edges(L)
    nodes = [hamon.SpinNode() for _ in range(n)]
    node_edges = [(nodes[u], nodes[v]) for u, v in edges.tolist()]
    ebm = IsingEBM(
        nodes,
        node_edges,
        jnp.zeros(n, dtype=jnp.float32),
        jnp.ones(len(node_edges), dtype=jnp.float32),
        jnp.asarray(beta, dtype=jnp.float32),
    )
    parity = (np.arange(L)[:, None] + np.arange(L)[None, :]).ravel() % 2
    blocks = [hamon.Block([nodes[i] for i in np.flatnonzero(parity == c)]) for c in (0, 1)]
    program = IsingSamplingProgram(ebm, blocks, [])
    return nodes, edges, ebm, program, blocks


def make_init_factory(key):
    """init_factory for hamon.autotune: a hinton_init draw per chain count
    (zero field, so each spin is up with probability 1/2), stacked form."""

    def init_factory(n_chains, ebms, programs):
        free_blocks = programs[0].gibbs_spec.free_blocks
        return hinton_init(key, ebms[0], free_blocks, (n_chains,))

    return init_factory


def energy_convention_check(L: int, beta: float, seed: int) -> dict:
    """hamon's IsingEBM.energy on random states against -beta * sum_(ij) s_i s_j."""
    nodes, edges, ebm, _, blocks = build_ising(L, beta)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(3):
        s_bool = rng.random(L * L) < 0.5
        s = np.where(s_bool, 1.0, -1.0)
        want = -beta * float(np.sum(s[edges[:, 0]] * s[edges[:, 1]]))
        state = [jnp.asarray(s_bool[[nodes.index(x) for x in b.nodes]]) for b in blocks]
        got = float(ebm.energy(state, blocks))
        worst = max(worst, abs(got - want) / max(1.0, abs(want)))
    return {
        "formula": "E_beta(s) = -beta*(sum_i b_i s_i + sum_(ij) J_ij s_i s_j), "
        "Z = sum_s exp(-E_beta(s)), s = 2*bool - 1 (True = +1)",
        "coupling_enters_as": "beta * J",
        "checked_against": "-beta * sum_(ij) s_i s_j on 3 random states",
        "max_rel_diff": worst,
        "ok": worst < 1e-5,
    }


# --------------------------------------------------------------------------
# Statistics and the exact partition function
# --------------------------------------------------------------------------


def _log2cosh(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return a + np.log1p(np.exp(-2.0 * a))


def _log_abs_2sinh(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return a + np.log(-np.expm1(-2.0 * a))


def kaufman_log_z(L: int, beta: float, J: float = 1.0) -> float:
    """Exact log Z of the L x L periodic Ising lattice (Kaufman 1949), float64.

    log Z = log(1/2) + (N/2) log(2 sinh 2K) + log(Z1 + Z2 + Z3 + Z4), with
    Z1 = prod_r 2cosh(L g_(2r+1)/2), Z2 = prod_r 2sinh(L g_(2r+1)/2),
    Z3 = prod_r 2cosh(L g_(2r)/2),   Z4 = prod_r 2sinh(L g_(2r)/2),
    r = 0..L-1, cosh g_k = cosh 2K coth 2K - cos(pi k / L) for k > 0 and
    g_0 = 2K + log tanh K (signed, negative below the critical coupling).
    The four terms are combined by a signed logsumexp.
    """
    K = beta * J
    c = math.cosh(2 * K) / math.tanh(2 * K)

    def g(k: np.ndarray) -> np.ndarray:
        out = np.arccosh(c - np.cos(np.pi * k / L))
        return np.where(k == 0, 2 * K + math.log(math.tanh(K)), out)

    odd = 0.5 * L * g(2.0 * np.arange(L) + 1.0)
    even = 0.5 * L * g(2.0 * np.arange(L))
    terms = [
        (float(np.sum(_log2cosh(odd))), 1.0),
        (float(np.sum(_log_abs_2sinh(odd))), float(np.prod(np.sign(odd)))),
        (float(np.sum(_log2cosh(even))), 1.0),
        (float(np.sum(_log_abs_2sinh(even))), float(np.prod(np.sign(even)))),
    ]
    top = max(t for t, _ in terms)
    acc = sum(sign * math.exp(t - top) for t, sign in terms)
    if acc <= 0.0:
        raise ArithmeticError("Kaufman sum is not positive")
    N = L * L
    return math.log(0.5) + 0.5 * N * math.log(2.0 * math.sinh(2.0 * K)) + top + math.log(acc)


def magnetisation(samples) -> np.ndarray:
    """Signed mean spin per sample from hamon's (n_samples, n) bool samples."""
    s = np.asarray(samples)
    return 2.0 * s.astype(np.float64).mean(axis=1) - 1.0


def report_dict(report) -> dict:
    """What hamon's AutotuneReport says about the tuned ladder and its mixing."""
    rt = report.round_trip_diagnostics or {}
    rej = np.asarray(report.rejection_rates, dtype=np.float64)
    out = {
        "n_chains": int(report.n_chains),
        "gibbs_steps_per_round": int(report.gibbs_steps_per_round),
        "Lambda": float(report.Lambda),
        "betas": [float(b) for b in np.asarray(report.betas)],
        "hamon_device": report.device,
        "chain_count_probes": len(report.chain_history),
        "production_rounds": report.production_rounds,
        "production_round_trips": report.total_round_trips,
        "rejection_rates": [float(r) for r in rej],
        "mean_swap_acceptance": float(1.0 - rej.mean()) if rej.size else None,
    }
    for k in ("tau_observed", "tau_predicted", "efficiency"):
        if k in rt:
            out[k] = float(np.asarray(rt[k]))
    return out


def advice_dict(advice) -> dict | None:
    """Round trips and efficiency hamon measured over the last tempered draw."""
    if advice is None:
        return None
    return {
        "verdict": str(advice.verdict.value),
        "confidence": advice.confidence,
        "round_trips": int(advice.total_round_trips),
        "efficiency": float(advice.efficiency) if advice.efficiency is not None else None,
        "conveyor_alive": advice.conveyor_alive,
        "barrier_identified": advice.barrier_identified,
    }


def timed(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t0


# --------------------------------------------------------------------------
# Workloads (each runs in its own child process)
# --------------------------------------------------------------------------


def workload_a(cfg: dict, n_samples: int, seed: int, long_windows: int) -> dict:
    L, beta = cfg["L"], cfg["beta"]
    key = jax.random.key(seed)
    k_init, k_tune, k_draw, k_draw2, k_long = jax.random.split(key, 5)
    (nodes, _, ebm, program, _), build_s = timed(lambda: build_ising(L, beta))

    log(f"[a] autotune {L}x{L} beta={beta}")
    plan, tune_s = timed(
        lambda: hamon.autotune(
            k_tune,
            ebm=ebm,
            program=program,
            init_factory=make_init_factory(k_init),
            clamp_state=[],
            sample_nodes=nodes,
            beta_range=(0.0, beta),
        )
    )
    log(f"[a] tuned in {tune_s:.2f}s: N={len(plan.betas)}; first draw of {n_samples}")
    samples, draw1_s = timed(lambda: plan.sample(k_draw, n_samples))
    draw1_advice = advice_dict(plan.last_advice)
    whole_s = tune_s + draw1_s
    m = magnetisation(samples)
    ess = ess_geyer(m)
    ess_abs = ess_geyer(np.abs(m))

    log(f"[a] second draw of {n_samples} (steady state)")
    samples2, draw2_s = timed(lambda: plan.sample(k_draw2, n_samples))
    m2 = magnetisation(samples2)
    ess2 = ess_geyer(m2)
    rounds = n_samples  # sample(): n_warmup=0, steps_per_sample=1 -> 1 round/sample
    spin_updates = rounds * len(plan.betas) * plan.gibbs_steps_per_round * L * L
    flips = float(np.mean(np.sign(m[1:]) != np.sign(m[:-1])))
    steady_advice = advice_dict(plan.last_advice)

    # A window of n samples may be too short for Geyer's estimate to see the
    # slow (mode-balance) tail of the signed magnetisation: continue the second
    # draw with plan.extend and estimate tau_int on the long trace.
    long_m, extend_s = [m2], []
    for i, k in enumerate(jax.random.split(k_long, long_windows)):
        log(f"[a] extend {i + 1}/{long_windows} by {n_samples} (long-trace check)")
        more, t = timed(lambda k=k: plan.extend(k, n_samples))
        long_m.append(magnetisation(more))
        extend_s.append(t)
    long_check = None
    if long_windows:
        trace = np.concatenate(long_m)
        ess_long = ess_geyer(trace)
        per_window = [ess_geyer(w)["ess"] for w in long_m]
        batches = trace[: (trace.size // 10) * 10].reshape(10, -1).mean(axis=1)
        long_check = {
            "how": f"second draw + {long_windows} x plan.extend(key, {n_samples}),"
            " one continuous tempered cold chain",
            "n": int(trace.size),
            "tau_int_signed_m": ess_long["tau_int"],
            "ess_signed_m": ess_long["ess"],
            "ess_batch_means_10": float(trace.var() / batches.var() * 10),
            "implied_ess_per_n_samples": n_samples / ess_long["tau_int"],
            "implied_ess_per_s_whole_call": n_samples / ess_long["tau_int"] / whole_s,
            "geyer_ess_per_window": per_window,
            "mean_signed_m": float(trace.mean()),
            "extend_s": extend_s,
            "extend_rounds_per_s": float(n_samples / np.median(extend_s)),
        }
    return {
        "L": L,
        "beta": beta,
        "n_spins": L * L,
        "n_samples": n_samples,
        "calls": {
            "autotune": "hamon.autotune(key, ebm=IsingEBM, program="
            "IsingSamplingProgram(two checkerboard Blocks), init_factory="
            "hinton_init per chain count, clamp_state=[], sample_nodes=nodes, "
            f"beta_range=(0.0, {beta})), all other arguments default",
            "draw": f"plan.sample(key, {n_samples}) (tempered=True, "
            "n_warmup=0, steps_per_sample=1: one NRPT round per sample)",
        },
        "build_model_s": build_s,
        "autotune_s": tune_s,
        "first_draw_s": draw1_s,
        "whole_call_s": whole_s,
        "ess_signed_m": ess["ess"],
        "tau_int_signed_m": ess["tau_int"],
        "ess_signed_m_per_s_whole_call": ess["ess"] / whole_s,
        "ess_abs_m": ess_abs["ess"],
        "mean_signed_m": float(m.mean()),
        "var_signed_m": float(m.var()),
        "stderr_signed_m_from_ess": float(m.std() / math.sqrt(ess["ess"])),
        "mean_abs_m": float(np.abs(m).mean()),
        "frac_consecutive_sign_changes": flips,
        "hamon_ess_signed_m": float(hamon.effective_sample_size(m).min_ess),
        "autotune_report": report_dict(plan.report),
        "first_draw_hamon_advice": draw1_advice,
        "steady_state": {
            "how": "second plan.sample(new key, same n) on the same plan: no "
            "re-tuning, compiled round loop reused, ladder restarts from the "
            "plan's warm state",
            "draw_s": draw2_s,
            "rounds": rounds,
            "rounds_per_s": rounds / draw2_s,
            "spin_updates_per_s": spin_updates / draw2_s,
            "ess_signed_m": ess2["ess"],
            "ess_signed_m_per_s": ess2["ess"] / draw2_s,
            "mean_signed_m": float(m2.mean()),
            "hamon_advice": steady_advice,
        },
        "long_trace_check": long_check,
    }


def workload_b(cfg: dict, seed: int) -> dict:
    L, beta = cfg["L"], cfg["beta"]
    n = L * L
    edges = jnp.asarray(lattice_edges(L))
    biases = jnp.zeros(n, dtype=jnp.float32)
    weights = jnp.ones(edges.shape[0], dtype=jnp.float32)
    key1, key2 = jax.random.split(jax.random.key(seed))
    out = {
        "L": L,
        "beta": beta,
        "call": "hamon.ising_sample(biases=zeros(n), edges=(2n,2) int32, "
        f"weights=ones(2n), key=key, beta={beta}); defaults n_samples=1000, "
        "n_warmup=500, steps_per_sample=1, target_acceptance=0.5, "
        "max_chains=128, device='auto'",
    }
    for name, k in (("first", key1), ("second", key2)):
        log(f"[b] ising_sample {L}x{L} beta={beta}: {name} call")
        (samples, diag), t = timed(
            lambda k=k: hamon.ising_sample(biases, edges, weights, key=k, beta=beta)
        )
        m = magnetisation(samples)
        rt = diag["round_trip_diagnostics"] or {}
        out[f"{name}_call_s"] = t
        out[f"{name}_call"] = {
            "n_samples": int(samples.shape[0]),
            "n_chains": int(diag["n_chains"]),
            "gibbs_steps_per_round": int(diag["gibbs_steps_per_round"]),
            "Lambda": float(diag["Lambda"]),
            "tuning_round_trip_efficiency": float(np.asarray(rt["efficiency"]))
            if "efficiency" in rt
            else None,
            "tuning_round_trips": diag["report"].total_round_trips,
            "draw_advice": advice_dict(diag["search_advice"]),
            "mean_abs_m": float(np.abs(m).mean()),
            "ess_signed_m": ess_geyer(m)["ess"],
        }
    out["first_over_second"] = out["first_call_s"] / out["second_call_s"]
    return out


def workload_c(cfg: dict, seed: int) -> dict:
    L, beta, reps = cfg["L"], cfg["beta"], cfg["replicates"]
    n = L * L
    exact = kaufman_log_z(L, beta)
    key = jax.random.key(seed)
    k_init, k_tune, k_reps = jax.random.split(key, 3)
    _, _, ebm, program, blocks = build_ising(L, beta)

    log(f"[c] autotune {L}x{L} beta={beta} for the TI ladder")
    plan, tune_s = timed(
        lambda: hamon.autotune(
            k_tune,
            ebm=ebm,
            program=program,
            init_factory=make_init_factory(k_init),
            clamp_state=[],
            beta_range=(0.0, beta),
        )
    )
    n_chains = len(plan.betas)
    n_rounds = int(plan.report.production_rounds)  # autotune's production default
    log_z0 = n * math.log(2.0)
    runs = []
    for r, k in enumerate(jax.random.split(k_reps, reps)):
        k_i, k_s = jax.random.split(k)
        log(f"[c] TI replicate {r + 1}/{reps}: N={n_chains}, {n_rounds} rounds")

        def one_run(k_i=k_i, k_s=k_s):
            observer = hamon.NRPTEnergyObserver(n_chains)
            init = hinton_init(k_i, ebm, blocks, (n_chains,))
            _, stats = hamon.tune_schedule(
                k_s,
                init_states=init,
                clamp_state=[],
                n_rounds=n_rounds,
                gibbs_steps_per_round=plan.gibbs_steps_per_round,
                initial_betas=jnp.asarray(plan.betas),
                ebm=ebm,
                program=program,
                observer=observer,
            )
            trap = hamon.nrpt_log_normalizing_constant(stats, log_z0=log_z0)
            riem = hamon.nrpt_log_normalizing_constant(stats, log_z0=log_z0, method="riemann")
            return trap, riem, stats

        (trap, riem, stats), t = timed(one_run)
        runs.append(
            {
                "log_z_trapezoid": float(trap),
                "log_z_riemann": float(riem),
                "wall_s": t,
                "wall_includes_compile": r == 0,
                "n_chains": int(len(np.asarray(stats["betas"]))),
                "tuning_phases": len(stats["tuning_history"]),
                "tuning_rounds": int(sum(h["rounds_used"] for h in stats["tuning_history"])),
                "production_rounds": n_rounds,
            }
        )
    est = np.array([x["log_z_trapezoid"] for x in runs])
    mean = float(est.mean())
    sd = float(est.std(ddof=1)) if reps > 1 else float("nan")
    steady = [x["wall_s"] for x in runs[1:]]
    return {
        "L": L,
        "beta": beta,
        "calls": {
            "ladder": "hamon.autotune(key, ebm, program, init_factory, "
            f"clamp_state=[], beta_range=(0.0, {beta})) -> N, n_expl, betas",
            "run": "hamon.tune_schedule(key, init_states=hinton_init(key, ebm, "
            "blocks, (N,)), clamp_state=[], n_rounds=<autotune production "
            "rounds>, gibbs_steps_per_round=plan.gibbs_steps_per_round, "
            "initial_betas=plan.betas, ebm=ebm, program=program, "
            "observer=hamon.NRPTEnergyObserver(N)); schedule re-tuned with "
            "tune_schedule's defaults, observer on the production rounds only",
            "estimate": "hamon.nrpt_log_normalizing_constant(stats, "
            "log_z0=n*log(2)) (trapezoid; riemann also reported)",
        },
        "autotune_s": tune_s,
        "autotune_report": report_dict(plan.report),
        "replicates": runs,
        "log_z_estimate": mean,
        "hamon_error_bar": None,
        "hamon_error_bar_note": "hamon returns a point estimate only",
        "replicate_sd": sd,
        "replicate_stderr": sd / math.sqrt(reps) if reps > 1 else float("nan"),
        "log_z_exact_kaufman": exact,
        "abs_error": abs(mean - exact),
        "abs_error_per_spin": abs(mean - exact) / n,
        "log_z_riemann_mean": float(np.mean([x["log_z_riemann"] for x in runs])),
        "rms_error": float(np.sqrt(np.mean((est - exact) ** 2))),
        "wall_s": [x["wall_s"] for x in runs],
        "steady_wall_s_median": float(np.median(steady)) if steady else None,
        "steady_wall_s_how": "median wall_s of replicates 2..n (the first compiles); "
        "one replicate = tune_schedule + nrpt_log_normalizing_constant, autotune excluded",
    }


def workload_d(cfg: dict, n_samples: int, seed: int) -> dict:
    """3-D +-J glass at beta: autotune + plan.sample(n) whole call, ESS of the energy."""
    L, beta = cfg["L"], cfg["beta"]
    n = L**3
    edges, J = ea_glass(L, cfg["disorder_seed"])
    nodes = [hamon.SpinNode() for _ in range(n)]
    ebm = IsingEBM(
        nodes,
        [(nodes[u], nodes[v]) for u, v in edges.tolist()],
        jnp.zeros(n, dtype=jnp.float32),
        jnp.asarray(J),
        jnp.asarray(beta, dtype=jnp.float32),
    )
    parity = np.indices((L, L, L)).sum(axis=0).ravel() % 2
    blocks = [hamon.Block([nodes[i] for i in np.flatnonzero(parity == c)]) for c in (0, 1)]
    program = IsingSamplingProgram(ebm, blocks, [])
    k_init, k_tune, k_draw = jax.random.split(jax.random.key(seed), 3)
    log(f"[d] autotune EA {L}^3 beta={beta}")
    plan, tune_s = timed(
        lambda: hamon.autotune(
            k_tune, ebm=ebm, program=program, init_factory=make_init_factory(k_init),
            clamp_state=[], sample_nodes=nodes, beta_range=(0.0, beta),
        )
    )  # fmt: skip
    samples, draw_s = timed(lambda: plan.sample(k_draw, n_samples))
    s = 2.0 * np.asarray(samples, np.float64).reshape(n_samples, n) - 1.0
    energy = -np.sum(J * s[:, edges[:, 0]] * s[:, edges[:, 1]], axis=1)  # E at J, times beta below
    ess = ess_geyer(energy)["ess"]
    whole = tune_s + draw_s
    return {
        "L": L,
        "beta": beta,
        "n_samples": n_samples,
        "autotune_s": tune_s,
        "draw_s": draw_s,
        "whole_call_s": whole,
        "n_chains": int(len(plan.betas)),
        "mean_energy_per_spin": float(energy.mean() / n),
        "ess_energy": ess,
        "ess_energy_per_s_whole_call": ess / whole,
    }


def run_child(workload: str, args) -> dict:
    cfg = (QUICK if args.quick else FULL)[workload]
    env = {
        "jax": jax.__version__,
        "hamon": hamon.__version__,
        "devices": [str(d) for d in jax.devices()],
        "jax_compilation_cache_dir": jax.config.jax_compilation_cache_dir,
    }
    check = energy_convention_check(4, cfg["beta"], args.seed)
    if workload == "a":
        result = workload_a(cfg, args.samples, args.seed, args.long_windows)
    elif workload == "b":
        result = workload_b(cfg, args.seed)
    elif workload == "d":
        result = workload_d(cfg, args.samples, args.seed)
    else:
        result = workload_c(cfg, args.seed)
    env["jax_compilation_cache_dir_after"] = jax.config.jax_compilation_cache_dir
    return {"result": result, "env": env, "energy_convention": check}


# --------------------------------------------------------------------------
# Parent: one fresh child per workload and repeat
# --------------------------------------------------------------------------


def spawn(workload: str, seed: int, args) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--workload",
        workload,
        "--seed",
        str(seed),
        "--samples",
        str(args.samples),
        "--long-windows",
        str(args.long_windows),
    ]
    if args.quick:
        cmd.append("--quick")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": f"child exited {proc.returncode}", "process_wall_s": wall}
    out = json.loads(proc.stdout)
    out["process_wall_s"] = wall
    return out


def summarise(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
        "all": [float(x) for x in v],
    }


def device_info() -> dict:
    d = jax.devices()[0]
    return {
        "platform": d.platform,
        "device_kind": getattr(d, "device_kind", None),
        "n_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="fresh processes per workload a and b (default 3, quick 1)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--samples",
        type=int,
        default=None,
        help="cold-chain samples of workload a (default 2000, quick 300)",
    )
    ap.add_argument(
        "--long-windows",
        type=int,
        default=None,
        help="workload a: extra plan.extend windows of --samples for the "
        "long-trace ESS check (default 9, quick 2; 0 skips it)",
    )
    ap.add_argument("--workload", choices=["a", "b", "c", "d"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.samples is None:
        args.samples = 300 if args.quick else 2000
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.long_windows is None:
        args.long_windows = 2 if args.quick else 9

    if args.workload:
        try:
            out = run_child(args.workload, args)
        except Exception:  # noqa: BLE001 - reported in the JSON, not lost
            out = {"error": traceback.format_exc()}
        print(json.dumps(out))
        return

    cfg = QUICK if args.quick else FULL
    doc: dict = {
        "benchmark": "nrpt_hamon_side",
        "hamon_version": hamon.__version__,
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "device": device_info(),
        "settings": {
            "quick": args.quick,
            "repeats": args.repeats,
            "seed": args.seed,
            "samples": args.samples,
            "long_windows": args.long_windows,
            "workloads": cfg,
            "timing": "time.perf_counter around each call, ended by "
            "jax.block_until_ready; each repeat in a fresh process",
            "hamon_defaults": "autotune: target_acceptance=0.5, max_chains=128, "
            "min_chains=3, rounds_per_probe=400, n_tune=16, n_polish=2, "
            "n_rounds=1000, search_exploration=False (CPU -> 1 Gibbs sweep "
            "per round, accelerator -> 4), compile_cache=True (a no-op on a "
            "CPU-only backend unless JAX_COMPILATION_CACHE_DIR is set)",
            "env_JAX_COMPILATION_CACHE_DIR": os.environ.get("JAX_COMPILATION_CACHE_DIR"),
        },
    }
    conv = []
    for w, label in (("a", "ising_nrpt"), ("b", "front_door"), ("c", "log_z"), ("d", "ea_glass")):
        n_runs = 1 if w == "c" else args.repeats
        runs = []
        for r in range(n_runs):
            log(f"== workload {w} run {r + 1}/{n_runs}")
            runs.append(spawn(w, args.seed + r, args))
        ok = [x for x in runs if "error" not in x]
        conv += [x["energy_convention"] for x in ok]
        entry: dict = {"runs": [x.get("result", x) for x in runs]}
        if ok:
            entry["child_env"] = ok[0]["env"]
            entry["process_wall_s"] = [x["process_wall_s"] for x in ok]
        if w == "a" and ok:
            res = [x["result"] for x in ok]
            entry["summary"] = {
                k: summarise([x[k] for x in res])
                for k in (
                    "whole_call_s",
                    "autotune_s",
                    "first_draw_s",
                    "ess_signed_m",
                    "ess_signed_m_per_s_whole_call",
                )
            }
            for k in ("draw_s", "rounds_per_s", "ess_signed_m_per_s"):
                entry["summary"][f"steady_{k}"] = summarise([x["steady_state"][k] for x in res])
            entry["summary"]["n_chains"] = [x["autotune_report"]["n_chains"] for x in res]
            means = np.array([x["mean_signed_m"] for x in res])
            if means.size > 1:
                var_m = float(np.mean([x["var_signed_m"] for x in res]))
                sd = float(means.std(ddof=1))
                entry["summary"]["between_run_sd_of_mean_signed_m"] = sd
                entry["summary"]["ess_implied_by_between_run_sd"] = var_m / sd**2
            longs = [x["long_trace_check"] for x in res if x["long_trace_check"]]
            if longs:
                for k in ("tau_int_signed_m", "implied_ess_per_s_whole_call"):
                    entry["summary"][f"long_{k}"] = summarise([x[k] for x in longs])
        if w == "c" and ok:
            res = ok[0]["result"]
            entry["summary"] = {
                k: res[k] for k in ("rms_error", "steady_wall_s_median", "autotune_s")
            }
            entry["summary"]["n_replicates"] = len(res["replicates"])
        if w == "d" and ok:
            res = [x["result"] for x in ok]
            entry["summary"] = {
                k: summarise([x[k] for x in res])
                for k in ("whole_call_s", "ess_energy", "ess_energy_per_s_whole_call")
            }
        if w == "b" and ok:
            res = [x["result"] for x in ok]
            entry["summary"] = {
                k: summarise([x[k] for x in res]) for k in ("first_call_s", "second_call_s")
            }
        doc[label] = entry
    doc["energy_convention"] = conv[0] if conv else None
    doc["energy_convention_all_ok"] = bool(conv) and all(c["ok"] for c in conv)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
