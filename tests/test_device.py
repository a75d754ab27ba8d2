"""Device routing: argument checks, environment overrides, "auto" decisions, compile cache.

Runs on a CPU-only machine; the accelerator checks at the end are marked
`gpu` and skip without one (`benchmarks/gpu.py` runs them on a GPU).
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from stats import assert_matches

import hamon_nnx as hn
from hamon_nnx.core import device as device_lib


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


HAS_GPU = _has_gpu()
requires_gpu = pytest.mark.skipif(not HAS_GPU, reason="no GPU visible to JAX")
no_gpu = pytest.mark.skipif(HAS_GPU, reason="checks the error raised where no GPU is visible")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv(device_lib.ENV_DEVICE, raising=False)
    monkeypatch.delenv(device_lib.ENV_THRESHOLD, raising=False)


@pytest.fixture
def fake_accelerator(monkeypatch):
    """Pretend an accelerator is visible, so "auto" has to decide."""
    monkeypatch.setattr(device_lib, "accelerators", lambda: [object()])


# -- explicit arguments ----------------------------------------------------------


def test_none_leaves_placement_untouched():
    place = device_lib.resolve(None, n_chains=10**6, n_variables=10**6)
    assert place.device is None and place.mesh is None
    x = np.zeros((4, 3))
    assert place.shard_chains(x) is x and place.replicate(x) is x


def test_cpu_and_jax_device():
    cpu = jax.devices("cpu")[0]
    assert device_lib.resolve("cpu").device == cpu
    assert device_lib.resolve(" CPU ").device == cpu
    assert device_lib.resolve(cpu).device == cpu
    assert device_lib.resolve([cpu]).device == cpu  # one device: no mesh
    assert device_lib.resolve(hn.chain_mesh(1)).device == cpu


@no_gpu
def test_gpu_without_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="device='gpu' was requested but JAX sees no GPU"):
        device_lib.resolve("gpu")


@pytest.mark.parametrize("bad", ["tpu", "cuda:0", "", "gpu0"])
def test_unknown_device_string_names_the_allowed_values(bad):
    with pytest.raises(ValueError, match="'auto', 'cpu', 'gpu'"):
        device_lib.resolve(bad)


@pytest.mark.parametrize("bad", [0, 1.5, [], ["cpu"], {"device": "cpu"}])
def test_bad_device_type(bad):
    with pytest.raises(ValueError, match="device must be one of"):
        device_lib.resolve(bad)


def test_mesh_needs_a_chains_axis():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    with pytest.raises(ValueError, match="axis named 'chains'"):
        device_lib.resolve(mesh)


def test_chain_mesh_arguments():
    n = len(jax.devices())
    assert hn.chain_mesh().shape["chains"] == n
    with pytest.raises(ValueError, match="ask for 1 to"):
        hn.chain_mesh(n + 1)
    with pytest.raises(ValueError, match="ask for 1 to"):
        hn.chain_mesh(0)
    with pytest.raises(TypeError, match="non-empty sequence"):
        hn.chain_mesh([])
    with pytest.raises(ValueError, match="listed twice"):
        hn.chain_mesh([jax.devices()[0]] * 2)


# -- environment overrides -------------------------------------------------------


def test_env_device_overrides_auto_only(monkeypatch):
    cpu = jax.devices("cpu")[0]
    monkeypatch.setenv("HAMON_DEVICE", "cpu")
    assert device_lib.resolve("auto").device == cpu
    assert device_lib.resolve(None).device is None  # explicit arguments win
    monkeypatch.setenv("HAMON_DEVICE", "none")
    assert device_lib.resolve("auto").device is None
    monkeypatch.setenv("HAMON_DEVICE", " Auto ")
    device_lib.resolve("auto")


def test_env_device_none_beats_auto_routing(monkeypatch, fake_accelerator):
    monkeypatch.setenv("HAMON_DEVICE", "none")
    place = device_lib.resolve("auto", n_chains=1, n_variables=1)
    assert place.device is None and "HAMON_DEVICE=none" in place.reason


def test_env_device_bad_value(monkeypatch):
    monkeypatch.setenv("HAMON_DEVICE", "gpus")
    with pytest.raises(ValueError, match="HAMON_DEVICE must be one of cpu, gpu, none, auto"):
        device_lib.resolve("auto")
    # only "auto" reads it
    assert device_lib.resolve("cpu").device.platform == "cpu"


@no_gpu
def test_env_device_gpu_without_gpu(monkeypatch):
    monkeypatch.setenv("HAMON_DEVICE", "gpu")
    with pytest.raises(RuntimeError, match="no GPU"):
        device_lib.resolve("auto")


@pytest.mark.parametrize("bad", ["many", "-1", "nan", "inf", "1e400"])
def test_env_threshold_bad_value(monkeypatch, bad):
    monkeypatch.setenv("HAMON_DEVICE_THRESHOLD", bad)
    with pytest.raises(ValueError, match="HAMON_DEVICE_THRESHOLD must be a number >= 0"):
        device_lib.resolve("auto", n_chains=4, n_variables=4)


def test_env_threshold_value(monkeypatch):
    assert device_lib.threshold() == device_lib.DEFAULT_THRESHOLD
    monkeypatch.setenv("HAMON_DEVICE_THRESHOLD", " 1e5 ")
    assert device_lib.threshold() == 1e5


# -- "auto" decisions ------------------------------------------------------------


@no_gpu
def test_auto_without_accelerator_leaves_placement_untouched():
    place = device_lib.resolve("auto", n_chains=1, n_variables=1)
    assert place.device is None and place.mesh is None
    assert "no accelerator" in place.reason


def test_auto_sends_small_work_to_cpu(monkeypatch, fake_accelerator):
    t = device_lib.DEFAULT_THRESHOLD
    small = device_lib.resolve("auto", n_chains=4, n_variables=t // 4 - 1)
    assert small.device == jax.devices("cpu")[0]
    large = device_lib.resolve("auto", n_chains=4, n_variables=t // 4)
    assert large.device is None and "accelerator" in large.reason  # JAX's default device
    unknown = device_lib.resolve("auto")
    assert unknown.device is None
    monkeypatch.setenv("HAMON_DEVICE_THRESHOLD", "0")
    assert device_lib.resolve("auto", n_chains=1, n_variables=1).device is None
    monkeypatch.setenv("HAMON_DEVICE_THRESHOLD", str(10 * t))
    assert device_lib.resolve("auto", n_chains=4, n_variables=t).device.platform == "cpu"


def test_work_counts_free_variables(monkeypatch, fake_accelerator):
    """Clamped variables are no work: a mostly clamped model stays on the CPU."""
    calls = []
    resolve = device_lib.resolve

    def spy(device="auto", **work):
        calls.append(work)
        return resolve(device, **work)

    monkeypatch.setattr(device_lib, "resolve", spy)
    m = hn.IsingModel.lattice((4, 4), coupling=0.3)
    mask = np.zeros(16, bool)
    mask[:10] = True
    hn.sample(m, jax.random.key(0), n_samples=2, n_chains=3, clamp=(mask, np.ones(16, np.int8)))
    assert calls[-1] == {"n_chains": 3, "n_variables": 6}
    hn.nrpt(m, jax.random.key(0), n_rounds=2, betas=np.linspace(0, 1, 5))
    assert calls[-1] == {"n_chains": 5, "n_variables": 16}


# -- entry points ----------------------------------------------------------------


def test_sample_on_cpu_is_identical_to_untouched(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.4, field=0.1)
    a = hn.sample(m, key, n_samples=20, n_chains=5, device=None)
    b = hn.sample(m, key, n_samples=20, n_chains=5, device="cpu")
    c = hn.sample(m, key, n_samples=20, n_chains=5)  # "auto"
    assert {d.platform for d in b.devices()} == {"cpu"}
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_entry_points_reject_bad_devices(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.4)
    with pytest.raises(ValueError, match="device must be one of"):
        hn.sample(m, key, n_samples=2, device="fast")
    with pytest.raises(ValueError, match="device must be one of"):
        hn.nrpt(m, key, n_rounds=2, device="fast")
    with pytest.raises(ValueError, match="device must be one of"):
        hn.autotune(m, key, max_rounds=32, device="fast")
    with pytest.raises(ValueError, match="device must be one of"):
        hn.autosample(m, key, n_samples=2, max_rounds=32, device="fast")
    with pytest.raises(ValueError, match="device must be one of"):
        hn.Trainer(hn.RBM(4, 2, rngs=nnx.Rngs(0)), optax.sgd(0.1), device="fast")


@no_gpu
def test_entry_points_gpu_without_gpu(key):
    m = hn.IsingModel.lattice((4, 4), coupling=0.4)
    with pytest.raises(RuntimeError, match="no GPU"):
        hn.sample(m, key, n_samples=2, device="gpu")
    with pytest.raises(RuntimeError, match="no GPU"):
        hn.nrpt(m, key, n_rounds=2, device="gpu")
    fields = np.zeros(3, np.float32)
    edges, couplings = np.array([[0, 1], [1, 2]]), np.ones(2, np.float32)
    with pytest.raises(RuntimeError, match="no GPU"):
        hn.ising_sample(fields, edges, couplings, key=key, n_samples=2, device="gpu")


def test_plan_resolves_once_and_reuses(key, monkeypatch):
    """The plan keeps the runner's placement: no re-routing between calls."""
    m = hn.IsingModel.lattice((4, 4), coupling=0.3)
    plan = hn.autotune(m, key, max_rounds=32, n_betas=4, n_explore=1, device="cpu")
    assert plan.runner.placement.device == jax.devices("cpu")[0]

    def fail(*args, **kwargs):
        raise AssertionError("resolved again")

    monkeypatch.setattr(device_lib, "resolve", fail)
    s = plan.sample(jax.random.key(1), 8)
    assert s.shape == (1, 8, 16)


