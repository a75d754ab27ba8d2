"""Run configs: YAML files validated into dataclasses.

A run config describes one training run end to end: the data, the model,
the optimizer and negative phase, the evaluation and where the result goes.
`load_config(path)` reads a YAML file; `from_dict(mapping)` validates a
mapping. Every key is checked: an unknown or misspelt key is an error that
names its place and suggests the closest known key, a value of the wrong
type or out of range is an error that names the key and the allowed range.
Missing keys take the defaults below. `hamon-nnx train CONFIG` runs one
(`hamon_nnx.runs.train`).

Schema (with defaults)::

    name: my-run                 # required; letters, digits, '-', '_', '.'
    description: ""
    output: runs/{name}          # the checkpoint directory ({name} is filled in)
    data:
      name: digits               # digits | digits_quantized | bars_and_stripes |
                                 # fashion_mnist | fashion_mnist_quantized | mnist | mnist_quantized
      threshold: null            # binary data: pixel >= threshold -> 1; digits (0, 16],
                                 # default 8; *mnist pixel / 255 in (0, 1], default 0.5
      binarize: threshold        # *mnist: threshold | stochastic (Bernoulli(p / 255), seed split_seed)
      levels: 4                  # *_quantized: grey levels (digits 2..17, *mnist 2..127)
      size: 4                    # bars_and_stripes: image side (2..6)
      test_fraction: 0.2         # digits*: held-out fraction, [0, 1)
      split_seed: 0              # digits*: seed of the train/test split
      validation: 10000          # *mnist: training images held out for validation
      n_train: 0                 # keep only the first n training images (0: all)
      path: ""                   # *mnist: directory of the IDX files (searched first)
      encoding: auto             # auto | binary | spins (spins: 0/1 -> -1/+1)
    model:
      kind: rbm                  # rbm | categorical_rbm | ising | potts
      n_hidden: 16               # rbm, categorical_rbm
      init_scale: 0.01           # rbm: std of the initial weights
      graph: dense               # ising | potts: dense (all pairs) | neighbourhood
      radius: 1                  # neighbourhood: pixels within this Chebyshev distance
      init_from_data: true       # biases/fields from the data's frequencies
      seed: 0                    # weight initialisation
    training:
      optimizer: adam            # adam | sgd
      learning_rate: 0.001       # (0, 10]
      epochs: 20
      batch_size: 64
      seed: 0                    # data order and sampling
      schedule: none             # none | cosine | linear | exponential | warmup_cosine
                                 # (decaying ones end at epochs x steps per epoch)
      warmup_steps: 0            # steps of linear warm-up from 0 (warmup_cosine: >= 1)
      clip_norm: null            # clip the gradient's global norm to this (> 0)
      l1: 0.0                    # L1 penalty on the weights (not biases), [0, 1]
      l2: 0.0                    # L2 weight decay on the weights, decoupled, [0, 1]
      centered: false            # rbm, categorical_rbm: centered gradient (Melchior et al. 2016)
      eval_every: 0              # epochs between Trainer metrics (0: loss only; auto:
                                 # the Trainer's geometric schedule)
      patience: null             # early stopping: evaluations without a new best (>= 1)
      keep_best: false           # restore the best model (validation log-likelihood)
      checkpoint_every: 1000     # steps between training checkpoints
      negative:
        kind: pcd                # cd | pcd | nrpt | exact
        k: 1                     # cd, pcd: sweeps per step
        n_chains: 256            # pcd: persistent chains; nrpt: ladder size
        rounds: 16               # nrpt: rounds (negatives) per step
        n_explore: 1             # nrpt
        adapt_every: 50          # nrpt: steps between ladder adaptations
    evaluation:
      log_likelihood: auto       # auto | exact | nrpt | none
      n_samples: 2000            # nrpt: sampling rounds after tuning
      max_rounds: 512            # nrpt: longest tuning adaptation
      repeats: 1                 # nrpt: independent estimates (spread checks the error bar)
      cross_check: false         # exact models: also estimate log Z by NRPT and compare
      ais_runs: 0                # also estimate log Z by AIS with this many runs (0: no AIS)
      ais_betas: 1000            # AIS: points of the annealing grid
      seed: 0

Example:
    >>> from hamon_nnx import config
    >>> cfg = config.from_dict({"name": "toy", "training": {"epochs": 3}})
    >>> cfg.training.epochs, cfg.model.kind, str(cfg.output_dir())
    (3, 'rbm', 'runs/toy')
    >>> config.from_dict({"name": "toy", "training": {"learning_rat": 0.1}})
    Traceback (most recent call last):
    ...
    hamon_nnx.config.ConfigError: training.learning_rat: unknown key; did you mean 'learning_rate'?
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import typing
from pathlib import Path

__all__ = [
    "ConfigError",
    "DataConfig",
    "EvaluationConfig",
    "ModelConfig",
    "NegativeConfig",
    "RunConfig",
    "TrainingConfig",
    "from_dict",
    "load_config",
    "to_dict",
]


class ConfigError(ValueError):
    """A run config that is malformed: unknown key, wrong type or value out of range."""


def _field(default, *, choices=None, low=None, high=None, low_open=False, doc="") -> typing.Any:
    """A dataclass field with validation metadata (allowed choices, closed/open range)."""
    meta = {"choices": choices, "low": low, "high": high, "low_open": low_open, "doc": doc}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        factory = default if callable(default) else (lambda d=default: d)
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


DATA_SETS = (
    "digits",
    "digits_quantized",
    "bars_and_stripes",
    "fashion_mnist",
    "fashion_mnist_quantized",
    "mnist",
    "mnist_quantized",
)
MODEL_KINDS = ("rbm", "categorical_rbm", "ising", "potts")
SCHEDULES = ("none", "cosine", "linear", "exponential", "warmup_cosine")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data to train on and how to encode it."""

    name: str = _field("digits", choices=DATA_SETS)
    threshold: float = _field(None, low=0.0, high=16.0, low_open=True)  # None: the set's default
    binarize: str = _field("threshold", choices=("threshold", "stochastic"))
    levels: int = _field(4, low=2, high=127)
    size: int = _field(4, low=2, high=6)
    test_fraction: float = _field(0.2, low=0.0, high=0.95)
    split_seed: int = _field(0, low=0)
    validation: int = _field(10000, low=0, high=59999)
    n_train: int = _field(0, low=0)
    path: str = _field("")
    encoding: str = _field("auto", choices=("auto", "binary", "spins"))

    @property
    def quantized(self) -> bool:
        """Categorical data with `levels` grey levels (the *_quantized sets)."""
        return self.name.endswith("_quantized")

    @property
    def idx(self) -> bool:
        """An MNIST-like set read from IDX files (mnist, fashion_mnist and quantized)."""
        return self.name.startswith(("mnist", "fashion_mnist"))

    def __post_init__(self):
        if self.threshold is None:  # the data set's default cut
            object.__setattr__(self, "threshold", 0.5 if self.idx else 8.0)

    def binary_threshold(self) -> float:
        """The binarization cut (default: 8 for the digits, 0.5 for *mnist)."""
        return self.threshold


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The model family and its structure."""

    kind: str = _field("rbm", choices=MODEL_KINDS)
    n_hidden: int = _field(16, low=1, high=4096)
    init_scale: float = _field(0.01, low=0.0, high=10.0)
    graph: str = _field("dense", choices=("dense", "neighbourhood"))
    radius: int = _field(1, low=1, high=16)
    init_from_data: bool = _field(True)
    seed: int = _field(0, low=0)


@dataclasses.dataclass(frozen=True)
class NegativeConfig:
    """The negative phase of the contrastive loss."""

    kind: str = _field("pcd", choices=("cd", "pcd", "nrpt", "exact"))
    k: int = _field(1, low=1, high=1000)
    n_chains: int = _field(256, low=2, high=65536)
    rounds: int = _field(16, low=1, high=4096)
    n_explore: int = _field(1, low=1, high=1000)
    adapt_every: int = _field(50, low=0)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimizer, schedule and negative phase."""

    optimizer: str = _field("adam", choices=("adam", "sgd"))
    learning_rate: float = _field(1e-3, low=0.0, high=10.0, low_open=True)
    epochs: int = _field(20, low=1, high=100000)
    batch_size: int = _field(64, low=1)
    seed: int = _field(0, low=0)
    schedule: str = _field("none", choices=SCHEDULES)
    warmup_steps: int = _field(0, low=0)
    clip_norm: float = _field(None, low=0.0, low_open=True)  # None: no clipping
    l1: float = _field(0.0, low=0.0, high=1.0)
    l2: float = _field(0.0, low=0.0, high=1.0)
    centered: bool = _field(False)
    eval_every: int | str = _field(0, low=0, choices=("auto",))  # epochs, or "auto"
    patience: int = _field(None, low=1)  # None: no early stopping
    keep_best: bool = _field(False)
    checkpoint_every: int = _field(1000, low=1)
    negative: NegativeConfig = _field(NegativeConfig)

    @property
    def evaluates(self) -> bool:
        """Whether the Trainer evaluates during training (eval_every not 0)."""
        return self.eval_every != 0


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """How the trained model is measured."""

    log_likelihood: str = _field("auto", choices=("auto", "exact", "nrpt", "none"))
    n_samples: int = _field(2000, low=16, high=10**7)
    max_rounds: int = _field(512, low=32, high=10**6)
    repeats: int = _field(1, low=1, high=100)
    cross_check: bool = _field(False)
    ais_runs: int = _field(0, low=0, high=10**6)
    ais_betas: int = _field(1000, low=2, high=10**7)
    seed: int = _field(0, low=0)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run: data, model, training, evaluation, output."""

    name: str = _field(None)
    description: str = _field("")
    output: str = _field("runs/{name}")
    data: DataConfig = _field(DataConfig)
    model: ModelConfig = _field(ModelConfig)
    training: TrainingConfig = _field(TrainingConfig)
    evaluation: EvaluationConfig = _field(EvaluationConfig)

    def output_dir(self, base: str | os.PathLike | None = None) -> Path:
        """The checkpoint directory: `output` with {name} filled in, relative to `base`."""
        out = Path(self.output.replace("{name}", self.name)).expanduser()
        if base is not None and not out.is_absolute():
            out = Path(base) / out
        return out


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _type_name(tp) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _check_value(where: str, value, tp, meta: dict):
    if typing.get_args(tp):  # int | str: a number in range or a string from `choices`
        if isinstance(value, str):
            return _check_value(where, value, str, {**meta, "low": None, "high": None})
        number = next(t for t in typing.get_args(tp) if t is not str)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            words = " or ".join(map(repr, meta.get("choices") or ()))
            raise ConfigError(f"{where}: must be {_type_name(number)} or {words}, got {value!r}")
        return _check_value(where, value, number, {**meta, "choices": None})
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{where}: must be an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be finite, got {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}{hint}")
    low, high = meta.get("low"), meta.get("high")
    if low is not None or high is not None:
        too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
        too_high = high is not None and value > high
        if too_low or too_high:
            left = "(" if meta.get("low_open") else "["
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            raise ConfigError(f"{where}: {value!r} is out of range; allowed {left}{lo}, {hi}]")
    return value


def _build(cls, mapping, prefix: str):
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        where = prefix.rstrip(".") or "config"
        raise ConfigError(f"{where}: must be a mapping of keys to values, got {mapping!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in mapping:
        if key not in fields:
            where = f"{prefix}{key}"
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
            )
            raise ConfigError(f"{where}: unknown key{hint}")
    values = {}
    for name, f in fields.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, mapping.get(name), f"{prefix}{name}.")
        elif name in mapping and mapping[name] is None and f.default is None:
            continue  # an optional key left unset (written back as null by to_dict)
        elif name in mapping:
            values[name] = _check_value(f"{prefix}{name}", mapping[name], tp, dict(f.metadata))
    return cls(**values)


def from_dict(mapping: dict) -> RunConfig:
    """Validate a mapping (e.g. parsed YAML) into a `RunConfig`.

    Raises:
        ConfigError: an unknown key (with the closest known one), a wrong
            type, a value out of range or a missing/invalid `name`.

    Example:
        >>> from hamon_nnx import config
        >>> config.from_dict({"name": "x", "training": {"epochs": 0}})
        Traceback (most recent call last):
        ...
        hamon_nnx.config.ConfigError: training.epochs: 0 is out of range; allowed [1, 100000]
    """
    cfg = _build(RunConfig, mapping, "")
    if cfg.name is None:
        raise ConfigError("name: missing; every run config needs a name, e.g. name: my-run")
    if not isinstance(cfg.name, str) or not _NAME.match(cfg.name):
        raise ConfigError(
            f"name: {cfg.name!r} must start with a letter or digit and hold only letters, "
            "digits, '.', '-' and '_'"
        )
    _check_consistency(cfg)
    return cfg


def _check_consistency(cfg: RunConfig) -> None:
    """Combinations that each key alone cannot reject."""
    kind, data, neg = cfg.model.kind, cfg.data, cfg.training.negative
    categorical_model = kind in ("potts", "categorical_rbm")
    if categorical_model and not data.quantized:
        raise ConfigError(
            f"model.kind: a {kind} model needs categorical data (data.name: digits_quantized, "
            f"fashion_mnist_quantized or mnist_quantized), got data.name: {data.name}"
        )
    if not categorical_model and data.quantized:
        raise ConfigError(
            f"data.name: {data.name} has {data.levels} levels; model.kind {kind} needs "
            "binary data (use model.kind: potts or categorical_rbm)"
        )
    if data.name == "digits_quantized" and data.levels > 17:
        raise ConfigError(f"data.levels: the digits have 17 grey levels, got {data.levels}")
    if data.idx and data.threshold > 1:
        raise ConfigError(
            f"data.threshold: {data.name} pixels are scaled to p / 255; the threshold must be "
            f"in (0, 1], got {data.threshold:g}"
        )
    if kind == "ising" and data.encoding == "binary":
        raise ConfigError("data.encoding: an ising model takes spins; use encoding: spins or auto")
    if kind == "rbm" and data.encoding == "spins":
        raise ConfigError("data.encoding: an rbm takes binary 0/1 units; use binary or auto")
    _check_training(cfg)
    from . import exact  # jax and flax only once a config is checked

    most = exact.MAX_ENUMERATION_STATES.bit_length() - 1  # hidden units exact log Z can sum
    rbm = kind in ("rbm", "categorical_rbm")
    if neg.kind == "exact" and rbm and cfg.model.n_hidden > most:
        raise ConfigError(
            f"training.negative.kind: exact enumerates 2^n_hidden states; model.n_hidden "
            f"{cfg.model.n_hidden} > {most} = log2(MAX_ENUMERATION_STATES) (use pcd or nrpt)"
        )
    if cfg.evaluation.log_likelihood == "exact" and rbm and cfg.model.n_hidden > most:
        raise ConfigError(
            f"evaluation.log_likelihood: exact needs model.n_hidden <= {most} "
            f"(MAX_ENUMERATION_STATES), got {cfg.model.n_hidden} (use nrpt or auto)"
        )


def _check_training(cfg: RunConfig) -> None:
    """Training recipes that need something else of the config."""
    t, kind = cfg.training, cfg.model.kind
    if t.schedule == "warmup_cosine" and t.warmup_steps == 0:
        raise ConfigError(
            "training.warmup_steps: schedule warmup_cosine needs warmup_steps >= 1 (or use cosine)"
        )
    if t.centered and kind not in ("rbm", "categorical_rbm"):
        raise ConfigError(
            f"training.centered: the centered gradient is an RBM's (model.kind rbm or "
            f"categorical_rbm), got model.kind {kind}"
        )
    if t.centered and t.negative.kind == "exact":
        raise ConfigError(
            "training.centered: negative.kind exact takes the exact gradient, which is not "
            "centered; use cd, pcd or nrpt"
        )
    for key in ("patience", "keep_best"):
        if getattr(t, key) in (None, False):
            continue
        if not t.evaluates:
            raise ConfigError(
                f"training.{key}: model selection compares evaluations; set training.eval_every "
                "(an integer >= 1 or auto)"
            )
        if t.eval_every != "auto" and typing.cast(int, t.eval_every) > t.epochs:
            raise ConfigError(
                f"training.{key}: eval_every {t.eval_every} > epochs {t.epochs} leaves no "
                "evaluation to select from"
            )


def load_config(path) -> RunConfig:
    """Read and validate a YAML run config.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: invalid YAML or an invalid config (the message names the file).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    try:
        mapping = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {first}") from err
    try:
        return from_dict(mapping)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def to_dict(cfg) -> dict:
    """The config as plain nested dicts (JSON/YAML-serialisable)."""
    return dataclasses.asdict(cfg)
