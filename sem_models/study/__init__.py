"""The alliance study: the analysis pipeline (:mod:`.pipeline`, :func:`run_study`), its
findings with tests and computed verdicts (:mod:`.findings`), its outcome models
(:mod:`.outcomes`) and the HTML report (:mod:`.report`)."""
from .pipeline import StudyError, StudyResults, alliance_design, prepare_out_dir, run_study

__all__ = ["run_study", "StudyResults", "StudyError", "alliance_design", "prepare_out_dir"]
