"""Save a model to a directory and load it back without constructing it first.

A checkpoint is a directory::

    path/
      model.json   format, versions, the model's config(), metadata, checksum
      state/       nnx.state(model) (Params and Structure) as an Orbax checkpoint

`load(path)` rebuilds the model from its config with
`hamon_nnx.models.base.model_from_config` (under `nnx.eval_shape`, so no
placeholder arrays are allocated), restores the state into it and returns
it: the caller needs neither the class nor the constructor arguments.

The state is written with Orbax's `StandardCheckpointer` as a pure dict
(`nnx.to_pure_dict(nnx.state(model))`: nested attribute names -> arrays), so
the files do not depend on how a Flax version represents `nnx.Variable`.

Checksum: SHA-256 over every file under `state/`, visited in sorted order
of their POSIX relative paths; for each file the digest takes the relative
path (UTF-8), a NUL byte, the size as 8 little-endian bytes, then the
content (`state_checksum`). It is checked before Orbax reads anything, so
any flipped, truncated, added or missing file gives the same clear error
instead of a decoder failure deep inside Orbax.

Writes are crash safe: a checkpoint is assembled in a hidden sibling
directory `.NAME.saving-*` and renamed into place. Overwriting swaps the
new directory with the old one atomically (Linux `renameat2(RENAME_EXCHANGE)`;
elsewhere two renames, the old checkpoint parked at `.NAME.old-*` in
between), so a crash never destroys the previous good checkpoint.

Example:
    >>> import tempfile, pathlib, hamon_nnx as hn
    >>> from hamon_nnx.training import checkpoint
    >>> model = hn.IsingModel.lattice((4, 4), coupling=0.4)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ising"
    >>> _ = checkpoint.save(model, path, metadata={"epoch": 3})
    >>> loaded = checkpoint.load(path)
    >>> type(loaded).__name__, round(float(loaded.coupling[...]), 6)
    ('LatticeIsing', 0.4)
    >>> checkpoint.read_info(path)["metadata"]
    {'epoch': 3}
"""

from __future__ import annotations

import ctypes
import datetime
import errno
import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from ..models.base import EnergyModel, model_from_config

FORMAT = "hamon_nnx.model_checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.json"
STATE_DIR = "state"

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "load",
    "read_info",
    "save",
    "state_checksum",
]


class CheckpointError(ValueError):
    """A checkpoint directory that is corrupted, damaged or of an unknown format."""


def _absolute(path) -> Path:
    """str or PathLike -> absolute Path (user and relative parts resolved, links kept)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def state_checksum(state_dir) -> str:
    """SHA-256 hex digest of the files under `state_dir` (see the module docstring)."""
    root = _absolute(state_dir)
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for rel, p in files:
        digest.update(rel.encode("utf-8") + b"\0")
        digest.update(p.stat().st_size.to_bytes(8, "little"))
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _orbax():
    import orbax.checkpoint as ocp

    return ocp


def _check_json(name: str, value) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be JSON-serialisable: {err}") from err


def _shapes(state) -> object:
    return jax.tree.map(lambda x: (tuple(x.shape), np.dtype(x.dtype)), state)


def _abstract(config: dict):
    """(graphdef, abstract nnx.State) of the model the config describes."""
    abstract_model = nnx.eval_shape(lambda: model_from_config(config))
    return nnx.split(abstract_model)


def _leaves(tree) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{"a/b": (shape, dtype)} for the array leaves of a (metadata) tree."""

    def name(entry) -> str:
        for attr in ("key", "idx", "name"):
            if hasattr(entry, attr):
                return str(getattr(entry, attr))
        return str(entry)

    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {
        "/".join(name(e) for e in path): (tuple(leaf.shape), np.dtype(leaf.dtype))
        for path, leaf in flat
    }


def _check_fits(saved: dict, expected: dict, path: Path) -> None:
    """Raise CheckpointError naming the first variable the config and the state disagree on."""
    for key in sorted(set(saved) | set(expected)):
        if saved.get(key) != expected.get(key):
            have = saved.get(key, "missing")
            want = expected.get(key, "not in the model")
            raise CheckpointError(
                f"corrupted checkpoint: the state in {path} does not fit its model config: "
                f"variable {key!r} is {have} in the state, {want} in the model"
            )


