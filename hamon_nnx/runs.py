"""Training runs from configs: data, model, Trainer, evaluation, checkpoint.

`train(cfg)` is what `hamon-nnx train CONFIG` does: build the data and the
model a `RunConfig` describes, train it with `hn.Trainer` (training
checkpoints under `OUTPUT/training/`, resumable), measure it (`evaluate`)
and save the final model with `hn.save` to `OUTPUT/model/`, its metadata
holding the data description, the config, the command, the training
history and the metrics with their error bars. The zoo's pretrained models
are such checkpoints.

Example:
    >>> import tempfile, hamon_nnx as hn
    >>> from hamon_nnx import config, runs
    >>> cfg = config.from_dict({
    ...     "name": "tiny", "data": {"name": "bars_and_stripes", "size": 3},
    ...     "model": {"n_hidden": 4}, "training": {"epochs": 2, "batch_size": 4},
    ... })
    >>> result = runs.train(cfg, output=tempfile.mkdtemp(), progress=False)
    >>> result.metrics["test_log_likelihood"]["method"]
    'exact'
    >>> type(hn.load(result.path)).__name__
    'RBM'
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import jax
import numpy as np

from . import config as config_lib
from . import data as data_lib
from . import exact
from .models import RBM, CategoricalRBM, IsingModel, PottsModel
from .models.base import EnergyModel

if TYPE_CHECKING:
    from .tuning import NRPTReport

MODEL_DIR = "model"
TRAINING_DIR = "training"


@dataclasses.dataclass(frozen=True)
class RunData:
    """Train and test arrays in the model's encoding, and what they are."""

    train: np.ndarray
    test: np.ndarray
    name: str
    description: str
    encoding: str  # "binary" | "spins" | "categorical"
    levels: int
    image_shape: tuple[int, ...] | None
    validation: np.ndarray | None = None  # held out for model selection (*mnist)

    def metadata(self) -> dict:
        meta = {
            "name": self.name,
            "description": self.description,
            "encoding": self.encoding,
            "levels": self.levels,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "n_train": int(len(self.train)),
            "n_test": int(len(self.test)),
        }
        if self.has_validation:
            meta["n_validation"] = int(len(cast(np.ndarray, self.validation)))
        return meta

    @property
    def has_validation(self) -> bool:
        """Whether the data hold a non-empty validation split."""
        return self.validation is not None and len(self.validation) > 0

    def selection(self) -> np.ndarray:
        """The vectors the Trainer evaluates on: the validation split, else the test set."""
        return cast(np.ndarray, self.validation) if self.has_validation else self.test


def load_data(cfg: config_lib.RunConfig) -> RunData:
    """The data a config names, encoded for its model (spins for Ising models)."""
    ds = _dataset(cfg.data)
    train, test, validation = ds.train, ds.test, ds.validation
    assert validation is not None  # a Dataset's empty split is a (0, n) array
    if cfg.data.n_train:
        train = train[: cfg.data.n_train]
    if ds.levels > 2:
        encoding = "categorical"
    elif cfg.data.encoding == "spins" or (
        cfg.data.encoding == "auto" and cfg.model.kind == "ising"
    ):
        encoding = "spins"
        train, test, validation = 2 * train - 1, 2 * test - 1, 2 * validation - 1
    else:
        encoding = "binary"
    description = ds.description + ("; encoded as spins -1/+1" if encoding == "spins" else "")
    if cfg.data.n_train and cfg.data.n_train < len(ds.train):
        description += f"; trained on the first {cfg.data.n_train} training images only"
    return RunData(
        np.asarray(train, np.int8),
        np.asarray(test, np.int8),
        ds.name,
        description,
        encoding,
        ds.levels,
        ds.image_shape,
        np.asarray(validation, np.int8),
    )


