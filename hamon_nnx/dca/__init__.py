"""Direct coupling analysis: protein and RNA families as dense Potts models.

Alignments in (`alignment`), Boltzmann-machine DCA training (`bmdca`), and
what users do with the model (`scores`: contacts, energies, mutational
scans; `adabmdca`: adabmDCA's parameter files; `structure`: contact maps
from PDB files). The names a user calls most are here too:

    aln = hn.dca.msa("family.fasta", "protein")
    run = hn.dca.fit(aln, jax.random.key(0), n_chains=1000, max_seconds=600)
    scores = hn.dca.contact_scores(run.model)
    energies = hn.dca.sequence_energies(run.model, aln.sequences)
    hn.dca.save_params(run.model, "params.dat", aln.alphabet)  # adabmDCA reads it
"""

from . import adabmdca as adabmdca
from . import alignment as alignment
from . import bmdca as bmdca
from . import families as families
from . import scores as scores
from . import structure as structure
from .adabmdca import load_params as load_params
from .adabmdca import save_params as save_params
from .alignment import Alignment as Alignment
from .alignment import msa as msa
from .bmdca import fit as fit
from .scores import contact_scores as contact_scores
from .scores import precision_at as precision_at
from .scores import ranked_pairs as ranked_pairs
from .scores import sequence_energies as sequence_energies
from .scores import single_mutant_scan as single_mutant_scan
from .scores import write_fasta as write_fasta
from .scores import write_scores as write_scores
from .structure import contact_map as contact_map
