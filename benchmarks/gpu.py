"""GPU check in one call: GPU-marked tests, throughput, CPU/GPU crossover, JSON.

Runs with what a bare accelerator machine has (Python with jax, flax, optax,
orbax, numpy; pytest if present), installs nothing and needs no network:

    python benchmarks/gpu.py                      # writes $OUT/gpu.json (or ./gpu.json)
    python benchmarks/gpu.py --out results/h100.json --quick

Sections, in order, each in its own try/except: a failure is recorded under
"errors" with its traceback and the next section runs; the JSON is
rewritten after every section, so a run cut short keeps what it measured.

* environment: jax version, devices;
* gpu_tests: `pytest -m gpu` (the accelerator tests: sampling on the GPU
  against exact enumeration, "auto" routing, NRPT log Z, training), log in
  pytest-gpu.log beside the JSON; `--full-tests` adds the whole suite;
* ising: spin updates per nanosecond of `hn.sample` (its default, the
  multispin kernel) on 2-D periodic Ising lattices (64 chains, beta = 0.4)
  up to sizes that fill the chip, and on 3-D ones (16 chains, beta = 0.2),
  next to the floor of one `jax.random.uniform` per update and the int8
  kernel at one size; the energy per spin against the exact finite-lattice
  value (2-D) checks the run itself. Target: 500 flips/ns in 2-D on one
  H100/H200;
* ising_breakdown: one L = 1024 sweep split into its neighbour-field part
  and its random-bit part, to show where the time goes;
* rbm: an RBM 784x500 sweep against its two matrix products alone;
* training: `benchmarks/train_speed.py`'s workload (b) on the GPU: an RBM
  784x500 trained by `hn.Trainer` (CD-1 and PCD-1, batch 100) against the
  step's five matrix products alone (target: at most 1.3x);
* crossover: `benchmarks/device_crossover.py`, the measured CPU/GPU
  threshold for `device="auto"` (HAMON_DEVICE_THRESHOLD);
* routing: what "auto" chooses at a few work sizes, and whether CPU and GPU
  draws of a small model agree bit for bit (float rounding may differ);
* sharding: with more than one device, `hn.sample` and `hn.nrpt` on all of
  them against one, bit for bit.

Every time is the best of a few calls after the compiling one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.join(ROOT, "benchmarks")):
    if path not in sys.path:  # run from a checkout without installing
        sys.path.insert(0, path)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import hamon_nnx as hn  # noqa: E402
from hamon_nnx.core import explorers, gibbs, random  # noqa: E402

TARGET_FLIPS_PER_NS = 500.0  # 2-D, multispin kernel, one H100/H200


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def best_time(fn, repeats: int = 3) -> float:
    jax.block_until_ready(fn())
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


# -- sections ------------------------------------------------------------------


def environment() -> dict:
    devices = jax.devices()
    return {
        "jax": jax.__version__,
        "python": sys.version.split()[0],
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind,
        "n_devices": len(devices),
    }


def run_pytest(out_dir: str, args: list[str], log_name: str, timeout: float) -> dict:
    start = time.perf_counter()
    log_path = os.path.join(out_dir, log_name)
    with open(log_path, "w") as f:
        try:
            code = subprocess.call(
                [sys.executable, "-m", "pytest", *args],
                stdout=f,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired:
            code = "timeout"
    with open(log_path) as f:
        lines = [line.strip() for line in f if line.strip()]
    summary = lines[-1] if lines else ""
    return {
        "args": args,
        "exit_code": code,
        "summary": summary,
        "passed": code == 0,
        "seconds": time.perf_counter() - start,
        "log": log_name,
    }


def ising(shape, chains: int, sweeps: int, explorer=explorers.GIBBS) -> dict:
    """Spin updates per ns of `hn.sample` on a periodic lattice at beta 0.4 (2-D) / 0.2 (3-D)."""
    shape = tuple(shape)
    model = hn.IsingModel.lattice(shape, coupling=1.0, periodic=True)
    n = math.prod(shape)
    beta = 0.4 if len(shape) == 2 else 0.2
    draws = 4
    thin = max(sweeps // draws, 1)

    def run():
        return hn.sample(
            model,
            jax.random.key(n),
            n_samples=draws,
            n_chains=chains,
            n_warmup=0,
            thin=thin,
            beta=beta,
            device=None,
            explorer=explorer,
        )

    seconds = best_time(run)
    updates = chains * n * draws * thin
    last = run()[:, -1]
    per_chain = np.asarray(model.energy(last)) / n

    @jax.jit
    def floor(key):
        def body(t, acc):
            return acc + jax.random.uniform(jax.random.fold_in(key, t), (chains, n)).sum()

        return jax.lax.fori_loop(0, draws * thin, body, 0.0)

    floor_s = best_time(lambda: floor(jax.random.key(1)))
    row = {
        "shape": list(shape),
        "kernel": "multispin" if model.multispin() and explorer.packed else "int8",
        "chains": chains,
        "beta": beta,
        "sweeps": draws * thin,
        "seconds": seconds,
        "flips_per_ns": updates / seconds / 1e9,
        "floor_uniforms_per_ns": updates / floor_s / 1e9,
        "energy_per_spin": float(per_chain.mean()),
        "energy_stderr": float(per_chain.std(ddof=1) / np.sqrt(chains)),
    }
    if len(shape) == 2:
        row["energy_exact_finite"] = hn.exact.ising_lattice_energy(shape[0], beta)
    return row


def ising_breakdown(L: int = 1024, chains: int = 64, sweeps: int = 50) -> dict:
    """Seconds per sweep of the whole sweep, its field part and its random part."""
    model = hn.IsingModel.lattice((L, L), coupling=1.0, periodic=True)
    graphdef, params = nnx.split(model)
    key = jax.random.key(0)
    x0 = gibbs.random_states(key, model.blocks, chains)
    beta = jnp.full((chains,), 0.4, jnp.float32)

    @jax.jit
    def full(params, x):
        m = nnx.merge(graphdef, params)
        return jax.lax.fori_loop(
            0, sweeps, lambda t, x: gibbs.sweep(jax.random.fold_in(key, t), x, m, beta), x
        )

    @jax.jit
    def fields_only(params, x):
        m = nnx.merge(graphdef, params)

        def body(t, x):
            for b, blk in enumerate(m.blocks):
                logits = jax.vmap(lambda xc, b=b: m.block_logits(xc, b))(x)
                new = jnp.where(logits.reshape(chains, blk.size) > 0, jnp.int8(1), jnp.int8(-1))
                x = jax.lax.dynamic_update_slice(x, new, (0, blk.start))
            return x

        return jax.lax.fori_loop(0, sweeps, body, x)

    @jax.jit
    def random_only(x):
        def body(t, x):
            k = jax.random.fold_in(key, t)
            for b, blk in enumerate(model.blocks):
                p = jnp.full((chains, blk.size), 0.3, jnp.float32) + t.astype(jnp.float32) * 0.0
                up = random.bernoulli(jax.random.fold_in(k, b), p)
                new = jnp.where(up, jnp.int8(1), jnp.int8(-1))
                x = jax.lax.dynamic_update_slice(x, new, (0, blk.start))
            return x

        return jax.lax.fori_loop(0, sweeps, body, x)

    full_s = best_time(lambda: full(params, x0)) / sweeps
    fields_s = best_time(lambda: fields_only(params, x0)) / sweeps
    random_s = best_time(lambda: random_only(x0)) / sweeps
    updates = chains * L * L
    return {
        "L": L,
        "chains": chains,
        "sweep_s": full_s,
        "fields_only_s": fields_s,
        "random_only_s": random_s,
        "flips_per_ns": updates / full_s / 1e9,
        "fields_only_updates_per_ns": updates / fields_s / 1e9,
        "random_only_updates_per_ns": updates / random_s / 1e9,
    }


def rbm(chains: int, sweeps: int) -> dict:
    model = hn.RBM(784, 500, rngs=nnx.Rngs(0))
    W = model.W[...]

    def run():
        return hn.sample(
            model,
            jax.random.key(0),
            n_samples=1,
            n_chains=chains,
            n_warmup=sweeps - 1,
            device=None,
        )

    @jax.jit
    def matmuls(v):
        def body(_, v):
            return ((v @ W > 0).astype(jnp.float32) @ W.T > 0).astype(jnp.float32)

        return jax.lax.fori_loop(0, sweeps, body, v)

    sweep_s = best_time(run) / sweeps
    mm_s = best_time(lambda: matmuls(jnp.ones((chains, 784), jnp.float32))) / sweeps
    return {"chains": chains, "sweep_s": sweep_s, "matmul_s": mm_s, "ratio": sweep_s / mm_s}


def routing() -> dict:
    from hamon_nnx.core import device as device_lib

    model = hn.IsingModel.lattice((8, 8), coupling=0.4)
    out = {"threshold": device_lib.threshold(), "decisions": []}
    for chains in (4, 64, 1024):
        place = device_lib.resolve("auto", n_chains=chains, n_variables=64)
        s = hn.sample(model, jax.random.key(0), n_samples=2, n_chains=chains)
        out["decisions"].append(
            {
                "work": chains * 64,
                "reason": place.reason,
                "ran_on": sorted({d.platform for d in s.devices()}),
            }
        )
    a = hn.sample(model, jax.random.key(1), n_samples=100, n_chains=16, device="cpu")
    b = hn.sample(model, jax.random.key(1), n_samples=100, n_chains=16, device="gpu")
    a, b = np.asarray(a), np.asarray(b)
    out["cpu_gpu_identical_draws"] = bool(np.array_equal(a, b))
    out["cpu_gpu_fraction_equal"] = float(np.mean(a == b))
    return out


def sharding() -> dict:
    devices = jax.devices()
    if len(devices) < 2:
        return {"skipped": f"{len(devices)} device"}
    model = hn.IsingModel.lattice((64, 64), coupling=0.44)
    n = len(devices)
    chains = 16 * n
    one = hn.sample(model, jax.random.key(0), n_samples=20, n_chains=chains, device=devices[:1])
    start = time.perf_counter()
    many = hn.sample(model, jax.random.key(0), n_samples=20, n_chains=chains, device=devices)
    jax.block_until_ready(many)
    r1 = hn.nrpt(model, jax.random.key(2), n_rounds=100, n_betas=2 * n, device=devices[:1])
    rn = hn.nrpt(model, jax.random.key(2), n_rounds=100, n_betas=2 * n, device=devices)
    return {
        "n_devices": n,
        "sample_identical": bool(np.array_equal(np.asarray(one), np.asarray(many))),
        "sample_sharded_first_call_s": time.perf_counter() - start,
        "nrpt_identical": bool(np.array_equal(np.asarray(r1.samples), np.asarray(rn.samples)))
        and bool(np.array_equal(r1.energy, rn.energy)),
    }


# -- driver --------------------------------------------------------------------


def output_path(out: str | None) -> str:
    out = out or os.environ.get("OUT") or "."
    if out.endswith(".json"):
        folder = os.path.dirname(os.path.abspath(out))
        os.makedirs(folder, exist_ok=True)
        return os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    return os.path.join(os.path.abspath(out), "gpu.json")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="folder or .json file (default $OUT or .)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="Ising lattice sides")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a short smoke run")
    parser.add_argument("--no-tests", action="store_true", help="skip the GPU-marked tests")
    parser.add_argument("--full-tests", action="store_true", help="also run the whole suite")
    parser.add_argument("--test-timeout", type=float, default=300.0, help="seconds per pytest run")
    parser.add_argument(
        "--skip", nargs="*", default=[], help="sections to skip, e.g. crossover rbm"
    )
    args = parser.parse_args(argv)
    path = output_path(args.out)
    out_dir = os.path.dirname(path)
    sizes = args.sizes or ([64, 256] if args.quick else [256, 1024, 2048, 4096])
    sizes_3d = [16, 32] if args.quick else [64, 128, 256]
    report: dict = {
        "benchmark": "gpu",
        "target_flips_per_ns": TARGET_FLIPS_PER_NS,
        "seconds": {},
        "errors": {},
    }

    def write() -> None:
        with open(path, "w") as f:
            json.dump(report, f, indent=2)

    def section(name, fn):
        if name in args.skip:
            report[name] = {"skipped": "--skip"}
            return
        log(f"== {name}")
        start = time.perf_counter()
        try:
            report[name] = fn()
        except Exception:  # record and go on: one broken section must not lose the rest
            report["errors"][name] = traceback.format_exc()[-4000:]
            log(report["errors"][name])
        report["seconds"][name] = time.perf_counter() - start
        write()

    section("environment", environment)
    if not args.no_tests:
        section(
            "gpu_tests",
            lambda: run_pytest(
                out_dir,
                ["tests", "-m", "gpu", "-q", "-p", "no:cacheprovider"],
                "pytest-gpu.log",
                args.test_timeout,
            ),
        )

    def ising_rows():
        rows = []
        plan = [((L, L), 64, 200 if L <= 1024 else 40, explorers.GIBBS) for L in sizes]
        plan.append(((sizes[min(1, len(sizes) - 1)],) * 2, 64, 100, explorers.Gibbs(packed=False)))
        plan += [((L,) * 3, 16, 100 if L <= 64 else 20, explorers.GIBBS) for L in sizes_3d]
        for shape, chains, sweeps, explorer in plan:
            row = ising(shape, chains=chains, sweeps=sweeps, explorer=explorer)
            log(json.dumps(row))
            rows.append(row)
        return rows

    section("ising", ising_rows)
    section("ising_breakdown", lambda: ising_breakdown(256 if args.quick else 1024))
    section("rbm", lambda: [rbm(c, 20 if args.quick else 50) for c in (512, 4096)])

    def training():
        import types

        import train_speed

        blocks = types.SimpleNamespace(block=0.5 if args.quick else 2.0, repeats=3)
        return train_speed.workload_b(blocks)

    section("training", training)

    def crossover():
        import device_crossover

        if args.quick:
            return device_crossover.run(sizes=(4, 16, 64), chains=(8,), repeats=2)
        return device_crossover.run()

    section("crossover", crossover)
    section("routing", routing)
    section("sharding", sharding)
    if args.full_tests and not args.no_tests:
        section(
            "full_tests",
            lambda: run_pytest(
                out_dir,
                ["tests", "hamon_nnx", "-q", "-x", "-p", "no:cacheprovider"],
                "pytest-full.log",
                args.test_timeout,
            ),
        )
    report["ok"] = not report["errors"]
    write()
    print(json.dumps(report, indent=2))
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
