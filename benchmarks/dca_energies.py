"""Sequence energies: adabmDCA 1.0's `energies` against `hn.dca` on the same parameter files.

    .venv/bin/python benchmarks/dca_energies.py --adabm-python /work/adabm-venv/bin/python \
        --out benchmarks/results/dca_energies-cpu.json

For each family (RF00379, the rhomboid proteases; see `benchmarks/dca.py`):

1. adabmDCA trains a bmDCA model for a few updates (`adabmDCA train -m
   bmDCA --nepochs N`), so the file is one adabmDCA wrote itself.
2. `adabmDCA energies -d ALIGNMENT -p params.dat` writes its energies (three
   decimals in its FASTA headers); its Python API (`load_params`,
   `compute_energy`) gives them at full float32 and float64 precision.
3. `hn.dca.load_params` reads the same file; `hn.dca.sequence_energies`
   scores the sequences adabmDCA scored (read back from its output file).
4. The other way: `hn.dca.save_params` writes the model it read, and
   adabmDCA's `energies` scores that file.

Prints one JSON document (also to `--out`): the largest differences, in
absolute terms and relative to the float64 energies, next to the float32
rounding scale (float32 epsilon times the sum of the absolute terms).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import dca as dca_bench  # noqa: E402
from bench_stats import emit, machine  # noqa: E402

# Runs in adabmDCA's venv: its energies of the sequences in its own output
# file, through its API, in float32 and float64.
ADABM_API = """
import json, sys
import numpy as np, torch
from torch.nn.functional import one_hot
from adabmDCA.api.model import load_model
from adabmDCA.api.scoring import score_sequences
from adabmDCA.fasta import encode_sequence
data, params, alphabet, out = sys.argv[1:5]
res = {}
for dtype in ("float32", "float64"):
    r = score_sequences(model=params, fasta_path=data, alphabet=alphabet, device="cpu", dtype=dtype)
    res[dtype] = np.asarray(r.energies, np.float64)
m = load_model(params, alphabet=alphabet, device="cpu", dtype="float64")
h, J = m.params["bias"].abs(), m.params["coupling_matrix"].abs()
L, q = h.shape
x = one_hot(torch.as_tensor(encode_sequence(list(r.sequences), m.tokens)), q).to(torch.float64)
x = x.reshape(len(x), L * q)  # the float32 rounding scale: eps * sum of |terms|
res["scale"] = ((x * h.reshape(-1)).sum(1) + 0.5 * ((x @ J.reshape(L * q, L * q)) * x).sum(1)).numpy()
np.savez(out, **res)
print(json.dumps({"n": len(x)}))
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adabm-python", required=True, help="python of a venv with adabmDCA 1.0")
    p.add_argument("--families", nargs="+", default=["rf00379", "rhomboid"])
    p.add_argument("--epochs", type=int, default=20, help="adabmDCA updates before the file")
    p.add_argument("--chains", type=int, default=500)
    p.add_argument("--core", type=int, default=0, help="adabmDCA runs pinned to this core")
    p.add_argument("--workdir", default=None, help="keep the files here (default: a temp dir)")
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


def adabm(args, *cmd) -> None:
    exe = str(Path(args.adabm_python).parent / "adabmDCA")
    full, env = dca_bench.pinned([exe, *cmd], core=args.core, xla=False)
    subprocess.run(full, env=env, check=True, stdout=subprocess.DEVNULL)


def read_energy_fasta(path: Path) -> tuple[list[str], np.ndarray]:
    """adabmDCA's `energies` output: '>NAME | DCAenergy: E' headers."""
    names, energies = [], []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name, _, energy = line[1:].rpartition(" | DCAenergy: ")
            names.append(name)
            energies.append(float(energy))
    return names, np.array(energies)


def compare(ours: np.ndarray, theirs: np.ndarray, exact: np.ndarray, scale: np.ndarray) -> dict:
    eps = float(np.finfo(np.float32).eps)
    return {
        "max_abs_diff": float(np.max(np.abs(ours - theirs))),
        "max_abs_diff_to_float64": float(np.max(np.abs(ours - exact))),
        "max_rel_diff_to_float64": float(np.max(np.abs(ours - exact) / np.abs(exact))),
        "max_diff_over_float32_scale": float(np.max(np.abs(ours - exact) / (eps * scale))),
    }


def one_family(args, family: str, work: Path) -> dict:
    import hamon_nnx as hn

    spec = dca_bench.FAMILIES[family]
    data = spec["path"] or dca_bench.rhomboid_path()
    alphabet = spec["alphabet"]
    train_dir, energies_dir, back_dir = work / "train", work / "energies", work / "back"
    dca_bench.log(f"{family}: adabmDCA trains {args.epochs} updates")
    adabm(args, "train", "-m", "bmDCA", "-d", data, "-o", str(train_dir), "--alphabet",
          alphabet, "--nchains", str(args.chains), "--nepochs", str(args.epochs), "--device",
          "cpu", "--sampler", "gibbs", "--no-progress", "--seed", "0")  # fmt: skip
    params = train_dir / "params.dat"
    adabm(args, "energies", "-d", data, "-p", str(params), "-o", str(energies_dir),
          "--alphabet", alphabet, "--device", "cpu")  # fmt: skip
    written = next(energies_dir.glob("*_energies.fasta"))
    names, cli = read_energy_fasta(written)
    api = work / "api.npz"
    dca_bench.run_json([args.adabm_python, "-c", ADABM_API, str(written), str(params), alphabet,
                        str(api)])  # fmt: skip
    theirs = np.load(api)

    model = hn.dca.load_params(params, alphabet)
    aln = hn.dca.msa(written, alphabet, dedupe=False)
    read = [n.rpartition(" | DCAenergy: ")[0] for n in aln.names]
    assert read == names, "the sequences read back are not adabmDCA's"
    ours = hn.dca.sequence_energies(model, aln.sequences).astype(np.float64)

    saved = work / "hamon_params.dat"
    hn.dca.save_params(model, saved, alphabet)
    adabm(args, "energies", "-d", str(written), "-p", str(saved), "-o", str(back_dir),
          "--alphabet", alphabet, "--device", "cpu")  # fmt: skip
    _, back = read_energy_fasta(next(back_dir.glob("*_energies.fasta")))
    exact, scale = theirs["float64"], theirs["scale"]
    return {
        "alignment": data,
        "alphabet": alphabet,
        "n_sequences": len(names),
        "L": model.n_variables,
        "q": model.q,
        "adabm_updates": args.epochs,
        "energy_range": [float(exact.min()), float(exact.max())],
        "import": {
            "vs_adabm_api_float32": compare(ours, theirs["float32"], exact, scale),
            "vs_adabm_cli_3_decimals": {"max_abs_diff": float(np.max(np.abs(ours - cli)))},
            "adabm_api_float32_itself": compare(theirs["float32"], exact, exact, scale),
        },
        "export": {
            "adabm_cli_on_our_file_vs_its_own_file": float(np.max(np.abs(back - cli))),
        },
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    import jax

    import hamon_nnx as hn

    doc = {
        "benchmark": "dca_energies",
        "machine": machine(),
        "versions": {"hamon_nnx": hn.__version__, "jax": jax.__version__},
        "families": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        for family in args.families:
            (root / family).mkdir(parents=True, exist_ok=True)
            doc["families"][family] = one_family(args, family, root / family)
    emit(doc, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
