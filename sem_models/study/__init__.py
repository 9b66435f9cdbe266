"""The alliance study: the analysis pipeline (:mod:`.pipeline`, :func:`run_study`), its
outcome models (:mod:`.outcomes`) and the HTML report (:mod:`.report`)."""
from .pipeline import StudyResults, alliance_design, run_study

__all__ = ["run_study", "StudyResults", "alliance_design"]
