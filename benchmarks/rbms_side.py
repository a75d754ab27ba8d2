"""The rbms side of benchmarks/train_vs_rbms.py: runs in rbms's own venv, never imports hamon-nnx.

    /work/rbms-venv/bin/python benchmarks/rbms_side.py versions
    /work/rbms-venv/bin/python benchmarks/rbms_side.py train --train DIR/train.npy \
        --n-hidden 100 --gibbs-steps 100 --threads 1 --budget 300 --out-dir DIR/run
    /work/rbms-venv/bin/python benchmarks/rbms_side.py energies --params p.npz \
        --configs c.npz --out e.npz

Each command prints ONE JSON document on stdout.

The venv: ``python3 -m venv /work/rbms-venv``, ``pip install torch==2.13.0``
(the CPU wheel; plain ``torch`` would pull a CUDA build), then ``pip install
--ignore-requires-python numpy==2.4.6 contourpy==1.3.3 rbms==0.6.0``. rbms
0.6.0 declares Requires-Python >= 3.12 while the CPU torch wheel on this
disk is for 3.11; the only 3.12-only name it uses is ``typing.override`` (in
rbms.potts_bernoulli, imported by ``import rbms``), a no-op decorator that
`_import_rbms` supplies from typing_extensions (a torch dependency) before
the import. The numpy and contourpy pins keep pip on wheels built for 3.11.

`train` drives rbms's own training loop, ``rbms.training.pcd.train``, set up
the way its CLI (``rbms train``, scripts/train_rbm.py) sets it up, with the
CLI's defaults unless told otherwise (rbms.parser.default_args: PCD with
gibbs_steps=100, num_chains=2000, batch_size=2000, learning_rate=0.01, optim
"sgd", centered gradient, no L1/L2/clipping, beta 1, float32):

* ``BBRBM.init_parameters(num_hiddens, dataset, device, dtype)``: W from
  N(0, 1e-4^2), the visible bias at the data's logit frequencies, the hidden
  bias 0;
* ``params.init_chains(num_chains)`` from uniform visibles, then
  ``params.sample_state(chains, n_steps=gibbs_steps)``, as
  ``rbms.training.implement._init_training`` does;
* ``rbms.sampler.PCD(params, chains, num_steps=gibbs_steps)``,
  ``rbms.optim.setup_optim("sgd", args, params)`` (torch SGD, maximize=True),
  ``rbms.pre_grad.build_pre_grad_update(...)`` (empty with the defaults, still
  torch.compile'd as the CLI does), ``params.init_grad()``;
* ``rbms.training.pcd.train(...)``: each update draws a random minibatch
  (``RBMDataset.batch``), runs the PCD chains ``gibbs_steps`` sweeps, sets the
  (centered) gradient and steps the optimizer.

The CLI can only stop after a number of updates and saves to HDF5 at fixed
update counts; a wall-time budget needs a hook. ``train`` calls
``params.post_grad_update()`` once per update, right after the optimizer
step (a no-op for BBRBM); this script replaces it on the instance by a hook
that reads the clock, copies (W, vbias, hbias) to NumPy when a snapshot time
has passed, and raises `BudgetSpent` once the budget is spent. The loop is
rbms's; nothing of it is re-implemented here. ``checkpoints`` is empty and
``num_updates`` out of reach, so rbms writes no HDF5 file while training.

The clock starts once the training array (a NumPy int8 .npy written by
train_vs_rbms.py) is in memory: the conversion to a float32 torch tensor,
the parameter and chain initialisation (gibbs_steps sweeps of the chains)
and torch.compile's first call all count, as the data upload and XLA
compilation count on the hamon-nnx side. Imports do not count.

rbms's energy, E(v, h) = -v'Wh - vbias'v - hbias'h with v, h in {0, 1} and
W of shape (num_visibles, num_hiddens), is hamon-nnx's hn.RBM energy with
W = weight_matrix, visible_bias = vbias, hidden_bias = hbias; `energies`
lets train_vs_rbms.py check this number for number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def save_snapshots(snaps: list[dict], out_dir: Path, label: str) -> list[dict]:
    """Each snapshot's (W, visible_bias, hidden_bias) as .npz; their paths, times and updates.

    Shared with train_vs_rbms.py's hamon-nnx worker (both sides write the same files).
    """
    files = []
    for i, snap in enumerate(snaps):
        path = out_dir / f"snapshot_{i}.npz"
        np.savez(path, **{k: snap[k] for k in ("W", "visible_bias", "hidden_bias")},
                 seconds=snap["seconds"], updates=snap["updates"])  # fmt: skip
        files.append({"path": str(path), "seconds": snap["seconds"], "updates": snap["updates"],
                      "fractions": snap["fractions"]})  # fmt: skip
        log(f"{label} snapshot {i}: {snap['seconds']:.2f} s, {snap['updates']} updates")
    return files


def _import_rbms():
    """Import rbms (and torch); on Python < 3.12 first supply typing.override."""
    import typing

    if not hasattr(typing, "override"):
        import typing_extensions

        typing.override = typing_extensions.override
    import rbms
    import torch

    return rbms, torch


def versions() -> dict:
    from importlib.metadata import version

    _, torch = _import_rbms()
    return {
        "python": platform.python_version(),
        # rbms.__version__ still says 0.5.1 in the 0.6.0 wheel: ask the installed metadata
        "rbms": version("rbms"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
    }


class BudgetSpent(Exception):
    """Raised by the post-update hook to leave rbms's training loop at the budget."""


