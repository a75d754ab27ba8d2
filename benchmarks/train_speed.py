"""Training speed of hamon-nnx's Trainer, side by side with scikit-learn and bare matmuls.

    .venv/bin/python benchmarks/train_speed.py > train_speed.json
    .venv/bin/python benchmarks/train_speed.py --quick > train_speed.json   # smoke run, < 1 min

ONE JSON document goes to stdout, progress to stderr. Everything runs in one
process. hamon-nnx is driven as a user drives it:

    trainer = hn.Trainer(model, optax.adam(1e-3), negative=NEG,
                         log_likelihood="none", eval_every=0, progress=False)
    trainer.fit(data, epochs=1, batch_size=B)                   # compiles
    trainer.fit(data, epochs=trainer.epoch + E, batch_size=B)   # timed block

with the default ``steps_per_call`` (automatic: up to one epoch per compiled
call). The first ``fit`` (compilation plus one epoch) is reported as
``compile_s``. One warm epoch then sets E so that a timed block lasts about
``--block`` seconds (2 s; ``--quick`` 0.25 s), and ``--repeats`` blocks (5;
``--quick`` 3) are timed, each ended by ``jax.block_until_ready`` on the
model's state. steps/s = (``trainer.step`` after - before) / seconds; the
median and the min over the blocks are reported (ms per step from the
median), with the process CPU time per wall second of each block; the blocks of the
contenders of a workload are interleaved (one block of each in turn, per repeat) (about the
number of cores the block got; lower means it competed with other work).

Workloads:

(a) RBM 64x16, batch 32, on the binarized digits ``hn.data.digits().train``
    (1438 x 64, 44 steps an epoch), negative phases ``PCD(n_chains=128, k=1)``
    and ``CD(k=1)`` (the targets), and ``PCD(n_chains=32, k=1)``, which samples
    as many chains as scikit-learn's PCD does at batch 32. Reference: scikit-learn ``BernoulliRBM(n_components=16,
    batch_size=32, learning_rate=0.01, n_iter=N, random_state=0)`` on the same
    data as float64: a warm-up ``fit`` (n_iter=1) sets N for a block of about
    ``--block`` seconds, then ``fit`` is timed ``--repeats`` times; steps/s =
    N * ceil(1438 / 32) / seconds. Ratio = hamon steps/s / sklearn steps/s.
(b) RBM 784x500, batch 100, ``CD(1)`` and ``PCD(n_chains=100, k=1)``, on 6000
    binary vectors: the first 6000 Fashion-MNIST training images (pixels >=
    128) if the Debian files are at /usr/share/datasets/fashion-mnist, else
    random bits (``default_rng(0)``, p = 0.3, int8). 60 steps an epoch.
    References: (i) "matmuls": the step's five matrix products, float32,
    h = sigmoid(v W + c), v1 = sigmoid(h W' + b), h1 = sigmoid(v1 W + c),
    W += lr (v' h - v1' h1) / B, in one jitted ``lax.fori_loop`` over the
    epoch's batches (no dispatch, no sampling, no optimizer), timed like the
    Trainer; ratio = hamon ms/step / matmul ms/step. (ii) scikit-learn
    ``BernoulliRBM(n_components=500, batch_size=100, n_iter=1)``: a warm-up
    ``fit`` on 1000 rows, then ``fit`` on all 6000 rows (60 steps) timed
    ``--repeats`` times.
(c) No peer. A 16x16 periodic lattice ``IsingModel.lattice((16, 16),
    coupling=0.1)`` trained by ``PCD(64, 1)``, batch 64, on 1024 spin vectors
    drawn by ``hn.sample`` from the coupling-0.3 lattice (32 chains x 32
    draws after 200 sweeps); and an 8x8 ``PottsModel.lattice((8, 8), q=4,
    coupling=0.1)`` trained likewise on draws of the coupling-0.5 model.
    16 steps an epoch each.

Targets: (a) hamon/sklearn steps/s >= 5 for PCD-128 and for CD-1; (b) hamon
ms/step <= 1.3 x the matmuls' for CD-1 and for PCD-1 (PCD(100, 1)).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_stats import cpu_model  # noqa: E402

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
TARGET_RATIO_SKLEARN = 5.0  # (a) hamon steps/s over scikit-learn's, at least
TARGET_RATIO_MATMUL = 1.3  # (b) hamon ms/step over the bare matmuls', at most
LR = 1e-3


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--block", type=float, default=None, help="seconds per timed block (2)")
    p.add_argument("--repeats", type=int, default=None, help="timed blocks per workload (5)")
    p.add_argument("--quick", action="store_true", help="smoke run: 0.25 s blocks, 3 repeats")
    p.add_argument(
        "--workloads", default="a,b,c", help="subset of a,b,c (digits, 784x500, lattices)"
    )
    args = p.parse_args(argv)
    if args.block is None:
        args.block = 0.25 if args.quick else 2.0
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if not args.block > 0 or args.repeats < 1:
        p.error("--block must be > 0 and --repeats >= 1")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if set(args.workloads) - {"a", "b", "c"}:
        p.error("--workloads: choose from a, b, c")
    return args


# -- environment ---------------------------------------------------------------
def environment() -> dict:
    import flax
    import jax
    import optax
    import sklearn

    import hamon_nnx as hn

    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "scikit-learn": sklearn.__version__,
        "hamon_nnx": hn.__version__,
        "backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
    }


# -- timing ----------------------------------------------------------------------
def r4(x):
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def timed(fn):
    """(wall seconds, CPU seconds per wall second) of one call of fn()."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    return dt, (time.process_time() - c0) / dt


