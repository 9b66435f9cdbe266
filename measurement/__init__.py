"""Alliance measurement models: designs, lavaan syntax builders, reliability and scoring.

* :class:`Design` -- which columns measure what (informant x occasion x dimension x item),
  factor names (``c_mid_bond`` state, ``c_bond`` trait, ``c_mid_wording`` wording factor).
* :func:`state_model`, :func:`trait_model`, :func:`state_trait_model` -- lavaan syntax.
* :func:`reliability` (omega as semTools::compRelSEM, alpha, AVE) and
  :func:`state_trait_coefficients` (consistency, occasion specificity, reliability) from a fit.
* :func:`reverse_score`, :func:`scale_means` -- observed scores.
"""
from .builders import state_model, state_trait_model, trait_model
from .coefficients import (cronbach_alpha, reliability, saturated_moments,
                           state_trait_coefficients)
from .design import Design
from .scoring import reverse_score, scale_means

__all__ = ["Design", "state_model", "trait_model", "state_trait_model", "reliability",
           "state_trait_coefficients", "cronbach_alpha", "saturated_moments",
           "reverse_score", "scale_means"]
