"""hamon-nnx against rbms 0.6.0 (PyTorch): RBMs on binarized Fashion-MNIST, test LL vs wall time.

    .venv/bin/python benchmarks/train_vs_rbms.py --budget 300 --hidden 100,500 --threads 2 \
        --out benchmarks/results/train_vs_rbms-cpu-2core.json \
        --plot benchmarks/results/train_vs_rbms-cpu-2core.png
    .venv/bin/python benchmarks/train_vs_rbms.py --quick     # smoke run: 784x20, 10 s, AIS 16x100

ONE JSON document goes to stdout (and to ``--out FILE``), progress to
stderr, and a plot (test LL against seconds, one panel per model size, one
line per run) to ``--plot FILE``.

Data. ``hn.data.fashion_mnist()`` (pixel / 255 >= 0.5; the first 50000
official training images train, the 10000 official test images test; the
validation images are not used), saved once as int8 ``train.npy`` and
``test.npy`` under ``--workdir``; both tools train on these very arrays and
the JSON records their SHA-256.

Runs, each in its own subprocess, one after the other, for the same
wall-clock budget (``--budget``), for each model size (``--hidden``) and
thread count (``--threads``):

* ``rbms-default``: rbms 0.6.0 as its CLI ``rbms train`` trains a
  Bernoulli-Bernoulli RBM with its defaults (PCD with gibbs_steps=100, 2000
  persistent chains, batch 2000, centered gradient, SGD at 0.01), through
  rbms's own training loop; see benchmarks/rbms_side.py, which runs under
  rbms's venv (``--rbms-python``).
* ``rbms-pcd10``: the same with gibbs_steps=10.
* ``hamon-default``: ``rbm = hn.RBM(784, H, rngs=nnx.Rngs(seed))``,
  ``rbm.init_visible_bias(train)``, ``hn.Trainer(rbm, optax.adam(1e-3),
  negative=hn.PCD(), seed=seed, progress=False)``, ``trainer.fit(train,
  epochs=..., batch_size=100)`` (PCD: 100 chains, k = 1), the Trainer's own
  evaluation on its default schedule included in the clock (the online log Z
  of trajectory AIS and the reconstruction error on the training data);
  ``--hamon-log-likelihood none`` turns evaluation off (``eval_every=0``).
* ``hamon-best``: the same call with the recipe given by the ``--best-*``
  options (negative phase, chains, k, optimizer, learning rate, batch,
  centered gradient).

Threads. ``--threads 1``: hamon-nnx gets ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``, rbms ``torch.set_num_threads(1)`` (and
OMP/MKL_NUM_THREADS=1); both run under ``taskset -c 0``. ``--threads`` equal
to the machine's cores leaves both libraries free (no XLA flags, no taskset;
torch gets that many threads). Between the two, taskset pins to the first T
cores.

Clock. Each subprocess starts its clock once the training array is in
memory; model and chain initialisation, moving the data to the library's
tensors or device, and compilation (XLA; torch.compile) all count; imports do
not. Snapshots of (W, visible bias, hidden bias) are taken at the fractions
``--fractions`` of the budget (at the first update or compiled chunk that
ends at or after each time; the exact seconds and update count are kept),
and training stops at the first one at or after the budget. hamon-nnx runs
its compiled chunks through a step callback that sizes them (about
budget / 200 seconds each, and ending just past the next snapshot time) by
``trainer.steps_per_call``; rbms checks the clock after every update.

Scoring, the same for every snapshot of every run: the snapshot becomes
``hn.RBM.from_params(W, visible_bias, hidden_bias)``, and the mean test
log-likelihood is ``hn.training.log_likelihood(model, test, log_z)`` =
mean(-F(v_test)) - log Z, with log Z from

* ``ais`` (default): ``hn.ais(model, key, n_runs=--ais-runs, n_betas=--ais-betas,
  reference=train)``, annealing the hidden layer with the visible one summed
  out, from the product reference at the training data's mean hidden
  activations (the base rate); AIS's log Z is a stochastic lower bound, so
  the LL is biased UP, more so when its ESS is small;
* ``nrpt``: tuned NRPT, ``hn.autotune(model, key, max_rounds=--nrpt-max-rounds)``,
  ``plan.sample(key', --nrpt-samples)``, ``plan.log_z()`` (stepping stone);
* ``both``: both, AIS first (the curve's test_ll).

One key for every model. The standard error is the one of log Z (the test
average is exact). A snapshot small enough to sum exactly (hn.exact) also
gets its exact LL, a check of the estimator.

Before training, the parameter mapping is checked on a tiny random RBM:
rbms's E(v, h) and F(v) (``BBRBM.compute_energy``,
``compute_energy_visibles``) and its exact log Z against hn.RBM's
``energy``, ``free_energy`` and ``hn.exact.log_partition`` with W =
weight_matrix, visible_bias = vbias, hidden_bias = hbias.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_stats import machine  # noqa: E402

RUNS = ("rbms-default", "rbms-pcd10", "hamon-default", "hamon-best")
LABELS = {
    "rbms-default": "rbms defaults (PCD-100, 2000 chains, batch 2000, centered SGD 0.01)",
    "rbms-pcd10": "rbms PCD-10 (else defaults)",
    "hamon-default": "hamon-nnx defaults (PCD-1, 100 chains, adam 1e-3, batch 100)",
    "hamon-best": "hamon-nnx best recipe",
}
RBMS_DEFAULTS = {"gibbs_steps": 100, "chains": 2000, "batch": 2000, "lr": 0.01, "centered": True}
HAMON_DEFAULTS = {
    "negative": "pcd",
    "chains": 100,
    "k": 1,
    "optimizer": "adam",
    "lr": 1e-3,
    "batch": 100,
    "centered": False,
    "init_scale": 0.01,
}
WORKER_SLACK_S = 600.0  # a training subprocess gets budget * 2 + this before it is killed


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def r4(x):
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def csv_ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per run (300)")
    p.add_argument("--hidden", default="100,500", help="hidden layer sizes (100,500)")
    p.add_argument("--threads", default=str(os.cpu_count()), help="thread counts (all cores)")
    p.add_argument("--fractions", default="0.25,0.5,1", help="snapshot times / budget")
    p.add_argument("--runs", default=",".join(RUNS), help=f"which runs ({','.join(RUNS)})")
    p.add_argument("--workdir", default="/work/bench-data/train_vs_rbms",
                   help="data arrays and snapshots")  # fmt: skip
    p.add_argument("--scorer", choices=("ais", "nrpt", "both"), default="ais")
    p.add_argument("--ais-runs", type=int, default=64, help="AIS runs per snapshot (64)")
    p.add_argument("--ais-betas", type=int, default=1000, help="AIS grid points (1000)")
    p.add_argument("--nrpt-max-rounds", type=int, default=512, help="hn.autotune max_rounds")
    p.add_argument("--nrpt-samples", type=int, default=1000, help="NRPT rounds after tuning")
    p.add_argument("--seed", type=int, default=0, help="models, data order, scoring key")
    p.add_argument("--rbms-python", default="/work/rbms-venv/bin/python", help="rbms's venv")
    p.add_argument("--hamon-log-likelihood", choices=("none", "auto"), default="auto",
                   help="Trainer(log_likelihood=...) of the hamon runs")  # fmt: skip
    g = p.add_argument_group("hamon-best recipe")
    g.add_argument("--best-negative", choices=("pcd", "cd", "nrpt"), default="pcd")
    g.add_argument("--best-chains", type=int, default=1000,
                   help="PCD chains (nrpt: ladders) (1000)")  # fmt: skip
    g.add_argument("--best-k", type=int, default=1, help="sweeps per step (nrpt: n_explore)")
    g.add_argument("--best-nrpt-betas", type=int, default=8, help="NRPTNegative n_betas")
    g.add_argument("--best-nrpt-rounds", type=int, default=16, help="NRPTNegative n_rounds")
    g.add_argument("--best-optimizer", choices=("adam", "sgd"), default="adam")
    g.add_argument("--best-lr", type=float, default=1e-3)
    g.add_argument("--best-batch", type=int, default=1000)
    g.add_argument("--best-centered", action=argparse.BooleanOptionalAction, default=True)
    g.add_argument("--best-init-scale", type=float, default=0.01)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 784x20, 10 s, AIS 16 runs x 100 betas")  # fmt: skip
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.add_argument("--plot", default=None, help="write the plot (PNG) to this file")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # hamon-nnx subprocess
    args = p.parse_args(argv)
    if args.worker:
        return args
    if args.quick:
        args.budget, args.hidden = 10.0, "20"
        args.ais_runs, args.ais_betas = 16, 100
        args.nrpt_max_rounds, args.nrpt_samples = 64, 200
    try:
        args.hidden = csv_ints(args.hidden)
        args.threads = csv_ints(args.threads)
        args.fractions = sorted({float(f) for f in args.fractions.split(",")})
    except ValueError as err:
        p.error(f"--hidden, --threads and --fractions are comma-separated numbers: {err}")
    args.runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if unknown := [r for r in args.runs if r not in RUNS]:
        p.error(f"unknown runs {unknown}; choose from {','.join(RUNS)}")
    if not args.budget > 0:
        p.error("--budget must be > 0")
    if not args.hidden or min(args.hidden) < 1:
        p.error("--hidden must list positive sizes")
    cores = os.cpu_count() or 1
    if not args.threads or min(args.threads) < 1 or max(args.threads) > cores:
        p.error(f"--threads must be between 1 and {cores}")
    if not args.fractions or args.fractions[0] <= 0 or args.fractions[-1] != 1.0:
        p.error("--fractions must be positive and end with 1")
    if args.ais_runs < 2 or args.ais_betas < 2:
        p.error("--ais-runs and --ais-betas must be >= 2")
    return args


# -- environment ---------------------------------------------------------------------
def hamon_versions() -> dict:
    import flax
    import jax
    import optax

    import hamon_nnx as hn

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(getattr(jax, "lib", None), "__version__", None),
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "hamon_nnx": hn.__version__,
        "backend": jax.default_backend(),
    }


def rbms_command(args, *rest: str) -> list[str]:
    return [args.rbms_python, str(HERE / "rbms_side.py"), *rest]


def run_json(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> dict:
    """Run a subprocess that prints one JSON document as its last stdout line."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env,
                          timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited with {proc.returncode}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