def summary(steps, seconds, shares) -> dict:
    """Median and min over the blocks of steps/s; ms/step from the median."""
    rates = [s / t for s, t in zip(steps, seconds, strict=True)]
    med = float(np.median(rates))
    return {
        "steps_per_s_median": r4(med),
        "steps_per_s_min": r4(min(rates)),
        "steps_per_s_max": r4(max(rates)),
        "ms_per_step": r4(1e3 / med),
        "steps_per_block": steps,
        "block_seconds": [r4(t) for t in seconds],
        "cpu_per_wall": [r4(s) for s in shares],
    }


def measure(contenders: dict, args) -> dict:
    """Interleaved timing: each repeat times one block of every contender in turn.

    A contender is a function `prepare()` that compiles and warms up, and
    returns (info dict, block) where `block()` runs one timed block and
    returns its step count. Interleaving keeps a slow moment of the machine
    from landing on one contender only, so the ratios are fair.
    """
    blocks, out, runs = {}, {}, {}
    for name, prepare in contenders.items():
        out[name], blocks[name] = prepare()
        runs[name] = ([], [], [])
    for _ in range(args.repeats):
        for name, block in blocks.items():
            holder = {}
            dt, share = timed(lambda block=block, holder=holder: holder.setdefault("n", block()))
            for values, value in zip(runs[name], (holder["n"], dt, share), strict=True):
                values.append(value)
    for name in contenders:
        out[name] |= summary(*runs[name])
        log(f"  {name}: {out[name]['steps_per_s_median']} steps/s ({out[name]['ms_per_step']} ms)")
    return out


def trainer_contender(make_model, negative, data, batch, args):
    """hn.Trainer.fit as a user calls it: compile call, warm epoch, then blocks."""

    def prepare():
        import jax
        import optax
        from flax import nnx

        import hamon_nnx as hn

        model = make_model()
        trainer = hn.Trainer(
            model,
            optax.adam(LR),
            negative=negative,
            log_likelihood="none",
            eval_every=0,
            progress=False,
        )

        def fit(epochs):
            s0 = trainer.step
            trainer.fit(data, epochs=trainer.epoch + epochs, batch_size=batch)
            jax.block_until_ready(nnx.state(model))
            return trainer.step - s0

        compile_s, _ = timed(lambda: fit(1))
        epoch_s, _ = timed(lambda: fit(1))
        epochs = max(1, math.ceil(args.block / epoch_s))
        info = {"negative": repr(negative), "batch_size": batch, "compile_s": r4(compile_s)}
        info |= {"epochs_per_block": epochs, "warm_epoch_s": r4(epoch_s)}
        log(f"  {info['negative']}: compile {compile_s:.2f} s")
        return info, lambda: fit(epochs)

    return prepare


def sklearn_contender(X, n_components, batch, args, n_iter=None):
    """BernoulliRBM.fit; n_iter None: chosen so that a fit lasts about --block s."""

    def prepare():
        from sklearn.neural_network import BernoulliRBM

        def make(n):
            return BernoulliRBM(
                n_components=n_components,
                batch_size=batch,
                learning_rate=0.01,
                n_iter=n,
                random_state=0,
            )

        per_epoch = math.ceil(len(X) / batch)
        warm = X if n_iter is None else X[: min(len(X), 10 * batch)]
        warm_s, _ = timed(lambda: make(1).fit(warm))
        iters = n_iter or max(1, math.ceil(args.block / warm_s))
        info = {
            "call": f"BernoulliRBM(n_components={n_components}, batch_size={batch}, "
            f"learning_rate=0.01, n_iter={iters}, random_state=0).fit(X)",
            "rows": len(X),
            "warmup_fit_rows": len(warm),
            "warmup_fit_s": r4(warm_s),
        }

        def block():
            make(iters).fit(X)
            return iters * per_epoch

        return info, block

    return prepare


