"""Model checkpoints: round trips for every model kind, damage detection, safe overwrites."""

import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import hamon_nnx as hn
from hamon_nnx.models.base import SPIN, Block, EnergyModel, model_from_config
from hamon_nnx.models.ising import DenseIsing, LatticeIsing, SparseIsing
from hamon_nnx.training import checkpoint
from hamon_nnx.training.checkpoint import CheckpointError


def _rng(seed=0):
    return np.random.default_rng(seed)


def _lattice_ising():
    g = _rng(1)
    return hn.IsingModel.lattice((4, 6), coupling=[0.3, -0.7], field=g.normal(size=(4, 6)))


def _sparse_odd_lattice():
    g = _rng(2)
    return hn.IsingModel.lattice((3, 5), coupling=0.45, field=g.normal(size=(3, 5)))


def _sparse_edges():
    g = _rng(3)
    edges = [[0, 1], [1, 2], [2, 3], [3, 0], [0, 2], [4, 5], [5, 6], [6, 4], [2, 5]]
    return hn.IsingModel.from_edges(7, edges, g.normal(size=len(edges)), g.normal(size=7))


def _dense_ising():
    g = _rng(4)
    J = np.triu(g.normal(size=(6, 6)), 1)
    return hn.IsingModel.dense(J + J.T, g.normal(size=6))


def _potts_delta():
    g = _rng(5)
    return hn.PottsModel.lattice((3, 4), q=3, coupling=0.8, field=g.normal(size=(12, 3)))


def _potts_edge_delta():
    g = _rng(6)
    edges = [[0, 1], [1, 2], [2, 0], [2, 3], [3, 4]]
    return hn.PottsModel.from_edges(5, 4, edges, g.normal(size=5), g.normal(size=(5, 4)))


def _potts_matrix():
    g = _rng(7)
    edges = [[0, 1], [1, 2], [2, 3], [3, 0], [1, 3]]
    couplings = g.normal(size=(5, 3, 3))
    return hn.PottsModel.from_edges(4, 3, edges, couplings, g.normal(size=(4, 3)))


def _potts_shared_matrix():
    g = _rng(8)
    return hn.PottsModel.lattice((4, 4), q=3, coupling=g.normal(size=(3, 3)), periodic=False)


def _rbm():
    g = _rng(9)
    return hn.RBM.from_params(g.normal(size=(5, 3)), g.normal(size=5), g.normal(size=3))


MODELS = {
    "lattice_ising": (_lattice_ising, LatticeIsing),
    "sparse_ising_odd_lattice": (_sparse_odd_lattice, SparseIsing),
    "sparse_ising_from_edges": (_sparse_edges, SparseIsing),
    "dense_ising": (_dense_ising, DenseIsing),
    "potts_delta": (_potts_delta, hn.PottsModel),
    "potts_edge_delta": (_potts_edge_delta, hn.PottsModel),
    "potts_matrix": (_potts_matrix, hn.PottsModel),
    "potts_shared_matrix": (_potts_shared_matrix, hn.PottsModel),
    "rbm": (_rbm, hn.RBM),
}


def random_states(model, count, seed):
    g = _rng(seed)
    values = model.variable_values()
    return np.stack([[g.choice(v) for v in values] for _ in range(count)]).astype(np.int8)


def assert_same_model(a, b):
    assert type(a) is type(b)
    assert nnx.graphdef(a) == nnx.graphdef(b)
    sa, sb = nnx.state(a), nnx.state(b)
    assert jax.tree.structure(sa) == jax.tree.structure(sb)
    for (path, va), (_, vb) in zip(nnx.to_flat_state(sa), nnx.to_flat_state(sb), strict=True):
        assert type(va) is type(vb), path
        x, y = np.asarray(va[...]), np.asarray(vb[...])
        assert x.dtype == y.dtype, path
        np.testing.assert_array_equal(x, y, err_msg=str(path))


@nnx.jit
def _outputs(model, x):
    """Energies, internal order and every block's conditional logits (one compile per kind)."""
    xi = model.to_internal(x)
    logits = [model.block_logits(xi[0], b) for b in range(len(model.blocks))]
    return [model.energy(x), xi, *logits]