# -- data ----------------------------------------------------------------------------
def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def prepare_data(workdir: Path) -> dict:
    """train.npy and test.npy (int8) under workdir, written once from hn.data.fashion_mnist()."""
    import hamon_nnx as hn

    workdir.mkdir(parents=True, exist_ok=True)
    paths = {"train": workdir / "train.npy", "test": workdir / "test.npy"}
    if not all(p.exists() for p in paths.values()):
        ds = hn.data.fashion_mnist()
        for name, p in paths.items():
            tmp = p.with_suffix(".tmp.npy")
            np.save(tmp, getattr(ds, name))
            tmp.replace(p)
        description = ds.description
    else:
        description = "read back from the .npy files of an earlier run"
    train, test = np.load(paths["train"]), np.load(paths["test"])
    return {
        "name": "fashion_mnist",
        "threshold": 0.5,
        "description": description,
        "train_path": str(paths["train"]),
        "test_path": str(paths["test"]),
        "train_shape": list(train.shape),
        "test_shape": list(test.shape),
        "train_sha256": sha256(train),
        "test_sha256": sha256(test),
    }


# -- the parameter mapping -----------------------------------------------------------
def check_mapping(args, workdir: Path) -> dict:
    """rbms's E(v, h), F(v), log Z against hn.RBM's on a tiny random RBM, number for number."""
    import jax.numpy as jnp

    import hamon_nnx as hn

    nv, nh, n = 12, 5, 64
    rng = np.random.default_rng(args.seed)
    params = {
        "W": rng.normal(0.0, 1.0, (nv, nh)).astype(np.float32),
        "visible_bias": rng.normal(0.0, 1.0, nv).astype(np.float32),
        "hidden_bias": rng.normal(0.0, 1.0, nh).astype(np.float32),
    }
    v = rng.integers(0, 2, (n, nv)).astype(np.int8)
    h = rng.integers(0, 2, (n, nh)).astype(np.int8)
    folder = workdir / "mapping"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "params.npz", **params)
    np.savez(folder / "configs.npz", v=v, h=h)
    run_json(rbms_command(args, "energies", "--params", str(folder / "params.npz"),
                          "--configs", str(folder / "configs.npz"),
                          "--out", str(folder / "rbms.npz")))  # fmt: skip
    theirs = np.load(folder / "rbms.npz")
    model = hn.RBM.from_params(params["W"], params["visible_bias"], params["hidden_bias"])
    energy = np.asarray(model.energy(jnp.concatenate([v, h], axis=1)), np.float64)
    free_energy = np.asarray(model.free_energy(v), np.float64)
    log_z = float(hn.exact.log_partition(model))
    diffs = {
        "energy_max_abs_diff": float(np.max(np.abs(energy - theirs["energy"]))),
        "free_energy_max_abs_diff": float(np.max(np.abs(free_energy - theirs["free_energy"]))),
        "log_z_abs_diff": abs(log_z - float(theirs["log_z"])),
    }
    # hamon-nnx computes E and F in float32 from float32 parameters, rbms here in float64:
    # rounding only, no offset (an offset in F would show as a log Z offset as well)
    scale = max(1.0, float(np.max(np.abs(energy))), abs(log_z))
    ok = max(diffs.values()) <= 1e-5 * scale
    return {
        "mapping": "hn.RBM.from_params(W=weight_matrix, visible_bias=vbias, hidden_bias=hbias); "
        "both E(v, h) = -v'Wh - b'v - c'h, v, h in {0, 1}, W (n_visible, n_hidden)",
        "tiny_rbm": f"{nv}x{nh}, N(0, 1) parameters, {n} random (v, h)",
        "hamon_log_z": log_z,
        "rbms_log_z": float(theirs["log_z"]),
        **diffs,
        "tolerance": 1e-5 * scale,
        "equal": bool(ok),
    }


