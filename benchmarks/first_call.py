"""First calls as a new user meets them: fresh processes, an empty and a warm compile cache.

    .venv/bin/python benchmarks/first_call.py [--cases ising_sample,demo] \
        [--hamon-python /work/hamon-venv/bin/python] [--out first_call.json]

For each public entry point a user meets first, three fresh processes run the
same call: with the compile cache off (`HAMON_NNX_COMPILE_CACHE=0`), with an
empty cache folder (the first call ever: it compiles and writes the cache),
and again with that folder (a second process: it loads the programs). Each
prints the seconds of `import hamon_nnx`, of the call, and the programs and
compile seconds JAX reported (`hamon_nnx.core.compilation`). `import` is
also timed alone, and hamon 0.12's `ising_sample` (its own venv, Python 3.12)
runs the same 16 x 16 lattice at beta 0.44 in a fresh process beside ours.
JSON on stdout (and `--out`). Nothing here is timed inside tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

# each case: the code of one call (`hn`, `jax`, `np` imported), timed alone
CASES = {
    "sample_lattice": "hn.sample(hn.IsingModel.lattice((16, 16), coupling=0.44), "
    "jax.random.key(0), n_samples=1000, n_chains=16)",
    "autosample_lattice": "hn.autosample(hn.IsingModel.lattice((16, 16), coupling=0.44), "
    "jax.random.key(0), 1000)",
    "autosample_rbm": "hn.autosample(hn.RBM(64, 16, rngs=nnx.Rngs(0), init_scale=0.5), "
    "jax.random.key(0), 1000)",
    "autosample_dense": "hn.autosample(hn.IsingModel.dense(SK, np.zeros(64)), jax.random.key(0), "
    "1000)",
    "ising_sample": "hn.ising_sample(np.zeros(256), EDGES, np.ones(len(EDGES)), "
    "key=jax.random.key(0), beta=0.44)",
    "ais_rbm": "hn.ais(hn.RBM(64, 16, rngs=nnx.Rngs(0), init_scale=0.5), jax.random.key(0), "
    "n_runs=64, n_betas=500)",
    "trainer_fit_one_epoch": "hn.Trainer(hn.RBM(16, 8, rngs=nnx.Rngs(0)), optax.adam(1e-2), "
    "progress=False).fit(np.tile(hn.data.bars_and_stripes(4), (10, 1)), epochs=1, batch_size=20)",
    "zoo_load_and_sample": "hn.sample(hn.zoo.load('rbm-digits-16'), jax.random.key(0), "
    "n_samples=100, n_chains=16)",
}

PRELUDE = """
import time
t0 = time.perf_counter()
import hamon_nnx as hn
t_import = time.perf_counter() - t0
import json, jax, numpy as np, optax
from flax import nnx
from hamon_nnx.core import compilation
L = 16
idx = np.arange(L * L).reshape(L, L)
EDGES = np.concatenate([np.stack([idx.ravel(), np.roll(idx, 1, a).ravel()], 1) for a in (0, 1)])
A = np.random.default_rng(0).normal(size=(64, 64))
SK = np.asarray((A + A.T) / 16 * (1 - np.eye(64)), np.float32)
before = compilation.total()
t0 = time.perf_counter()
out = {call}
jax.block_until_ready(jax.tree.leaves(out))
seconds = time.perf_counter() - t0
spent = compilation.total() - before
print(json.dumps({{"import_s": t_import, "call_s": seconds, "compile_s": spent.seconds,
                  "backend_compile_s": spent.backend_seconds, "programs": spent.programs,
                  "cache_hits": spent.cache_hits}}))
"""

HAMON = """
import time
t0 = time.perf_counter()
import jax, jax.numpy as jnp, numpy as np
from hamon.models.ising import ising_sample
t_import = time.perf_counter() - t0
L = 16
idx = np.arange(L * L).reshape(L, L)
e = np.concatenate([np.stack([idx.ravel(), np.roll(idx, 1, a).ravel()], 1) for a in (0, 1)])
t0 = time.perf_counter()
s, info = ising_sample(jnp.zeros(L * L), jnp.asarray(e), jnp.ones(len(e)),
                       key=jax.random.key(0), beta=0.44)
jax.block_until_ready(s)
import json
print(json.dumps({"import_s": t_import, "call_s": time.perf_counter() - t0}))
"""


def _env(cache: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "HAMON_NNX"))}
    env["HAMON_NNX_COMPILE_CACHE"] = cache
    return env


def _python(python: str, code: str, env: dict) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["process_s"] = wall
    return row


def _demo(cache: str, folder: str) -> dict:
    exe = os.path.join(os.path.dirname(sys.executable), "hamon-nnx")
    t0 = time.perf_counter()
    out = subprocess.run([exe, "demo", "--out", folder], env=_env(cache), capture_output=True,
                         text=True)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return {"process_s": time.perf_counter() - t0}


def run_case(name: str, cache_root: str, workdir: str) -> dict:
    """Off, cold (empty cache) and warm (the same cache) fresh processes of one case."""
    cache = os.path.join(cache_root, name)
    shutil.rmtree(cache, ignore_errors=True)
    rows = {}
    for mode, setting in (("off", "0"), ("cold", cache), ("warm", cache)):
        if name == "demo":
            rows[mode] = _demo(setting, os.path.join(workdir, f"demo-{mode}"))
        else:
            code = PRELUDE.format(call=CASES[name])
            rows[mode] = _python(sys.executable, code, _env(setting))
        print(name, mode, json.dumps(rows[mode]), file=sys.stderr, flush=True)
    rows["cache_bytes"] = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache) for f in fs
    )
    return rows


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line]
    return names[0] if names else "unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join([*CASES, "demo"]))
    parser.add_argument("--hamon-python", default=None, help="hamon 0.12's venv python")
    parser.add_argument("--repeats", type=int, default=1, help="hamon-vs-ours pairs")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import jax

    import hamon_nnx as hn

    doc = {
        "benchmark": "first_call",
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "hamon_nnx": hn.__version__,
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as root:
        bare = "import time; t0 = time.perf_counter(); import {m}; print('{{\"import_s\": %f}}' % (time.perf_counter() - t0))"  # noqa: E501
        doc["import"] = {
            m: _python(sys.executable, bare.format(m=m), _env("0"))["import_s"]
            for m in ("jax", "flax.nnx", "hamon_nnx")
        }
        for name in args.cases.split(","):
            doc["cases"][name] = run_case(name, os.path.join(root, "caches"), root)
        if args.hamon_python:
            pairs = []
            for _ in range(args.repeats):
                ours = run_case("ising_sample", os.path.join(root, "caches"), root)["cold"]
                theirs = _python(args.hamon_python, HAMON, _env("0"))
                pairs.append({"hamon_nnx_cold": ours, "hamon": theirs,
                              "ratio": ours["process_s"] / theirs["process_s"]})  # fmt: skip
                print("ratio", pairs[-1]["ratio"], file=sys.stderr, flush=True)
            doc["ising_sample_vs_hamon"] = pairs
    text = json.dumps(doc, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
