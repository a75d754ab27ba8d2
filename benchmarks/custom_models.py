"""Autodiff conditionals against the hand-written Ising path, side by side.

Prints ONE JSON document on stdout (progress on stderr):

    python benchmarks/custom_models.py > custom.json
    python benchmarks/custom_models.py --quick

Workload: the 2-D periodic Ising model of benchmarks/gibbs_throughput.py
(64 x 64, 64 chains, beta = 0.4, J = 1, h = 0, 1000 sweeps), sampled by
`hn.sample` through three models in one process:

* `hand`: `hn.IsingModel.lattice` (hand-written sublattice neighbour sums);
* `custom`: the same model written as an energy only (a subclass of
  `hn.EnergyModel` with `declare_variables` and a roll-based energy):
  block logits are one `jax.grad` of the relaxed energy, sliced to the
  block; its checkerboard colouring is periodic, so the internal order is
  reached by reshapes and slices;
* `custom_gather`: the same custom model with the general layout (a
  permutation gather into natural order and a gather of the block's
  gradient entries), to show what the gather-free layout saves.

Timed calls alternate between the models (repeat r of each runs before
repeat r + 1 of any), so that a busy machine slows them alike; each time
is the min over repeats after one compile/warm-up call. Also reported: the
gathers in each compiled sweep program, and each model's mean energy per
spin against the exact finite-lattice value (a correctness check).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import hamon_nnx as hn
from hamon_nnx.core import graph

TARGET_RATIO_MAX = 2.0  # custom time / hand time


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


class EnergyOnlyIsing(hn.EnergyModel):
    """E = -J sum_<ij> s_i s_j - h sum_i s_i on a periodic lattice, energy only."""

    def __init__(self, shape, coupling=1.0, field=0.0):
        self.coupling = nnx.Param(jnp.float32(coupling))
        self.field = nnx.Param(jnp.float32(field))
        edges, _ = graph.lattice_edges(tuple(shape), True)
        self.declare_variables(hn.Spins(shape, name="s"), interactions=edges)

    def energy(self, x):
        s = self.unpack(x)["s"]
        bonds = s * jnp.roll(s, -1, axis=-1) + s * jnp.roll(s, -1, axis=-2)
        return -self.coupling * jnp.sum(bonds, axis=(-2, -1)) - self.field * jnp.sum(
            s, axis=(-2, -1)
        )


def gather_layout(model: EnergyOnlyIsing) -> EnergyOnlyIsing:
    """The same model on the general (gather) layout."""
    model.layout_periods = None
    model.layout_pieces = None
    return model


def count_gathers(model, n_chains: int) -> int:
    """Gather ops in the compiled HLO of one sweep of `n_chains` chains."""
    graphdef, state = nnx.split(model)

    def one_sweep(state, key, x):
        m = nnx.merge(graphdef, state)
        return hn.core.gibbs.sweep(key, x, m, jnp.full((n_chains,), 0.4, jnp.float32))

    x = jnp.ones((n_chains, model.n_variables), jnp.int8)
    hlo = jax.jit(one_sweep).lower(state, jax.random.key(0), x).compile().as_text()
    return sum(1 for line in hlo.splitlines() if " gather(" in line)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--L", type=int, default=None)
    p.add_argument("--chains", type=int, default=None)
    p.add_argument("--sweeps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--beta", type=float, default=0.4)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    defaults = (
        {"L": 32, "chains": 16, "sweeps": 100, "repeats": 2}
        if args.quick
        else {"L": 64, "chains": 64, "sweeps": 1000, "repeats": 5}
    )
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    L, C, S = args.L, args.chains, args.sweeps
    t_start = time.perf_counter()

    t0 = time.perf_counter()
    custom = EnergyOnlyIsing((L, L))
    build_custom_s = time.perf_counter() - t0
    models = {
        "hand": hn.IsingModel.lattice((L, L), coupling=1.0, field=0.0, periodic=True),
        "custom": custom,
        "custom_gather": gather_layout(EnergyOnlyIsing((L, L))),
    }
    for name, m in models.items():
        hn.check_model(m, n_states=1, max_variables=64)
        log(f"[{name}] check_model passed")
    n_samples = 10
    thin = S // n_samples
    n_warmup = S - n_samples * thin

    def run(m, key):
        return hn.sample(
            m, key, n_samples=n_samples, n_chains=C, n_warmup=n_warmup, thin=thin, beta=args.beta
        )

    first, times, energies = {}, {k: [] for k in models}, {}
    for name, m in models.items():
        t0 = time.perf_counter()
        jax.block_until_ready(run(m, jax.random.key(0)))
        first[name] = time.perf_counter() - t0
        log(f"[{name}] first call (compile + run) {first[name]:.2f} s")
    for r in range(args.repeats):
        for name, m in models.items():
            t0 = time.perf_counter()
            out = jax.block_until_ready(run(m, jax.random.key(1 + r)))
            times[name].append(time.perf_counter() - t0)
            log(f"[{name}] repeat {r + 1}/{args.repeats}: {times[name][-1]:.3f} s")
            if r == 0:
                # mean energy per spin over the last half of the kept draws, per chain
                e = np.asarray(m.energy(out[:, n_samples // 2 :]), np.float64) / (L * L)
                per_chain = e.mean(axis=1)
                energies[name] = {
                    "mean": float(per_chain.mean()),
                    "stderr": float(per_chain.std(ddof=1) / math.sqrt(C)),
                }
    exact_e = float(hn.exact.ising_lattice_energy(L, args.beta))
    results = {}
    updates = C * L * L * S
    for name in models:
        t = min(times[name])
        results[name] = {
            "time_s": t,
            "times_s": times[name],
            "first_call_s": first[name],
            "ms_per_sweep": 1e3 * t / S,
            "spin_updates_per_s": updates / t,
            "gathers_in_sweep": count_gathers(models[name], C),
            "energy_per_spin": {
                **energies[name],
                "exact_finite": exact_e,
                "z": (energies[name]["mean"] - exact_e) / energies[name]["stderr"],
            },
        }
    ratio = results["custom"]["time_s"] / results["hand"]["time_s"]
    out = {
        "benchmark": "custom_models",
        "environment": {
            "jax": jax.__version__,
            "flax": __import__("flax").__version__,
            "backend": jax.default_backend(),
            "device": str(jax.devices()[0]),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start_end": None,
        },
        "workload": {
            "L": L,
            "chains": C,
            "sweeps": S,
            "beta": args.beta,
            "repeats": args.repeats,
            "call": {"n_warmup": n_warmup, "n_samples": n_samples, "thin": thin},
            "timing": "min over interleaved repeats after one compile call, block_until_ready",
        },
        "build_custom_s": build_custom_s,
        "results": results,
        "ratios": {
            "custom_over_hand": ratio,
            "custom_gather_over_hand": results["custom_gather"]["time_s"]
            / results["hand"]["time_s"],
        },
        "target": {
            "custom_over_hand": f"<= {TARGET_RATIO_MAX}",
            "met": bool(ratio <= TARGET_RATIO_MAX),
        },
        "wall_s": time.perf_counter() - t_start,
    }
    out["environment"]["loadavg_start_end"] = list(os.getloadavg())
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
