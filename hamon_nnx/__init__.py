"""hamon-nnx: trainable discrete energy-based models in Flax NNX."""

from . import config as config
from . import data as data
from . import dca as dca
from . import exact as exact
from . import observers as observers
from . import plots as plots
from . import training as training
from . import zoo as zoo
from .annealing import AISResult as AISResult
from .annealing import ais as ais
from .core import device as _device
from .core import distributed as distributed
from .core.device import Placement as Placement
from .core.device import chain_mesh as chain_mesh
from .core.device import disable_compile_cache as disable_compile_cache
from .core.device import enable_compile_cache as enable_compile_cache
from .core.device import resolve_device as resolve_device
from .core.diagnostics import effective_sample_size as effective_sample_size
from .core.diagnostics import rhat as rhat
from .models import RBM as RBM
from .models import Binary as Binary
from .models import Block as Block
from .models import Categorical as Categorical
from .models import CategoricalRBM as CategoricalRBM
from .models import CategoricalRBMMarginal as CategoricalRBMMarginal
from .models import ClockModel as ClockModel
from .models import EnergyModel as EnergyModel
from .models import IsingModel as IsingModel
from .models import ModelCheckError as ModelCheckError
from .models import PlaquetteIsing as PlaquetteIsing
from .models import PottsModel as PottsModel
from .models import RBMMarginal as RBMMarginal
from .models import SpinLabelModel as SpinLabelModel
from .models import Spins as Spins
from .models import VariableGroup as VariableGroup
from .models import check_model as check_model
from .parallel_tempering import NRPTResult as NRPTResult
from .parallel_tempering import nrpt as nrpt
from .sampling import observe as observe
from .sampling import sample as sample
from .training import CD as CD
from .training import PCD as PCD
from .training import ExactNegative as ExactNegative
from .training import NRPTNegative as NRPTNegative
from .training import Trainer as Trainer
from .training.checkpoint import load as load
from .training.checkpoint import save as save
from .tuning import NRPTPlan as NRPTPlan
from .tuning import NRPTReport as NRPTReport
from .tuning import autosample as autosample
from .tuning import autotune as autotune
from .tuning import ising_sample as ising_sample
from .version import __version__ as __version__

# JAX's persistent compilation cache, on unless HAMON_NNX_COMPILE_CACHE=0 (see
# `core.device.use_default_compile_cache`): a new process reuses the programs
# an earlier one compiled
_compile_cache_dir = _device.use_default_compile_cache()
