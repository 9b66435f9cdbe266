"""Inference: what follows from a fitted model.

* :mod:`.wald` -- the covariance matrix of the estimates, defined parameters (delta method),
  Wald tests;
* :mod:`.options` -- lavaan's ``se`` / ``test`` / ``information`` options per estimator;
* :mod:`.sandwich` -- robust (sandwich) covariance matrices in h1 coordinates (MLM, MLR,
  cluster-robust, FIML);
* :mod:`.scaled` -- scaled test statistics, baseline tests, FIML-corrected robust indices;
* :mod:`.difference` -- scaled chi-square difference tests; :mod:`.lrt` -- :func:`compare`;
* :mod:`.fitmeasures`, :mod:`.modindices`, :mod:`.standardized`, :mod:`.distributions`.
"""