# -- training subprocesses -----------------------------------------------------------
def pinned(cmd: list[str], threads: int, xla: bool) -> tuple[list[str], dict]:
    """The command and environment that give a run `threads` cores."""
    env = dict(os.environ)
    env["TQDM_DISABLE"] = "1"  # rbms's progress bar, one line per update otherwise
    cores = os.cpu_count() or 1
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    if xla and threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
    if threads < cores:
        cmd = ["taskset", "-c", ",".join(str(c) for c in range(threads)), *cmd]
    return cmd, env


def run_rbms(args, name: str, n_hidden: int, threads: int, out_dir: Path, train_path) -> dict:
    steps = 10 if name == "rbms-pcd10" else RBMS_DEFAULTS["gibbs_steps"]
    cmd = rbms_command(
        args, "train", "--train", str(train_path), "--n-hidden", str(n_hidden),
        "--gibbs-steps", str(steps), "--chains", str(RBMS_DEFAULTS["chains"]),
        "--batch", str(RBMS_DEFAULTS["batch"]), "--lr", str(RBMS_DEFAULTS["lr"]),
        "--seed", str(args.seed), "--threads", str(threads), "--budget", str(args.budget),
        "--fractions", ",".join(str(f) for f in args.fractions), "--out-dir", str(out_dir),
    )  # fmt: skip
    cmd, env = pinned(cmd, threads, xla=False)
    return run_json(cmd, env=env, timeout=2 * args.budget + WORKER_SLACK_S)


