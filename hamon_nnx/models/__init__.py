from .base import Block as Block
from .base import EnergyModel as EnergyModel
from .ising import IsingModel as IsingModel
from .rbm import RBM as RBM
from .potts import PottsModel as PottsModel