# -- (a) RBM 64x16 on digits -----------------------------------------------------
def workload_a(args) -> dict:
    from flax import nnx

    import hamon_nnx as hn

    data = hn.data.digits().train
    log(f"(a) RBM 64x16 on digits {data.shape}, batch 32")
    negatives = {
        "pcd128": hn.PCD(n_chains=128, k=1),
        "cd1": hn.CD(k=1),
        "pcd32": hn.PCD(n_chains=32, k=1),  # scikit-learn's own chain count
    }
    contenders = {"sklearn": sklearn_contender(data.astype(np.float64), 16, 32, args)}
    for name, negative in negatives.items():
        make = lambda: hn.RBM(64, 16, rngs=nnx.Rngs(0))  # noqa: E731
        contenders[name] = trainer_contender(make, negative, data, 32, args)
    runs = measure(contenders, args)
    sk = runs.pop("sklearn")
    for name, run in runs.items():
        run["ratio_over_sklearn"] = r4(run["steps_per_s_median"] / sk["steps_per_s_median"])
        log(f"  {name}: hamon / sklearn = {run['ratio_over_sklearn']}")
    return {"data": {"name": "digits", "shape": list(data.shape)}, "sklearn": sk, "hamon": runs}


# -- (b) RBM 784x500 -------------------------------------------------------------
def read_idx_images(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, np.uint8, count=n * rows * cols, offset=16).reshape(n, -1)


def big_data(n=6000) -> tuple[np.ndarray, str]:
    """The first n Fashion-MNIST training images binarized, else random bits."""
    for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"):
        path = FASHION_DIR / name
        if path.exists():
            try:
                x = read_idx_images(path)[:n]
                return (x >= 128).astype(np.int8), f"fashion-mnist {path} (pixels >= 128)"
            except (OSError, ValueError) as err:
                log(f"  could not read {path}: {err}; using random bits")
    x = (np.random.default_rng(0).random((n, 784)) < 0.3).astype(np.int8)
    return x, "random bits, default_rng(0), p=0.3"


def matmul_epoch(data, W, b, c, batch):
    """One epoch of the step's five matmuls in a jitted fori_loop; returns the final W."""
    import jax

    n_batches = data.shape[0] // batch

    def body(i, W):
        v = jax.lax.dynamic_slice_in_dim(data, i * batch, batch)
        h = jax.nn.sigmoid(v @ W + c)
        v1 = jax.nn.sigmoid(h @ W.T + b)
        h1 = jax.nn.sigmoid(v1 @ W + c)
        return W + LR * (v.T @ h - v1.T @ h1) / batch

    return jax.lax.fori_loop(0, n_batches, body, W)


def matmul_contender(data, batch, args):
    """The step's five matrix products alone (see `matmul_epoch`), timed by epochs."""

    def prepare():
        import functools

        import jax
        import jax.numpy as jnp

        x = jnp.asarray(data, jnp.float32)
        nv, nh = data.shape[1], 500
        W = 0.01 * jax.random.normal(jax.random.key(0), (nv, nh), jnp.float32)
        b, c = jnp.zeros(nv, jnp.float32), jnp.zeros(nh, jnp.float32)
        epoch = jax.jit(functools.partial(matmul_epoch, batch=batch))
        state = {"W": W}
        per_epoch = len(data) // batch

        def run(epochs):
            for _ in range(epochs):
                state["W"] = epoch(x, state["W"], b, c)
            jax.block_until_ready(state["W"])
            return epochs * per_epoch

        compile_s, _ = timed(lambda: run(1))
        epoch_s, _ = timed(lambda: run(1))
        epochs = max(1, math.ceil(args.block / epoch_s))
        info = {
            "what": "jitted lax.fori_loop over an epoch's batches of h=sigmoid(vW+c), "
            "v1=sigmoid(hW'+b), h1=sigmoid(v1W+c), W+=lr(v'h-v1'h1)/B, float32",
            "compile_s": r4(compile_s),
            "epochs_per_block": epochs,
        }
        return info, lambda: run(epochs)

    return prepare