def hamon_recipe(args, name: str) -> dict:
    if name == "hamon-default":
        return dict(HAMON_DEFAULTS)
    return {
        "negative": args.best_negative,
        "chains": args.best_chains,
        "k": args.best_k,
        "nrpt_betas": args.best_nrpt_betas,
        "nrpt_rounds": args.best_nrpt_rounds,
        "optimizer": args.best_optimizer,
        "lr": args.best_lr,
        "batch": args.best_batch,
        "centered": args.best_centered,
        "init_scale": args.best_init_scale,
    }


def run_hamon(args, name: str, n_hidden: int, threads: int, out_dir: Path, train_path) -> dict:
    spec = {
        "name": name,
        "train": str(train_path),
        "n_hidden": n_hidden,
        "threads": threads,
        "budget": args.budget,
        "fractions": args.fractions,
        "seed": args.seed,
        "log_likelihood": args.hamon_log_likelihood,
        "recipe": hamon_recipe(args, name),
        "out_dir": str(out_dir),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    spec_path = out_dir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    cmd, env = pinned([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)],
                      threads, xla=True)  # fmt: skip
    return run_json(cmd, env=env, timeout=2 * args.budget + WORKER_SLACK_S)


def hamon_worker(spec_path: str) -> dict:
    """One hamon-nnx training run (in its own process, threads set by the parent)."""
    import jax
    import optax
    from flax import nnx

    import hamon_nnx as hn

    spec = json.loads(Path(spec_path).read_text())
    recipe, budget = spec["recipe"], float(spec["budget"])
    fractions = spec["fractions"]
    targets = [f * budget for f in fractions]
    out_dir = Path(spec["out_dir"])
    train = np.load(spec["train"])
    negative = {
        "pcd": lambda: hn.PCD(n_chains=recipe["chains"], k=recipe["k"]),
        "cd": lambda: hn.CD(k=recipe["k"]),
        "nrpt": lambda: hn.NRPTNegative(n_betas=recipe["nrpt_betas"],
                                        n_rounds=recipe["nrpt_rounds"],
                                        n_explore=recipe["k"], n_ladders=recipe["chains"]),
    }[recipe["negative"]]()  # fmt: skip
    tx = {"adam": optax.adam, "sgd": optax.sgd}[recipe["optimizer"]](recipe["lr"])
    chunk_s = min(max(budget / 200, 0.02), 0.5)  # compiled chunks of about this many seconds
    snaps: list[dict] = []
    state = {"next": 0, "last_t": None, "last_step": 0, "per_step": None}

    class BudgetSpent(Exception):
        pass

    def on_chunk(trainer, step: int, loss: float) -> None:
        """After each compiled chunk (the loss is on the host, so it has finished)."""
        now = time.perf_counter() - start
        state.setdefault("first_update_seconds", now)
        if state["last_t"] is not None and step > state["last_step"]:  # not the compile chunk
            state["per_step"] = (now - state["last_t"]) / (step - state["last_step"])
        state["last_t"], state["last_step"] = now, step
        passed = []
        while state["next"] < len(targets) and now >= targets[state["next"]]:
            passed.append(fractions[state["next"]])
            state["next"] += 1
        if passed:
            m = trainer.model
            snaps.append({"seconds": now, "updates": int(step), "fractions": passed,
                          "W": np.array(m.W[...], np.float32),
                          "visible_bias": np.array(m.visible_bias[...], np.float32),
                          "hidden_bias": np.array(m.hidden_bias[...], np.float32)})  # fmt: skip
        if state["next"] == len(targets):
            raise BudgetSpent
        if state["per_step"]:
            # end the next chunk just past the next snapshot time, else after about chunk_s
            to_next = math.ceil((targets[state["next"]] - now) / state["per_step"])
            trainer.steps_per_call = max(1, min(round(chunk_s / state["per_step"]), to_next))

    # JAX starts its backend at the first array op; like torch's set-up at import, outside the clock
    jax.block_until_ready(jax.numpy.zeros(1))
    start = time.perf_counter()
    rbm = hn.RBM(train.shape[1], spec["n_hidden"], rngs=nnx.Rngs(spec["seed"]),
                 init_scale=recipe["init_scale"])  # fmt: skip
    rbm.init_visible_bias(train)
    trainer = hn.Trainer(
        rbm,
        tx,
        negative=negative,
        seed=spec["seed"],
        # the Trainer's own evaluations (the default, "auto") are part of what a user gets
        eval_every=0 if spec["log_likelihood"] == "none" else "auto",
        progress=False,
        log_likelihood=spec["log_likelihood"],
        centered=recipe["centered"],
        steps_per_call=1,  # the first chunk compiles; the callback sizes the next ones
        step_callbacks=[on_chunk],
    )
    setup_seconds = time.perf_counter() - start
    diverged = None
    try:
        trainer.fit(train, epochs=10**9, batch_size=recipe["batch"])
    except BudgetSpent:
        pass
    except hn.training.TrainingDiverged as err:  # keep the snapshots taken before it
        diverged = str(err)
        log(f"{spec['name']}: {diverged}")
    from rbms_side import save_snapshots  # numpy only: importable from this venv

    files = save_snapshots(snaps, out_dir, spec["name"])
    return {
        "tool": "hamon-nnx",
        "settings": {
            "model": f"hn.RBM({train.shape[1]}, {spec['n_hidden']}, rngs=nnx.Rngs({spec['seed']}), "
            f"init_scale={recipe['init_scale']}) + init_visible_bias(train)",
            "optimizer": f"optax.{recipe['optimizer']}({recipe['lr']})",
            "negative": repr(negative),
            "batch_size": recipe["batch"],
            "centered": recipe["centered"],
            "eval_every": 0 if spec["log_likelihood"] == "none" else "auto",
            "log_likelihood": spec["log_likelihood"],
            "recipe": recipe,
            "xla_flags": os.environ.get("XLA_FLAGS"),
            "affinity": sorted(os.sched_getaffinity(0)),
            "backend": jax.default_backend(),
        },
        "budget_s": budget,
        "setup_seconds": setup_seconds,
        "updates": trainer.step,
        "epochs": trainer.epoch,
        "seconds": snaps[-1]["seconds"] if snaps else None,
        "first_update_seconds": state.get("first_update_seconds"),
        "last_chunk_seconds_per_update": state["per_step"],
        "diverged": diverged,
        "snapshots": files,
    }


