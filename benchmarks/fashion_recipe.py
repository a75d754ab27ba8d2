"""A training recipe on binarized Fashion-MNIST for a wall-clock budget, watched online.

    .venv/bin/python benchmarks/fashion_recipe.py configs/rbm-fashion-mnist-500.yaml \
        --budget 1800 --out recipe.json --plot recipe.png --snapshots runs/recipe

Trains the config's model with the config's recipe (optimizer, schedule,
negative phase, centering) through `hn.Trainer`, with the Trainer's default
evaluation schedule (`eval_every: auto` unless `--set training.eval_every=...`) and online log Z (trajectory AIS) on the validation
split, until the training clock passes `--budget` seconds (the run's epochs
are the config's; the clock stops it earlier). Every evaluation's model is
saved (`--snapshots`), and afterwards each is scored on the test set by tuned
NRPT (`--score nrpt`, the reference) or AIS from the data reference, so the
online estimate is checked at every evaluation: the JSON lists, per
evaluation, the seconds, epoch, online log Z +- its error, the scorer's
log Z +- its error, their z-score and the test log-likelihood by each.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line]
    return names[0] if names else "unknown"


def train(cfg, data, budget: float, snapshots: str) -> tuple[list, object]:
    """Train until the budget; returns (evaluations, trainer)."""
    import hamon_nnx as hn
    from hamon_nnx import runs

    model = runs.build_model(cfg, data)
    trainer = runs.build_trainer(
        cfg, model, progress=False, steps_per_epoch=runs.steps_per_epoch(cfg, data)
    )
    clock = {"start": time.perf_counter(), "paused": 0.0}
    evaluations = []

    def watch(trainer, epoch, logs):
        now = time.perf_counter() - clock["start"] - clock["paused"]
        if "eval_epoch" in logs:
            pause = time.perf_counter()
            path = os.path.join(snapshots, f"epoch-{epoch:05d}")
            hn.save(trainer.model, path, overwrite=True)
            row = {"seconds": now, "epoch": epoch, "step": trainer.step, "path": path}
            row.update({k: logs[k] for k in logs if k.startswith(("log_z", "eval_", "train_"))})
            evaluations.append(row)
            log(json.dumps({k: v for k, v in row.items() if k != "path"}))
            clock["paused"] += time.perf_counter() - pause
        return now >= budget

    trainer.callbacks = (watch,)
    selection = data.selection()
    trainer.fit(data.train, epochs=cfg.training.epochs, batch_size=cfg.training.batch_size,
                eval_data=selection)  # fmt: skip
    return evaluations, trainer


def score(path: str, test, train, scorer: str, key_seed: int) -> dict:
    """log Z of a saved model by NRPT or AIS, and the test log-likelihood from it."""
    import jax

    import hamon_nnx as hn

    model = hn.load(path)
    key = jax.random.key(key_seed)
    t0 = time.perf_counter()
    if scorer == "nrpt":
        log_z, stderr = hn.training.estimated_log_partition(model, key, 2000, max_rounds=512)
        extra = {}
    else:
        est = hn.ais(model, key, n_runs=64, n_betas=2000, reference=train[:10000])
        log_z, stderr, extra = est.log_z, est.stderr, {"ess": est.ess}
    return {
        "log_z": log_z,
        "log_z_stderr": stderr,
        "test_log_likelihood": hn.training.log_likelihood(model, test, log_z),
        "seconds": time.perf_counter() - t0,
        **extra,
    }


def plot(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["evaluations"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    t = [r["seconds"] for r in rows]
    online = [r["test_log_likelihood_online"] for r in rows]
    ax.plot(t, online, "o-", label="online (trajectory AIS)")
    scored = [r for r in rows if "test_log_likelihood_scored" in r]
    if scored:
        ax.errorbar([r["seconds"] for r in scored],
                    [r["test_log_likelihood_scored"] for r in scored],
                    yerr=[3 * r["scored_log_z_stderr"] for r in scored], fmt="s",
                    label=f"{doc['scorer']} (3 sigma)")  # fmt: skip
    if doc.get("zoo_test_log_likelihood") is not None:
        ax.axhline(doc["zoo_test_log_likelihood"], color="grey", ls=":", label="current zoo entry")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("test log-likelihood (nats)")
    ax.set_title(doc["config"])
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def load(path: str, overrides: list[str]):
    """The config at `path` with dotted `key=value` overrides (YAML values)."""
    import yaml

    from hamon_nnx import config as config_lib

    mapping = yaml.safe_load(open(path))
    for item in overrides:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = mapping
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = yaml.safe_load(value)
    return config_lib.from_dict(mapping)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("--budget", type=float, default=1800.0)
    parser.add_argument("--score", choices=("nrpt", "ais", "none"), default="nrpt")
    parser.add_argument("--score-every", type=int, default=1, help="score every k-th evaluation")
    parser.add_argument("--snapshots", default="runs/fashion-recipe")
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    args = parser.parse_args(argv)

    from hamon_nnx import runs

    cfg = load(args.config, ["training.eval_every=auto", *args.set])
    data = runs.load_data(cfg)
    os.makedirs(args.snapshots, exist_ok=True)
    t0 = time.perf_counter()
    evaluations, trainer = train(cfg, data, args.budget, args.snapshots)
    train_seconds = time.perf_counter() - t0
    import hamon_nnx as hn

    for i, row in enumerate(evaluations):
        model = hn.load(row["path"])
        row["test_log_likelihood_online"] = hn.training.log_likelihood(
            model, data.test, row["log_z"]
        )
        if args.score != "none" and (i % args.score_every == 0 or i == len(evaluations) - 1):
            s = score(row["path"], data.test, data.train, args.score, 1000 + i)
            row["scored_log_z"], row["scored_log_z_stderr"] = s["log_z"], s["log_z_stderr"]
            row["test_log_likelihood_scored"] = s["test_log_likelihood"]
            row["scoring_seconds"] = s["seconds"]
            row["z"] = (row["log_z"] - s["log_z"]) / math.hypot(
                row["log_z_stderr"], s["log_z_stderr"]
            )
            log(f"epoch {row['epoch']}: online {row['log_z']:.2f} +- {row['log_z_stderr']:.2f}, "
                f"{args.score} {s['log_z']:.2f} +- {s['log_z_stderr']:.2f} (z {row['z']:.2f})")  # fmt: skip
    zoo = None
    try:
        zoo = hn.zoo.info("rbm-fashion-mnist-500")["metrics"]["test_log_likelihood"]["value"]
    except Exception:  # noqa: BLE001 - the comparison is optional
        pass
    doc = {
        "benchmark": "fashion_recipe",
        "config": os.path.basename(args.config),
        "overrides": args.set,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "budget_s": args.budget,
        "train_seconds_incl_evaluations_and_snapshots": train_seconds,
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "trainer": {
            "negative": repr(trainer.negative),
            "online": repr(trainer.online),
            "online_every_steps": getattr(trainer, "_online_every", None),
            "centered": trainer.centered,
        },
        "scorer": args.score,
        "zoo_test_log_likelihood": zoo,
        "evaluations": evaluations,
    }
    text = json.dumps(doc, indent=1, default=float)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    if args.plot:
        plot(doc, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
