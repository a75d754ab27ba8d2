"""The `hamon-nnx` command line.

Subcommands (each has `--help`):

* `train CONFIG`: train, evaluate and save the run a YAML config describes.
* `sample MODEL`: sample a zoo model or a checkpoint with tuned NRPT (or
  Gibbs); writes samples.npy, a PNG grid for image models, the barrier plot.
* `evaluate MODEL`: log-likelihood with its error bar (exact when the model
  can be enumerated, NRPT stepping stone otherwise), log Z, diagnostics.
* `zoo list`, `zoo info NAME`: the model zoo.
* `dca train|contacts|energies|dms|sample`: protein and RNA families as
  dense Potts models (bmDCA), adabmDCA's file formats (`hamon_nnx.dca.cli`).
* `demo`: train an RBM on the digits, checkpoint it, sample it with NRPT,
  print the report and write the pictures (about two minutes on 2 CPU cores).

Bad input exits with status 2 and one line `hamon-nnx CMD: error: ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import typing
from pathlib import Path

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """Bad command-line input (reported as one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `hamon-nnx CMD: error: MESSAGE (see --help)`."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _stages(names: list[str], enabled: bool):
    """A tqdm bar over the named stages of a long command (None when disabled)."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=len(names), desc=names[0], file=sys.stderr, leave=False,
                bar_format="{desc:<28} {n_fmt}/{total_fmt} |{bar:20}| {elapsed}")  # fmt: skip


def _advance(bar, next_name: str | None = None) -> None:
    if bar is not None:
        bar.update(1)
        if next_name:
            bar.set_description_str(next_name)


def _parse_value(text: str):
    """A --set value: int, float, true/false, or the string itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _settings(pairs) -> dict:
    out = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise UsageError(f"--set takes KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


class Target:
    """A model named on the command line, with what is known about it."""

    def __init__(self, model, label: str, metadata: dict, image_shape, kind: str):
        self.model = model
        self.label = label
        self.metadata = metadata
        self.image_shape = image_shape
        self.kind = kind  # "pretrained" | "physics" | "checkpoint"


def resolve(spec: str, settings: dict | None = None) -> Target:
    """A zoo name or a checkpoint directory (or a run directory holding model/) -> Target."""
    import hamon_nnx as hn
    from hamon_nnx import runs
    from hamon_nnx.training import checkpoint

    settings = settings or {}
    if spec in hn.zoo.names():
        meta = hn.zoo.info(spec, **settings) if settings else hn.zoo.info(spec)
        model = hn.zoo.load(spec, **settings)
        if meta["kind"] == "physics":
            shape = None
            lattice = getattr(model, "shape", None)
            if lattice is not None and len(lattice) == 2:
                shape = tuple(lattice)
            elif spec in ("ising-2d", "potts-2d") or (
                spec == "spin-glass-ea" and meta["parameters"].get("dims") == 2
            ):
                size = meta["parameters"]["size"]
                shape = (size, size)
            return Target(model, spec, meta, shape, "physics")
        shape = meta["data"].get("image_shape")
        return Target(model, spec, meta, tuple(shape) if shape else None, "pretrained")
    if settings:
        raise UsageError("--set applies to named physics models only")
    path = Path(spec)
    if path.is_dir() and not (path / checkpoint.MODEL_FILE).exists():
        if (path / runs.MODEL_DIR / checkpoint.MODEL_FILE).exists():
            path = path / runs.MODEL_DIR
    if not path.exists():
        import difflib

        close = difflib.get_close_matches(spec, hn.zoo.names(), n=1, cutoff=0.5)
        hint = f"; did you mean the zoo model {close[0]!r}?" if close else ""
        raise UsageError(
            f"{spec!r} is neither a zoo model nor a checkpoint directory{hint} "
            "(hamon-nnx zoo list shows the zoo)"
        )
    model = hn.load(path)
    meta = checkpoint.read_info(path)["metadata"]
    shape = (meta.get("data") or {}).get("image_shape")
    return Target(model, str(path), meta, tuple(shape) if shape else None, "checkpoint")


def _data_for(target: Target, which: str):
    """(test-or-given data, train data or None, description) for evaluate."""
    import numpy as np

    from hamon_nnx import config as config_lib
    from hamon_nnx import runs

    if which not in ("test", "train", "none"):
        path = Path(which)
        if not path.is_file():
            raise UsageError(f"--data: no such file {which!r} (give test, train, none or a .npy)")
        x = np.load(path, allow_pickle=False)
        if x.ndim == 0:
            raise UsageError(f"--data: {which} holds a scalar, not data vectors")
        return np.asarray(x).reshape(-1, x.shape[-1]), None, str(path)
    cfg = target.metadata.get("config")
    if which == "none" or not cfg:
        return None, None, "no data"
    data = runs.load_data(config_lib.from_dict(cfg))
    x = data.test if which == "test" else data.train
    return x, None, f"{data.name} {which} set ({len(x)} vectors)"


# -- train ------------------------------------------------------------------------
def _train(args) -> int:
    from hamon_nnx import config as config_lib
    from hamon_nnx import runs

    cfg = config_lib.load_config(args.config)
    command = runs.command_line(["train", args.config])
    result = runs.train(
        cfg,
        output=args.out,
        command=command,
        progress=not args.no_progress and sys.stderr.isatty(),
        resume=args.resume,
        overwrite=True,
    )
    if args.publish:
        import hamon_nnx as hn

        dest = hn.zoo.publish(result.path, cfg.name)
        _log(f"[{cfg.name}] published to the zoo: {dest}")
    summary = {
        "name": cfg.name,
        "checkpoint": str(result.path),
        "seconds": result.metadata["training"]["seconds"],
        "metrics": result.metrics,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{cfg.name}: trained in {summary['seconds']} s, saved to {result.path}")
        for line in runs.format_metrics(result.metrics):
            print(f"  {line}")
    return 0


# -- sample -----------------------------------------------------------------------
def _grid_indices(n_draws: int, count: int):
    import numpy as np

    return np.unique(np.linspace(0, n_draws - 1, min(count, n_draws)).round().astype(int))


def _sample(args) -> int:
    import jax

    import hamon_nnx as hn
    from hamon_nnx.core.distributed import is_writer

    target = resolve(args.model, _settings(args.set))
    out = Path(args.out)
    writer = is_writer()  # over several processes, process 0 writes and prints
    if writer:
        out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(args.seed)
    bar = _stages(_sample_stage_names(args), not args.no_progress and writer)
    start = time.perf_counter()
    try:
        samples, report = _draw_samples(target, args, key, bar)
        if not writer:
            return 0
        _advance(bar, "pictures")
        files = _write_samples(target, args, out, samples, report)
        if args.scan:
            _advance(bar, "beta scan")
            files.update(_scan(target, args, key, out, hn.plots._pyplot()))
        _advance(bar)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    summary = _sample_summary(target, args, samples, report, files, seconds)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_sample(target, samples, report, summary, seconds)
    return 0


def _sample_stage_names(args) -> list[str]:
    """The progress stages of `sample` for its --method and --scan."""
    stages = ["tuning NRPT", "sampling", "pictures"]
    if args.method == "gibbs":
        stages = ["Gibbs sampling", "pictures"]
    if args.scan:
        stages.append("beta scan")
    return stages


def _draw_samples(target: Target, args, key, bar):
    """(samples (chain, draw, variable), NRPT report or None) by autotuned NRPT or Gibbs."""
    import jax

    import hamon_nnx as hn
    from hamon_nnx.core.distributed import gather

    if args.method == "nrpt":
        plan = hn.autotune(target.model, key, max_rounds=args.max_rounds, explorer=args.explorer)
        _advance(bar, "sampling")
        samples = gather(plan.sample(jax.random.fold_in(key, 1), args.n))
        return samples, plan.report()
    samples = gather(
        hn.sample(
            target.model,
            key,
            n_samples=args.n,
            n_chains=args.chains,
            n_warmup=args.warmup,
            explorer=args.explorer or "gibbs",
        )  # fmt: skip
    )
    return samples, None


def _write_samples(target: Target, args, out: Path, samples, report) -> dict:
    """Write samples.npy, samples.png (image models) and barrier.png (NRPT); their paths."""
    import numpy as np

    import hamon_nnx as hn

    files = {}
    np.save(out / "samples.npy", samples)
    files["samples"] = str(out / "samples.npy")
    plt = hn.plots._pyplot()
    if target.image_shape is not None:
        flat = samples.reshape(-1, samples.shape[-1])
        pick = flat[_grid_indices(len(flat), 64)]
        levels = getattr(target.model, "q", None)
        fig = hn.plots.plot_samples(
            pick, target.image_shape, out / "samples.png", levels=levels,
            title=f"{target.label}: {args.method.upper()} samples (evenly spaced draws)",
        )  # fmt: skip
        plt.close(fig)
        files["samples_png"] = str(out / "samples.png")
    if report is not None:
        fig = hn.plots.plot_barrier(report, out / "barrier.png")
        plt.close(fig)
        files["barrier_png"] = str(out / "barrier.png")
    return files


def _sample_summary(target: Target, args, samples, report, files: dict, seconds: float) -> dict:
    """The summary of `sample`: shape, mean energy, ESS of the energy, time, files, NRPT report."""
    import numpy as np

    import hamon_nnx as hn

    energy = np.asarray(target.model.energy(samples), np.float64)
    ess = float(np.min(hn.effective_sample_size(energy[..., None]))) if samples.shape[1] > 8 else 0
    summary = {
        "model": target.label,
        "method": args.method,
        "shape": list(samples.shape),
        "mean_energy": float(energy.mean()),
        "ess_energy": ess,
        "seconds": round(seconds, 2),
        "files": files,
    }
    if report is not None:
        summary["nrpt"] = _report_dict(report)
    return summary


def _print_sample(target: Target, samples, report, summary: dict, seconds: float) -> None:
    """The human-readable report of `sample` on stdout."""
    print(f"{target.label}: {samples.shape[1]} draws x {samples.shape[0]} chain(s) of "
          f"{samples.shape[2]} variables in {seconds:.1f} s; mean energy "
          f"{summary['mean_energy']:.4f}, ESS(energy) {summary['ess_energy']:.0f}")  # fmt: skip
    if report is not None:
        print(str(report))
    for path in summary["files"].values():
        print(f"  wrote {path}")


def _report_dict(report) -> dict:
    return {
        "n_betas": report.n_betas,
        "n_explore": report.n_explore,
        "explorer": report.explorer,
        "barrier": float(report.total_barrier),
        "round_trips": int(report.round_trips),
        "round_trip_rate": float(report.round_trip_rate),
        "ess_energy": float(report.ess_energy),
        "log_z": report.log_z,
        "log_z_stderr": report.log_z_stderr,
        "ladder": [float(b) for b in report.ladder],
        "acceptance": [float(a) for a in report.acceptance],
    }


def _scan(target: Target, args, key, out: Path, plt) -> dict:
    import jax
    import numpy as np

    import hamon_nnx as hn

    if target.kind != "physics":
        raise UsageError("--scan needs a named physics model (e.g. ising-2d)")
    params = dict(target.metadata["parameters"])
    name = target.label
    unit = hn.zoo.load(name, **{**params, "beta": 1.0})
    critical = target.metadata["critical_beta"]
    top = 2.0 * critical if critical else 2.0
    betas = np.linspace(0.1 * top, top, args.scan_points)
    scan = hn.zoo.beta_scan(unit, jax.random.fold_in(key, 7), betas, n_samples=args.n,
                            n_chains=8, n_warmup=args.warmup)  # fmt: skip
    exact_energy = None
    if name == "ising-2d" and params.get("periodic", True):
        size = params["size"]
        exact_energy = lambda b: hn.exact.ising_lattice_energy(size, b) if b > 0 else 0.0  # noqa: E731
    fig = hn.plots.plot_thermodynamics(
        scan, out / "thermodynamics.png", critical_beta=critical, exact_energy=exact_energy,
        title=f"{name}: " + ", ".join(f"{k}={v}" for k, v in params.items()),
    )  # fmt: skip
    plt.close(fig)
    np.savez(out / "scan.npz", **scan._asdict())
    return {"thermodynamics_png": str(out / "thermodynamics.png"), "scan": str(out / "scan.npz")}


# -- evaluate ---------------------------------------------------------------------
def _evaluate(args) -> int:
    import jax

    from hamon_nnx import runs

    target = resolve(args.model, _settings(args.set))
    test, train, described = _data_for(target, args.data)
    if test is not None:
        from hamon_nnx.training.losses import check_data

        test = check_data(target.model, test, "--data")
    metrics, report = runs.evaluate(
        target.model,
        test,
        train,
        key=jax.random.key(args.seed),
        method=args.method,
        n_samples=args.n,
        max_rounds=args.max_rounds,
        repeats=args.repeats,
        cross_check=args.method == "auto",
        progress=not args.no_progress and sys.stderr.isatty(),
        ais=None if args.ais_betas == 0 else {"n_runs": args.ais_runs, "n_betas": args.ais_betas},
    )
    summary = {"model": target.label, "data": described, "metrics": metrics}
    if report is not None:
        summary["nrpt"] = _report_dict(report)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{target.label} on {described}:")
        for line in runs.format_metrics(metrics):
            print(f"  {line}")
        if report is not None:
            print(str(report))
    return 0


# -- zoo --------------------------------------------------------------------------
def _zoo(args) -> int:
    import hamon_nnx as hn

    if args.zoo_command == "list":
        rows = []
        for name in hn.zoo.names():
            meta = hn.zoo.info(name)
            if meta["kind"] == "pretrained":
                ll = meta["metrics"].get("test_log_likelihood", {})
                err = "" if ll.get("method") == "exact" else f" +- {ll.get('stderr', 0):.3f}"
                what = f"test LL {ll.get('value', float('nan')):.3f}{err} ({ll.get('method')})"
            else:
                cb = meta["critical_beta"]
                what = f"beta_c = {cb:.6g}" if cb is not None else "no finite beta_c"
            rows.append({"name": name, "kind": meta["kind"], "summary": what,
                         "description": meta["description"]})  # fmt: skip
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                print(f"{r['name']:<16} {r['kind']:<10} {r['summary']:<34} {r['description']}")
        return 0
    meta = hn.zoo.info(args.name, **_settings(args.set))
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    print(f"{meta['name']} ({meta['kind']}): {meta['description']}")
    if meta["kind"] == "physics":
        for key in ("constructor", "parameters", "hamiltonian", "critical_beta", "critical_point",
                    "exact", "usage"):  # fmt: skip
            if key in meta:
                print(f"  {key}: {meta[key]}")
        return 0
    from hamon_nnx import runs

    print(f"  data: {meta['data'].get('description')}")
    print(f"  model: {meta['model'].get('class')}, trained {meta['training'].get('epochs')} epochs "
          f"in {meta['training'].get('seconds')} s")  # fmt: skip
    print(f"  reproduce: {meta['command']}")
    for line in runs.format_metrics(meta["metrics"]):
        print(f"  {line}")
    print(f"  checksum (state sha256): {meta['checksum']}")
    print(f"  files: {meta['path']} ({meta['size_bytes'] / 1024:.0f} KiB)")
    return 0


# -- demo -------------------------------------------------------------------------
_DEMO_STAGES = [
    "data",
    "training",
    "checkpoint",
    "tuning NRPT",
    "sampling",
    "evaluation",
    "pictures",
]


def _demo(args) -> int:
    """Train an RBM on the 8x8 digits, checkpoint it, sample it with NRPT, draw it.

    The steps: load the binarized digits (scikit-learn), train a 16-hidden-unit
    RBM with hn.Trainer and CD-25 on full batches (the exact log-likelihood is
    tracked, since 2^16 hidden states can be summed), save and
    reload the checkpoint, autotune NRPT and sample it, compare the NRPT
    stepping-stone log Z with the exact one, and write the pictures (data,
    samples, hidden-unit filters, training curves, barrier) to --out.
    """
    import jax
    import numpy as np

    import hamon_nnx as hn

    quick, epochs, n_samples, max_rounds = _demo_settings(args)
    out = _fresh_demo_dir(Path(args.out))
    progress = not args.no_progress and sys.stderr.isatty()
    clock = _StageClock(_DEMO_STAGES, progress)
    try:
        data = hn.data.digits()
        clock.done("data", "training")
        rbm, history, training = _demo_train(args, data, out, epochs, quick, progress)
        clock.done("training", "checkpoint")
        path, reloaded = _demo_checkpoint(rbm, out)
        clock.done("checkpoint", "tuning NRPT")
        key = jax.random.key(args.seed)
        plan = hn.autotune(reloaded, key, max_rounds=max_rounds)
        clock.done("tuning NRPT", "sampling")
        samples = np.asarray(plan.sample(jax.random.fold_in(key, 1), n_samples))
        report = plan.report()
        clock.done("sampling", "evaluation")
        test_ll, log_z = _demo_log_likelihoods(reloaded, plan, data.test)
        clock.done("evaluation", "pictures")
        pictures = _demo_pictures(args, out, data, reloaded, history, samples, n_samples, report)
        np.save(out / "samples.npy", samples)
        clock.done("pictures", None)
    finally:
        clock.close()
    summary = _demo_summary(args, out, clock, path, training, test_ll, log_z, report, pictures)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    _print_demo(args, out, summary, report, pictures, len(data.test))
    return 0


class _StageClock:
    """Seconds spent in each named stage of a long command, shown on a `_stages` bar."""

    def __init__(self, names: list[str], enabled: bool):
        """Open the bar over `names` (when enabled) and start the clock."""
        self.bar = _stages(names, enabled)
        self.times: dict[str, float] = {}
        self.start = time.perf_counter()

    def done(self, stage: str, next_name: str | None) -> None:
        """Record the seconds `stage` took (since the previous stage) and move the bar on."""
        self.times[stage] = round(time.perf_counter() - self.start - sum(self.times.values()), 2)
        _advance(self.bar, next_name)

    def close(self) -> None:
        """Close the bar, if there is one."""
        if self.bar is not None:
            self.bar.close()


def _demo_settings(args) -> tuple[bool, int, int, int]:
    """(quick, epochs, NRPT draws, NRPT tuning rounds): --quick or HAMON_DEMO_QUICK=1 shrink them."""
    quick = args.quick or os.environ.get("HAMON_DEMO_QUICK") == "1"
    epochs = args.epochs if args.epochs is not None else (2 if quick else 600)
    n_samples = 100 if quick else 4000
    max_rounds = 32 if quick else 1024
    return quick, epochs, n_samples, max_rounds


def _fresh_demo_dir(out: Path) -> Path:
    """Create the output directory, removing the training checkpoints of an earlier demo."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "training").is_dir():  # checkpoints of an earlier demo would shadow this run's
        import shutil

        shutil.rmtree(out / "training")
    return out


def _demo_train(args, data, out: Path, epochs: int, quick: bool, progress: bool):
    """Train the demo RBM (CD-25, full batches): (model, history, summary of the training)."""
    import optax
    from flax import nnx

    import hamon_nnx as hn

    rbm = hn.RBM(64, args.hidden, rngs=nnx.Rngs(args.seed))
    rbm.init_visible_bias(data.train)
    trainer = hn.Trainer(
        rbm, optax.adam(0.03), negative=hn.CD(k=25),
        checkpoint_dir=out / "training", seed=args.seed,
        eval_every=epochs if quick else max(epochs // 10, 1), progress=progress,
    )  # fmt: skip
    # full batches: one step per epoch (see benchmarks/train_rbm.py for the choice)
    history = trainer.fit(
        data.train, epochs=epochs, batch_size=len(data.train), eval_data=data.test
    )
    training = {"epochs": epochs, "steps": trainer.step, "final_loss": history["loss"][-1]}
    return rbm, history, training


def _demo_checkpoint(rbm, out: Path):
    """Save the RBM to OUT/model and reload it, checking the weights: (path, reloaded model)."""
    import numpy as np

    import hamon_nnx as hn

    path = hn.save(rbm, out / "model", overwrite=True,
                   metadata={"data": {"name": "digits", "image_shape": [8, 8]},
                             "command": "hamon-nnx demo"})  # fmt: skip
    reloaded = typing.cast(hn.RBM, hn.load(path))
    same = bool(np.array_equal(np.asarray(reloaded.W[...]), np.asarray(rbm.W[...])))
    if not same:  # pragma: no cover - would be a checkpoint bug
        raise RuntimeError("the reloaded checkpoint differs from the trained model")
    return path, reloaded


def _demo_log_likelihoods(model, plan, test) -> tuple[dict, dict]:
    """(test log-likelihood, log Z) summaries: exact, and from the NRPT stepping-stone log Z."""
    import numpy as np

    import hamon_nnx as hn
    from hamon_nnx import runs

    log_z_exact = hn.exact.log_partition(model)
    log_z, log_z_err = plan.log_z()
    ll = runs.log_likelihoods(model, test, log_z_exact)
    test_ll = {
        "exact": float(ll.mean()),
        "spread_stderr": float(ll.std(ddof=1) / np.sqrt(len(ll))),
        "nrpt": float(ll.mean() + log_z_exact - log_z),
        "nrpt_stderr": log_z_err,
    }
    z = (log_z - log_z_exact) / log_z_err if log_z_err > 0 else float("nan")
    return test_ll, {"exact": log_z_exact, "nrpt": log_z, "nrpt_stderr": log_z_err, "z": z}


def _demo_pictures(args, out: Path, data, model, history, samples, n_samples, report) -> list:
    """Draw data.png, samples.png, filters.png, training.png and barrier.png; their names."""
    import hamon_nnx as hn

    plt = hn.plots._pyplot()
    pictures = {
        "data.png": lambda p: hn.plots.plot_samples(data.test[:64], (8, 8), p,
                                                    title="test digits (binarized)"),
        "samples.png": lambda p: hn.plots.plot_samples(
            samples.reshape(-1, samples.shape[-1])[_grid_indices(n_samples, 64)], (8, 8), p,
            title="RBM samples (NRPT, beta = 1 chain, evenly spaced draws)"),
        "filters.png": lambda p: hn.plots.plot_filters(model, (8, 8), p),
        "training.png": lambda p: hn.plots.plot_training_curves(
            history, p, title=f"RBM 64x{args.hidden}, CD-25, full batches"),
        "barrier.png": lambda p: hn.plots.plot_barrier(report, p),
    }  # fmt: skip
    for name, draw in pictures.items():
        plt.close(draw(out / name))
    return list(pictures)


def _demo_summary(args, out, clock, path, training, test_ll, log_z, report, pictures) -> dict:
    """The demo's summary.json: model, training, log-likelihood, log Z, NRPT, times, files."""
    return {
        "model": f"RBM 64 visible x {args.hidden} hidden, digits (binarized, 1438 train images)",
        "training": training,
        "test_log_likelihood": test_ll,
        "log_z": log_z,
        "nrpt": _report_dict(report),
        "seconds": clock.times,
        "total_seconds": round(time.perf_counter() - clock.start, 1),
        "out": str(out.resolve()),
        "checkpoint": str(path),
        "pictures": sorted(str(out / n) for n in pictures),
    }


def _print_demo(args, out: Path, summary: dict, report, pictures: list, n_test: int) -> None:
    """The demo's human-readable report on stdout."""
    training, ll, log_z = summary["training"], summary["test_log_likelihood"], summary["log_z"]
    print(f"hamon-nnx demo: RBM 64x{args.hidden} on the binarized 8x8 digits")
    print(f"  trained {training['epochs']} epochs ({training['steps']} steps, CD-25, full batches) "
          f"in {summary['seconds']['training']} s; "
          f"checkpoint {summary['checkpoint']} (reloaded, identical)")  # fmt: skip
    print(f"  test log-likelihood {ll['exact']:.3f} nats/image (exact; spread over "
          f"{n_test} images +- {ll['spread_stderr']:.3f})")  # fmt: skip
    print(f"  log Z: NRPT {log_z['nrpt']:.4f} +- {log_z['nrpt_stderr']:.4f}, "
          f"exact {log_z['exact']:.4f} (z = {log_z['z']:+.2f})")  # fmt: skip
    print(str(report))
    print(f"  pictures in {out}: " + ", ".join(pictures))
    print(f"  total {summary['total_seconds']} s")


# -- parser -----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hamon-nnx",
        description="Discrete energy-based models in Flax NNX: train, sample, evaluate, zoo.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p, progress=True, json_flag=True):
        if progress:
            p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        if json_flag:
            p.add_argument("--json", action="store_true", help="print a JSON summary instead")

    train = sub.add_parser("train", help="train a model from a YAML run config",
                           description="Train, evaluate and save the run a YAML config describes "
                           "(see hamon_nnx/config.py for the schema; configs/ holds examples).")  # fmt: skip
    train.add_argument("config", help="the YAML run config, e.g. configs/rbm-digits-16.yaml")
    train.add_argument("--out", help="run directory (default: the config's output, runs/NAME)")
    train.add_argument("--resume", action="store_true",
                       help="continue from the latest training checkpoint in OUT/training")  # fmt: skip
    train.add_argument("--publish", action="store_true",
                       help="copy the model into the package's zoo (source checkouts)")  # fmt: skip
    common(train)
    train.set_defaults(func=_train)

    sample = sub.add_parser("sample", help="sample a zoo model or a checkpoint (NRPT by default)",
                            description="Sample MODEL (a zoo name or a checkpoint directory) with "
                            "autotuned NRPT or plain Gibbs; writes samples.npy (chain, draw, "
                            "variable), samples.png for image models, barrier.png for NRPT and "
                            "summary.json to --out.")  # fmt: skip
    sample.add_argument("model", help="zoo name (hamon-nnx zoo list) or checkpoint directory")
    sample.add_argument("-n", "--n", type=int, default=1000, help="draws (default 1000)")
    sample.add_argument("--method", choices=("nrpt", "gibbs"), default="nrpt")
    sample.add_argument("--explorer", default=None,
                        help="the local move: gibbs, swendsen_wang, wolff or parts joined by + "
                        "(default: tuned for nrpt, gibbs for --method gibbs)")  # fmt: skip
    sample.add_argument("--chains", type=int, default=16, help="Gibbs chains (default 16)")
    sample.add_argument("--warmup", type=int, default=200, help="Gibbs warm-up sweeps")
    sample.add_argument("--max-rounds", type=int, default=512,
                        help="NRPT: rounds of the longest tuning adaptation (default 512)")  # fmt: skip
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", default="hamon-samples", help="output directory")
    sample.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="physics model parameter, e.g. --set size=16 --set beta=critical")  # fmt: skip
    sample.add_argument("--scan", action="store_true",
                        help="physics models: energy and |magnetization| against beta "
                        "(thermodynamics.png)")  # fmt: skip
    sample.add_argument("--scan-points", type=int, default=12, help="betas in the scan")
    common(sample)
    sample.set_defaults(func=_sample)

    evaluate = sub.add_parser("evaluate", help="log-likelihood with error bar, log Z, diagnostics",
                              description="Log-likelihood of MODEL on its test data (or --data), "
                              "exact when the model can be enumerated (then NRPT is run as a "
                              "cross-check), otherwise from an NRPT stepping-stone log Z with its "
                              "error bar; log Z and the NRPT diagnostics report.")  # fmt: skip
    evaluate.add_argument("model", help="zoo name or checkpoint directory")
    evaluate.add_argument("--data", default="test",
                          help="test (default), train, none, or a .npy file of data vectors")  # fmt: skip
    evaluate.add_argument("--method", choices=("auto", "exact", "nrpt"), default="auto")
    evaluate.add_argument("-n", "--n", type=int, default=2000, help="NRPT sampling rounds")
    evaluate.add_argument("--max-rounds", type=int, default=512)
    evaluate.add_argument("--repeats", type=int, default=1, help="independent NRPT estimates")
    evaluate.add_argument("--ais-betas", type=int, default=1000,
                          help="AIS grid points for the AIS log Z beside NRPT's (0: no AIS)")  # fmt: skip
    evaluate.add_argument("--ais-runs", type=int, default=256, help="AIS runs (default 256)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--set", action="append", metavar="KEY=VALUE",
                          help="physics model parameter, e.g. --set size=8")  # fmt: skip
    common(evaluate)
    evaluate.set_defaults(func=_evaluate)

    zoo = sub.add_parser("zoo", help="list the model zoo or describe one entry",
                         description="The model zoo: pretrained models and named physics models.")  # fmt: skip
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True, parser_class=_Parser)
    zoo_list = zoo_sub.add_parser("list", help="every zoo name with a one-line summary")
    common(zoo_list, progress=False)
    zoo_info = zoo_sub.add_parser(
        "info", help="data, training, metrics, checksum or critical point"
    )
    zoo_info.add_argument("name", help="a zoo name")
    zoo_info.add_argument("--set", action="append", metavar="KEY=VALUE",
                          help="physics model parameter (e.g. --set q=3)")  # fmt: skip
    common(zoo_info, progress=False)
    zoo.set_defaults(func=_zoo)

    from .dca.cli import add_parser as add_dca

    add_dca(sub, common)

    demo = sub.add_parser("demo", help="train, checkpoint, sample and draw an RBM on digits",
                          description=_demo.__doc__)  # fmt: skip
    demo.add_argument("--out", default="hamon-demo", help="output directory (default ./hamon-demo)")
    demo.add_argument("--hidden", type=int, default=16, help="hidden units (default 16, <= 24 "
                      "keeps the exact log Z)")  # fmt: skip
    demo.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (default 600, one full-batch step each)",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true",
                      help="a few-second run for tests (also HAMON_DEMO_QUICK=1)")  # fmt: skip
    common(demo)
    demo.set_defaults(func=_demo)
    return parser


