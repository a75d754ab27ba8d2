"""`hamon-nnx dca ...`: direct coupling analysis from the command line.

    hamon-nnx dca train ALIGNMENT --alphabet rna --chains 2000 --target 0.95 \
        --max-seconds 600 -o OUT
    hamon-nnx dca train --config configs/potts-rf00379.yaml -o OUT
    hamon-nnx dca contacts OUT -o scores.txt
    hamon-nnx dca energies OUT ALIGNMENT -o energies.txt
    hamon-nnx dca dms OUT --wildtype ALIGNMENT[:ROW] -o dms.txt
    hamon-nnx dca sample OUT -n 1000 -o samples.fasta

`train` writes OUT/model (`hn.load` reads it), OUT/params.dat (adabmDCA's
parameter format, `adabmDCA` reads it), OUT/history.json (Pearson against
seconds, compilation apart) and OUT/summary.json. Score files are adabmDCA's:
`i,j,score` lines, 0-based alignment columns. A config (YAML) holds the
`train` options by their long names (`alignment`, `family`, `alphabet`,
`chains`, ...); flags given on the command line win over it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from ..models.potts import DensePotts


def add_parser(sub, common) -> None:
    """Register `dca` and its subcommands on the main parser's subparsers."""
    dca = sub.add_parser("dca", help="protein/RNA families: bmDCA, contacts, energies, DMS",
                         description=cast(str, __doc__).split("\n")[0])  # fmt: skip
    commands = dca.add_subparsers(dest="dca_command", required=True, parser_class=type(dca))

    train = commands.add_parser("train", help="fit a dense Potts model to an alignment (bmDCA)")
    train.add_argument("alignment", nargs="?", help="FASTA (.gz too) or Stockholm alignment")
    train.add_argument("--family", help=f"a known family instead ({', '.join(family_names())})")
    train.add_argument("--config", help="a YAML file of these options (flags win over it)")
    train.add_argument("--alphabet", help="protein (default), rna, dna or "
                       "the letters with the gap first, e.g. -ACGU")  # fmt: skip
    train.add_argument("--chains", type=int, help="persistent chains (2000)")
    train.add_argument("--sweeps", type=int, help="sweeps per update (10)")
    train.add_argument("--lr", type=float, help="learning rate (0.01)")
    train.add_argument("--l2", type=float, help="L2 pull of the parameters (0)")
    train.add_argument("--target", type=float, help="target Pearson (0.95)")
    train.add_argument("--max-steps", type=int, help="most updates (100000)")
    train.add_argument("--max-seconds", type=float, help="wall-clock budget (none)")
    train.add_argument("--theta", type=float, help="weights: identity 1 - theta (0.2)")
    train.add_argument("--pseudocount", type=float, help="default 1 / Meff")
    train.add_argument("--unknown", choices=("gap", "error"),
                       help="letters outside the alphabet: read as gaps (default) or an error")  # fmt: skip
    train.add_argument("--seed", type=int, help="PRNG seed (0)")
    train.add_argument("-o", "--out", required=True, help="output directory")
    train.add_argument("--publish", metavar="NAME", help="copy the model into the package's "
                       "zoo as NAME (a source checkout)")  # fmt: skip
    common(train)
    train.set_defaults(func=_train)

    contacts = commands.add_parser("contacts", help="contact scores (Frobenius, APC)")
    contacts.add_argument("model", help="a `dca train` output directory, a params.dat or a zoo "
                          "name (potts-rf00379)")  # fmt: skip
    contacts.add_argument("-o", "--out", required=True, help="scores file (i,j,score lines)")
    contacts.set_defaults(func=_contacts)

    energies = commands.add_parser("energies", help="energies of an alignment's sequences")
    energies.add_argument("model")
    energies.add_argument("alignment")
    energies.add_argument("-o", "--out", required=True, help="one 'name energy' line each")
    energies.set_defaults(func=_energies)

    dms = commands.add_parser("dms", help="single-mutant scan: energy changes (L x q)")
    dms.add_argument("model")
    dms.add_argument("--wildtype", required=True, help="ALIGNMENT[:ROW] (row 0 by default)")
    dms.add_argument("-o", "--out", required=True, help="'position letter delta_E' lines")
    dms.set_defaults(func=_dms)

    sample = commands.add_parser("sample", help="sequences drawn from the model, as FASTA")
    sample.add_argument("model")
    sample.add_argument("-n", type=int, default=1000, help="sequences (1000)")
    sample.add_argument("--sweeps", type=int, default=1000, help="Gibbs sweeps before (1000)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("-o", "--out", required=True, help="FASTA file")
    sample.set_defaults(func=_sample)


def _load(path: str | Path) -> tuple[DensePotts, str]:
    """(model, alphabet) from a `dca train` directory, an adabmDCA params file or a
    zoo name (`potts-rf00379`)."""
    from . import adabmdca

    if not Path(path).exists():
        from .. import zoo

        if path in zoo.names():
            # a DCA zoo entry: a dense Potts model with an alphabet
            name = cast(str, path)  # equal to a zoo name, so a str
            return cast("DensePotts", zoo.load(name)), zoo.info(name)["data"]["alphabet"]
    path = Path(path)
    if path.is_dir():
        summary = json.loads((path / "summary.json").read_text())
        return adabmdca.load_params(path / "params.dat", summary["alphabet"]), summary["alphabet"]
    model = adabmdca.load_params(path)
    return model, adabmdca.alphabet_tokens(_alphabet_for(model.q))


def _alphabet_for(q: int) -> str:
    from .alignment import ALPHABETS

    names = [name for name, letters in ALPHABETS.items() if len(letters) == q]
    if not names:
        raise ValueError(f"no standard alphabet has {q} letters: train with --alphabet")
    return names[0]


def family_names() -> list[str]:
    from .families import names

    return names()


def train_config(args) -> dict:
    """The `train` options: defaults, then the --config file, then the flags given."""
    from .families import family

    config = dict(TRAIN_DEFAULTS)
    if args.config:
        config.update(read_train_config(args.config))
    config.update({k: getattr(args, k) for k in TRAIN_DEFAULTS if getattr(args, k) is not None})
    if config["family"] is not None:
        known = family(config["family"])
        if config["alignment"] is not None:
            raise ValueError("give an alignment or --family, not both")
        config["alignment"] = str(known.alignment)
        config["alphabet"] = config["alphabet"] or known.alphabet
    if config["alignment"] is None:
        raise ValueError("no alignment: give ALIGNMENT, --family or a --config naming one")
    config["alphabet"] = config["alphabet"] or "protein"
    return config


TRAIN_DEFAULTS = {
    "alignment": None, "family": None, "alphabet": None, "chains": 2000, "sweeps": 10,
    "lr": 0.01, "l2": 0.0, "target": 0.95, "max_steps": 100_000, "max_seconds": None,
    "theta": 0.2, "pseudocount": None, "unknown": "gap", "seed": 0,
}  # fmt: skip


def read_train_config(path) -> dict:
    """A `dca train` config: a YAML mapping of `TRAIN_DEFAULTS`' keys ('-' or '_')."""
    import yaml

    with open(path) as f:
        raw = yaml.safe_load(f)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a dca train config is a mapping of options, got {raw!r}")
    config = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(config) - set(TRAIN_DEFAULTS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(TRAIN_DEFAULTS)}")
    if config.get("alignment") is not None:  # relative to the config file
        config["alignment"] = str(Path(path).parent / Path(config["alignment"]).expanduser())
    return config


def _train(args) -> int:
    import jax

    import hamon_nnx as hn

    from . import adabmdca, bmdca
    from .alignment import msa

    c = train_config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    aln = msa(c["alignment"], c["alphabet"], theta=c["theta"], pseudocount=c["pseudocount"],
              unknown=c["unknown"])  # fmt: skip
    print(f"{aln.n_sequences} sequences, L = {aln.L}, q = {aln.q}, Meff = {aln.meff:.1f}")
    run = bmdca.fit(
        aln, jax.random.key(c["seed"]), n_chains=c["chains"], n_sweeps=c["sweeps"],
        learning_rate=c["lr"], l2=c["l2"], target_pearson=c["target"],
        max_steps=c["max_steps"], max_seconds=c["max_seconds"], progress=not args.no_progress,
    )  # fmt: skip
    hn.save(run.model, out / "model", overwrite=True)
    adabmdca.save_params(run.model, out / "params.dat", aln.alphabet)
    (out / "history.json").write_text(json.dumps(run.history))
    (out / "config.json").write_text(json.dumps(c, indent=1))
    summary = {
        "alignment": str(c["alignment"]), "alphabet": aln.alphabet, "L": aln.L, "q": aln.q,
        "n_sequences": aln.n_sequences, "meff": aln.meff, "pseudocount": aln.pseudocount,
        "chains": c["chains"], "sweeps": c["sweeps"], "learning_rate": c["lr"],
        "steps": run.history["step"][-1] if run.history["step"] else 0,
        "pearson": run.pearson, "converged": run.converged,
        "train_seconds": run.history["seconds"][-1] if run.history["seconds"] else 0.0,
        "compile_seconds": run.history["compile_seconds"][-1] if run.history["step"] else 0.0,
        "wall_seconds": time.perf_counter() - start,
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary) if args.json else f"Pearson {run.pearson:.4f} after "
          f"{summary['steps']} steps, {summary['train_seconds']:.0f} s; wrote {out}")  # fmt: skip
    if args.publish:
        from .zoo_entry import publish

        print(f"published to the zoo: {publish(out, args.publish)}")
    return 0


