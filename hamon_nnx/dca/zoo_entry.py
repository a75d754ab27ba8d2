"""A `hamon-nnx dca train` run as a zoo entry: the model and what it was measured to be.

`publish(out, name)` (what `dca train --publish NAME` calls) saves the run's
model with metadata `hn.zoo.info` shows: the alignment (family, size, Meff,
checksum), the training config and the command that reproduces it, the
Pearson history, and the metrics:

* `pearson`: adabmDCA's convergence measure from the run's persistent
  chains at its last update (what the run stopped on);
* `pearson_resampled`: the same measure from `RESAMPLE_CHAINS` fresh chains
  started from the profile model and run `RESAMPLE_SWEEPS` sweeps, the
  number a user drawing new sequences from the model gets;
* `contact_precision`: at the top 10, L/5, L/2 and L pairs (|i - j| > 4)
  against the family's structure, where one ships (`families`); else None
  with the reason.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp

RESAMPLE_CHAINS = 2000
RESAMPLE_SWEEPS = 1000
MIN_SEPARATION = 4


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resampled_pearson(model, aln, key, n_chains=RESAMPLE_CHAINS, n_sweeps=RESAMPLE_SWEEPS):
    """Pearson of the alignment's and fresh chains' connected correlations, the
    chains drawn from the profile model and run `n_sweeps` heat-bath sweeps."""
    from ..core import gibbs
    from ..models.potts import DensePotts
    from . import bmdca

    data = bmdca.Statistics(*(jnp.asarray(a, jnp.float32) for a in aln.frequencies()))
    start_key, sweep_key = jax.random.split(key)
    chains = bmdca.profile_start(start_key, data, n_chains).chains

    @jax.jit
    def measure(chains, J, h):
        ones = jnp.ones((n_chains,), jnp.float32)
        x = gibbs.sweeps(sweep_key, chains, DensePotts(J, h), ones, 0, n_sweeps)
        return bmdca.pearson(data, bmdca.chain_statistics(x, model.q))

    return float(measure(chains, model.coupling[...], model.field[...]))


def contact_precision(model, aln, family) -> dict | None:
    """Precision at 10, L/5, L/2 and L against the family's structure, or None."""
    from .scores import contact_scores, precision_at, ranked_pairs
    from .structure import contact_map

    if family is None or family.structure is None:
        return None
    row = aln.names.index(family.reference)
    letters = "".join(aln.alphabet[s] for s in aln.sequences[row])
    contacts, mapped = contact_map(family.structure, family.chain, letters)
    ranked = ranked_pairs(contact_scores(model), min_separation=MIN_SEPARATION)
    L = aln.L
    ks = {"10": 10, "L/5": L // 5, "L/2": L // 2, "L": L}
    at = precision_at(ranked, contacts, list(ks.values()), mapped=mapped)
    return {label: at[k] for label, k in ks.items()}


def metadata(out: Path, name: str) -> dict:
    """The zoo metadata of a `dca train` output directory."""
    import hamon_nnx as hn

    from .alignment import msa
    from .families import family as known_family

    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    history = json.loads((out / "history.json").read_text())
    family = known_family(config["family"]) if config.get("family") else None
    aln = msa(config["alignment"], config["alphabet"], theta=config["theta"],
              pseudocount=config["pseudocount"])  # fmt: skip
    model = hn.load(out / "model")
    precision = contact_precision(model, aln, family)
    return {
        "description": f"bmDCA dense Potts model of the {config.get('family') or 'alignment'} "
        f"family (L = {aln.L}, q = {aln.q}), trained to Pearson {summary['pearson']:.3f}",
        "data": {
            "family": config.get("family"),
            "alignment": Path(config["alignment"]).name,
            "alignment_sha256": _sha256(config["alignment"]),
            "alphabet": aln.alphabet,
            "n_sequences": aln.n_sequences,
            "L": aln.L,
            "q": aln.q,
            "meff": aln.meff,
            "theta": config["theta"],
            "pseudocount": aln.pseudocount,
        },  # fmt: skip
        "config": {**config, "alignment": Path(config["alignment"]).name},
        "config_file": f"configs/dca/{name}.yaml",
        "command": f"hamon-nnx dca train --config configs/dca/{name}.yaml -o runs/{name} "
        f"--publish {name}",
        "training": {
            "steps": summary["steps"],
            "converged": summary["converged"],
            "seconds": summary["train_seconds"],
            "compile_seconds": summary["compile_seconds"],
            "history": {"step": history["step"], "pearson": history["pearson"]},
        },  # fmt: skip
        "metrics": {
            "pearson": {"value": summary["pearson"], "method": "persistent chains, last update"},
            "pearson_resampled": {
                "value": resampled_pearson(model, aln, jax.random.key(1)),
                "method": f"{RESAMPLE_CHAINS} fresh chains from the profile model, "
                f"{RESAMPLE_SWEEPS} sweeps",
            },
            "contact_precision": {
                "value": precision,
                "method": f"top pairs |i - j| > {MIN_SEPARATION} against the structure"
                if precision is not None
                else "no structure ships with this family",
            },
        },
        "environment": {"jax": jax.__version__, "hamon_nnx": hn.__version__},
    }


def publish(out, name: str) -> Path:
    """Save `out`'s model with its metadata and copy it into the package's zoo."""
    import hamon_nnx as hn

    out = Path(out)
    path = out / "zoo-model"
    hn.save(hn.load(out / "model"), path, metadata=metadata(out, name), overwrite=True)
    return hn.zoo.publish(path, name)
