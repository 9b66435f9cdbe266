"""Outcome models of the study: kept under this name for existing imports; the code lives in
:mod:`sem_models.study.outcomes`."""
from .study.outcomes import *  # noqa: F401,F403
