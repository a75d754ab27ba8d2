"""Direct coupling analysis: protein and RNA families as dense Potts models.

Alignments in (`alignment`), Boltzmann-machine DCA training (`bmdca`), and
what users do with the model (`scores`: contacts, energies, mutational
scans; `adabmdca`: adabmDCA's parameter files).
"""

from . import adabmdca as adabmdca
from . import alignment as alignment
from . import bmdca as bmdca
from . import families as families
from . import scores as scores
from . import structure as structure
from .alignment import Alignment as Alignment
from .alignment import msa as msa
from .bmdca import fit as fit
