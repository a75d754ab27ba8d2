"""The model zoo: pretrained models shipped with the package, and named spin models.

* `names()`: every name (`list()` is its deprecated old name).
* `load(name, **kwargs)`: a ready nnx model. Pretrained models are read
  from the checkpoints under `hamon_nnx/zoo/pretrained/` after their
  checksums are verified (a damaged file raises `ZooError`); named physics
  models take their constructor's keyword arguments (`size`, `beta`, ...).
* `info(name)`: a dict describing the entry: for pretrained models the
  data, the training config and the command that reproduces it, the
  training history, the metrics with error bars and the checksum; for
  physics models the Hamiltonian, the parameters and the known critical
  point.
* `data(name)`: the train/test data of a pretrained model, encoded as it
  was trained (spins for Ising models).

Every pretrained model was trained by `hamon-nnx train configs/NAME.yaml`
(`info(name)["command"]`) with `hn.Trainer`; rerunning it writes
`runs/NAME/model`.

Example:
    >>> import hamon_nnx as hn
    >>> "rbm-digits-16" in hn.zoo.names() and "ising-2d" in hn.zoo.names()
    True
    >>> rbm = hn.zoo.load("rbm-digits-16")
    >>> rbm.n_visible, rbm.n_hidden
    (64, 16)
    >>> hn.zoo.info("rbm-digits-16")["metrics"]["test_log_likelihood"]["method"]
    'exact'
    >>> round(hn.zoo.info("ising-2d")["critical_beta"], 6)
    0.440687
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import shutil
import warnings
from pathlib import Path

from ..training import checkpoint as _checkpoint
from . import physics as physics
from .physics import BetaScan as BetaScan
from .physics import beta_scan as beta_scan
from .physics import edwards_anderson as edwards_anderson
from .physics import ising_2d as ising_2d
from .physics import ising_3d as ising_3d
from .physics import order_parameter as order_parameter
from .physics import potts_2d as potts_2d
from .physics import potts_2d_critical_beta as potts_2d_critical_beta
from .physics import sherrington_kirkpatrick as sherrington_kirkpatrick

ZOO_DIR = Path(__file__).resolve().parent
INDEX_FILE = "index.json"
PRETRAINED_DIR = "pretrained"


class ZooError(_checkpoint.CheckpointError):
    """A shipped zoo checkpoint that is missing or damaged (checksum mismatch)."""


# -- physics entries ------------------------------------------------------------
_PHYSICS: dict[str, dict] = {
    "ising-2d": {
        "constructor": ising_2d,
        "description": "ferromagnetic Ising model on a periodic L x L square lattice",
        "hamiltonian": "E = -beta * sum_<ij> s_i s_j - beta * h * sum_i s_i, s = +-1",
        "critical_beta": physics.ISING_2D_CRITICAL_BETA,
        "critical_point": "beta_c = ln(1 + sqrt 2) / 2 (Onsager 1944); continuous transition",
        "exact": "finite periodic lattices: hn.exact.ising_lattice_log_partition (Kaufman "
        "1949); infinite lattice: hn.exact.onsager_energy_per_spin",
    },
    "ising-3d": {
        "constructor": ising_3d,
        "description": "ferromagnetic Ising model on a periodic L^3 simple cubic lattice",
        "hamiltonian": "E = -beta * sum_<ij> s_i s_j - beta * h * sum_i s_i, s = +-1",
        "critical_beta": physics.ISING_3D_CRITICAL_BETA,
        "critical_point": "beta_c = 0.221654626(5) (Ferrenberg, Xu & Landau 2018); continuous",
    },
    "spin-glass-ea": {
        "constructor": edwards_anderson,
        "description": "Edwards-Anderson +-J spin glass on a periodic L^dims lattice (dims 2 "
        "or 3), couplings +-1 drawn from `seed`",
        "hamiltonian": "E = -beta * sum_<ij> J_ij s_i s_j, J_ij = +-1",
        "critical_beta": physics.EA_3D_CRITICAL_BETA,
        "critical_point": "dims = 3: T_c = 1.1019(29), beta_c = 0.9075 (Baity-Jesi et al. "
        "2013); dims = 2: no transition at T > 0",
    },
    "spin-glass-sk": {
        "constructor": sherrington_kirkpatrick,
        "description": "Sherrington-Kirkpatrick spin glass, fully connected, couplings "
        "N(0, 1/n) drawn from `seed`",
        "hamiltonian": "E = -beta * sum_{i<j} J_ij s_i s_j, J_ij ~ N(0, 1/n)",
        "critical_beta": physics.SK_CRITICAL_BETA,
        "critical_point": "beta_c = 1 for n -> infinity (Sherrington & Kirkpatrick 1975)",
    },
    "potts-2d": {
        "constructor": potts_2d,
        "description": "ferromagnetic q-state Potts model on a periodic L x L square lattice",
        "hamiltonian": "E = -beta * sum_<ij> delta(s_i, s_j), s = 0..q-1",
        "critical_beta": None,  # depends on q: filled in by info()
        "critical_point": "beta_c = ln(1 + sqrt q) (Baxter 1973); continuous for q <= 4, "
        "first order for q > 4",
    },
}


def _index() -> dict:
    file = ZOO_DIR / INDEX_FILE
    if not file.is_file():
        return {}
    return json.loads(file.read_text(encoding="utf-8")).get("models", {})


def names() -> list[str]:
    """Every zoo name: the pretrained models, then the named physics models.

    Example:
        >>> import hamon_nnx as hn
        >>> hn.zoo.names()[:2]
        ['categorical-rbm-fashion-mnist-4', 'ising-digits']
    """
    return sorted(_index()) + [*_PHYSICS]


def _unknown(name) -> ValueError:
    known = names()
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown zoo model {name!r}{hint} (known: {', '.join(known)})")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pretrained_path(name: str) -> tuple[Path, dict]:
    entry = _index()[name]
    return ZOO_DIR / entry["path"], entry


def verify(name: str) -> Path:
    """Check a pretrained model's files against the zoo index; return its directory.

    The index records the SHA-256 of the checkpoint's model.json and the
    state checksum `hn.save` computed (`state_sha256`); both are compared
    with the files on disk.

    Raises:
        ZooError: a missing or damaged file, naming it.
    """
    if name not in _index():
        raise _unknown(name)
    path, entry = _pretrained_path(name)
    fix = "; reinstall hamon-nnx (pip install --force-reinstall hamon-nnx)"
    model_json = path / _checkpoint.MODEL_FILE
    if not model_json.is_file():
        raise ZooError(f"zoo model {name!r} is missing: no {model_json}{fix}")
    if _sha256(model_json) != entry["model_json_sha256"]:
        raise ZooError(f"zoo model {name!r} is damaged: checksum mismatch in {model_json}{fix}")
    state = path / _checkpoint.STATE_DIR
    if not state.is_dir() or _checkpoint.state_checksum(state) != entry["state_sha256"]:
        raise ZooError(f"zoo model {name!r} is damaged: checksum mismatch in {state}/{fix}")
    return path


def load(name: str, **kwargs):
    """A ready model: a verified pretrained checkpoint, or a named physics model.

    Args:
        name: a name from `names()`.
        **kwargs: for physics models, their constructor's arguments (e.g.
            `size=32, beta="critical"`); pretrained models take none.

    Raises:
        ValueError: an unknown name (with the closest known one) or
            arguments given to a pretrained model.
        ZooError: a damaged or missing shipped checkpoint.

    Example:
        >>> import hamon_nnx as hn
        >>> hn.zoo.load("potts-2d", size=8, q=3, beta="critical").q
        3
    """
    if name in _PHYSICS:
        return _PHYSICS[name]["constructor"](**kwargs)
    if name not in _index():
        raise _unknown(name)
    if kwargs:
        raise ValueError(f"the pretrained zoo model {name!r} takes no arguments, got {kwargs}")
    path = verify(name)
    try:
        return _checkpoint.load(path, verify=False)  # verified against the index above
    except _checkpoint.CheckpointError as err:
        raise ZooError(f"zoo model {name!r} cannot be loaded: {err}") from err


def _physics_info(name: str, kwargs: dict) -> dict:
    import inspect

    entry = _PHYSICS[name]
    ctor = entry["constructor"]
    params = {
        k: p.default for k, p in inspect.signature(ctor).parameters.items() if k not in ("beta",)
    }
    unknown = set(kwargs) - set(params) - {"beta"}
    if unknown:
        raise ValueError(f"{name}: unknown parameters {sorted(unknown)}; known: {sorted(params)}")
    params.update({k: v for k, v in kwargs.items() if k != "beta"})
    critical = entry["critical_beta"]
    if name == "potts-2d":
        critical = physics.potts_2d_critical_beta(params["q"])
    if name == "spin-glass-ea" and params["dims"] == 2:
        critical = None
    return {
        "name": name,
        "kind": "physics",
        "description": entry["description"],
        "constructor": f"hamon_nnx.zoo.{ctor.__name__}",
        "parameters": params,
        "hamiltonian": entry["hamiltonian"],
        "critical_beta": critical,
        "critical_point": entry["critical_point"],
        **({"exact": entry["exact"]} if "exact" in entry else {}),
        "usage": f"hn.zoo.load({name!r}, beta='critical', ...)",
    }


def info(name: str, **kwargs) -> dict:
    """What a zoo entry is, as a JSON-serialisable dict (a fresh copy).

    Pretrained: name, kind "pretrained", description, data, config (the
    validated run config), command (reproduces it), config_file, training
    (seconds, steps, history), metrics (each with value and error bars:
    `stderr` the Monte-Carlo error, 0 when exact, `data_stderr` the spread
    over the data vectors), environment, model (its config), checksum
    (state_sha256), files and size_bytes.

    Physics: name, kind "physics", description, constructor, parameters
    (defaults, updated by `kwargs`), hamiltonian, critical_beta (None when
    there is no finite-temperature transition), critical_point (source).

    Example:
        >>> import hamon_nnx as hn
        >>> hn.zoo.info("potts-2d", q=2)["critical_beta"] == 2 * hn.zoo.info("ising-2d")["critical_beta"]
        True
    """
    if name in _PHYSICS:
        return _physics_info(name, kwargs)
    if name not in _index():
        raise _unknown(name)
    if kwargs:
        raise ValueError(f"the pretrained zoo model {name!r} takes no arguments, got {kwargs}")
    path, entry = _pretrained_path(name)
    saved = _checkpoint.read_info(path)
    meta = copy.deepcopy(saved["metadata"])
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {
        "name": name,
        "kind": "pretrained",
        "description": meta.get("description", ""),
        "data": meta.get("data", {}),
        "config": meta.get("config", {}),
        "command": meta.get("command", f"hamon-nnx train configs/{name}.yaml"),
        "config_file": meta.get("config_file", f"configs/{name}.yaml"),
        "training": meta.get("training", {}),
        "metrics": meta.get("metrics", {}),
        "environment": meta.get("environment", {}),
        "model": saved["config"]
        if len(json.dumps(saved["config"])) < 2000
        else {"class": saved["config"].get("class")},
        "checksum": entry["state_sha256"],
        "path": str(path),
        "size_bytes": sum(p.stat().st_size for p in files),
        "saved_at": saved.get("saved_at"),
    }


def data(name: str):
    """The train/test data a pretrained model was trained on (`hamon_nnx.runs.RunData`;
    for a DCA family's model, its alignment, `hn.dca.Alignment`).

    Needs scikit-learn for the digits.

    Example:
        >>> import hamon_nnx as hn
        >>> d = hn.zoo.data("ising-digits")
        >>> d.encoding, d.test.shape, int(d.test.min())
        ('spins', (359, 64), -1)
    """
    from .. import config as config_lib
    from .. import runs

    meta = info(name)
    if meta["data"].get("family"):  # a DCA family: its alignment, weighted as trained
        from ..dca import families, msa

        family, config = families.family(meta["data"]["family"]), meta["config"]
        return msa(family.alignment, family.alphabet, theta=config["theta"],
                   pseudocount=config["pseudocount"])  # fmt: skip
    return runs.load_data(config_lib.from_dict(meta["config"]))


def publish(model_path, name: str) -> Path:
    """Copy a trained model checkpoint into the package's zoo and record its checksums.

    Used by `hamon-nnx train CONFIG --publish` in a source checkout; writes
    `hamon_nnx/zoo/pretrained/NAME/` and updates `hamon_nnx/zoo/index.json`.
    """
    src = Path(model_path)
    saved = _checkpoint.read_info(src)  # raises on a non-checkpoint
    actual = _checkpoint.state_checksum(src / _checkpoint.STATE_DIR)
    if actual != saved["state_sha256"]:
        raise _checkpoint.CheckpointError(f"checkpoint {src} is damaged: checksum mismatch")
    rel = f"{PRETRAINED_DIR}/{name}"
    dest = ZOO_DIR / rel
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest)
    file = ZOO_DIR / INDEX_FILE
    index = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    models = index.get("models", {})
    models[name] = {
        "path": rel,
        "class": saved["config"]["class"],
        "state_sha256": saved["state_sha256"],
        "model_json_sha256": _sha256(dest / _checkpoint.MODEL_FILE),
    }
    index = {
        "format": "hamon_nnx.zoo_index",
        "format_version": 1,
        "models": dict(sorted(models.items())),
    }
    file.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return dest


def __getattr__(name: str):
    if name == "list":  # the old name shadowed the builtin inside the module
        warnings.warn("hn.zoo.list() is renamed hn.zoo.names()", DeprecationWarning, stacklevel=2)
        return names
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