def _check_args(args) -> None:
    for name in ("n", "chains", "warmup", "max_rounds", "repeats", "scan_points", "hidden",
                 "epochs"):  # fmt: skip
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "warmup" else 1):
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be >= {0 if name == 'warmup' else 1}, got {value}")
    from . import exact

    most = exact.MAX_ENUMERATION_STATES.bit_length() - 1
    if getattr(args, "hidden", None) is not None and args.hidden > most:
        raise UsageError(f"--hidden must be <= {most} (exact log Z), got {args.hidden}")
    ais_betas = getattr(args, "ais_betas", None)
    if ais_betas is not None and (ais_betas < 0 or ais_betas == 1):
        raise UsageError(f"--ais-betas must be 0 (no AIS) or >= 2, got {ais_betas}")
    if getattr(args, "ais_runs", None) is not None and args.ais_runs < 2:
        raise UsageError(f"--ais-runs must be >= 2, got {args.ais_runs}")
    if getattr(args, "max_rounds", None) is not None and args.max_rounds < 32:
        raise UsageError(f"--max-rounds must be >= 32, got {args.max_rounds}")


def _join_processes() -> None:
    """Under `python -m hamon_nnx.launch` (or its variables): join the run's other
    processes, so "auto" placement shards over all of their devices."""
    from hamon_nnx.core import distributed

    if distributed.launched():
        distributed.initialize()
        if not distributed.is_writer():  # process 0 prints the results; errors still show
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    prog = "hamon-nnx " + args.command
    try:
        _check_args(args)
        _join_processes()
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