# -- scoring -------------------------------------------------------------------------
def score(path: str, test: np.ndarray, train: np.ndarray, args, key) -> dict:
    """Test LL of one snapshot by every asked estimator, plus the exact LL where enumerable."""
    import jax

    import hamon_nnx as hn

    snap = np.load(path)
    model = hn.RBM.from_params(snap["W"], snap["visible_bias"], snap["hidden_bias"])
    row = {}
    if args.scorer in ("ais", "both"):
        t0 = time.perf_counter()
        est = hn.ais(model, key, n_runs=args.ais_runs, n_betas=args.ais_betas, reference=train)
        row["ais"] = {
            "test_ll": hn.training.log_likelihood(model, test, est.log_z),
            "stderr": float(est.stderr),
            "ess": float(est.ess),
            "log_z": float(est.log_z),
            "seconds": time.perf_counter() - t0,
        }
    if args.scorer in ("nrpt", "both"):
        t0 = time.perf_counter()
        plan = hn.autotune(model, key, max_rounds=args.nrpt_max_rounds)
        plan.sample(jax.random.fold_in(key, 1), args.nrpt_samples)
        log_z, stderr = plan.log_z()
        report = plan.report()
        row["nrpt"] = {
            "test_ll": hn.training.log_likelihood(model, test, log_z),
            "stderr": float(stderr),
            "ess": float(report.ess_energy),  # ESS of the beta = 1 chain's energy
            "log_z": float(log_z),
            "n_betas": int(report.n_betas),
            "round_trips": int(report.round_trips),
            "seconds": time.perf_counter() - t0,
        }
    if hn.exact.can_enumerate(model):
        log_z = float(hn.exact.log_partition(model))
        row["exact"] = {"test_ll": hn.training.log_likelihood(model, test, log_z), "log_z": log_z}
    return row