def _dataset(d: config_lib.DataConfig) -> data_lib.Dataset:
    """The `hn.data` set a data config names, preprocessed as it says."""
    if d.name == "digits":
        return data_lib.digits(d.binary_threshold(), d.test_fraction, d.split_seed)
    if d.name == "digits_quantized":
        return data_lib.digits_quantized(d.levels, d.test_fraction, d.split_seed)
    if d.idx:
        loader = data_lib.fashion_mnist if d.name.startswith("fashion") else data_lib.mnist
        return loader(
            d.path or None,
            binarize=d.binarize,
            threshold=d.binary_threshold(),
            levels=d.levels if d.quantized else None,
            seed=d.split_seed,
            validation=d.validation,
        )
    images = data_lib.bars_and_stripes(d.size)
    return data_lib.Dataset(
        images,
        images,
        name="bars_and_stripes",
        image_shape=(d.size, d.size),
        description=(
            f"every distinct {d.size}x{d.size} bars-and-stripes image; "
            "the test set is the training set (the data are the whole distribution)"
        ),
    )


def image_graph(shape: tuple[int, int], radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges between pixels within Chebyshev distance `radius`, and a proper colouring.

    Pixels are numbered row-major. The colouring ((i mod r+1), (j mod r+1))
    uses (radius + 1)^2 colours: two pixels of one colour are at least
    radius + 1 apart along some axis, so never neighbours.

    Example:
        >>> from hamon_nnx.runs import image_graph
        >>> edges, colours = image_graph((3, 3), 1)
        >>> len(edges), int(colours.max()) + 1
        (20, 4)
    """
    H, W = (int(s) for s in shape)
    edges = []
    for i, j in itertools.product(range(H), range(W)):
        for di, dj in itertools.product(range(radius + 1), range(-radius, radius + 1)):
            if (di, dj) <= (0, 0):
                continue  # each unordered pair once
            a, b = i + di, j + dj
            if 0 <= a < H and 0 <= b < W:
                edges.append((i * W + j, a * W + b))
    rows, cols = np.indices((H, W))
    colours = (rows % (radius + 1)) * (radius + 1) + cols % (radius + 1)
    return np.asarray(edges, np.int64).reshape(-1, 2), colours.ravel()


def _all_pairs(n: int) -> np.ndarray:
    return np.asarray(list(itertools.combinations(range(n), 2)), np.int64).reshape(-1, 2)


def build_model(cfg: config_lib.RunConfig, data: RunData) -> EnergyModel:
    """A fresh model of the config's kind and structure, sized for the data."""
    from flax import nnx

    m = cfg.model
    n = data.train.shape[1]
    if m.kind in ("rbm", "categorical_rbm"):
        rngs, scale = nnx.Rngs(m.seed), m.init_scale
        if m.kind == "rbm":
            model = RBM(n, m.n_hidden, rngs=rngs, init_scale=scale)
        else:
            model = CategoricalRBM(n, m.n_hidden, data.levels, rngs=rngs, init_scale=scale)
        if m.init_from_data:
            model.init_visible_bias(data.train)
        return model
    if m.graph == "neighbourhood":
        if data.image_shape is None or len(data.image_shape) != 2:
            raise ValueError("model.graph: neighbourhood needs 2-D images")
        edges, colours = image_graph(data.image_shape, m.radius)
    else:
        edges, colours = _all_pairs(n), None
    if m.kind == "ising":
        fields = np.zeros(n, np.float32)
        if m.init_from_data:  # independent-spin fit: <s_i> = tanh(h_i)
            mean = (data.train.astype(np.float64).sum(0)) / (len(data.train) + 2)
            fields = np.arctanh(np.clip(mean, -0.99, 0.99)).astype(np.float32)
        if m.graph == "dense":
            return IsingModel.dense(np.zeros((n, n), np.float32), fields)
        return IsingModel.from_edges(n, edges, 0.0, fields)
    q = data.levels
    fields = np.zeros((n, q), np.float32)
    if m.init_from_data:  # independent-site fit: log frequencies
        counts = np.eye(q)[data.train].sum(0) + 1.0
        fields = np.log(counts / counts.sum(-1, keepdims=True)).astype(np.float32)
    couplings = np.zeros((len(edges), q, q), np.float32)
    if colours is None:
        return PottsModel.from_edges(n, q, edges, couplings, fields)
    return PottsModel(n, q, edges, couplings, fields, colours=colours)


def build_negative(cfg: config_lib.NegativeConfig):
    """The negative phase object a config describes."""
    from .training import CD, PCD, ExactNegative, NRPTNegative

    if cfg.kind == "cd":
        return CD(cfg.k)
    if cfg.kind == "pcd":
        return PCD(cfg.n_chains, cfg.k)
    if cfg.kind == "nrpt":
        return NRPTNegative(cfg.n_chains, cfg.rounds, cfg.n_explore, cfg.adapt_every)
    return ExactNegative()


def steps_per_epoch(cfg: config_lib.RunConfig, data: RunData) -> int:
    """Optimizer steps in one epoch of the run (the last partial batch is dropped)."""
    n = len(data.train)
    return n // min(cfg.training.batch_size, n)


def build_optimizer(t: config_lib.TrainingConfig, steps_per_epoch: int | None = None):
    """The optax transformation a training config describes (`optimizers.optimizer`).

    A decaying schedule runs over `t.epochs * steps_per_epoch` steps; the L1/L2
    penalties act on the interaction weights, not on biases and fields. With
    the defaults this is `optax.adam(learning_rate)` / `optax.sgd(learning_rate)`.

    Raises:
        ValueError: a decaying schedule without `steps_per_epoch`.
    """
    from .training import optimizers

    total = None
    if t.schedule not in ("none", "constant"):
        if steps_per_epoch is None:
            raise ValueError(f"schedule {t.schedule!r} needs steps_per_epoch (the run's length)")
        total = t.epochs * int(steps_per_epoch)
    return optimizers.optimizer(
        t.optimizer,
        t.learning_rate,
        schedule=t.schedule,
        warmup_steps=t.warmup_steps,
        total_steps=total,
        clip_norm=t.clip_norm,
        l1=t.l1,
        l2=t.l2,
    )


def build_trainer(
    cfg: config_lib.RunConfig,
    model,
    checkpoint_dir=None,
    progress: bool = True,
    *,
    steps_per_epoch: int | None = None,
):
    """An `hn.Trainer` with the config's optimizer, negative phase, seed and model selection.

    `steps_per_epoch` (`runs.steps_per_epoch(cfg, data)`) is needed by a
    decaying learning-rate schedule, which ends with the run.
    """
    from .training import Trainer

    t = cfg.training
    return Trainer(
        model,
        build_optimizer(t, steps_per_epoch),
        negative=build_negative(t.negative),
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=t.checkpoint_every,
        seed=t.seed,
        eval_every=t.eval_every,
        progress=progress,
        centered=t.centered,
        patience=t.patience,
        keep_best=t.keep_best,
    )


def _enumerable(model) -> bool:
    """The library's one capability check (`hn.exact.can_enumerate`)."""
    return exact.can_enumerate(model)


def _mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    stderr = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), stderr