def test_trainer_device(key):
    rbm = hn.RBM(4, 2, rngs=nnx.Rngs(0))
    trainer = hn.Trainer(rbm, optax.sgd(0.1), negative=hn.PCD(4), progress=False, device="cpu")
    trainer.fit(np.eye(4, dtype=np.int8), epochs=1, batch_size=2)
    assert trainer.placement.device == jax.devices("cpu")[0]
    assert {d.platform for d in rbm.W[...].devices()} == {"cpu"}


# -- compile cache ---------------------------------------------------------------


def _run(code: str, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "HAMON_"))}
    full.update(env, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_compile_cache_is_on_by_default_with_an_opt_out(tmp_path):
    code = """
        import jax, hamon_nnx as hn
        print(jax.config.jax_compilation_cache_dir, jax.config.jax_compilation_cache_max_size)
        hn.disable_compile_cache()
        print(jax.config.jax_compilation_cache_dir)
        """
    home = str(tmp_path / "home")
    runs = {
        "default": {"XDG_CACHE_HOME": home},
        "off": {"XDG_CACHE_HOME": home, "HAMON_NNX_COMPILE_CACHE": "0"},
        "moved": {"HAMON_NNX_COMPILE_CACHE": str(tmp_path / "moved")},
        "jax's own": {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "own")},
    }
    lines = {}
    for name, env in runs.items():
        out = _run(code, **env)
        assert out.returncode == 0, out.stderr[-3000:]
        lines[name] = out.stdout.split()
    assert lines["default"] == [f"{home}/hamon_nnx/jax", str(2**30), "None"]
    assert lines["off"][0] == "None"
    assert lines["moved"][0] == str(tmp_path / "moved")
    assert lines["jax's own"][0] == str(tmp_path / "own")