def seconds_per_update(snaps: list[dict]) -> float | None:
    """Seconds per update between the first and the last snapshot (after compilation)."""
    if len(snaps) < 2 or snaps[-1]["updates"] == snaps[0]["updates"]:
        return None
    return (snaps[-1]["seconds"] - snaps[0]["seconds"]) / (
        snaps[-1]["updates"] - snaps[0]["updates"]
    )


def run_label(run: dict) -> str:
    if run["name"] != "hamon-best":
        return LABELS[run["name"]]
    st = run["settings"]
    return (f"hamon-nnx best: {st['negative']}, {st['optimizer'].replace('optax.', '')}, "
            f"batch {st['batch_size']}{', centered' if st['centered'] else ''}")  # fmt: skip


def curve(result: dict, scores: list[dict], primary: str) -> list[dict]:
    points = []
    for snap, row in zip(result["snapshots"], scores, strict=True):
        main = row[primary]
        point = {
            "seconds": r4(snap["seconds"]),
            "updates": snap["updates"],
            "fractions": snap["fractions"],
            "test_ll": r4(main["test_ll"]),
            "stderr": r4(main["stderr"]),
            "ess": r4(main["ess"]),
        }
        for name in ("ais", "nrpt", "exact"):
            if name in row:
                point[name] = {k: (r4(v) if isinstance(v, float) else v)
                               for k, v in row[name].items()}  # fmt: skip
        points.append(point)
    return points


