from .base import Block as Block
from .base import EnergyModel as EnergyModel
from .ising import IsingModel as IsingModel
from .potts import PottsModel as PottsModel
from .rbm import RBM as RBM
