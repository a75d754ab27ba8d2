"""Contact maps of alignment columns from a 3D structure (PDB or mmCIF).

Needs Biopython, an optional dependency: `pip install hamon-nnx[dca]`.
"""

from __future__ import annotations

import os

import numpy as np

MIN_IDENTITY = 0.5  # below this the row is not the structure's sequence (or a close homologue)
GAP_CHARACTERS = "-."


def _bio():
    try:
        import Bio  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "contact maps from structures need Biopython: pip install hamon-nnx[dca]"
        ) from e


def _parse(pdb_path):
    from Bio.PDB import MMCIFParser, PDBParser  # pyright: ignore[reportPrivateImportUsage]

    name = os.fspath(pdb_path).lower()
    parser = MMCIFParser(QUIET=True) if name.endswith((".cif", ".mmcif")) else PDBParser(QUIET=True)
    return parser.get_structure("structure", pdb_path)


def _one_letter_codes(alphabet: str) -> dict[str, str]:
    from Bio.Data import PDBData

    if alphabet == "protein":
        return dict(PDBData.protein_letters_3to1_extended)
    if alphabet in ("rna", "dna"):
        return {k.strip(): v for k, v in PDBData.nucleic_letters_3to1_extended.items()}
    raise ValueError(f"alphabet must be 'protein', 'rna' or 'dna' for structures, got {alphabet!r}")


def _residues(structure, chain: str, alphabet: str):
    """The chain's polymer residues in order (first model), their one-letter
    codes, and their heavy-atom coordinates."""
    model = next(iter(structure))
    chains = [c.id for c in model]
    if chain not in chains:
        raise ValueError(f"chain {chain!r} is not in the structure; its chains are {chains}")
    codes = _one_letter_codes(alphabet)
    residues, letters, coords = [], [], []
    for residue in model[chain]:
        code = codes.get(residue.get_resname().strip())
        if code is None:  # water, ligands, ions
            continue
        heavy = [a.coord for a in residue if a.element not in ("H", "D")]
        if not heavy:
            continue
        residues.append(residue)
        letters.append(code)
        coords.append(np.asarray(heavy, np.float64))
    if not residues:
        raise ValueError(f"chain {chain!r} has no {alphabet} residues")
    return "".join(letters), coords


def _aligner(alphabet: str):
    from Bio.Align import PairwiseAligner, substitution_matrices

    aligner = PairwiseAligner(mode="global", open_gap_score=-10.0, extend_gap_score=-0.5)
    if alphabet == "protein":
        aligner.substitution_matrix = substitution_matrices.load("BLOSUM62")
    else:
        aligner.match_score, aligner.mismatch_score = 2.0, -1.0
    # free end gaps: the structure may hold residues the family alignment
    # leaves out (tags, other domains) and miss ones it has (disordered ends)
    aligner.end_gap_score = 0.0
    return aligner


def _min_distances(coords: list[np.ndarray]) -> np.ndarray:
    """Minimum heavy-atom distance between every two residues (n, n)."""
    xyz = np.concatenate(coords)
    starts = np.cumsum([0] + [len(c) for c in coords[:-1]])
    norms = np.sum(np.square(xyz), axis=1)
    d2 = np.maximum(norms[:, None] + norms[None, :] - 2.0 * (xyz @ xyz.T), 0.0)
    d2 = np.minimum.reduceat(np.minimum.reduceat(d2, starts, axis=0), starts, axis=1)
    return np.sqrt(d2)


def contact_map(
    pdb_path: str | os.PathLike,
    chain: str,
    alignment_row: str,
    alphabet: str = "protein",
    cutoff: float = 8.0,
    min_separation: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Contacts between alignment columns, read from one chain of a structure.

    Two residues are in contact when their closest heavy atoms are less than
    `cutoff` Angstrom apart. Residues reach columns through the alignment
    row of the structure's sequence: the row's residues (letters; "-" and
    "." are gaps) are aligned to the chain's residues with Biopython's
    PairwiseAligner (global, affine gaps -10 / -0.5, free end gaps, BLOSUM62
    for proteins), and a column gets the structure residue its row residue
    is aligned to.

    Args:
        pdb_path: a PDB file (.cif / .mmcif: mmCIF); the first model is read.
        chain: the chain id.
        alignment_row: the structure's sequence as a row of the alignment (length L).
        alphabet: "protein", "rna" or "dna".
        cutoff: contact distance in Angstrom.
        min_separation: pairs with |i - j| <= min_separation (in columns) are
            never contacts.

    Returns:
        contacts: (L, L) bool, symmetric; False wherever a column is unmapped.
        mapped: (L,) bool, the columns with a structure residue.

    Raises:
        ImportError: Biopython is missing.
        ValueError: the chain is not in the file, or the row matches the
            structure badly (identity of the aligned residues below 0.5).

    Example (GlpG, the rhomboid family's E. coli member, and its structure):
        >>> contacts, mapped = contact_map("2NRF.pdb", "A", glpg_row)  # doctest: +SKIP
        >>> int(mapped.sum()), int(np.triu(contacts).sum())  # doctest: +SKIP
        (135, 904)
    """
    _bio()
    L = len(alignment_row)
    columns = [k for k, c in enumerate(alignment_row) if c not in GAP_CHARACTERS]
    if not columns:
        raise ValueError("the alignment row has no residues, only gaps")
    columns = np.array(columns)
    row_sequence = "".join(alignment_row[k] for k in columns).upper()
    structure_sequence, coords = _residues(_parse(pdb_path), chain, alphabet)

    alignment = _aligner(alphabet).align(row_sequence, structure_sequence)[0]
    row_index, structure_index = [], []
    for (r0, r1), (s0, s1) in zip(*alignment.aligned, strict=True):
        row_index.extend(range(r0, r1))
        structure_index.extend(range(s0, s1))
    row_index, structure_index = np.array(row_index, int), np.array(structure_index, int)
    row_letters = np.array(list(row_sequence))[row_index]
    same = int(np.sum(row_letters == np.array(list(structure_sequence))[structure_index]))
    identity = same / max(len(row_index), 1)
    if identity < MIN_IDENTITY:
        raise ValueError(
            f"the alignment row does not match the structure: chain {chain!r} of {pdb_path} "
            f"aligns to it with {identity:.0%} identity over {len(row_index)} residues "
            f"(below {MIN_IDENTITY:.0%}); is it the right row, chain or file?"
        )

    mapped = np.zeros(L, bool)
    cols = columns[row_index]
    mapped[cols] = True
    distance = _min_distances([coords[s] for s in structure_index])
    contacts = np.zeros((L, L), bool)
    contacts[np.ix_(cols, cols)] = distance < cutoff
    far = np.abs(np.arange(L)[:, None] - np.arange(L)[None, :]) > min_separation
    return contacts & far, mapped