def test_the_compile_cache_saves_compiles_and_changes_no_draw(tmp_path):
    """Off, cold and warm: the same draws and plan; the warm process loads its programs."""
    code = """
        import jax, numpy as np, hamon_nnx as hn
        from hamon_nnx.core import compilation
        m = hn.IsingModel.lattice((8, 8), coupling=0.4)
        s, report = hn.autosample(m, jax.random.key(3), 200, max_rounds=64)
        t = hn.Trainer(hn.RBM(6, 3, rngs=__import__("flax").nnx.Rngs(0)),
                       __import__("optax").sgd(0.1), progress=False)
        h = t.fit(np.eye(6, dtype=np.int8), epochs=2, batch_size=2)
        np.save("{path}", np.asarray(s))
        print(report.n_betas, report.n_explore, report.explorer, report.programs,
              report.cache_hits, compilation.total().cache_hits, h["compile_seconds"][0] > 0)
        """
    cache = str(tmp_path / "cache")
    outs = []
    for name, env in (("off", "0"), ("cold", cache), ("warm", cache)):
        out = _run(code.replace("{path}", str(tmp_path / name)), HAMON_NNX_COMPILE_CACHE=env)
        assert out.returncode == 0, out.stderr[-3000:]
        outs.append(out.stdout.split())
    off, cold, warm = outs
    assert off[:3] == cold[:3] == warm[:3], "the same plan"
    draws = [np.load(tmp_path / f"{name}.npy") for name in ("off", "cold", "warm")]
    np.testing.assert_array_equal(draws[0], draws[1])
    np.testing.assert_array_equal(draws[0], draws[2])
    assert int(off[3]) > 0 and off[4] == cold[4] == "0" and off[-1] == "True"
    assert int(warm[4]) == int(warm[3]), "every program of the tuning loaded from the cache"
    assert int(warm[5]) >= int(warm[4])