def nrpt_log_partition(
    model, key, *, n_samples: int = 2000, max_rounds: int = 512, repeats: int = 1, progress=None
) -> tuple[dict, NRPTReport]:
    """log Z by tuned NRPT (stepping stone), `repeats` independent runs combined.

    Returns (dict, the last run's NRPTReport); the dict: value, stderr (the
    combined Monte-Carlo error bar), per-run values and error bars, their
    spread, and the last run's report numbers (ladder size, barrier, round
    trips, ESS).
    """
    from .tuning import autotune

    runs, errors, report = [], [], None
    for r in range(repeats):
        k = jax.random.fold_in(key, r)
        plan = autotune(model, k, max_rounds=max_rounds)
        plan.sample(jax.random.fold_in(k, 1), n_samples)
        value, stderr = plan.log_z()
        runs.append(float(value))
        errors.append(float(stderr))
        report = plan.report()
        if progress is not None:
            progress.update(1)
    errors_arr = np.asarray(errors)
    report = cast("NRPTReport", report)  # the last run's (repeats >= 1)
    out = {
        "value": float(np.mean(runs)),
        "stderr": float(np.sqrt(np.sum(errors_arr**2)) / len(runs)),
        "method": "nrpt",
        "runs": runs,
        "run_stderrs": errors,
        "n_samples": n_samples,
        "max_rounds": max_rounds,
        "n_betas": report.n_betas,
        "n_explore": report.n_explore,
        "explorer": report.explorer,
        "barrier": float(report.total_barrier),
        "round_trips": int(report.round_trips),
        "ess_energy": float(report.ess_energy),
    }
    if len(runs) > 1:
        out["spread_stderr"] = _mean_and_stderr(np.asarray(runs))[1]
    return out, report