def _params_numpy(params) -> dict[str, np.ndarray]:
    return {
        "W": params.weight_matrix.detach().cpu().numpy().astype(np.float32, copy=True),
        "visible_bias": params.vbias.detach().cpu().numpy().astype(np.float32, copy=True),
        "hidden_bias": params.hbias.detach().cpu().numpy().astype(np.float32, copy=True),
    }


def train(args) -> dict:
    rbms, torch = _import_rbms()
    from rbms.bernoulli_bernoulli.classes import BBRBM
    from rbms.dataset.dataset_class import RBMDataset
    from rbms.optim import setup_optim
    from rbms.pre_grad import build_pre_grad_update
    from rbms.sampler import PCD
    from rbms.training.pcd import train as rbms_train

    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision("high")  # what `rbms train` sets
    torch.manual_seed(args.seed)  # the CLI seeds nothing; seeded here to be repeatable
    fractions = sorted({float(f) for f in args.fractions.split(",")})
    if not fractions or fractions[0] <= 0 or fractions[-1] != 1.0:
        raise SystemExit("--fractions must be positive and end with 1")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = np.load(args.train)
    if data.ndim != 2 or not np.isin(data, (0, 1)).all():
        raise SystemExit(f"{args.train} must hold a 0/1 array (n, n_visible), got {data.shape}")
    n = len(data)
    log(f"rbms: train {data.shape}, {args.n_hidden} hidden, PCD-{args.gibbs_steps}, "
        f"{args.chains} chains, batch {args.batch}, lr {args.lr}, centered {not args.no_center}, "
        f"{args.threads} threads, budget {args.budget} s")  # fmt: skip
    device, dtype = "cpu", torch.float32
    snaps: list[dict] = []
    targets = [f * args.budget for f in fractions]

    start = time.perf_counter()
    train_dataset = RBMDataset(
        data=data,
        labels=-np.ones(n),
        weights=np.ones(n),
        names=np.arange(n),
        dataset_name=str(args.train),
        variable_type="bernoulli",
        device=device,
        dtype=dtype,
    )
    params = BBRBM.init_parameters(
        num_hiddens=args.n_hidden, dataset=train_dataset, device=device, dtype=dtype
    )
    chains = params.init_chains(num_samples=args.chains)
    chains = params.sample_state(chains=chains, n_steps=args.gibbs_steps)
    params.init_grad()
    sampler = PCD(params=params, chains=chains, num_steps=args.gibbs_steps, beta=1.0)
    optim_args = {"learning_rate": args.lr, "max_lr": 10, "scale_lr": False,
                  "mult_optim": False, "optim": "sgd"}  # fmt: skip
    optimizer = setup_optim("sgd", optim_args, params)
    pre_grad_update = build_pre_grad_update(
        optimizer=optimizer, lambda_l1=0.0, lambda_l2=0.0, normalize_grad=False, max_grad_norm=-1
    )
    setup_seconds = time.perf_counter() - start
    state = {"updates": 0, "next": 0}

    def after_update() -> None:
        """Replaces BBRBM.post_grad_update (a no-op): snapshot times and the budget."""
        state["updates"] += 1
        now = time.perf_counter() - start
        state.setdefault("first_update_seconds", now)
        passed = []
        while state["next"] < len(targets) and now >= targets[state["next"]]:
            passed.append(fractions[state["next"]])
            state["next"] += 1
        if passed:
            snaps.append({"seconds": now, "updates": state["updates"], "fractions": passed,
                          **_params_numpy(params)})  # fmt: skip
        if state["next"] == len(targets):
            raise BudgetSpent

    params.post_grad_update = after_update
    try:
        rbms_train(
            train_dataset=train_dataset,
            test_dataset=None,  # read only by the metrics of a saved checkpoint: none here
            params=params,
            sampler=sampler,
            optimizer=optimizer,
            batch_size=args.batch,
            centered=not args.no_center,
            curr_update=1,  # as after `rbms train`'s _init_training
            pre_grad_update=pre_grad_update,
            elapsed_time=0.0,
            checkpoints=np.array([], dtype=np.int32),
            num_updates=2**62,
            filename=str(out_dir / "unused.h5"),
        )
    except BudgetSpent:
        pass
    files = save_snapshots(snaps, out_dir, "rbms")
    return {
        "tool": "rbms",
        "versions": versions(),
        "settings": {
            "model": "BBRBM",
            "n_visible": int(data.shape[1]),
            "n_hidden": args.n_hidden,
            "training_type": "pcd",
            "gibbs_steps": args.gibbs_steps,
            "num_chains": args.chains,
            "batch_size": args.batch,
            "optim": "sgd",
            "learning_rate": args.lr,
            "centered": not args.no_center,
            "beta": 1.0,
            "dtype": "float32",
            "device": device,
            "seed": args.seed,
            "torch_threads": torch.get_num_threads(),
            "affinity": sorted(os.sched_getaffinity(0)),
        },
        "budget_s": args.budget,
        "setup_seconds": setup_seconds,
        "first_update_seconds": state.get("first_update_seconds"),
        "updates": state["updates"],
        "seconds_per_update": _per_update(snaps),
        "seconds": snaps[-1]["seconds"] if snaps else None,
        "snapshots": files,
    }