def _contacts(args) -> int:
    from .scores import contact_scores, write_scores

    model, _ = _load(args.model)
    write_scores(args.out, contact_scores(model))
    return 0


def _energies(args) -> int:
    from .alignment import msa
    from .scores import sequence_energies

    model, alphabet = _load(args.model)
    aln = msa(args.alignment, alphabet, dedupe=False)
    if aln.L != model.n_variables:
        raise ValueError(f"the alignment has {aln.L} columns, the model {model.n_variables}")
    energy = sequence_energies(model, aln.sequences)
    lines = [f"{name}\t{e:.6f}" for name, e in zip(aln.names, energy, strict=True)]
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


def _dms(args) -> int:
    from .alignment import msa
    from .scores import single_mutant_scan

    model, alphabet = _load(args.model)
    path, _, row = args.wildtype.partition(":")
    aln = msa(path, alphabet, dedupe=False)
    row = int(row or 0)
    if not 0 <= row < aln.n_sequences:
        raise ValueError(f"--wildtype row {row} is not in 0..{aln.n_sequences - 1}")
    delta = single_mutant_scan(model, aln.sequences[row])
    letters = aln.alphabet
    lines = [f"{i}\t{letters[a]}\t{delta[i, a]:.6f}" for i in range(delta.shape[0])
             for a in range(delta.shape[1])]  # fmt: skip
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


def _sample(args) -> int:
    import jax
    import numpy as np

    import hamon_nnx as hn

    from .scores import write_fasta

    model, alphabet = _load(args.model)
    x = hn.sample(model, jax.random.key(args.seed), n_samples=1, n_chains=args.n,
                  n_warmup=args.sweeps)  # fmt: skip
    write_fasta(args.out, np.asarray(x)[:, -1], alphabet)
    return 0
