"""The latent congruence model: kept under this name for existing imports; the code lives in
:mod:`sem_models.discrepancy.congruence`."""
from .discrepancy.congruence import *  # noqa: F401,F403