@pytest.fixture
def model():
    return _lattice_ising()


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip(tmp_path, name):
    make, cls = MODELS[name]
    original = make()
    assert type(original) is cls
    path = checkpoint.save(original, tmp_path / name, metadata={"name": name})
    assert path == tmp_path / name
    loaded = checkpoint.load(path)  # no constructor call: the config rebuilds it

    assert_same_model(original, loaded)
    assert loaded.config() == original.config()
    structure = nnx.to_flat_state(nnx.state(loaded, hn.models.base.Structure))
    assert bool(len(structure)) == (name not in ("lattice_ising", "dense_ising", "rbm"))
    x = jnp.asarray(random_states(original, 16, seed=1))
    for got, want in zip(_outputs(loaded, x), _outputs(original, x), strict=True):
        np.testing.assert_array_equal(got, want)
    info = checkpoint.read_info(path)
    assert info["metadata"] == {"name": name}
    assert info["config"] == original.config()
    assert info["format_version"] == checkpoint.FORMAT_VERSION
    assert info["hamon_nnx_version"] == hn.__version__


def test_config_rebuilds_the_structure():
    for make, _ in MODELS.values():
        original = make()
        config = json.loads(json.dumps(original.config()))
        rebuilt = model_from_config(config)
        abstract = nnx.eval_shape(lambda config=config: model_from_config(config))
        assert nnx.graphdef(rebuilt) == nnx.graphdef(original) == nnx.graphdef(abstract)
        shapes = jax.tree.map(lambda v: (v.shape, v.dtype), nnx.state(original))
        assert jax.tree.map(lambda v: (v.shape, v.dtype), nnx.state(rebuilt)) == shapes


def test_str_and_relative_paths(tmp_path, monkeypatch, model):
    monkeypatch.chdir(tmp_path)
    path = checkpoint.save(model, "runs/ckpt")
    assert path.is_absolute() and path == tmp_path / "runs" / "ckpt"
    assert_same_model(model, checkpoint.load("runs/ckpt"))
    assert_same_model(model, checkpoint.load(str(path)))


def test_save_into_an_existing_empty_directory(tmp_path, model):
    (tmp_path / "c").mkdir()
    assert_same_model(model, checkpoint.load(checkpoint.save(model, tmp_path / "c")))


def test_checkpoint_layout_and_checksum(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "state"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temporary left behind
    digest = checkpoint.read_info(path)["state_sha256"]
    assert digest == checkpoint.state_checksum(path / "state")
    checkpoint.load(path)  # reading leaves the files as they were
    assert checkpoint.state_checksum(path / "state") == digest


# -- errors ----------------------------------------------------------------


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "nowhere")


