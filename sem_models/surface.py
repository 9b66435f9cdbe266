"""Response surface formulas, model syntax and bootstrap: kept under this name for existing
imports; the code lives in :mod:`sem_models.discrepancy`."""
from .discrepancy.bootstrap import *  # noqa: F401,F403
from .discrepancy.models import *  # noqa: F401,F403
from .discrepancy.ols import *  # noqa: F401,F403
from .discrepancy.prepare import *  # noqa: F401,F403
from .discrepancy.surface import *  # noqa: F401,F403
