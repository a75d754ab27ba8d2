"""Block Gibbs throughput of hamon-nnx against thrml and the random-number floor.

Prints ONE JSON document on stdout (progress goes to stderr). Run it with

    python benchmarks/gibbs_throughput.py > bench.json
    python benchmarks/gibbs_throughput.py --quick      # a small smoke run

Workloads, each measured side by side in this one process:

(a) 2-D periodic Ising model, L x L (64 x 64), C chains (64), beta = 0.4,
    J = 1, h = 0, S sweeps (1000), two-colour (checkerboard) block Gibbs:
    * hamon-nnx `hn.sample` on `hn.IsingModel.lattice` with its defaults:
      the multispin kernel (`core.multispin`, 32 spins a word);
    * the same call on the int8 kernel the library used before it
      (`explorer=core.explorers.Gibbs(packed=False)`);
    * thrml 0.1.4 (`IsingEBM` + `IsingSamplingProgram` with the two
      checkerboard blocks, `sample_states` vmapped over chains), if importable;
    * the random-number floor: a jitted loop of S steps each drawing one
      float32 uniform per spin update, C x L*L, reduced into a carry;
    * a correctness check of the sampler: the mean energy per spin after
      burn-in against the exact finite-lattice and infinite-lattice values.
(a3) 3-D periodic Ising model, 32^3, 16 chains, beta 0.2, 200 sweeps:
    multispin against int8 (no thrml), energy per spin of both.
(b) RBM 784 x 500 with 512 chains: time per Gibbs sweep of `hn.sample`
    against a jitted loop of the sweep's two matrix products alone.

Every time is the best (min) of `--repeats` calls after one compile/warmup
call with identical static arguments, each ended by `jax.block_until_ready`.
The hamon-nnx and thrml times include their whole user-facing call (argument
checks, chain initialisation, stored draws), as a user would see it.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

import hamon_nnx as hn
from hamon_nnx.core import explorers

INT8 = explorers.Gibbs(packed=False)  # the kernel before multispin coding

TARGETS = {
    "hn_over_thrml_min": 10.0,
    "hn_over_int8_kernel_min": 3.0,
    "hn_over_floor_min": 0.5,
    "rbm_sweep_over_matmul_max": 1.5,
}


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def best_time(fn, keys, repeats: int, label: str):
    """Compile/warm up with `fn(keys[0])`, then time `repeats` calls.

    Returns (timing, out): `timing` holds the min and all wall times, the
    first (compiling) call's time and, per repeat, the process CPU time over
    wall time (about the number of cores this process got: lower values
    mean it was competing with other work); `out` is the last result.
    """
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(keys[0]))
    compile_s = time.perf_counter() - t0
    log(f"  {label}: first call (compile + run) {compile_s:.3f} s")
    times, shares = [], []
    for r in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = jax.block_until_ready(fn(keys[1 + r]))
        times.append(time.perf_counter() - t0)
        shares.append((time.process_time() - c0) / times[-1])
        log(f"  {label}: repeat {r + 1}/{repeats} {times[-1]:.4f} s (cpu/wall {shares[-1]:.2f})")
    best = int(np.argmin(times))
    timing = {
        "time_s": times[best],
        "times_s": times,
        "median_s": float(np.median(times)),
        "first_call_s": compile_s,
        "cpu_per_wall_best": shares[best],
        "cpu_per_wall": shares,
    }
    return timing, out


def source_fingerprint() -> dict:
    """Which hamon-nnx source was measured: git HEAD, dirty files, hash of the .py files."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(hn.__file__)))
    digest = hashlib.sha256()
    pkg = os.path.dirname(os.path.abspath(hn.__file__))
    for dirpath, dirnames, filenames in sorted(os.walk(pkg)):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                digest.update(os.path.relpath(path, pkg).encode())
                with open(path, "rb") as f:
                    digest.update(f.read())
    out = {"path": pkg, "py_sha256": digest.hexdigest()[:16], "git_head": None, "git_dirty": None}
    try:
        git = ["git", "-C", root]
        out["git_head"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "hamon_nnx"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        out["git_dirty"] = [line[3:] for line in status.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def exact_reference(stats: dict, L: int, beta: float) -> dict:
    """Compare an MC mean energy per spin with hn.exact (infinite and finite lattice)."""
    out = {}
    exact = getattr(hn, "exact", None)
    for name, fn_name, fn_args in (
        ("onsager_infinite", "onsager_energy_per_spin", (beta,)),
        ("exact_finite", "ising_lattice_energy", (L, beta)),
    ):
        fn = getattr(exact, fn_name, None)
        if fn is None:
            out[name] = None
            out[f"{name}_reason"] = f"hn.exact.{fn_name} not available"
            continue
        try:
            value = float(fn(*fn_args))
        except Exception as err:  # record, don't abort the benchmark
            out[name] = None
            out[f"{name}_reason"] = f"{type(err).__name__}: {err}"
            continue
        diff = stats["mean"] - value
        z = diff / stats["stderr"] if stats["stderr"] > 0 else float("nan")
        out[name] = {"value": value, "mc_minus_exact": diff, "z": z}
    fin = out.get("exact_finite")
    out["consistent_with_exact_finite"] = (
        None if not isinstance(fin, dict) else bool(abs(fin["z"]) < 4.0)
    )
    return out


def chain_mean_stats(per_chain: np.ndarray) -> dict:
    """Mean and batch-means standard error, one batch per independent chain."""
    per_chain = np.asarray(per_chain, dtype=np.float64)
    n = per_chain.shape[0]
    se = float(per_chain.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(per_chain.mean()), "stderr": se, "n_chains": int(n)}


def sweep_split(sweeps: int, n_draws: int) -> tuple[int, int, int]:
    """hn.sample (n_warmup, n_samples, thin) performing exactly `sweeps` sweeps."""
    n_samples = max(1, min(n_draws, sweeps))
    thin = sweeps // n_samples
    n_warmup = sweeps - n_samples * thin
    assert n_warmup + n_samples * thin == sweeps
    return n_warmup, n_samples, thin


def thrml_split(sweeps: int, n_draws: int) -> tuple[int, int, int]:
    """thrml SamplingSchedule (n_warmup, n_samples, steps_per_sample) doing `sweeps` sweeps.

    thrml runs n_warmup sweeps, records a draw, then (n_samples - 1) times
    runs steps_per_sample sweeps and records a draw.
    """
    n_samples = max(1, min(n_draws, sweeps))
    steps = max(1, sweeps // n_samples)
    n_warmup = sweeps - (n_samples - 1) * steps
    assert n_warmup + (n_samples - 1) * steps == sweeps
    return n_warmup, n_samples, steps


# ---------------------------------------------------------------------------
# (a) Ising: hamon-nnx
# ---------------------------------------------------------------------------


def bench_hn_ising(args, model, explorer=explorers.GIBBS, label="hn", shape=None, sweeps=None,
                   chains=None, beta=None) -> dict:  # fmt: skip
    shape = shape or (args.L, args.L)
    C, S = chains or args.chains, sweeps or args.sweeps
    beta = args.beta if beta is None else beta
    n = math.prod(shape)
    n_warmup, n_samples, thin = sweep_split(S, 10)
    log(
        f"[{label}] {shape}, {C} chains, {S} sweeps (n_warmup={n_warmup}, n_samples={n_samples}, "
        f"thin={thin}), explorer {explorer!r}"
    )

    def run(key):
        return hn.sample(
            model, key, n_samples=n_samples, n_chains=C, n_warmup=n_warmup, thin=thin,
            beta=beta, explorer=explorer,
        )  # fmt: skip

    keys = [jax.random.key(1000 + i) for i in range(args.repeats + 1)]
    timing, draws = best_time(run, keys, args.repeats, label)
    t = timing["time_s"]
    updates = C * n * S
    e = np.asarray(model.energy(draws[:, n_samples // 2 :]) / n)
    return {
        "kernel": "multispin" if model.multispin() and explorer.packed else "int8",
        "call": {"n_warmup": n_warmup, "n_samples": n_samples, "thin": thin},
        **timing,
        "updates_per_s": updates / t,
        "ns_per_update": 1e9 * t / updates,
        "sweeps_per_s_per_chain": S / t,
        "energy_per_spin_last_draws": chain_mean_stats(e.mean(axis=1)),
    }


def bench_ising_3d(args) -> dict:
    """3-D periodic lattice: the multispin kernel against the int8 one."""
    L, C, S, beta = args.L3, 16, max(args.sweeps // 5, 10), 0.2
    model = hn.IsingModel.lattice((L, L, L))
    out = {"L": L, "chains": C, "sweeps": S, "beta": beta}
    for label, explorer in (("hn", explorers.GIBBS), ("hn_int8_kernel", INT8)):
        out[label] = bench_hn_ising(
            args, model, explorer, label, shape=(L, L, L), sweeps=S, chains=C, beta=beta
        )
    out["hn_over_int8_kernel"] = out["hn_int8_kernel"]["time_s"] / out["hn"]["time_s"]
    return out


def hn_energy_check(args, model) -> dict:
    """Mean energy per spin after burn-in with batch means over chains vs exact values."""
    L, C, S = args.L, args.chains, args.energy_sweeps
    n_samples = min(100, S)
    n_warmup, n_samples, thin = sweep_split(S, n_samples)
    log(f"[hn energy] {S} sweeps, n_samples={n_samples}, thin={thin}, discarding the first half")
    draws = hn.sample(
        model,
        jax.random.key(7),
        n_samples=n_samples,
        n_chains=C,
        n_warmup=n_warmup,
        thin=thin,
        beta=args.beta,
    )
    e = np.asarray(model.energy(draws[:, n_samples // 2 :]) / (L * L))  # (C, kept draws)
    stats = chain_mean_stats(e.mean(axis=1))
    out = {
        "sweeps": S,
        "n_samples": n_samples,
        "thin": thin,
        "kept_draws_per_chain": int(e.shape[1]),
        "mc": stats,
    }
    out.update(exact_reference(stats, L, args.beta))
    return out


# ---------------------------------------------------------------------------
# (a) Ising: thrml (called through its public API only)
# ---------------------------------------------------------------------------


def build_thrml_ising(L: int, beta: float):
    import thrml
    from thrml.models import IsingEBM, IsingSamplingProgram

    nodes = [thrml.SpinNode() for _ in range(L * L)]

    def site(i, j):
        return nodes[(i % L) * L + (j % L)]

    edges = []
    for i in range(L):
        for j in range(L):
            edges.append((site(i, j), site(i, j + 1)))
            edges.append((site(i, j), site(i + 1, j)))
    black = [site(i, j) for i in range(L) for j in range(L) if (i + j) % 2 == 0]
    white = [site(i, j) for i in range(L) for j in range(L) if (i + j) % 2 == 1]
    model = IsingEBM(
        nodes,
        edges,
        jnp.zeros((L * L,), jnp.float32),
        jnp.ones((len(edges),), jnp.float32),
        jnp.asarray(beta, jnp.float32),
    )
    free_blocks = [thrml.Block(black), thrml.Block(white)]
    program = IsingSamplingProgram(model, free_blocks, clamped_blocks=[])
    return model, program, free_blocks, [thrml.Block(nodes)]


def make_thrml_runner(model, program, free_blocks, observe, n_chains: int, schedule):
    import equinox as eqx
    import thrml
    from thrml.models import hinton_init

    @eqx.filter_jit
    def run(key, program):
        k_init, k_run = jax.random.split(key)
        init = hinton_init(k_init, model, free_blocks, (n_chains,))
        keys = jax.random.split(k_run, n_chains)
        out = jax.vmap(lambda k, s: thrml.sample_states(k, program, schedule, s, [], observe))(
            keys, init
        )
        return out[0]  # (chains, n_samples, L*L) bool, natural (row-major) order

    return lambda key: run(key, program)


def bench_thrml_ising(args, hn_model) -> dict:
    try:
        import thrml
    except Exception as err:
        return {"available": False, "reason": f"import thrml failed: {type(err).__name__}: {err}"}
    try:
        L, C, S = args.L, args.chains, args.sweeps
        t0 = time.perf_counter()
        model, program, free_blocks, observe = build_thrml_ising(L, args.beta)
        build_s = time.perf_counter() - t0
        n_warmup, n_samples, steps = thrml_split(S, 10)
        log(
            f"[thrml ising] built in {build_s:.2f} s; schedule n_warmup={n_warmup}, n_samples={n_samples}, steps_per_sample={steps}"
        )
        schedule = thrml.SamplingSchedule(
            n_warmup=n_warmup, n_samples=n_samples, steps_per_sample=steps
        )
        run = make_thrml_runner(model, program, free_blocks, observe, C, schedule)
        keys = [jax.random.key(2000 + i) for i in range(args.repeats + 1)]
        timing, draws = best_time(run, keys, args.repeats, "thrml")
        t = timing["time_s"]
        updates = C * L * L * S
        spins = 2 * draws.astype(jnp.int8) - 1
        e = np.asarray(hn_model.energy(spins[:, n_samples // 2 :]) / (L * L))
        out = {
            "available": True,
            "version": getattr(thrml, "__version__", None),
            "schedule": {"n_warmup": n_warmup, "n_samples": n_samples, "steps_per_sample": steps},
            "build_s": build_s,
            **timing,
            "updates_per_s": updates / t,
            "ns_per_update": 1e9 * t / updates,
            "energy_per_spin_last_draws": chain_mean_stats(e.mean(axis=1)),
        }
        if args.thrml_energy:
            out["energy_check"] = thrml_energy_check(
                args, hn_model, model, program, free_blocks, observe
            )
        return out
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        return {"available": False, "reason": f"thrml run failed: {type(err).__name__}: {err}"}


def thrml_energy_check(args, hn_model, model, program, free_blocks, observe) -> dict:
    import thrml

    L, C, S = args.L, args.chains, args.energy_sweeps
    n_warmup, n_samples, steps = thrml_split(S, min(100, S))
    log(f"[thrml energy] {S} sweeps, n_samples={n_samples}, steps_per_sample={steps}")
    schedule = thrml.SamplingSchedule(
        n_warmup=n_warmup, n_samples=n_samples, steps_per_sample=steps
    )
    run = make_thrml_runner(model, program, free_blocks, observe, C, schedule)
    draws = run(jax.random.key(8))
    spins = 2 * draws.astype(jnp.int8) - 1
    e = np.asarray(hn_model.energy(spins[:, n_samples // 2 :]) / (L * L))
    stats = chain_mean_stats(e.mean(axis=1))
    out = {
        "sweeps": S,
        "n_samples": n_samples,
        "steps_per_sample": steps,
        "kept_draws_per_chain": int(e.shape[1]),
        "mc": stats,
    }
    out.update(exact_reference(stats, L, args.beta))
    return out


# ---------------------------------------------------------------------------
# (a) the random-number floor
# ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("steps", "shape"))
def uniform_floor(key, *, steps: int, shape: tuple[int, int]):
    """`steps` draws of float32 uniforms of `shape`, each summed into a carry."""

    def body(t, acc):
        u = jax.random.uniform(jax.random.fold_in(key, t), shape, dtype=jnp.float32)
        return acc + jnp.sum(u)

    return lax.fori_loop(0, steps, body, jnp.zeros((), jnp.float32))


@functools.partial(jax.jit, static_argnames=("steps",))
def uniform_update_floor(key, x, beta, *, steps: int):
    """The floor plus the per-spin work of a Gibbs update without neighbour sums.

    Each step: one uniform per spin, compare with sigmoid(2 beta s) of the
    spin's own value, write the int8 state back (a carried (C, n) array).
    """

    def body(t, x):
        u = jax.random.uniform(jax.random.fold_in(key, t), x.shape, dtype=jnp.float32)
        p = jax.nn.sigmoid(2.0 * beta * x.astype(jnp.float32))
        return jnp.where(u < p, jnp.int8(1), jnp.int8(-1))

    return lax.fori_loop(0, steps, body, x)


def bench_floor(args) -> dict:
    L, C, S = args.L, args.chains, args.sweeps
    log(f"[floor] {S} steps of ({C}, {L * L}) float32 uniforms")

    def run(key):
        return uniform_floor(key, steps=S, shape=(C, L * L))

    keys = [jax.random.key(3000 + i) for i in range(args.repeats + 1)]
    timing, acc = best_time(run, keys, args.repeats, "floor")
    t = timing["time_s"]
    updates = C * L * L * S
    mean_u = float(acc) / updates
    x0 = jnp.ones((C, L * L), jnp.int8)

    def run_update(key):
        return uniform_update_floor(key, x0, jnp.float32(args.beta), steps=S)

    timing_u, _ = best_time(run_update, keys, args.repeats, "floor+update")
    return {
        "what": "jitted fori_loop: per step one jax.random.uniform (chains, L*L) float32, summed into a scalar carry",
        **timing,
        "uniforms_per_s": updates / t,
        "ns_per_uniform": 1e9 * t / updates,
        "mean_uniform": mean_u,
        "with_update": {
            "what": "same loop, plus sigmoid(2 beta s) compare and an int8 (chains, L*L) state write per step (no neighbour sums)",
            **timing_u,
            "updates_per_s": updates / timing_u["time_s"],
        },
    }


# ---------------------------------------------------------------------------
# (b) RBM
# ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("steps",))
def rbm_matmul_chain(v0, W, *, steps: int):
    """`steps` iterations of h = [v @ W > 0], v = [h @ W.T > 0] (dependent, float32)."""

    def body(_, v):
        h = (v @ W > 0).astype(jnp.float32)
        return (h @ W.T > 0).astype(jnp.float32)

    return lax.fori_loop(0, steps, body, v0)


def bench_rbm(args) -> dict:
    nv, nh, C, S = 784, 500, args.rbm_chains, args.rbm_sweeps
    rbm = hn.RBM(n_visible=nv, n_hidden=nh, rngs=nnx.Rngs(0))
    n_warmup, n_samples, thin = sweep_split(S, 2)
    log(
        f"[hn rbm] {nv}x{nh}, {C} chains, {S} sweeps (n_warmup={n_warmup}, n_samples={n_samples}, thin={thin})"
    )

    def run(key):
        return hn.sample(rbm, key, n_samples=n_samples, n_chains=C, n_warmup=n_warmup, thin=thin)

    keys = [jax.random.key(4000 + i) for i in range(args.repeats + 1)]
    timing_hn, _ = best_time(run, keys, args.repeats, "hn rbm")
    t_hn = timing_hn["time_s"]

    W = rbm.W[...]
    log(f"[matmul] {S} x [({C}x{nv}) @ ({nv}x{nh}), ({C}x{nh}) @ ({nh}x{nv})]")

    def run_mm(key):
        v0 = jax.random.bernoulli(key, 0.5, (C, nv)).astype(jnp.float32)
        return rbm_matmul_chain(v0, W, steps=S)

    keys = [jax.random.key(5000 + i) for i in range(args.repeats + 1)]
    timing_mm, _ = best_time(run_mm, keys, args.repeats, "matmul")
    t_mm = timing_mm["time_s"]
    flops = 2 * 2 * C * nv * nh * S
    out = {
        "n_visible": nv,
        "n_hidden": nh,
        "chains": C,
        "sweeps": S,
        "hn": {
            "call": {"n_warmup": n_warmup, "n_samples": n_samples, "thin": thin},
            **timing_hn,
            "time_per_sweep_s": t_hn / S,
            "matmul_gflop_per_s": flops / t_hn / 1e9,
        },
        "matmul": {
            "what": "jitted fori_loop of h=[v@W>0], v=[h@W.T>0], float32, dependent chain",
            **timing_mm,
            "time_per_iteration_s": t_mm / S,
            "gflop_per_s": flops / t_mm / 1e9,
        },
        "ratio_sweep_over_matmul": t_hn / t_mm,
    }
    if args.thrml_rbm:
        out["thrml"] = bench_thrml_rbm(args, rbm)
    return out


def bench_thrml_rbm(args, rbm) -> dict:
    """Optional: the RBM as a bipartite spin model in thrml (two blocks, dense edges)."""
    try:
        import equinox as eqx
        import thrml
        from thrml.models import IsingEBM, IsingSamplingProgram, hinton_init
    except Exception as err:
        return {"available": False, "reason": f"import thrml failed: {type(err).__name__}: {err}"}
    try:
        nv, nh, C, S = rbm.n_visible, rbm.n_hidden, args.rbm_chains, args.rbm_sweeps
        t0 = time.perf_counter()
        vis = [thrml.SpinNode() for _ in range(nv)]
        hid = [thrml.SpinNode() for _ in range(nh)]
        # binary v = (s + 1) / 2: J = W / 4, b = b_v / 2 + W.sum(1) / 4, c = c_h / 2 + W.sum(0) / 4
        W = np.asarray(rbm.W[...], np.float32)
        edges = [(vis[i], hid[j]) for i in range(nv) for j in range(nh)]
        biases = np.concatenate(
            [
                np.asarray(rbm.visible_bias[...]) / 2 + W.sum(1) / 4,
                np.asarray(rbm.hidden_bias[...]) / 2 + W.sum(0) / 4,
            ]
        )
        model = IsingEBM(
            vis + hid,
            edges,
            jnp.asarray(biases),
            jnp.asarray(W.reshape(-1) / 4),
            jnp.asarray(1.0, jnp.float32),
        )
        free_blocks = [thrml.Block(vis), thrml.Block(hid)]
        program = IsingSamplingProgram(model, free_blocks, clamped_blocks=[])
        build_s = time.perf_counter() - t0
        n_warmup, n_samples, steps = thrml_split(S, 2)
        schedule = thrml.SamplingSchedule(
            n_warmup=n_warmup, n_samples=n_samples, steps_per_sample=steps
        )
        observe = [thrml.Block(vis)]
        log(f"[thrml rbm] built in {build_s:.2f} s")

        @eqx.filter_jit
        def run(key, program):
            k_init, k_run = jax.random.split(key)
            init = hinton_init(k_init, model, free_blocks, (C,))
            keys = jax.random.split(k_run, C)
            return jax.vmap(lambda k, s: thrml.sample_states(k, program, schedule, s, [], observe))(
                keys, init
            )

        keys = [jax.random.key(6000 + i) for i in range(args.repeats + 1)]
        timing, _ = best_time(lambda k: run(k, program), keys, args.repeats, "thrml rbm")
        return {
            "available": True,
            "build_s": build_s,
            **timing,
            "time_per_sweep_s": timing["time_s"] / S,
        }
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        return {"available": False, "reason": f"thrml rbm failed: {type(err).__name__}: {err}"}


# ---------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sweeps", type=int, default=None, help="Ising sweeps per timed run (default 1000)"
    )
    p.add_argument("--chains", type=int, default=None, help="Ising chains (default 64)")
    p.add_argument("--L", type=int, default=None, help="Ising lattice side (default 64)")
    p.add_argument(
        "--beta", type=float, default=0.4, help="Ising inverse temperature (default 0.4)"
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed repeats after warmup (default 3)"
    )
    p.add_argument(
        "--energy-sweeps",
        type=int,
        default=None,
        help="sweeps of the energy check (default: --sweeps)",
    )
    p.add_argument("--rbm-chains", type=int, default=None, help="RBM chains (default 512)")
    p.add_argument(
        "--rbm-sweeps", type=int, default=None, help="RBM sweeps per timed run (default 50)"
    )
    p.add_argument("--quick", action="store_true", help="small workload for a smoke test")
    p.add_argument("--no-thrml", action="store_true", help="skip thrml entirely")
    p.add_argument("--no-rbm", action="store_true", help="skip the RBM benchmark")
    p.add_argument("--no-3d", action="store_true", help="skip the 3-D lattice benchmark")
    p.add_argument("--L3", type=int, default=None, help="3-D lattice side (default 32)")
    p.add_argument(
        "--thrml-energy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run thrml's energy check",
    )
    p.add_argument(
        "--thrml-rbm",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also time thrml on the RBM (slow to build)",
    )
    args = p.parse_args(argv)
    quick = {
        "sweeps": 100,
        "chains": 16,
        "L": 32,
        "repeats": 2,
        "rbm_chains": 128,
        "rbm_sweeps": 10,
        "L3": 8,
    }
    full = {
        "sweeps": 1000,
        "chains": 64,
        "L": 64,
        "repeats": 3,
        "rbm_chains": 512,
        "rbm_sweeps": 50,
        "L3": 32,
    }
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.energy_sweeps is None:
        args.energy_sweeps = args.sweeps
    if args.L < 2 or args.L % 2:
        p.error("--L must be an even integer >= 2")
    if args.L3 < 4 or args.L3 % 2:
        p.error("--L3 must be an even integer >= 4")
    for name in ("sweeps", "chains", "repeats", "rbm_chains", "rbm_sweeps", "energy_sweeps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)
    dev = jax.devices()[0]
    result = {
        "benchmark": "gibbs_throughput",
        "environment": {
            "jax": jax.__version__,
            "jaxlib": getattr(jax.lib, "__version__", None) or __import__("jaxlib").__version__,
            "flax": __import__("flax").__version__,
            "hamon_nnx": hn.__version__,
            "hamon_nnx_source": source_fingerprint(),
            "backend": jax.default_backend(),
            "device": str(dev),
            "device_kind": getattr(dev, "device_kind", None),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "prng_impl": str(jax.config.jax_default_prng_impl),
            "xla_flags": os.environ.get("XLA_FLAGS"),
            "loadavg_start": list(os.getloadavg()),
        },
        "workload": {
            "ising": {
                "L": args.L,
                "chains": args.chains,
                "beta": args.beta,
                "J": 1.0,
                "h": 0.0,
                "periodic": True,
                "sweeps": args.sweeps,
                "spin_updates": args.chains * args.L * args.L * args.sweeps,
                "energy_sweeps": args.energy_sweeps,
            },
            "rbm": None
            if args.no_rbm
            else {
                "n_visible": 784,
                "n_hidden": 500,
                "chains": args.rbm_chains,
                "sweeps": args.rbm_sweeps,
            },
            "repeats": args.repeats,
            "quick": args.quick,
            "timing": "min over repeats after one compile/warmup call, jax.block_until_ready",
        },
    }
    log(f"jax {jax.__version__} on {jax.default_backend()} ({dev}), {os.cpu_count()} CPUs")

    model = hn.IsingModel.lattice((args.L, args.L), coupling=1.0, field=0.0, periodic=True)
    ising = {"hn": bench_hn_ising(args, model)}
    ising["hn_int8_kernel"] = bench_hn_ising(args, model, INT8, "hn int8 kernel")
    ising["thrml"] = (
        {"available": False, "reason": "--no-thrml"}
        if args.no_thrml
        else bench_thrml_ising(args, model)
    )
    ising["floor"] = bench_floor(args)
    t_hn = ising["hn"]["time_s"]
    ratios = {
        "hn_over_floor": ising["floor"]["time_s"] / t_hn,
        "hn_over_int8_kernel": ising["hn_int8_kernel"]["time_s"] / t_hn,
    }
    if ising["thrml"].get("available"):
        ratios["hn_over_thrml"] = ising["thrml"]["time_s"] / t_hn
    else:
        ratios["hn_over_thrml"] = None
    ratios["what"] = "throughput ratios (updates/s of hn divided by updates/s of the other)"
    ising["ratios"] = ratios
    ising["energy_check"] = hn_energy_check(args, model)
    result["ising"] = ising
    if not args.no_3d:
        result["ising_3d"] = bench_ising_3d(args)

    if not args.no_rbm:
        result["rbm"] = bench_rbm(args)

    def target(value, bound, kind):
        if value is None:
            return {"value": None, "target": bound, "met": None}
        met = value >= bound if kind == "min" else value <= bound
        return {
            "value": value,
            "target": f"{'>=' if kind == 'min' else '<='} {bound}",
            "met": bool(met),
        }

    result["targets"] = {
        "hn_over_thrml": target(ratios["hn_over_thrml"], TARGETS["hn_over_thrml_min"], "min"),
        "hn_over_int8_kernel": target(
            ratios["hn_over_int8_kernel"], TARGETS["hn_over_int8_kernel_min"], "min"
        ),
        "hn_over_floor": target(ratios["hn_over_floor"], TARGETS["hn_over_floor_min"], "min"),
        "rbm_sweep_over_matmul": target(
            None if args.no_rbm else result["rbm"]["ratio_sweep_over_matmul"],
            TARGETS["rbm_sweep_over_matmul_max"],
            "max",
        ),
    }
    result["environment"]["loadavg_end"] = list(os.getloadavg())
    result["environment"]["wall_s"] = time.perf_counter() - t_start
    json.dump(result, sys.stdout, indent=2, allow_nan=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
