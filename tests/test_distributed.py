"""Several processes (jax.distributed over Gloo on 127.0.0.1) give the same bits as one.

`tests/distributed_worker.py` runs the entry points and saves every result,
gathered; it runs as 1 process x 1 CPU device, 1 process x 4 devices and,
through `python -m hamon_nnx.launch`, 2 processes x 2 devices. Then: a
checkpoint written by 2 processes resumes in 1; a process that dies makes
the other stop by itself within 60 s; processes given different arguments
are told which; the CLI under the launcher writes what one process writes.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hamon_nnx as hn
from hamon_nnx import launch

ROOT = Path(__file__).resolve().parent.parent
WORKER = str(ROOT / "tests" / "distributed_worker.py")
AREAS = ["sample", "nrpt", "autotune", "ais", "train"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAMON_NNX_", "XLA_"))}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **extra)
    return env


def _run(args, processes=1, devices=1, timeout=900, **env) -> subprocess.CompletedProcess:
    """`args` in one process with `devices` CPU devices, or launched as `processes`."""
    if processes == 1:
        command, env = args, _env(HAMON_NNX_LOCAL_DEVICES=str(devices), **env)
    else:
        command = [sys.executable, "-m", "hamon_nnx.launch", "-n", str(processes),
                   "--local-devices", str(devices), "--grace", "200", "--", *args]  # fmt: skip
        env = _env(**env)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def _worker(out: Path, *areas, processes=1, devices=1, **env) -> dict:
    proc = _run([sys.executable, WORKER, str(out), *areas], processes, devices, **env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distributed")
    return {
        "1x1": _worker(tmp / "1x1.npz"),
        "1x4": _worker(tmp / "1x4.npz", devices=4),
        "2x2": _worker(tmp / "2x2.npz", processes=2, devices=2),
    }


@pytest.mark.parametrize("layout", ["1x4", "2x2"])
@pytest.mark.parametrize("area", AREAS)
def test_same_bits_on_any_number_of_processes_and_devices(results, area, layout):
    ref, got = results["1x1"], results[layout]
    names = [k for k in ref if k.startswith(area)]
    assert names and sorted(names) == sorted(k for k in got if k.startswith(area))
    for name in names:
        assert ref[name].dtype == got[name].dtype, name
        if name.endswith(".sum") and name[: -len(".sum")] + ".compensation" in ref:
            continue  # a compensated float sum: its total is compared below
        if name.endswith(".compensation"):
            # hn.observe's float sums: the chain-axis reduction follows the mesh, so
            # the compensated total agrees to float32 rounding (integer sums: exactly)
            total = name.replace(".compensation", ".sum")
            np.testing.assert_allclose(got[total] + got[name], ref[total] + ref[name],
                                       rtol=1e-6, err_msg=name)  # fmt: skip
            continue
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def test_the_tuned_plan_does_not_depend_on_the_device_count(results):
    # the ladder size is a multiple of 8 whatever the mesh (not of the device count)
    assert len(results["1x1"]["autotune['ladder']"]) % 8 == 0


def test_checkpoint_of_two_processes_resumes_in_one(results, tmp_path):
    env = {"CHECKPOINT_DIR": str(tmp_path / "checkpoints"), "MODEL_DIR": str(tmp_path / "model")}
    first = _worker(tmp_path / "first.npz", "checkpoint_first_half", processes=2, devices=2, **env)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "5"]
    # hn.save from 2 processes: one checkpoint, written once, that loads in this process
    saved = hn.load(tmp_path / "model")
    np.testing.assert_array_equal(saved.W[...], first["checkpoint_first_half['params']['W'].value"])
    resumed = _worker(tmp_path / "resumed.npz", "checkpoint_resumed", **env)
    for name, value in resumed.items():
        straight = results["1x1"][name.replace("checkpoint_resumed", "train")]
        np.testing.assert_array_equal(value, straight, err_msg=name)


def test_processes_given_different_arguments_are_told_which(tmp_path):
    proc = _run([sys.executable, WORKER, str(tmp_path / "x.npz"), "mismatch"], 2, 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("[0] {"))
    errors = json.loads(line[4:])
    assert "hn.sample's arguments differ between the processes: key;" in errors["key"]
    assert "the models differ between the processes: model;" in errors["model"]
    assert "hn.ais's arguments differ between the processes: n_runs" in errors["n_runs"]


def test_a_dead_process_stops_the_others_within_60_s(tmp_path):
    start = time.monotonic()
    proc = _run([sys.executable, WORKER, str(tmp_path / "x.npz"), "die"], 2, 2, timeout=300)
    seconds = time.monotonic() - start
    assert proc.returncode != 0
    assert "process 1: exiting" in proc.stdout
    assert "process 0 of 2: done" not in proc.stdout
    # process 0 stopped by itself (the launcher's grace was 200 s), and soon
    assert "process 0 terminated by the launcher" not in proc.stderr
    assert "another task died" in proc.stdout  # JAX's own message, naming the cause
    assert seconds < 60 + 30, f"{seconds:.0f} s (including start-up)"


def test_cli_sample_under_the_launcher(tmp_path):
    sample = [sys.executable, "-m", "hamon_nnx", "sample", "ising-2d", "--set", "size=8", "--set", "beta=0.4", "-n",
              "20", "--max-rounds", "32", "--no-progress"]  # fmt: skip
    for processes, devices in ((1, 1), (2, 2)):
        out = tmp_path / f"sample-{processes}x{devices}"
        proc = _run([*sample, "--out", str(out)], processes, devices)
        assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = (np.load(tmp_path / f"sample-{n}" / "samples.npy") for n in ("1x1", "2x2"))
    np.testing.assert_array_equal(two, one)
    lines = proc.stdout.splitlines()
    assert sum("wrote " in x for x in lines if x.startswith("[0]")) == 3, "process 0 writes"
    assert not [x for x in lines if x.startswith("[1]") and "Gloo" not in x], "process 1 is quiet"


def test_launcher_forwards_the_first_failure(capsys):
    ok = [sys.executable, "-c", "import os; print(os.environ['HAMON_NNX_PROCESS_ID'])"]
    assert launch.launch(ok, 2) == 0
    out = capsys.readouterr().out
    assert "[0] 0" in out and "[1] 1" in out
    fail = [sys.executable, "-c",
            "import os, sys; sys.exit(int(os.environ['HAMON_NNX_PROCESS_ID']) * 7)"]  # fmt: skip
    assert launch.launch(fail, 2) == 7
    assert "process 1 exited with status 7" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no command"):
        launch.launch([], 2)
    with pytest.raises(ValueError, match="-n must be >= 1"):
        launch.launch(ok, 0)


def test_initialize_reads_the_launcher_variables_or_leaves_detection_to_jax(monkeypatch):
    import jax

    from hamon_nnx.core import distributed

    calls = []
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    monkeypatch.setattr(jax.config, "update", lambda *a: calls.append(a))
    for name in ("COORDINATOR", "NUM_PROCESSES", "PROCESS_ID", "LOCAL_DEVICES"):
        monkeypatch.delenv(f"HAMON_NNX_{name}", raising=False)
    distributed.initialize()  # SLURM, Open MPI, ...: JAX's cluster detection
    assert calls[-1]["coordinator_address"] is None and calls[-1]["num_processes"] is None
    assert ("jax_cpu_collectives_implementation", "gloo") in calls
    monkeypatch.setenv("HAMON_NNX_COORDINATOR", "10.0.0.1:1234")
    monkeypatch.setenv("HAMON_NNX_NUM_PROCESSES", "4")
    monkeypatch.setenv("HAMON_NNX_PROCESS_ID", "3")
    monkeypatch.setenv("HAMON_NNX_LOCAL_DEVICES", "2")
    distributed.initialize(heartbeat_timeout_s=7)
    kw = calls[-1]
    assert (kw["coordinator_address"], kw["num_processes"], kw["process_id"]) == (
        "10.0.0.1:1234", 4, 3)  # fmt: skip
    assert kw["heartbeat_timeout_seconds"] == 7 and ("jax_num_cpu_devices", 2) in calls
    distributed.initialize("host:1", 2, 1)  # arguments win over the variables
    assert calls[-1]["coordinator_address"] == "host:1" and calls[-1]["process_id"] == 1
    with pytest.raises(ValueError, match="process_id 5 is outside 0..3"):
        distributed.initialize(process_id=5)
    monkeypatch.setenv("HAMON_NNX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="HAMON_NNX_NUM_PROCESSES must be an integer"):
        distributed.initialize()
