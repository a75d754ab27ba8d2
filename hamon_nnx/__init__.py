"""hamon-nnx: trainable discrete energy-based models in Flax NNX."""

from . import exact as exact
from .models import RBM as RBM
from .models import Block as Block
from .models import EnergyModel as EnergyModel
from .models import IsingModel as IsingModel
from .models import PottsModel as PottsModel
from .nrpt import NRPTResult as NRPTResult
from .nrpt import nrpt as nrpt
from .sampling import sample as sample
from .tuning import NRPTPlan as NRPTPlan
from .tuning import NRPTReport as NRPTReport
from .tuning import autosample as autosample
from .tuning import autotune as autotune
from .tuning import ising_sample as ising_sample

__version__ = "0.1.0"
