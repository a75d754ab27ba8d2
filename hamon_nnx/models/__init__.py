from .base import Block as Block
from .base import EnergyModel as EnergyModel
from .base import model_from_config as model_from_config
from .ising import IsingModel as IsingModel
from .potts import PottsModel as PottsModel
from .rbm import RBM as RBM