def test_compile_cache_bad_argument(tmp_path):
    with pytest.raises(ValueError, match="min_compile_time_s"):
        hn.enable_compile_cache(tmp_path, min_compile_time_s=-1)
    with pytest.raises(ValueError, match="max_size_bytes"):
        hn.enable_compile_cache(tmp_path, max_size_bytes=0)
    with pytest.raises(TypeError, match="max_size_bytes"):
        hn.enable_compile_cache(tmp_path, max_size_bytes=1.5)
    assert jax.config.jax_compilation_cache_dir != str(tmp_path)


# -- on an accelerator -----------------------------------------------------------


@pytest.mark.gpu
@requires_gpu
def test_gpu_sample_matches_exact(key):
    m = hn.IsingModel.lattice((3, 3), coupling=0.4, field=0.15)
    s = hn.sample(m, key, n_samples=1000, n_chains=64, n_warmup=50, device="gpu")
    assert {d.platform for d in s.devices()} == {"gpu"}
    states, probs = hn.exact.probabilities(m)
    assert_matches(s, states, probs, m.variable_values())


@pytest.mark.gpu
@requires_gpu
def test_gpu_auto_routes_by_work(key, monkeypatch):
    m = hn.IsingModel.lattice((8, 8), coupling=0.4)
    monkeypatch.setenv("HAMON_DEVICE_THRESHOLD", str(64 * 16))
    small = hn.sample(m, key, n_samples=2, n_chains=8)
    large = hn.sample(m, key, n_samples=2, n_chains=16)
    assert {d.platform for d in small.devices()} == {"cpu"}
    assert {d.platform for d in large.devices()} == {"gpu"}


@pytest.mark.gpu
@requires_gpu
def test_gpu_nrpt_log_z(key):
    m = hn.IsingModel.lattice((3, 3), coupling=0.5, field=0.1)
    res = hn.nrpt(m, key, n_rounds=2000, n_betas=8, device="gpu")
    exact = float(hn.exact.log_partition(m))
    assert abs(res.log_z.estimate - exact) < 5 * res.log_z.stderr + 1e-3


@pytest.mark.gpu
@requires_gpu
def test_gpu_trainer():
    rbm = hn.RBM(6, 3, rngs=nnx.Rngs(0))
    data = np.random.default_rng(0).integers(0, 2, size=(32, 6)).astype(np.int8)
    trainer = hn.Trainer(rbm, optax.adam(1e-2), negative=hn.PCD(16), progress=False, device="gpu")
    history = trainer.fit(data, epochs=2, batch_size=8)
    assert np.all(np.isfinite(history["loss"]))
    assert {d.platform for d in rbm.W[...].devices()} == {"gpu"}


# -- benchmark scripts -----------------------------------------------------------

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def _benchmark_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_crossover_threshold_rule():
    crossover = _benchmark_module("device_crossover").crossover
    works = [100, 1000, 10000, 100000]
    assert crossover(works, [1, 2, 3, 4], [0.5, 1, 1, 1]) == 0.0  # accelerator always faster
    assert crossover(works, [1, 2, 3, 4], [2, 3, 4, 5]) is None  # never
    assert crossover(works, [1, 2, 3, 4], [2, 3, 1, 1]) == pytest.approx(np.sqrt(1000 * 10000))
    # a win below a loss does not count: the threshold is past the last loss
    assert crossover(works, [1, 2, 3, 4], [0.5, 3, 1, 1]) == pytest.approx(np.sqrt(1e7))
    assert crossover(works, [1, 2, 3, 4], [0.5, 1, 1, 5]) is None  # loses at the largest
    assert crossover(works[::-1], [4, 3, 2, 1], [1, 1, 3, 2]) == pytest.approx(np.sqrt(1e7))


@no_gpu
def test_crossover_script_without_accelerator():
    out = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "device_crossover.py")],
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["accelerator"] is None and report["threshold"] is None
    assert "no accelerator" in report["message"]


def test_crossover_measure_runs():
    measure = _benchmark_module("device_crossover").measure
    row = measure(jax.devices("cpu")[0], L=4, chains=2, target_s=0.002, repeats=1)
    assert row["per_sweep_s"] > 0 and row["fixed_s"] >= 0


def test_gpu_script_output_path(tmp_path, monkeypatch):
    output_path = _benchmark_module("gpu").output_path
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    assert output_path(None) == str(tmp_path / "out" / "gpu.json")
    assert output_path(str(tmp_path / "h100.json")) == str(tmp_path / "h100.json")
    assert os.path.isdir(tmp_path / "out")