def log_likelihoods(model, data, log_z: float) -> np.ndarray:
    """log p(x) = -F(x) - log Z for every row of `data` (float64)."""
    from .training.metrics import _free_energies

    return -_free_energies(model, np.asarray(data)) - log_z


def evaluate(
    model,
    test,
    train=None,
    *,
    key=None,
    method: str = "auto",
    n_samples: int = 2000,
    max_rounds: int = 512,
    repeats: int = 1,
    cross_check: bool = False,
    progress: bool = False,
    ais: dict | None = None,
) -> tuple[dict, object]:
    """Log-likelihoods with error bars, log Z, pseudo-likelihood, reconstruction.

    The log-likelihood is exact when the model can be enumerated
    (`hn.exact.can_enumerate`) and `method` is "auto" or "exact"; otherwise
    log Z comes from tuned NRPT (stepping stone) with its Monte-Carlo
    standard error. With `ais` (keyword arguments of `hn.ais`, e.g.
    `{"n_runs": 256, "n_betas": 1000}`), annealed importance sampling
    estimates log Z too: `log_z_ais`, with its z-score against the primary
    log Z (exact, or NRPT's, the two error bars combined), and
    `test_log_likelihood_ais` from it (`cross_check` likewise adds
    `log_z_nrpt_check` and `test_log_likelihood_nrpt` to an exact log Z). For every mean
    over data vectors, `data_stderr` is the standard error over the vectors
    (the spread of the test set, not a sampling error); `stderr` is the
    Monte-Carlo error of the estimate (0 when exact).

    Returns:
        (metrics dict, the NRPTReport of the last NRPT run or None).
    """
    if method not in ("auto", "exact", "nrpt", "none"):
        raise ValueError(f"method must be auto, exact, nrpt or none, got {method!r}")
    key = jax.random.key(0) if key is None else key
    metrics: dict = {}
    report = None
    if method != "none":
        log_z, check, report = _estimate_log_z(
            model, key, use_exact=_use_exact(model, method), cross_check=cross_check,
            progress=progress, n_samples=n_samples, max_rounds=max_rounds, repeats=repeats,
        )  # fmt: skip
        metrics["log_z"] = log_z
        if check is not None:
            metrics["log_z_nrpt_check"] = check
        if ais is not None:
            metrics["log_z_ais"] = _ais_log_z(model, jax.random.fold_in(key, 7), log_z, ais)
        metrics.update(_log_likelihood_metrics(model, log_z, (("test", test), ("train", train))))
        for other in ("log_z_nrpt_check", "log_z_ais"):  # the test LL by each other estimate
            if other in metrics:
                by = metrics[other]
                rows = _log_likelihood_metrics(model, by, (("test", test),))
                metrics.update({f"{k}_{by['method']}": v for k, v in rows.items()})
    metrics.update(_test_diagnostics(model, test))
    return metrics, report


