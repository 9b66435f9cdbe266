"""Response surface analysis with the SEM engine: kept under this name for existing imports;
the code lives in :mod:`sem_models.discrepancy.rsa`."""
from .discrepancy.rsa import *  # noqa: F401,F403
