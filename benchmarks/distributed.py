"""What several processes cost: NRPT rounds and training steps over 1 or 2 processes.

    .venv/bin/python benchmarks/distributed.py --out benchmarks/results/distributed-cpu-2core.json

Runs the same work three ways, each in fresh processes:

* `1x1`: one process, one CPU device (the reference);
* `1x2`: one process, two CPU devices (chains split, collectives in memory);
* `2x1`: two processes of one CPU device each, `python -m hamon_nnx.launch
  -n 2` (chains split, collectives over Gloo on 127.0.0.1).

Work: NRPT on a 2D Ising lattice (`--side`, `--betas` ladder slots) for
`--rounds` rounds after a warm-up, and PCD-1 training of an RBM 784 x 100
(`--steps` steps, batch and chains 512). Each layout reports seconds per
round / step (best of `--repeats`), and the collectives XLA put in the
compiled NRPT and training programs (kind, count, bytes of their results:
what each process sends and receives per round or step, up to the
algorithm's constant). The same draws come out of every layout (checked).

One JSON document to stdout and `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_stats import cpu_model, emit  # noqa: E402

COLLECTIVE = re.compile(
    r"=\s*(?P<shape>\(?[a-z0-9]+\[[0-9,]*\][^ ]*)\s+(?P<op>all-gather|all-reduce|"
    r"collective-permute|all-to-all|reduce-scatter)(?:-start)?\("
)
BYTES = {"f32": 4, "s32": 4, "u32": 4, "s8": 1, "u8": 1, "pred": 1, "f64": 8, "s64": 8, "u64": 8}


def collectives(hlo: str) -> dict:
    """{op: {"count", "bytes"}} of the collectives in a compiled program's text."""
    out: dict = {}
    for m in COLLECTIVE.finditer(hlo):
        size = 0
        for dtype, dims in re.findall(r"([a-z0-9]+)\[([0-9,]*)\]", m["shape"]):
            n = 1
            for d in filter(None, dims.split(",")):
                n *= int(d)
            size += n * BYTES.get(dtype, 4)
        entry = out.setdefault(m["op"], {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += size
    return out


def spy(module, name: str, box: dict):
    """Record the first call's arguments of module.name (a jitted function)."""
    original = getattr(module, name)

    def recorded(*args, **kwargs):
        box.setdefault("call", (args, kwargs))
        return original(*args, **kwargs)

    setattr(module, name, recorded)
    return original


def worker(args) -> dict:
    import jax

    from hamon_nnx.core import distributed

    if distributed.launched():
        distributed.initialize()
    else:
        jax.config.update("jax_num_cpu_devices", args.devices)
    import numpy as np
    import optax
    from flax import nnx

    import hamon_nnx as hn
    from hamon_nnx import parallel_tempering as pt
    from hamon_nnx.training import trainer as trainer_lib

    mesh = hn.chain_mesh()
    result = {"processes": jax.process_count(), "devices": len(jax.devices())}

    model = hn.IsingModel.lattice((args.side, args.side), coupling=0.44, periodic=True)
    box: dict = {}
    original = spy(pt, "_nrpt_program", box)
    warm = hn.nrpt(model, jax.random.key(0), n_rounds=args.rounds, n_betas=args.betas, device=mesh)
    a, k = box["call"]
    result["nrpt_collectives"] = collectives(original.lower(*a, **k).compile().as_text())
    times = []
    for r in range(args.repeats):
        start = time.perf_counter()
        run = hn.nrpt(model, jax.random.key(1 + r), n_rounds=args.rounds, state=warm.state,
                      device=mesh)  # fmt: skip
        jax.block_until_ready(run.state.x)
        times.append(time.perf_counter() - start)
    result["nrpt_seconds_per_round"] = min(times) / args.rounds
    result["nrpt_log_z"] = float(run.log_z.estimate)
    result["nrpt_draws_sum"] = int(np.asarray(distributed.gather(run.samples), np.int64).sum())

    data = np.random.default_rng(0).integers(0, 2, size=(512 * args.steps, 784)).astype(np.int8)
    rbm = hn.RBM(784, 100, rngs=nnx.Rngs(0))
    box = {}
    original = spy(trainer_lib, "_train_chunk", box)
    trainer = hn.Trainer(rbm, optax.adam(1e-3), negative=hn.PCD(n_chains=512, k=1),
                         progress=False, eval_every=0, device=mesh)  # fmt: skip
    trainer.fit(data, epochs=1, batch_size=512)
    a, k = box["call"]
    result["train_collectives"] = collectives(original.lower(*a, **k).compile().as_text())
    times = []
    for r in range(args.repeats):
        start = time.perf_counter()
        trainer.fit(data, epochs=2 + r, batch_size=512)
        jax.block_until_ready(nnx.state(rbm))
        times.append(time.perf_counter() - start)
    result["train_seconds_per_step"] = min(times) / args.steps
    w = distributed.gather(nnx.state(rbm, nnx.Param))
    result["train_params_sum"] = float(
        sum(np.asarray(x, np.float64).sum() for x in jax.tree.leaves(w))
    )
    return result


def run_layout(args, processes: int, devices: int) -> dict:
    me = [sys.executable, __file__, "--worker", "--devices", str(devices), *args.passthrough]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAMON_NNX_", "XLA_"))}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    if processes > 1:
        me = [sys.executable, "-m", "hamon_nnx.launch", "-n", str(processes), "--local-devices",
              str(devices), "--no-prefix", "--", *me]  # fmt: skip
    proc = subprocess.run(me, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    docs = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    return docs[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--side", type=int, default=32)
    p.add_argument("--betas", type=int, default=16)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    args.passthrough = [f"--{k}={getattr(args, k)}" for k in ("side", "betas", "rounds", "steps",
                                                               "repeats")]  # fmt: skip
    if args.worker:
        result = worker(args)
        from hamon_nnx.core import distributed

        if distributed.is_writer():
            print(json.dumps(result), flush=True)
        return 0
    layouts = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}
    doc = {
        "benchmark": "distributed",
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "settings": {k: getattr(args, k) for k in ("side", "betas", "rounds", "steps", "repeats")},
        "layouts": {},
    }
    for name, (processes, devices) in layouts.items():
        print(f"{name} ...", file=sys.stderr, flush=True)
        doc["layouts"][name] = run_layout(args, processes, devices)
    ref = doc["layouts"]["1x1"]
    for r in doc["layouts"].values():
        r["same_draws_as_1x1"] = (r["nrpt_draws_sum"], r["nrpt_log_z"], r["train_params_sum"]) == (
            ref["nrpt_draws_sum"], ref["nrpt_log_z"], ref["train_params_sum"])  # fmt: skip
        r["nrpt_round_vs_1x1"] = r["nrpt_seconds_per_round"] / ref["nrpt_seconds_per_round"]
        r["train_step_vs_1x1"] = r["train_seconds_per_step"] / ref["train_seconds_per_step"]
    emit(doc, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