def test_deleted_model_json(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    (path / "model.json").unlink()
    with pytest.raises(ValueError, match="corrupted checkpoint: .* has no model.json"):
        checkpoint.load(path)


@pytest.mark.parametrize(
    "text", ["{not json", "", "[1, 2]", '{"format": "something else"}', "\xff\xfe"]
)
def test_garbled_model_json(tmp_path, model, text):
    path = checkpoint.save(model, tmp_path / "c")
    (path / "model.json").write_text(text, encoding="latin-1")
    with pytest.raises(CheckpointError, match="corrupted checkpoint"):
        checkpoint.load(path)


def test_truncated_model_json(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    data = (path / "model.json").read_bytes()
    (path / "model.json").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted checkpoint"):
        checkpoint.load(path)


def test_missing_state_directory(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    os.rename(path / "state", tmp_path / "elsewhere")
    with pytest.raises(CheckpointError, match="corrupted checkpoint: .* no state/"):
        checkpoint.load(path)


def test_flipped_byte_in_any_state_file_is_a_checksum_error(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    files = sorted(p for p in (path / "state").rglob("*") if p.is_file())
    assert len(files) >= 3
    for file in files:
        original = file.read_bytes()
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0x01
        file.write_bytes(bytes(damaged))
        with pytest.raises(ValueError, match=r"checkpoint .* is damaged: checksum mismatch"):
            checkpoint.load(path)
        file.write_bytes(original)
    assert_same_model(model, checkpoint.load(path))


def test_missing_or_extra_state_file_is_a_checksum_error(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    (path / "state" / "stray").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        checkpoint.load(path)
    (path / "state" / "stray").unlink()
    biggest = max((p for p in (path / "state").rglob("*") if p.is_file()), key=os.path.getsize)
    biggest.unlink()
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        checkpoint.load(path)


def _edit_info(path, **changes):
    info = json.loads((path / "model.json").read_text())
    info.update(changes)
    (path / "model.json").write_text(json.dumps(info))


def test_unknown_model_class(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    _edit_info(path, config={**model.config(), "class": "NoSuchModel"})
    with pytest.raises(ValueError, match=r"unknown model class 'NoSuchModel'.*LatticeIsing"):
        checkpoint.load(path)


def test_config_that_does_not_fit_the_state(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    _edit_info(path, config={**model.config(), "shape": [4, 8], "field_shape": [4, 8]})
    with pytest.raises(CheckpointError, match="does not fit"):
        checkpoint.load(path)


def test_newer_format_version(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    _edit_info(path, format_version=checkpoint.FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match="newer"):
        checkpoint.load(path)


def test_no_silent_overwrite(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    before = checkpoint.read_info(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        checkpoint.save(_rbm(), path)
    assert checkpoint.read_info(path) == before
    assert_same_model(model, checkpoint.load(path))


def test_overwrite_replaces(tmp_path, model):
    path = checkpoint.save(model, tmp_path / "c")
    other = _rbm()
    checkpoint.save(other, path, overwrite=True)
    assert_same_model(other, checkpoint.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_overwrite_without_atomic_exchange(tmp_path, model, monkeypatch):
    monkeypatch.setattr(checkpoint, "_exchange", lambda a, b: False)
    path = checkpoint.save(model, tmp_path / "c")
    other = _rbm()
    checkpoint.save(other, path, overwrite=True)
    assert_same_model(other, checkpoint.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_never_replaces_something_that_is_not_a_checkpoint(tmp_path, model):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("...")
    (tmp_path / "file").write_text("...")
    for target in ("precious", "file"):
        with pytest.raises(FileExistsError):
            checkpoint.save(model, tmp_path / target, overwrite=True)
    assert (tmp_path / "precious" / "thesis.tex").read_text() == "..."
    assert (tmp_path / "file").read_text() == "..."


def test_interrupted_overwrite_keeps_the_old_checkpoint(tmp_path, model, monkeypatch):
    path = checkpoint.save(model, tmp_path / "c")
    real_save = ocp.StandardCheckpointer.save

    def crash_midway(self, directory, state, **kwargs):
        real_save(self, directory, state, **kwargs)  # some state files written...
        self.wait_until_finished()
        raise RuntimeError("simulated crash during the save")  # ...then the process dies

    monkeypatch.setattr(ocp.StandardCheckpointer, "save", crash_midway)
    with pytest.raises(RuntimeError, match="simulated crash"):
        checkpoint.save(_rbm(), path, overwrite=True)
    monkeypatch.undo()
    assert_same_model(model, checkpoint.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # temporary cleaned up


def test_interrupted_commit_keeps_the_old_checkpoint(tmp_path, model, monkeypatch):
    """Without an atomic exchange the old checkpoint is parked, then restored on failure."""
    path = checkpoint.save(model, tmp_path / "c")
    monkeypatch.setattr(checkpoint, "_exchange", lambda a, b: False)
    real_rename = os.rename

    def failing_rename(src, dst):
        if ".saving-" in os.fspath(src) and os.fspath(dst) == os.fspath(path):
            raise OSError("simulated failure while moving the new checkpoint in")
        return real_rename(src, dst)

    monkeypatch.setattr(checkpoint.os, "rename", failing_rename)
    with pytest.raises(OSError, match="simulated failure"):
        checkpoint.save(_rbm(), path, overwrite=True)
    monkeypatch.undo()
    assert_same_model(model, checkpoint.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_missing_checkpoint_names_a_parked_old_one(tmp_path, model):
    checkpoint.save(model, tmp_path / "c")
    os.rename(tmp_path / "c", tmp_path / ".c.old-1234abcd")  # as a crash mid-swap leaves it
    with pytest.raises(FileNotFoundError, match=r"\.c\.old-1234abcd"):
        checkpoint.load(tmp_path / "c")


def test_save_rejects_bad_arguments(tmp_path, model):
    with pytest.raises(TypeError, match="JSON"):
        checkpoint.save(model, tmp_path / "a", metadata={"x": np.float32(1.0)})
    with pytest.raises(TypeError, match="EnergyModel"):
        checkpoint.save(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


# -- the registry and custom models ----------------------------------------------


class Chain(EnergyModel):
    """A custom model: an open Ising chain whose constructor takes its config keys."""

    def __init__(self, n: int, *, coupling: float = 0.0):
        self.n_variables = int(n)
        self.blocks = tuple(Block(i, i + 1, SPIN, 2) for i in range(self.n_variables))
        self.coupling = nnx.Param(jnp.full((self.n_variables - 1,), coupling, jnp.float32))

    def energy(self, x):
        s = jnp.asarray(x).astype(jnp.float32)
        return -jnp.sum(self.coupling[...] * s[..., :-1] * s[..., 1:], axis=-1)

    def config(self):
        return {"class": type(self).registered_name(), "n": self.n_variables}


class NoConfig(EnergyModel):
    def __init__(self):
        self.n_variables = 1
        self.blocks = (Block(0, 1, SPIN, 2),)


class WrongConfig(Chain):
    def config(self):
        return {"class": type(self).registered_name(), "n": self.n_variables + 1}


def test_custom_model_round_trip(tmp_path):
    model = Chain(5, coupling=0.7)
    loaded = checkpoint.load(checkpoint.save(model, tmp_path / "chain"))
    assert_same_model(model, loaded)
    assert "Chain" in str(pytest.raises(ValueError, model_from_config, {"class": "Nope"}).value)


def test_custom_model_registered_under_another_name(tmp_path):
    class Renamed(Chain, register_as="tests.renamed_chain"):
        pass

    model = Renamed(3, coupling=0.2)
    assert model.config()["class"] == "tests.renamed_chain"
    assert_same_model(model, checkpoint.load(checkpoint.save(model, tmp_path / "r")))


def test_models_that_cannot_describe_themselves_are_not_saved(tmp_path):
    with pytest.raises(NotImplementedError, match="config"):
        checkpoint.save(NoConfig(), tmp_path / "a")
    with pytest.raises(ValueError, match="another structure"):
        checkpoint.save(WrongConfig(4), tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_a_displaced_class_name_cannot_be_saved(tmp_path):
    def define(module):
        return type(EnergyModel)("Clash", (Chain,), {"__module__": module, "__qualname__": "Clash"})

    first = define("tests.first")
    with pytest.warns(UserWarning, match="already registered"):
        second = define("tests.second")
    assert type(model_from_config({"class": "Clash", "n": 3})) is second
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        define("tests.second")  # redefining the same class is silent
    with pytest.raises(ValueError, match="register_as"):
        checkpoint.save(first(3), tmp_path / "a")


def test_model_from_config_errors():
    with pytest.raises(ValueError, match="unknown model class 'Nope'; known model classes: "):
        model_from_config({"class": "Nope"})
    with pytest.raises(ValueError, match="'class' name"):
        model_from_config({"n": 3})
    with pytest.raises(ValueError, match="lacks the key 'n_visible'"):
        model_from_config({"class": "RBM"})
    known = str(pytest.raises(ValueError, model_from_config, {"class": "Nope"}).value)
    for name in ("LatticeIsing", "SparseIsing", "DenseIsing", "PottsModel", "RBM"):
        assert name in known
    assert "IsingModel," not in known and "NoConfig" not in known