def workload_b(args) -> dict:
    from flax import nnx

    import hamon_nnx as hn

    data, source = big_data()
    log(f"(b) RBM 784x500 on {source} {data.shape}, batch 100")
    contenders = {"matmuls": matmul_contender(data, 100, args)}
    for name, negative in (("cd1", hn.CD(k=1)), ("pcd1", hn.PCD(n_chains=100, k=1))):
        make = lambda: hn.RBM(784, 500, rngs=nnx.Rngs(0))  # noqa: E731
        contenders[name] = trainer_contender(make, negative, data, 100, args)
    if importlib.util.find_spec("sklearn") is not None:  # absent on a bare GPU machine
        X = data.astype(np.float64)
        contenders["sklearn"] = sklearn_contender(X, 500, 100, args, n_iter=1)
    runs = measure(contenders, args)
    mm, sk = runs.pop("matmuls"), runs.pop("sklearn", None)
    for name, run in runs.items():
        run["ratio_over_matmuls"] = r4(run["ms_per_step"] / mm["ms_per_step"])
        if sk is not None:
            run["ratio_sklearn_ms_over_hamon_ms"] = r4(sk["ms_per_step"] / run["ms_per_step"])
        log(f"  {name}: hamon / matmuls = {run['ratio_over_matmuls']}")
    return {
        "data": {"source": source, "shape": list(data.shape)},
        "matmuls": mm,
        "sklearn": sk,
        "hamon": runs,
    }


# -- (c) lattices ----------------------------------------------------------------
def lattice_data(model, n_variables) -> np.ndarray:
    import jax

    import hamon_nnx as hn

    draws = hn.sample(model, jax.random.key(0), n_samples=32, n_chains=32, n_warmup=200)
    return np.asarray(draws).reshape(-1, n_variables)


def workload_c(args) -> dict:
    import hamon_nnx as hn

    out = {}
    cases = (
        (
            "ising_16x16",
            lambda j: hn.IsingModel.lattice((16, 16), coupling=j, periodic=True),
            (0.3, 0.1),
            256,
        ),
        ("potts_8x8_q4", lambda j: hn.PottsModel.lattice((8, 8), q=4, coupling=j), (0.5, 0.1), 64),
    )
    for name, make, (j_data, j_init), n in cases:
        data = lattice_data(make(j_data), n)
        log(f"(c) {name}: data {data.shape} from coupling {j_data}, model coupling {j_init}")
        contender = trainer_contender(
            lambda make=make, j=j_init: make(j), hn.PCD(n_chains=64, k=1), data, 64, args
        )
        run = measure({name: contender}, args)[name]
        out[name] = {"data_coupling": j_data, "model_coupling": j_init, **run}
    return out


# -- targets and main ------------------------------------------------------------
def targets(results) -> dict:
    checks = (  # workload, runs, ratio, at least (True) or at most, bound
        ("a", ("pcd128", "cd1"), "ratio_over_sklearn", True, TARGET_RATIO_SKLEARN),
        ("b", ("cd1", "pcd1"), "ratio_over_matmuls", False, TARGET_RATIO_MATMUL),
    )
    out = {}
    for workload, names, ratio, at_least, bound in checks:
        if workload not in results:
            continue
        for name in names:
            value = results[workload]["hamon"][name][ratio]
            met = value is not None and (value >= bound if at_least else value <= bound)
            out[f"{workload}_{name}_{ratio}"] = {
                "value": value,
                "target": f"{'>=' if at_least else '<='} {bound:g}",
                "met": bool(met),
            }
    return out


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)
    env = environment()
    log(f"{env['cpu_model']}, {env['cpu_count']} CPUs, jax {env['jax']} on {env['backend']}")
    runners = {"a": workload_a, "b": workload_b, "c": workload_c}
    results = {w: runners[w](args) for w in args.workloads}
    env["loadavg_end"] = list(os.getloadavg())
    doc = {
        "benchmark": "train_speed",
        "description": (
            "training steps per second of hn.Trainer (default steps_per_call) against "
            "scikit-learn BernoulliRBM and a jitted loop of the step's matmuls"
        ),
        "config": {
            "quick": args.quick,
            "block_s": args.block,
            "repeats": args.repeats,
            "optimizer": f"adam({LR})",
            "workloads": args.workloads,
            "timing": "median (and min) over repeats of timed blocks after a compile call "
            "and one warm epoch; jax.block_until_ready at the end of each block",
        },
        "environment": env,
        "targets": targets(results),
        "results": {
            {"a": "a_rbm64x16_digits", "b": "b_rbm784x500", "c": "c_lattices"}[w]: r
            for w, r in results.items()
        },
        "total_seconds": r4(time.perf_counter() - t_start),
    }
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
