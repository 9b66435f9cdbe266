"""Robust inference (sandwich SEs, scaled tests, scaled difference tests): kept under this name
for existing imports; the code lives in :mod:`sem_models.inference`."""
from .inference.difference import *  # noqa: F401,F403
from .inference.options import *  # noqa: F401,F403
from .inference.sandwich import *  # noqa: F401,F403
from .inference.scaled import *  # noqa: F401,F403