def _dumps(info: dict) -> str:
    """One top-level key per line, values compact (edge lists stay one line)."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in info.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # pragma: no cover - old glibc, musl
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False  # filesystem or kernel without RENAME_EXCHANGE
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _replace(new: Path, path: Path) -> None:
    """Put directory `new` at `path`, whose old content is discarded only once `new` is there."""
    if not path.exists():
        try:
            os.rename(new, path)
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise FileExistsError(f"{path} appeared while the checkpoint was saved") from err
            raise
        return
    if _exchange(new, path):
        shutil.rmtree(new)  # `new` now holds the old checkpoint
        return
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(path, old)
    try:
        os.rename(new, path)  # a crash before this line leaves the old checkpoint at `old`
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _checked_metadata_and_config(model: EnergyModel, metadata) -> tuple[dict, dict]:
    """(metadata, config) checked JSON-serialisable, config as `load` will read it back."""
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    _check_json("metadata", metadata)
    config = model.config()
    _check_json(f"{type(model).__name__}.config()", config)
    return metadata, json.loads(json.dumps(config))  # exactly what load() will see


def _checked_state(model: EnergyModel, config: dict):
    """The model's nnx.State, once `config` is known to rebuild a model of the same structure."""
    graphdef, state = nnx.split(model)
    try:
        abstract_graphdef, abstract_state = _abstract(config)
    except Exception as err:
        raise ValueError(
            f"{type(model).__name__}.config() does not rebuild the model: {err}"
        ) from err
    if abstract_graphdef != graphdef or _shapes(abstract_state) != _shapes(state):
        raise ValueError(
            f"{type(model).__name__}.config() rebuilds a model of another structure "
            "(graphdef or parameter shapes differ); fix its config()/from_config()"
        )
    return state


def _check_target(path: Path, overwrite: bool) -> None:
    """Raise FileExistsError unless `save` may put a checkpoint at `path`."""
    if path.is_file() or (path.is_symlink() and not path.is_dir()):
        raise FileExistsError(f"{path} is a file, not a checkpoint directory; not replacing it")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"checkpoint {path} already exists; pass overwrite=True to replace it"
            )
        if not (path / MODEL_FILE).is_file():
            raise FileExistsError(
                f"{path} is a non-empty directory without {MODEL_FILE}, not a hamon-nnx "
                "checkpoint; refusing to replace it"
            )


def _info(ocp, config: dict, metadata: dict, state_dir: Path) -> dict:
    """The content of model.json for the state written at `state_dir`."""
    from ..version import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hamon_nnx_version": __version__,
        "orbax_checkpoint_version": getattr(ocp, "__version__", "unknown"),
        "saved_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": config,
        "metadata": metadata,
        "state_sha256": state_checksum(state_dir),
    }


def _write(tmp: Path, state, config: dict, metadata: dict) -> None:
    """Write the state and model.json into directory `tmp` and fsync them."""
    ocp = _orbax()
    # over several processes only this one (process 0) writes: the others wait in `save`
    only_me = ocp.options.MultiprocessingOptions(
        primary_host=jax.process_index(), active_processes={jax.process_index()}
    )
    with ocp.StandardCheckpointer(multiprocessing_options=only_me) as checkpointer:
        checkpointer.save(tmp / STATE_DIR, nnx.to_pure_dict(state))
        checkpointer.wait_until_finished()
    info = _info(ocp, config, metadata, tmp / STATE_DIR)
    with open(tmp / MODEL_FILE, "w", encoding="utf-8") as f:
        f.write(_dumps(info))
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)


def save(
    model: EnergyModel, path, *, metadata: dict | None = None, overwrite: bool = False
) -> Path:
    """Save `model` (all its variables) and its config as a checkpoint directory.

    Args:
        model: a hamon-nnx model that implements `config()`.
        path: the checkpoint directory (str or PathLike; relative paths are
            made absolute). Missing parents are created.
        metadata: JSON-serialisable dict stored in model.json (`read_info`).
        overwrite: replace an existing checkpoint at `path`. Otherwise an
            existing non-empty `path` raises FileExistsError.

    Returns:
        The absolute checkpoint path.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False, or it is a
            file or a non-empty directory that is not a checkpoint (never
            replaced, even with `overwrite=True`).
        TypeError: not an EnergyModel, or metadata/config not JSON-serialisable.
        ValueError: the model's config does not rebuild a model of the same
            structure (a bug in a custom model's `config`/`from_config`).
    """
    if not isinstance(model, EnergyModel):
        raise TypeError(f"model must be a hamon-nnx EnergyModel, got {type(model).__name__}")
    path = _absolute(path)
    metadata, config = _checked_metadata_and_config(model, metadata)
    state = _checked_state(model, config)
    if jax.process_count() > 1:  # several processes: process 0 writes, the others wait
        from ..core import distributed

        state = distributed.gather(state)
        if distributed.is_writer():
            _save_here(path, state, config, metadata, overwrite)
        distributed.barrier(f"hamon_nnx.save {path}")
        return path
    _save_here(path, state, config, metadata, overwrite)
    return path