def _use_exact(model, method: str) -> bool:
    """Whether `evaluate` sums log Z exactly; raises when "exact" is asked of a too-large model."""
    use_exact = method == "exact" or (method == "auto" and _enumerable(model))
    if use_exact and not _enumerable(model):
        raise ValueError(
            f"exact log-likelihood needs an enumerable model; this {type(model).__name__} "
            "is too large (use nrpt)"
        )
    return use_exact


def _nrpt_bar(total: int, progress: bool):
    """A tqdm bar over `total` NRPT log Z runs (None when disabled or there are none)."""
    if not (progress and total):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="NRPT log Z", leave=False, file=sys.stderr)


def _estimate_log_z(model, key, *, use_exact, cross_check, progress, **nrpt) -> tuple:
    """(log Z dict, NRPT cross-check of an exact log Z or None, last NRPT report or None)."""
    repeats = nrpt["repeats"]
    n_runs = (0 if use_exact else repeats) + (repeats if use_exact and cross_check else 0)
    bar = _nrpt_bar(n_runs, progress)
    check = report = None
    try:
        if use_exact:
            log_z: dict[str, Any] = {"value": float(exact.log_partition(model)), "stderr": 0.0}
            log_z["method"] = "exact"
            if cross_check:
                check, report = nrpt_log_partition(model, key, **nrpt, progress=bar)
                check["z_score"] = (check["value"] - log_z["value"]) / max(check["stderr"], 1e-12)
        else:
            log_z, report = nrpt_log_partition(model, key, **nrpt, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    return log_z, check, report


def _ais_log_z(model, key, primary: dict, settings: dict) -> dict:
    """AIS's log Z with its error bar, ESS and z-score against the primary log Z."""
    from .annealing import ais

    est = ais(model, key, **settings)
    z = (est.log_z - primary["value"]) / max(math.hypot(est.stderr, primary["stderr"]), 1e-12)
    against = "exact" if primary["method"] == "exact" else primary["method"]
    return {"value": est.log_z, "stderr": est.stderr, "method": "ais", "ess": est.ess,
            "n_betas": est.n_betas, "n_runs": len(est.log_weights), "z_score": z,
            "z_against": against}  # fmt: skip


def _log_likelihood_metrics(model, log_z: dict, splits) -> dict:
    """`{split}_log_likelihood` for each non-empty (split, data): mean, both error bars, n."""
    metrics = {}
    for split, x in splits:
        if x is None or len(x) == 0:
            continue
        value, data_stderr = _mean_and_stderr(log_likelihoods(model, x, log_z["value"]))
        metrics[f"{split}_log_likelihood"] = {
            "value": value,
            "stderr": log_z["stderr"],
            "data_stderr": data_stderr,
            "method": log_z["method"],
            "n": int(len(x)),
        }
    return metrics


def _test_diagnostics(model, test) -> dict:
    """Pseudo-log-likelihood (non-categorical models) and reconstruction error (RBMs) on `test`."""
    metrics = {}
    if test is None or not len(test):
        return metrics
    if not _categorical(model):
        from .training.metrics import pseudo_log_likelihood

        pll = pseudo_log_likelihood(model, test)
        metrics["test_pseudo_log_likelihood"] = {"value": float(pll), "n": int(len(test))}
    if hasattr(model, "hidden_logits"):
        from .training.metrics import reconstruction_error

        metrics["test_reconstruction_error"] = {"value": reconstruction_error(model, test)}
    return metrics


def _categorical(model) -> bool:
    kinds, _ = model.variable_kinds()
    return bool(np.any(kinds == 2))


@dataclasses.dataclass
class RunResult:
    """What `train` returns."""

    model: EnergyModel
    path: Path
    history: dict
    metrics: dict
    metadata: dict
    data: RunData
    report: object = None


def metadata_for(
    cfg, data: RunData, *, command: str | None, history, metrics, seconds, steps, selection=None
):
    """The metadata dict stored with a trained model (`hn.training.checkpoint.read_info`).

    `selection` (epochs run, early stop, best epoch restored) goes under
    `training.selection` when the run used patience or keep_best.
    """
    from . import __version__

    meta = {
        "name": cfg.name,
        "description": cfg.description,
        "data": data.metadata(),
        "config": config_lib.to_dict(cfg),
        "command": command or f"hamon-nnx train configs/{cfg.name}.yaml",
        "training": {
            "seconds": round(float(seconds), 2),
            "steps": int(steps),
            "epochs": int(cfg.training.epochs),
            "history": {k: [round(float(v), 6) for v in vals] for k, vals in history.items()},
        },
        "metrics": metrics,
        "environment": {
            "hamon_nnx": __version__,
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
    }
    if selection is not None:
        meta["training"]["selection"] = selection
    return meta


def train(
    cfg: config_lib.RunConfig,
    *,
    output=None,
    command: str | None = None,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = True,
    log=None,
) -> RunResult:
    """Train, evaluate and save the run a config describes.

    Args:
        cfg: a validated `RunConfig`.
        output: the run directory (default `cfg.output_dir()`); the model goes
            to `output/model`, training checkpoints to `output/training`.
        command: the command line to record (default `hamon-nnx train configs/NAME.yaml`).
        progress: progress bars.
        resume: continue from the latest training checkpoint in `output/training`;
            otherwise an existing `output/training` is cleared first.
        overwrite: replace an existing `output/model`.
        log: callable taking one line of text (default: print to stderr).

    Returns:
        RunResult with the trained model, its checkpoint path, history and metrics.
    """
    from .core import distributed
    from .training import checkpoint

    writer = distributed.is_writer()  # over several processes, process 0 logs and clears
    log = log or (lambda line: print(line, file=sys.stderr, flush=True) if writer else None)
    out = Path(output) if output is not None else cfg.output_dir()
    model_path = out / MODEL_DIR
    if model_path.exists() and not overwrite:
        raise FileExistsError(f"{model_path} exists; pass overwrite=True (or --overwrite)")
    data = load_data(cfg)
    model = build_model(cfg, data)
    if writer and not resume and (out / TRAINING_DIR).is_dir():
        # a fresh run: stale checkpoints of an earlier run would shadow this run's steps
        shutil.rmtree(out / TRAINING_DIR)
    distributed.barrier(f"hamon_nnx.runs.train {out}")
    trainer = build_trainer(
        cfg, model, checkpoint_dir=out / TRAINING_DIR, progress=progress,
        steps_per_epoch=steps_per_epoch(cfg, data),
    )  # fmt: skip
    log(_training_line(cfg, model, data))
    selecting = cfg.training.patience is not None or cfg.training.keep_best
    if selecting and not data.has_validation:
        log(
            f"[{cfg.name}] warning: {data.name} has no validation split; model selection "
            "(patience, keep_best) evaluates on the test set, so its test metrics are optimistic"
        )
    history, seconds = _fit(cfg, trainer, data, resume)
    log(f"[{cfg.name}] trained in {seconds:.1f} s ({trainer.step} steps); evaluating")
    selection = _model_selection(cfg, trainer, log) if selecting else None
    metrics, report = _evaluate_run(cfg, model, data, progress)
    metadata = metadata_for(
        cfg, data, command=command, history=history, metrics=metrics, seconds=seconds,
        steps=trainer.step, selection=selection,
    )  # fmt: skip
    path = checkpoint.save(model, model_path, metadata=metadata, overwrite=overwrite)
    for line in format_metrics(metrics):
        log(f"[{cfg.name}] {line}")
    log(f"[{cfg.name}] saved {path}")
    return RunResult(model, path, history, metrics, metadata, data, report)


def _model_selection(cfg: config_lib.RunConfig, trainer, log) -> dict:
    """After `fit`: restore the best model (keep_best); what selection did, for the metadata."""
    out = {"epochs_run": int(trainer.epoch), "stopped_early": bool(trainer.stopped)}
    if trainer.stopped:
        log(f"[{cfg.name}] early stopping after epoch {trainer.epoch} (patience "
            f"{cfg.training.patience})")  # fmt: skip
    if cfg.training.keep_best:
        out["best_epoch"] = int(trainer.restore_best())
        log(f"[{cfg.name}] restored the best model, of epoch {out['best_epoch']}")
    return out


def _training_line(cfg: config_lib.RunConfig, model, data: RunData) -> str:
    """The log line announcing a run: model, data sizes, epochs, batch, optimizer, negative phase."""
    t = cfg.training
    recipes = [f"{t.schedule} schedule"] if t.schedule != "none" else []
    recipes += [f"warm-up {t.warmup_steps} steps"] if t.warmup_steps else []
    recipes += [f"clip {t.clip_norm:g}"] if t.clip_norm is not None else []
    recipes += [f"{k} {getattr(t, k):g}" for k in ("l1", "l2") if getattr(t, k)]
    recipes += ["centered"] if t.centered else []
    recipes += [f"patience {t.patience}"] if t.patience is not None else []
    recipes += ["keep best"] if t.keep_best else []
    return (
        f"[{cfg.name}] training {type(model).__name__} ({model.n_variables} variables) on "
        f"{data.name} ({len(data.train)} train / {len(data.test)} test): {t.epochs} epochs, "
        f"batch {t.batch_size}, {t.optimizer} lr {t.learning_rate:g}"
        + "".join(f", {r}" for r in recipes)
        + f", {build_negative(t.negative)!r}"
    )


def _fit(cfg: config_lib.RunConfig, trainer, data: RunData, resume: bool) -> tuple[dict, float]:
    """Run `trainer.fit` as the config's training section says: (history, seconds taken)."""
    t = cfg.training
    start = time.perf_counter()
    history = trainer.fit(
        data.train,
        epochs=t.epochs,
        batch_size=min(t.batch_size, len(data.train)),
        eval_data=data.selection() if t.evaluates else None,
        resume=resume,
    )
    return history, time.perf_counter() - start


def _evaluate_run(cfg: config_lib.RunConfig, model, data: RunData, progress: bool) -> tuple:
    """`evaluate` a trained model on its run's data as the config's evaluation section says."""
    e = cfg.evaluation
    return evaluate(
        model,
        data.test,
        data.train,
        key=jax.random.key(e.seed),
        method=e.log_likelihood,
        n_samples=e.n_samples,
        max_rounds=e.max_rounds,
        repeats=e.repeats,
        cross_check=e.cross_check,
        progress=progress,
        ais={"n_runs": e.ais_runs, "n_betas": e.ais_betas} if e.ais_runs else None,
    )


def format_metrics(metrics: dict) -> list[str]:
    """Readable lines, one per metric, with error bars."""
    lines = []
    for name, m in metrics.items():
        if not isinstance(m, dict) or "value" not in m:
            continue
        text = f"{name} = {m['value']:.4f}"
        if m.get("method") == "exact" and "stderr" in m:
            text += " (exact)"
        elif "stderr" in m:
            text += f" +- {m['stderr']:.4f} ({m.get('method', 'mc')})"
        if "data_stderr" in m:
            text += f"; spread over {m.get('n', '?')} vectors +- {m['data_stderr']:.4f}"
        if "z_score" in m:
            text += f"; z = {m['z_score']:+.2f} against {m.get('z_against', 'exact')}"
        lines.append(text)
    return lines


def command_line(argv) -> str:
    """The shell-quoted `hamon-nnx ...` command for the arguments `argv`."""
    return "hamon-nnx " + " ".join(shlex.quote(str(a)) for a in argv)