def _per_update(snaps: list[dict]) -> float | None:
    """Seconds per update between the first and the last snapshot (None with fewer than 2)."""
    if len(snaps) < 2 or snaps[-1]["updates"] == snaps[0]["updates"]:
        return None
    return (snaps[-1]["seconds"] - snaps[0]["seconds"]) / (
        snaps[-1]["updates"] - snaps[0]["updates"]
    )


def _all_states(n: int) -> np.ndarray:
    """Every 0/1 vector of length n, (2**n, n)."""
    codes = np.arange(2**n)
    return ((codes[:, None] >> np.arange(n)) & 1).astype(np.float64)


def energies(args) -> dict:
    """rbms's E(v, h), F(v) and exact log Z for given parameters and states, in float64."""
    _, torch = _import_rbms()
    from rbms.bernoulli_bernoulli.classes import BBRBM
    from rbms.partition_function.exact import compute_partition_function

    p = np.load(args.params)
    c = np.load(args.configs)
    params = BBRBM(
        weight_matrix=torch.from_numpy(np.asarray(p["W"], np.float64)),
        vbias=torch.from_numpy(np.asarray(p["visible_bias"], np.float64)),
        hbias=torch.from_numpy(np.asarray(p["hidden_bias"], np.float64)),
    )
    v = torch.from_numpy(np.asarray(c["v"], np.float64))
    h = torch.from_numpy(np.asarray(c["h"], np.float64))
    energy = params.compute_energy(v, h).numpy()
    free_energy = params.compute_energy_visibles(v).numpy()
    log_z = compute_partition_function(params, torch.from_numpy(_all_states(params.num_hiddens)))
    np.savez(args.out, energy=energy, free_energy=free_energy, log_z=log_z)
    return {"out": args.out, "n": int(len(v)), "log_z": float(log_z)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("versions", help="python, rbms, torch, numpy versions")
    t = sub.add_parser("train", help="train for a wall-time budget, snapshots as .npz")
    t.add_argument("--train", required=True, help=".npy 0/1 array (n, n_visible)")
    t.add_argument("--n-hidden", type=int, default=100, help="num_hiddens (rbms: 100)")
    t.add_argument("--gibbs-steps", type=int, default=100, help="PCD sweeps per update (100)")
    t.add_argument("--chains", type=int, default=2000, help="persistent chains (2000)")
    t.add_argument("--batch", type=int, default=2000, help="minibatch size (2000)")
    t.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (0.01)")
    t.add_argument("--no-center", action="store_true", help="plain, not centered, gradient")
    t.add_argument("--seed", type=int, default=0, help="torch.manual_seed")
    t.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    t.add_argument("--budget", type=float, required=True, help="wall-clock seconds")
    t.add_argument("--fractions", default="0.25,0.5,1", help="snapshot times / budget")
    t.add_argument("--out-dir", required=True, help="folder for snapshot_*.npz")
    e = sub.add_parser("energies", help="E(v, h), F(v), exact log Z by rbms (float64)")
    e.add_argument("--params", required=True, help=".npz with W, visible_bias, hidden_bias")
    e.add_argument("--configs", required=True, help=".npz with v (n, nv) and h (n, nh)")
    e.add_argument("--out", required=True, help=".npz to write")
    args = p.parse_args(argv)
    if args.command == "versions":
        result = versions()
    elif args.command == "train":
        result = train(args)
    else:
        result = energies(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
