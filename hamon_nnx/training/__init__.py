"""Training: contrastive loss, negative phases, the Trainer, metrics, checkpoints."""

from . import checkpoint as checkpoint
from . import evaluation as evaluation
from . import optimizers as optimizers
from . import trajectory as trajectory
from .checkpoint import CheckpointError as CheckpointError
from .losses import contrastive_loss as contrastive_loss
from .losses import free_energy as free_energy
from .metrics import estimated_log_likelihood as estimated_log_likelihood
from .metrics import estimated_log_partition as estimated_log_partition
from .metrics import exact_log_likelihood as exact_log_likelihood
from .metrics import log_likelihood as log_likelihood
from .metrics import pseudo_log_likelihood as pseudo_log_likelihood
from .metrics import reconstruction_error as reconstruction_error
from .negative import CD as CD
from .negative import PCD as PCD
from .negative import ExactNegative as ExactNegative
from .negative import NRPTNegative as NRPTNegative
from .optimizers import add_l1_penalty as add_l1_penalty
from .optimizers import optimizer as optimizer
from .trainer import Trainer as Trainer
from .trainer import TrainingDiverged as TrainingDiverged
from .trajectory import TrajectoryAIS as TrajectoryAIS
