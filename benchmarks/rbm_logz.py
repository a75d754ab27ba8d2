"""log Z of an RBM trained on Fashion-MNIST (784 visible, 25 hidden): NRPT against the exact value.

    .venv/bin/python benchmarks/rbm_logz.py train                   # about 15 s on 2 CPU cores
    .venv/bin/python benchmarks/rbm_logz.py exact --check-library   # about 5 min, float64
    .venv/bin/python benchmarks/rbm_logz.py measure --seeds 0 1 2

Data: the Fashion-MNIST IDX files of the Debian package ``dataset-fashion-mnist``
(``apt-get install dataset-fashion-mnist``), read from
``/usr/share/datasets/fashion-mnist`` (``--data-dir`` changes it):
``train-images-idx3-ubyte.gz`` and ``t10k-images-idx3-ubyte.gz``, gzipped or
not. Pixels > 127 become 1, the others 0.

``train``: ``hn.RBM(784, 25, rngs=nnx.Rngs(seed))`` with the visible biases at
the data's log-odds, trained by ``hn.Trainer`` with PCD (the Trainer's default
negative phase; 100 persistent chains, one sweep per step), by default adam(3e-3),
minibatches of 100, 20 epochs (12000 steps), seed 0, per-epoch metrics off
(they would enumerate 2^25 hidden states each epoch).
The model is saved with ``hn.save`` to ``benchmarks/results/rbm-fashion-784x25/``
(Orbax, with the settings as metadata); one JSON line goes to stdout.

``exact``: log Z in float64, the 784 visible units summed analytically and
the 2^25 hidden configurations enumerated in chunks (E = -v'Wh - b'v - c'h):
log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)]. The same code is
first checked against ``hn.exact.log_partition`` and a brute-force sum over
both layers on a small random RBM; ``--check-library`` also runs
``hn.exact.log_partition`` on the trained model itself (its enumeration cap
raised to 2^25 for the call) and asserts agreement. Also reported: the exact mean
log-likelihood of the training and test images. Written to
``benchmarks/results/rbm-fashion-784x25/exact_log_z.json``.

``measure``: for each seed, ``plan = hn.autotune(model, key)`` with default
settings, then ``plan.sample_until(key2, stderr=0.01)``; the wall time covers
both (compilation included). One JSON line per seed (error against the exact
log Z, standard error, z-score, seconds, N, n_explore, barrier, reference),
then a summary line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
MODEL_DIR = ROOT / "results" / "rbm-fashion-784x25"
EXACT_FILE = MODEL_DIR / "exact_log_z.json"
DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# -- data ---------------------------------------------------------------------
def read_idx(path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format) as an array; gzip is detected by its magic bytes."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()})")
    dtype, ndim = np.dtype(IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: {len(raw)} bytes, the header {shape} implies {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def find_idx(data_dir: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (data_dir / name).is_file():
            return data_dir / name
    raise FileNotFoundError(
        f"{stem}[.gz] not in {data_dir}; install it: apt-get install dataset-fashion-mnist"
    )


def load_images(data_dir: Path, split: str) -> np.ndarray:
    """Binarized images (n, 784) int8 of split "train" or "t10k"."""
    images = read_idx(find_idx(data_dir, f"{split}-images-idx3-ubyte"))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"unexpected image array {images.shape} {images.dtype}")
    return (images.reshape(len(images), 784) > 127).astype(np.int8)


# -- train --------------------------------------------------------------------
def cmd_train(args) -> dict:
    import jax
    import optax
    from flax import nnx

    import hamon_nnx as hn

    t0 = time.perf_counter()
    train = load_images(args.data_dir, "train")
    t_data = time.perf_counter() - t0
    settings = {
        "n_visible": 784,
        "n_hidden": 25,
        "data": "fashion-mnist train, pixel > 127",
        "n_train": len(train),
        "seed": args.seed,
        "optimizer": f"adam({args.lr})",
        "negative": repr(hn.PCD(n_chains=args.chains, k=args.k)),
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "init_visible_bias": True,
    }
    t0 = time.perf_counter()
    rbm = hn.RBM(n_visible=784, n_hidden=25, rngs=nnx.Rngs(args.seed))
    rbm.init_visible_bias(train)
    trainer = hn.Trainer(
        rbm,
        optax.adam(args.lr),
        negative=hn.PCD(n_chains=args.chains, k=args.k),
        seed=args.seed,
        eval_every=0,
        progress=False,
    )
    epoch_seconds = []
    for epoch in range(1, args.epochs + 1):
        t_epoch = time.perf_counter()
        trainer.fit(train, epochs=epoch, batch_size=args.batch_size)
        jax.block_until_ready(rbm.W[...])
        epoch_seconds.append(round(time.perf_counter() - t_epoch, 2))
        print(f"epoch {epoch}: {epoch_seconds[-1]:.1f} s", file=sys.stderr)
    seconds = time.perf_counter() - t0
    W = np.asarray(rbm.W[...])
    result = {
        **settings,
        "steps": trainer.step,
        "train_seconds": round(seconds, 2),
        "epoch_seconds": epoch_seconds,
        "data_seconds": round(t_data, 2),
        "max_abs_W": float(np.abs(W).max()),
        "rms_W": float(np.sqrt(np.mean(W**2))),
        "jax": jax.__version__,
        "hamon_nnx": hn.__version__,
    }
    hn.save(rbm, MODEL_DIR, metadata=result, overwrite=True)
    result["saved"] = str(MODEL_DIR.relative_to(ROOT.parent))
    return result


# -- exact --------------------------------------------------------------------
def hidden_sum_log_z(W, b, c, k_lo: int = 12, progress: bool = False) -> float:
    """log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)] in float64 (jax, x64 on).

    W is (n_visible, n_hidden). The hidden units are split into k_hi leading
    bits (one chunk per setting) and k_lo trailing bits (every setting inside
    a chunk): a chunk is (b + W_hi h_hi) + (W_lo h_lo), softplus and a sum.
    """
    import jax
    import jax.numpy as jnp

    W, b, c = (jnp.asarray(np.asarray(a, np.float64)) for a in (W, b, c))
    n_hidden = W.shape[1]
    k_lo = min(k_lo, n_hidden)
    k_hi = n_hidden - k_lo

    def bits(k, m):  # binary digits of k as m float64 units, the first unit slowest
        return ((k[..., None] >> jnp.arange(m - 1, -1, -1)) & 1).astype(jnp.float64)

    h_lo = bits(jnp.arange(2**k_lo), k_lo)  # (2^k_lo, k_lo)
    a_lo = h_lo @ W[:, k_hi:].T  # (2^k_lo, n_visible)
    own_lo = h_lo @ c[k_hi:]

    @jax.jit
    def chunk(i):
        h_hi = bits(i, k_hi) if k_hi else jnp.zeros((0,), jnp.float64)
        base = b + W[:, :k_hi] @ h_hi
        logits = own_lo + h_hi @ c[:k_hi] + jnp.sum(jax.nn.softplus(a_lo + base), axis=-1)
        return jax.scipy.special.logsumexp(logits)

    out = np.empty(2**k_hi)
    t0 = time.perf_counter()
    for i in range(2**k_hi):
        out[i] = float(chunk(jnp.int64(i)))
        if progress and (i + 1) % max(1, 2**k_hi // 16) == 0:
            done = (i + 1) / 2**k_hi
            eta = (time.perf_counter() - t0) * (1 - done) / done
            print(f"  {100 * done:.0f}%, {eta:.0f} s left", file=sys.stderr)
    top = out.max()
    return float(top + np.log(np.sum(np.exp(out - top))))


def brute_force_log_z(W, b, c) -> float:
    """log Z by enumerating both layers, float64 NumPy (small RBMs only)."""
    nv, nh = W.shape
    v = ((np.arange(2**nv)[:, None] >> np.arange(nv - 1, -1, -1)) & 1).astype(np.float64)
    h = ((np.arange(2**nh)[:, None] >> np.arange(nh - 1, -1, -1)) & 1).astype(np.float64)
    neg_e = (v @ W) @ h.T + (v @ b)[:, None] + (h @ c)[None, :]  # -E(v, h)
    top = neg_e.max()
    return float(top + np.log(np.sum(np.exp(neg_e - top))))


def check_small() -> dict:
    """The chunked sum against hn.exact and brute force: random 10x12 RBM, weights ~ N(0, 1)."""
    import hamon_nnx as hn

    rng = np.random.default_rng(0)
    W, b, c = rng.normal(0, 1, (10, 12)), rng.normal(0, 1, 10), rng.normal(0, 1, 12)
    rbm = hn.RBM.from_params(W.astype(np.float32), b.astype(np.float32), c.astype(np.float32))
    W, b, c = (
        np.asarray(a, np.float64) for a in (rbm.W[...], rbm.visible_bias[...], rbm.hidden_bias[...])
    )
    ours = {k: hidden_sum_log_z(W, b, c, k_lo=k) for k in (5, 12)}
    library = hn.exact.log_partition(rbm)
    brute = brute_force_log_z(W, b, c)
    for k, value in ours.items():
        assert abs(value - library) < 1e-9, (k, value, library)
        assert abs(value - brute) < 1e-9, (k, value, brute)
    return {"chunked": ours[12], "hn_exact": library, "brute_force": brute}


def cmd_exact(args) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import hamon_nnx as hn

    check = check_small()
    print(f"small-RBM check passed: {check}", file=sys.stderr)
    rbm = hn.load(MODEL_DIR)
    W, b, c = (
        np.asarray(a, np.float64) for a in (rbm.W[...], rbm.visible_bias[...], rbm.hidden_bias[...])
    )
    t0 = time.perf_counter()
    log_z = hidden_sum_log_z(W, b, c, k_lo=args.k_lo, progress=True)
    seconds = time.perf_counter() - t0
    result = {
        "log_z": log_z,
        "seconds": round(seconds, 2),
        "method": "float64, visible units summed analytically, 2^25 hidden states enumerated",
        "small_rbm_check": check,
    }
    if args.check_library:  # hn.exact's own NumPy layer sum, with its enumeration cap raised
        limit, hn.exact.MAX_ENUMERATION_STATES = hn.exact.MAX_ENUMERATION_STATES, 2**25
        try:
            t0 = time.perf_counter()
            library = hn.exact.log_partition(rbm)
            result["hn_exact_log_z"] = library
            result["hn_exact_seconds"] = round(time.perf_counter() - t0, 2)
        finally:
            hn.exact.MAX_ENUMERATION_STATES = limit
        assert abs(library - log_z) < 1e-8, (library, log_z)
    for split in ("train", "t10k"):
        v = load_images(args.data_dir, split).astype(np.float64)
        free = -(v @ b) - np.logaddexp(0.0, v @ W + c).sum(axis=1)  # F(v), float64
        result[f"mean_log_likelihood_{split}"] = float(np.mean(-free) - log_z)
    EXACT_FILE.write_text(json.dumps(result, indent=1) + "\n")
    return result


# -- measure ------------------------------------------------------------------
def cmd_measure(args) -> list[dict]:
    import jax

    import hamon_nnx as hn

    if not EXACT_FILE.is_file():
        raise FileNotFoundError(f"{EXACT_FILE} missing: run `exact` first")
    exact = json.loads(EXACT_FILE.read_text())["log_z"]
    rbm = hn.load(MODEL_DIR)
    rows = []
    for seed in args.seeds:
        tune_key, sample_key = jax.random.split(jax.random.key(seed))
        t0 = time.perf_counter()
        plan = hn.autotune(rbm, tune_key)
        t_tune = time.perf_counter() - t0
        log_z, err = plan.sample_until(sample_key, stderr=args.stderr)
        seconds = time.perf_counter() - t0
        report = plan.report()
        row = {
            "seed": seed,
            "log_z": log_z,
            "exact": exact,
            "error": log_z - exact,
            "stderr": err,
            "z": (log_z - exact) / err,
            "seconds": round(seconds, 2),
            "tune_seconds": round(t_tune, 2),
            "n_betas": plan.n_betas,
            "n_explore": plan.n_explore,
            "rounds": report.n_rounds,
            "barrier": report.total_barrier,
            "reference": report.reference,
            "tempered_layer": report.collapsed or "joint (v, h)",
            "round_trips": report.round_trips,
            "met": bool(err <= args.stderr and seconds <= 60 and abs(log_z - exact) <= 3 * err),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    summary = {
        "seeds": list(args.seeds),
        "all_met": all(r["met"] for r in rows),
        "max_seconds": max(r["seconds"] for r in rows),
        "max_abs_z": max(abs(r["z"]) for r in rows),
        "device": str(jax.devices()[0]),
    }
    print(json.dumps(summary), flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train and save the 784x25 RBM")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--chains", type=int, default=100, help="PCD chains")
    p.add_argument("--k", type=int, default=1, help="PCD sweeps per step")
    p = sub.add_parser("exact", help="exact float64 log Z of the saved model")
    p.add_argument("--k-lo", type=int, default=12, help="hidden bits enumerated inside a chunk")
    p.add_argument(
        "--check-library",
        action="store_true",
        help="also run hn.exact.log_partition on the model (about 1 min more)",
    )
    p = sub.add_parser("measure", help="autotune + sample_until against the exact log Z")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--stderr", type=float, default=0.01)
    args = parser.parse_args(argv)
    if args.command == "train":
        print(json.dumps(cmd_train(args)))
    elif args.command == "exact":
        print(json.dumps(cmd_exact(args)))
    else:
        cmd_measure(args)


if __name__ == "__main__":
    main()