# -- plot ----------------------------------------------------------------------------
def plot(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({run["n_hidden"] for run in doc["runs"]})
    fig, axes = plt.subplots(1, len(sizes), figsize=(6.5 * len(sizes), 6.2), squeeze=False)
    colors = {"rbms-default": "tab:red", "rbms-pcd10": "tab:orange",
              "hamon-default": "tab:blue", "hamon-best": "tab:green"}  # fmt: skip
    markers = ["o", "s", "^", "D"]
    threads = sorted({run["threads"] for run in doc["runs"]})
    scorers = (
        ["ais", "nrpt"] if doc["settings"]["scorer"] == "both" else [doc["settings"]["scorer"]]
    )
    for ax, size in zip(axes[0], sizes, strict=True):
        for run in doc["runs"]:
            if run["n_hidden"] != size or not run["curve"]:
                continue
            for s, scorer in enumerate(scorers):
                pts = [p for p in run["curve"] if scorer in p]
                label = run["label"]
                if len(threads) > 1:
                    label += f", {run['threads']} thr"
                if len(scorers) > 1:
                    label += f" [{scorer}]"
                ax.errorbar(
                    [p["seconds"] for p in pts],
                    [p[scorer]["test_ll"] for p in pts],
                    yerr=[p[scorer]["stderr"] for p in pts],
                    color=colors[run["name"]],
                    marker=markers[threads.index(run["threads"]) % len(markers)],
                    linestyle="-" if s == 0 else "--",
                    capsize=3,
                    label=label,
                )
        ax.axvline(doc["settings"]["budget_s"], color="0.5", linestyle=":", linewidth=1)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.set_title(f"RBM 784x{size}")
        ax.set_xlabel("wall-clock seconds (training)")
        ax.set_ylabel("mean test log-likelihood (nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    m = doc["machine"]
    fig.suptitle(
        f"Binarized Fashion-MNIST, budget {doc['settings']['budget_s']:g} s, threads "
        f"{','.join(map(str, threads))}, {m['cpu_model']} ({m['cores']} cores); log Z by "
        f"{'+'.join(scorers)}",
        fontsize=9,
    )
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main ----------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(hamon_worker(args.worker)))
        return 0
    import jax

    mach = machine()
    versions = {"hamon": hamon_versions(), "rbms_side": run_json(rbms_command(args, "versions"))}
    workdir = Path(args.workdir)
    data = prepare_data(workdir)
    log(f"data: train {data['train_shape']}, test {data['test_shape']} in {workdir}")
    mapping = check_mapping(args, workdir)
    log(f"mapping check: {json.dumps(mapping)}")
    if not mapping["equal"]:
        raise SystemExit("rbms's energy does not match hn.RBM's under the mapping: stopping")

    trained, failed = [], []
    for n_hidden in args.hidden:
        for threads in args.threads:
            for name in args.runs:
                out_dir = workdir / "runs" / f"{name}-784x{n_hidden}-t{threads}"
                log(f"-- {name}, 784x{n_hidden}, {threads} threads, {args.budget:g} s")
                runner = run_rbms if name.startswith("rbms") else run_hamon
                try:
                    result = runner(args, name, n_hidden, threads, out_dir, data["train_path"])
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as err:
                    # one failed run should not cost the others' hour of training
                    log(f"{name} 784x{n_hidden} t{threads} failed: {err}")
                    failed.append({"name": name, "n_hidden": n_hidden, "threads": threads,
                                   "error": str(err)})  # fmt: skip
                    continue
                trained.append((name, n_hidden, threads, result))

    train, test = np.load(data["train_path"]), np.load(data["test_path"])
    key = jax.random.key(args.seed)  # one scoring key for every snapshot
    primary = "nrpt" if args.scorer == "nrpt" else "ais"
    runs, warnings = [], []
    low_ess = max(5.0, args.ais_runs / 10)
    for name, n_hidden, threads, result in trained:
        scores = []
        for snap in result["snapshots"]:
            row = score(snap["path"], test, train, args, key)
            log(
                f"{name} 784x{n_hidden} t{threads} at {snap['seconds']:.2f} s: "
                + json.dumps({k: {kk: r4(vv) for kk, vv in v.items()} for k, v in row.items()})
            )
            scores.append(row)
            if "ais" in row and row["ais"]["ess"] < low_ess:
                warnings.append(
                    f"{name} 784x{n_hidden} at {snap['seconds']:.1f} s: AIS ESS "
                    f"{row['ais']['ess']:.1f} < {low_ess:g}: log Z unreliable (usually too low, "
                    "so the LL too high; more --ais-betas)"
                )
        run = {
            "name": name,
            "label": None,
            "tool": result["tool"],
            "n_hidden": n_hidden,
            "threads": threads,
            "settings": result["settings"],
            "updates": result["updates"],
            "seconds": r4(result["seconds"]),
            "curve": curve(result, scores, primary),
        }
        for extra in ("setup_seconds", "first_update_seconds", "epochs", "diverged"):
            if extra in result:
                run[extra] = (
                    r4(result[extra]) if isinstance(result[extra], float) else result[extra]
                )
        run["seconds_per_update"] = r4(seconds_per_update(result["snapshots"]))
        run["label"] = run_label(run)
        if result["tool"] == "rbms":
            run["rbms_versions"] = result["versions"]
        runs.append(run)

    doc = {
        "benchmark": "train_vs_rbms",
        "machine": mach,
        "versions": {
            "jax": versions["hamon"]["jax"],
            "hamon_nnx": versions["hamon"]["hamon_nnx"],
            "rbms": versions["rbms_side"]["rbms"],
            "torch": versions["rbms_side"]["torch"],
            "hamon_venv": versions["hamon"],
            "rbms_venv": versions["rbms_side"],
        },
        "data": data,
        "settings": {
            "budget_s": args.budget,
            "hidden": args.hidden,
            "threads": args.threads,
            "fractions": args.fractions,
            "runs": args.runs,
            "seed": args.seed,
            "quick": args.quick,
            "scorer": args.scorer,
            "ais": {
                "n_runs": args.ais_runs,
                "n_betas": args.ais_betas,
                "reference": "training data (base rate on the collapsed hidden layer)",
            },
            "nrpt": {"max_rounds": args.nrpt_max_rounds, "n_samples": args.nrpt_samples},
            "estimator": "mean(-F(v_test)) - log Z (hn.training.log_likelihood); one key for "
            "every snapshot; stderr is log Z's; AIS's log Z is a stochastic lower bound (LL "
            "biased up)",
            "clock": "from the training array in memory: init, data to tensors/device and "
            "compilation count, imports do not",
            "threads_pinning": "1 thread: XLA_FLAGS=--xla_cpu_multi_thread_eigen=false "
            "intra_op_parallelism_threads=1 / torch.set_num_threads(1), taskset -c 0; all "
            "cores: both free",
        },
        "mapping_check": mapping,
        "runs": runs,
        "failed_runs": failed,
        "warnings": warnings,
        "loadavg_end": list(os.getloadavg()),
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    if args.plot:
        plot(doc, args.plot)
        log(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