def _save_here(path: Path, state, config: dict, metadata: dict, overwrite: bool) -> None:
    """`save`'s writing, by this process alone."""
    _check_target(path, overwrite)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.saving-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write(tmp, state, config, metadata)
        _replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _missing(path: Path) -> FileNotFoundError:
    parked = sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.is_dir() else []
    hint = ""
    if parked:
        hint = (
            f"; an interrupted overwrite left the previous checkpoint at {parked[-1]} "
            f"(rename it to {path.name} to use it)"
        )
    return FileNotFoundError(f"no checkpoint at {path}{hint}")


def read_info(path) -> dict:
    """The parsed model.json of a checkpoint: format, versions, config, metadata, checksum.

    Raises:
        FileNotFoundError: `path` does not exist.
        CheckpointError: model.json missing, unparsable or of an unknown format.
    """
    path = _absolute(path)
    if not path.exists():
        raise _missing(path)
    if not path.is_dir():
        raise CheckpointError(f"corrupted checkpoint: {path} is not a directory")
    file = path / MODEL_FILE
    if not file.is_file():
        raise CheckpointError(f"corrupted checkpoint: {path} has no {MODEL_FILE}")
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"corrupted checkpoint: {file} is not valid JSON ({err})") from err
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"corrupted checkpoint: {file} is not a hamon-nnx model checkpoint")
    version = info.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"corrupted checkpoint: {file} has no valid format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, newer than this hamon-nnx "
            f"({info.get('hamon_nnx_version', '?')} wrote it); upgrade hamon-nnx to load it"
        )
    for key, kind in (("config", dict), ("metadata", dict), ("state_sha256", str)):
        if not isinstance(info.get(key), kind):
            raise CheckpointError(f"corrupted checkpoint: {file} lacks a valid {key!r}")
    return info


def load(path, *, verify: bool = True) -> EnergyModel:
    """Load a checkpoint written by `save`: the model, rebuilt and restored.

    Arrays are placed on the default device.

    Args:
        path: the checkpoint directory (str or PathLike).
        verify: check the state checksum first (reads the files once more).

    Raises:
        FileNotFoundError: `path` does not exist.
        CheckpointError (a ValueError): model.json missing or unparsable
            ("corrupted checkpoint: ..."), a checksum mismatch ("checkpoint
            ... is damaged: checksum mismatch"), an unknown model class, or
            a state that does not fit the config.
    """
    path = _absolute(path)
    info = read_info(path)
    state_dir = path / STATE_DIR
    if not state_dir.is_dir():
        raise CheckpointError(f"corrupted checkpoint: {path} has no {STATE_DIR}/ directory")
    if verify:
        actual = state_checksum(state_dir)
        if actual != info["state_sha256"]:
            raise CheckpointError(
                f"checkpoint {path} is damaged: checksum mismatch in {STATE_DIR}/ "
                f"(expected sha256 {info['state_sha256']}, found {actual})"
            )
    try:
        graphdef, abstract_state = _abstract(info["config"])
    except Exception as err:
        raise CheckpointError(f"checkpoint {path}: cannot rebuild its model: {err}") from err

    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        nnx.to_pure_dict(abstract_state),
    )
    ocp = _orbax()
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            saved = checkpointer.metadata(state_dir).item_metadata
            _check_fits(_leaves(getattr(saved, "tree", saved)), _leaves(target), path)
            restored = checkpointer.restore(state_dir, target)
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(
            f"corrupted checkpoint: the state in {state_dir} does not fit the model "
            f"config of {path}: {err}"
        ) from err
    nnx.replace_by_pure_dict(abstract_state, restored)
    return nnx.merge(graphdef, abstract_state)
