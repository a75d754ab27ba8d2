"""CPU against accelerator: time per Gibbs sweep over work sizes, and the threshold.

Prints ONE JSON document on stdout (progress on stderr):

    python benchmarks/device_crossover.py
    export HAMON_DEVICE_THRESHOLD=<"threshold" from the output>

Work: 2-D periodic Ising lattices L x L (beta = 0.4) with C chains; the
work score of a sweep is C * L^2 variable updates, the score `device="auto"`
compares with the threshold. For each size the sweep loop (the hot loop of
`hn.sample` and `hn.nrpt`: `core.gibbs.sweep` under `lax.fori_loop`, the
sweep count traced so one program serves every count) is compiled once per
device and timed at two sweep counts; the slope is the time per sweep, the
intercept the fixed cost of a call (dispatch, transfer of the states back).
The threshold is the geometric mean of the largest work where the CPU is
faster per sweep and the smallest work from which the accelerator is faster
at every larger size.

With no accelerator visible it says so and exits with status 0: "auto"
then leaves placement to JAX and no threshold is needed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

import hamon_nnx as hn  # noqa: E402
from hamon_nnx.core import device as device_lib  # noqa: E402
from hamon_nnx.core import gibbs  # noqa: E402

DEFAULT_SIZES = (4, 8, 16, 32, 64, 128, 256)
DEFAULT_CHAINS = (8, 64)


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


@jax.jit
def _sweeps(graphdef, params, key, x, beta, n):
    model = nnx.merge(graphdef, params)
    return jax.lax.fori_loop(
        0, n, lambda t, x: gibbs.sweep(jax.random.fold_in(key, t), x, model, beta), x
    )


def _best(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def measure(device, L: int, chains: int, target_s: float = 0.02, repeats: int = 3) -> dict:
    """Per-sweep and fixed per-call seconds of C chains of an L x L lattice on `device`.

    The longer of the two timed calls runs about `target_s` (the sweep count
    comes from a probe), the shorter a fifth of its sweeps, so the slope is
    well above timer noise at every size.
    """
    model = hn.IsingModel.lattice((L, L), coupling=1.0, periodic=True)
    graphdef, params = nnx.split(model)
    key = jax.random.key(L * 1000 + chains)
    x0 = gibbs.random_states(key, model.blocks, chains)
    beta = jnp.full((chains,), 0.4, jnp.float32)
    params, key, x0, beta = jax.device_put((params, key, x0, beta), device)

    def call(n):
        count = jax.device_put(jnp.int32(n), device)
        return lambda: _sweeps(graphdef, params, key, x0, beta, count)

    start = time.perf_counter()
    jax.block_until_ready(call(1)())
    compile_s = time.perf_counter() - start
    probe = 16
    probe_s = _best(call(probe), 2)
    hi = int(min(max(target_s / max(probe_s / probe, 1e-9), 5 * probe), 200_000))
    lo = max(hi // 5, 1)
    times = {n: _best(call(n), repeats) for n in (lo, hi)}
    per_sweep = max((times[hi] - times[lo]) / (hi - lo), 1e-12)
    return {
        "per_sweep_s": per_sweep,
        "fixed_s": max(times[lo] - lo * per_sweep, 0.0),
        "first_call_s": compile_s,
        "times_s": {str(k): v for k, v in times.items()},
    }


def crossover(works, cpu_s, accel_s) -> float | None:
    """The work score from which the accelerator is faster, or None if it never is.

    Args:
        works: work scores of the measured sizes.
        cpu_s, accel_s: seconds per sweep on each side, same order.

    Returns:
        0.0 when the accelerator wins at every size, None when it wins at
        none (or not at the largest), else the geometric mean of the largest
        work the CPU wins and the smallest work after which the accelerator
        always wins.
    """
    rows = sorted(zip(works, cpu_s, accel_s, strict=True))
    if not rows or rows[-1][2] >= rows[-1][1]:
        return None
    first_win = len(rows) - 1
    while first_win > 0 and rows[first_win - 1][2] < rows[first_win - 1][1]:
        first_win -= 1
    if first_win == 0:
        return 0.0
    return math.sqrt(rows[first_win - 1][0] * rows[first_win][0])


def accelerator():
    """The first local accelerator device, or None."""
    devices = device_lib.accelerators()
    return devices[0] if devices else None


def run(sizes=DEFAULT_SIZES, chains=DEFAULT_CHAINS, repeats: int = 3, accel=None, cpu=None) -> dict:
    """Measure both devices over the grid; the JSON report as a dict."""
    accel = accelerator() if accel is None else accel
    report = {
        "benchmark": "device_crossover",
        "jax": jax.__version__,
        "default_threshold": device_lib.DEFAULT_THRESHOLD,
    }
    if accel is None:
        report.update(
            accelerator=None,
            threshold=None,
            message="no accelerator visible to JAX: device='auto' leaves placement to JAX, "
            "no threshold is needed",
        )
        return report
    cpu = jax.local_devices(backend="cpu")[0] if cpu is None else cpu
    report.update(accelerator=str(accel), accelerator_kind=accel.device_kind, cpu=str(cpu))
    rows = []
    for c in chains:
        for L in sizes:
            row = {"L": L, "chains": c, "work": device_lib.work_score(c, L * L)}
            for name, dev in (("cpu", cpu), ("accelerator", accel)):
                row[name] = measure(dev, L, c, repeats=repeats)
            row["accelerator_faster"] = (
                row["accelerator"]["per_sweep_s"] < row["cpu"]["per_sweep_s"]
            )
            rows.append(row)
            log(
                f"L={L} C={c} work={row['work']}: cpu {row['cpu']['per_sweep_s'] * 1e6:.1f} us, "
                f"accelerator {row['accelerator']['per_sweep_s'] * 1e6:.1f} us per sweep"
            )
    report["rows"] = rows
    threshold = crossover(
        [r["work"] for r in rows],
        [r["cpu"]["per_sweep_s"] for r in rows],
        [r["accelerator"]["per_sweep_s"] for r in rows],
    )
    report["threshold"] = None if threshold is None else int(round(threshold))
    if threshold is None:
        report["message"] = (
            "the accelerator was not faster at the largest size measured: measure larger "
            "sizes, or use HAMON_DEVICE=cpu"
        )
    else:
        report["message"] = f"export {device_lib.ENV_THRESHOLD}={report['threshold']}"
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--chains", type=int, nargs="+", default=list(DEFAULT_CHAINS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    report = run(args.sizes, args.chains, args.repeats)
    if report["accelerator"] is None:
        log(report["message"])
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
